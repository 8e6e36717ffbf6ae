// kho/hole_finder.hpp: free RAM found by walking the preserved-memory map.
//
// The next kernel boots from small scratch regions ("KHO boot memory"). When they run
// out, before any allocator exists, it needs memory that is RAM and that nothing from
// the previous kernel lives in. Such memory is a *hole*: a page-granular range that is
//
//   inside a caller's RAM range             (adjacent RAM ranges join)
//   covered by no preserved block           (any order: the radix tree's merged walk)
//   not a page of the tree itself           (a Linux-written tree does not record them)
//   not in a caller's reserved range        (the handover's own pages, firmware holes)
//
// Every query is one ascending sweep that merges four sorted streams of busy ranges
// and reports the gaps between them; the preserved stream drives, the others are
// drained up to each preserved range as it arrives:
//
//   RAM        [==========)   [============================)  [========)
//   preserved     ##    ####        ###        #######                    for_each_range
//   tree pages                 N                       N         N        view.nodes()
//   reserved                               rrr                            caller, by start
//   gaps                    ---                                --         between RAM ranges
//   holes      [==)  [==)         [=)[====)   [)       [)                [)[====)
//
// The preserved stream is preserve_bitmap's k-way merge over the per-order cursors,
// so an absent table entry skips its whole subtree at every order at once and a zero
// bitmap word skips 64 blocks; nothing here descends the tree a second time. The walk
// takes a window, and a query that has its answer (first_fit) returns false from the
// walk's callback, so it reads only the leaves up to that answer.
//
// Granularity: RAM ranges must be page aligned; reserved ranges may be any bytes and
// make every page they touch busy; a query window is rounded inward to pages. Holes
// therefore start and end on page boundaries. Sizes and alignments of first_fit and
// last_fit are in bytes (last_fit places its range at the top of a hole, as memblock
// does, so its start is aligned to `align`, not necessarily to a page).
//
// Invariants (checked by create(), which every query relies on):
//   - RAM ranges are non-empty, page aligned, ascending and disjoint (touching is fine);
//   - reserved ranges have start <= end and ascend by start (they may overlap);
//   - the map, the RAM and reserved arrays and, for a view, its node list outlive the
//     finder: it keeps pointers to them and copies nothing.
//
// Complexity, for a window holding B preserved blocks in R coalesced ranges, k orders
// present, L leaves and W bitmap words on the walk's path, N tree pages and X reserved
// ranges: one sweep costs O(B*k + L*depth + W + N + X + log(RAM ranges)).
//   for_each_hole, largest_hole   one sweep of the window
//   first_fit                     one sweep of [window start, answer]: early exit
//   last_fit                      sweeps of disjoint chunks from the top, doubling in
//                                 size: O(sweep of [answer, window end]) plus
//                                 O(log(window / first chunk)) walk set-ups
//   grow_scratch (grow_bootmem)   one sweep plus O(H log m) for H holes and m pieces
// Memory: none beyond the stack; nothing allocates and preserved memory is only read.
#pragma once

#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <algorithm>
#include <concepts>
#include <span>
#include <type_traits>

namespace kho {

/// A half-open physical range [start, end).
struct phys_range {
  phys_addr start{};
  phys_addr end{};

  /// Bytes in the range; 0 when end <= start.
  constexpr u64 size() const { return end > start ? end - start : 0; }
  constexpr bool empty() const { return end <= start; }
  constexpr bool operator==(const phys_range&) const = default;
};

/// [start, start+size). Errors: out_of_range (the end wraps past 2^64).
inline result<phys_range> make_range(phys_addr start, u64 size) {
  u64 end = 0;
  if (!checked_add(start.value, size, end)) return make_error(errc::out_of_range, "holes", start);
  return phys_range{start, phys_addr{end}};
}

/// What a preserved-memory map must offer: the ascending, coalesced walk of
/// preserve_bitmap and preserve_bitmap_view, with a window and early exit.
template <class Map>
concept preserved_map = requires(const Map& m, phys_addr a, bool (*f)(phys_addr, u64)) {
  m.for_each_range(a, a, f);
  { Map::geometry::page_shift } -> std::convertible_to<unsigned>;
};

/// A map that knows its own pages (a validated view); they are busy memory.
template <class Map>
concept lists_node_pages = requires(const Map& m) {
  { m.nodes() } -> std::convertible_to<std::span<const u64>>;
};

/// What the last query of a finder did: how much of the map it had to read.
struct hole_stats {
  u64 walks = 0;   // merged walks started: one per query, one per chunk in last_fit
  u64 ranges = 0;  // coalesced preserved ranges the walks delivered
  u64 holes = 0;   // holes the sweep produced (before any min_size filter)
};

/// What grow_scratch chose: out[0..pieces), largest first, `bytes` in all.
struct scratch_plan {
  u64 pieces = 0;
  u64 bytes = 0;  // >= need; need rounded up to a page at most
};
using bootmem_plan = scratch_plan;  // the kernel's newer name (kho/linux/bootmem.hpp)

/// Holes of a preserved-memory map (a preserve_bitmap_view, or a writer's
/// preserve_bitmap) within the RAM ranges a caller names. Read-only, allocation-free.
/// Queries are const but record their hole_stats in the finder: one query at a time.
template <preserved_map Map>
class hole_finder {
 public:
  using geometry = page_geometry<Map::geometry::page_shift>;
  static constexpr const char* structure = "holes";

  /// A finder over `map`, `ram` and `reserved`, all kept by reference.
  /// With a writer that does not record its own pages (record_own_pages = false), the
  /// tree's pages are unknown here: name them in `reserved`, or use a view.
  /// Complexity: O(RAM ranges + reserved ranges).
  /// Errors: invalid_argument (no RAM; a RAM range empty, unsorted or overlapping; a
  /// reserved range with end < start or out of order), misaligned (a RAM bound not on
  /// a page boundary). `where.at` names the offending start.
  static result<hole_finder> create(const Map& map, std::span<const phys_range> ram,
                                    std::span<const phys_range> reserved = {}) {
    if (ram.empty()) return make_error(errc::invalid_argument, structure);
    u64 total = 0;
    for (size_t i = 0; i < ram.size(); ++i) {
      const phys_range& r = ram[i];
      if (!geometry::is_aligned(r.start) || !geometry::is_aligned(r.end))
        return make_error(errc::misaligned, structure, r.start);
      if (r.empty() || (i > 0 && r.start < ram[i - 1].end))
        return make_error(errc::invalid_argument, structure, r.start);
      total += r.size();  // disjoint ranges below 2^64: the sum cannot wrap
    }
    for (size_t i = 0; i < reserved.size(); ++i) {
      if (reserved[i].end < reserved[i].start || (i > 0 && reserved[i].start < reserved[i - 1].start))
        return make_error(errc::invalid_argument, structure, reserved[i].start);
    }
    return hole_finder(map, ram, reserved, total);
  }

  /// From the first RAM byte to the last: the window every query defaults to.
  phys_range ram_window() const { return {ram_.front().start, ram_.back().end}; }
  /// Bytes of RAM in all ranges.
  u64 ram_bytes() const { return ram_bytes_; }
  /// What the last query read.
  const hole_stats& stats() const { return stats_; }

  /// last_fit's first chunk, rounded up to a page (at least one). The default, one
  /// leaf's order-0 span, suits trees; smaller chunks read fewer ranges per chunk but
  /// set up more walks. Complexity: O(1).
  void set_last_fit_chunk(u64 bytes) { first_chunk_ = std::max(round_up(bytes), geometry::size); }
  u64 last_fit_chunk() const { return first_chunk_; }

  /// Calls f(start, size) for every hole of at least `min_size` bytes inside `window`,
  /// ascending. f may return false to stop.
  /// Complexity: one sweep of the window, up to where f stops it.
  /// Errors: invalid_argument (window empty after rounding inward to pages),
  /// out_of_bounds (the window holds no RAM).
  template <class F>
  status for_each_hole(phys_range window, u64 min_size, F&& f) const {
    stats_ = {};
    phys_range w{};
    KHO_TRY(clip(window, w));
    auto sink = [&](u64 s, u64 e) {
      if (e - s < min_size) return true;
      if constexpr (std::is_same_v<decltype(f(phys_addr{}, u64{})), bool>)
        return f(phys_addr{s}, e - s);
      else
        return f(phys_addr{s}, e - s), true;
    };
    sweep(w.start.value, w.end.value, sink);
    return {};
  }
  template <class F>
  status for_each_hole(F&& f) const {
    return for_each_hole(ram_window(), 0, f);
  }

  /// The largest hole inside `window`; among equals, the lowest.
  /// Complexity: one sweep of the window. Errors: invalid_argument, out_of_bounds (as
  /// for_each_hole), no_hole (every RAM page of the window is busy).
  result<phys_range> largest_hole(phys_range window) const {
    stats_ = {};
    phys_range w{};
    KHO_TRY(clip(window, w));
    phys_range best{};
    auto sink = [&](u64 s, u64 e) {
      if (e - s > best.size()) best = phys_range{phys_addr{s}, phys_addr{e}};
      return true;
    };
    sweep(w.start.value, w.end.value, sink);
    if (best.empty()) return make_error(errc::no_hole, structure, w.start);
    return best;
  }
  result<phys_range> largest_hole() const { return largest_hole(ram_window()); }

  /// The lowest free [a, a+size) inside `window` with a a multiple of `align`.
  /// Complexity: one sweep of [window start, answer]; it reads no leaf past the hole
  /// it returns. Errors: invalid_argument (size 0, align not a power of two, empty
  /// window), out_of_range (size beyond all RAM), out_of_bounds (no RAM in the window),
  /// no_hole.
  result<phys_range> first_fit(u64 size, u64 align, phys_range window) const {
    stats_ = {};
    phys_range w{};
    KHO_TRY(check_fit(size, align, window, w));
    phys_range found{};
    auto sink = [&](u64 s, u64 e) {
      u64 a = 0, a_end = 0;
      if (!checked_add(s, align - 1, a)) return false;  // no aligned start fits below 2^64
      a &= ~(align - 1);
      if (a < e && checked_add(a, size, a_end) && a_end <= e) {
        found = phys_range{phys_addr{a}, phys_addr{a_end}};
        return false;
      }
      return true;
    };
    sweep(w.start.value, w.end.value, sink);
    if (found.empty()) return make_error(errc::no_hole, structure, w.start);
    return found;
  }
  result<phys_range> first_fit(u64 size, u64 align) const { return first_fit(size, align, ram_window()); }

  /// The highest free [a, a+size) inside `window` with a a multiple of `align`: the
  /// top-down placement memblock uses.
  ///
  /// The walk only ascends, so last_fit sweeps chunks from the top of the window down:
  /// the first is max(size, last_fit_chunk()) bytes, each next one twice the
  /// last, and chunks are disjoint so no range is read twice. Within a chunk the highest
  /// fitting hole is the answer for the whole window (a fit's start only grows with its
  /// hole's end); a hole cut by a chunk boundary is carried down and joined with its
  /// lower part.
  /// Complexity: O(sweep of [answer, window end] + log2(window / first chunk) * walk
  /// set-up), the set-up being O(k * depth + absent entries skipped).
  /// Errors: as first_fit.
  result<phys_range> last_fit(u64 size, u64 align, phys_range window) const {
    stats_ = {};
    phys_range w{};
    KHO_TRY(check_fit(size, align, window, w));
    const u64 lo = w.start.value;
    u64 top = w.end.value;
    u64 chunk = std::max(round_up(size), first_chunk_);
    u64 carry_end = 0;  // end of the hole that began at the last chunk's bottom; 0: none
    while (top > lo) {
      const u64 bottom = top - lo > chunk ? top - chunk : lo;
      u64 best = 0, next_carry = 0;
      bool found = false;
      auto sink = [&](u64 s, u64 e) {
        if (e == top && carry_end != 0) e = carry_end;
        if (s == bottom) next_carry = e;
        if (e - s >= size) {
          const u64 a = (e - size) & ~(align - 1);
          if (a >= s) {
            best = a;
            found = true;
          }
        }
        return true;
      };
      sweep(bottom, top, sink);
      if (found) return phys_range{phys_addr{best}, phys_addr{best + size}};
      carry_end = next_carry;
      top = bottom;
      chunk = chunk > (~u64{0} >> 1) ? ~u64{0} : chunk * 2;
    }
    return make_error(errc::no_hole, structure, w.start);
  }
  result<phys_range> last_fit(u64 size, u64 align) const { return last_fit(size, align, ram_window()); }

  /// Chooses holes inside `window` to cover `need` bytes with as few pieces as possible:
  /// the largest holes first, the last one trimmed to what is still needed (from its
  /// bottom, rounded up to a page). Writes them to out[0..pieces), largest first; the
  /// rest of `out` is scratch. At most out.size() pieces.
  /// Complexity: one sweep of the window plus O(H log m), H holes, m = out.size().
  /// Errors: invalid_argument (need 0, out empty, empty window), out_of_range (need
  /// beyond all RAM), out_of_bounds (no RAM in the window), no_hole (the m largest
  /// holes together are smaller than `need`).
  result<scratch_plan> grow_scratch(u64 need, std::span<phys_range> out, phys_range window) const {
    stats_ = {};
    if (need == 0 || out.empty()) return make_error(errc::invalid_argument, structure);
    if (need > ram_bytes_) return make_error(errc::out_of_range, structure);
    phys_range w{};
    KHO_TRY(clip(window, w));
    // The m largest so far, kept as a heap whose top is the worst of them.
    auto better = [](const phys_range& a, const phys_range& b) {
      return a.size() > b.size() || (a.size() == b.size() && a.start < b.start);
    };
    size_t n = 0;
    auto sink = [&](u64 s, u64 e) {
      const phys_range h{phys_addr{s}, phys_addr{e}};
      if (n < out.size()) {
        out[n++] = h;
        std::push_heap(out.begin(), out.begin() + n, better);
      } else if (better(h, out[0])) {
        std::pop_heap(out.begin(), out.begin() + n, better);
        out[n - 1] = h;
        std::push_heap(out.begin(), out.begin() + n, better);
      }
      return true;
    };
    sweep(w.start.value, w.end.value, sink);
    std::sort(out.begin(), out.begin() + n, better);
    u64 covered = 0;
    size_t pieces = 0;
    while (pieces < n && covered < need) covered += out[pieces++].size();
    if (covered < need) return make_error(errc::no_hole, structure, w.start);
    const u64 trim = (covered - need) & ~geometry::mask;
    out[pieces - 1].end = phys_addr{out[pieces - 1].end.value - trim};  // trim < its size
    return scratch_plan{pieces, covered - trim};
  }
  result<scratch_plan> grow_scratch(u64 need, std::span<phys_range> out) const {
    return grow_scratch(need, out, ram_window());
  }
  /// The kernel's newer name for the same step: growing KHO boot memory (bootmem.hpp).
  result<scratch_plan> grow_bootmem(u64 need, std::span<phys_range> out, phys_range window) const {
    return grow_scratch(need, out, window);
  }
  result<scratch_plan> grow_bootmem(u64 need, std::span<phys_range> out) const { return grow_scratch(need, out); }

 private:
  hole_finder(const Map& map, std::span<const phys_range> ram, std::span<const phys_range> reserved,
              u64 ram_bytes)
      : map_(&map), ram_(ram), reserved_(reserved), ram_bytes_(ram_bytes) {}

  static constexpr u64 round_down(u64 v) { return v & ~geometry::mask; }
  // Saturates: a bound within a page of 2^64 means "to the end".
  static constexpr u64 round_up(u64 v) {
    return v > (~u64{0} & ~geometry::mask) ? ~u64{0} : (v + geometry::mask) & ~geometry::mask;
  }

  // The window rounded inward to pages and cut to the RAM hull; it must touch RAM.
  status clip(phys_range window, phys_range& out) const {
    if (window.end < window.start) return make_error(errc::invalid_argument, structure, window.start);
    const u64 start = std::max(round_up(window.start.value), ram_.front().start.value);
    const u64 end = std::min(round_down(window.end.value), ram_.back().end.value);
    if (round_up(window.start.value) >= round_down(window.end.value))
      return make_error(errc::invalid_argument, structure, window.start);
    for (const phys_range& r : ram_) {
      if (r.start.value < end && start < r.end.value) {
        out = phys_range{phys_addr{start}, phys_addr{end}};
        return {};
      }
    }
    return make_error(errc::out_of_bounds, structure, window.start);
  }

  status check_fit(u64 size, u64 align, phys_range window, phys_range& w) const {
    if (size == 0 || align == 0 || (align & (align - 1)) != 0)
      return make_error(errc::invalid_argument, structure, window.start);
    if (size > ram_bytes_) return make_error(errc::out_of_range, structure, window.start);
    return clip(window, w);
  }

  // The sweep: calls sink(start, end) for each hole of [from, to) in ascending order
  // until it returns false. [from, to) is page aligned, inside the RAM hull, non-empty.
  template <class Sink>
  void sweep(u64 from, u64 to, Sink& sink) const {
    ++stats_.walks;
    constexpr u64 none = ~u64{0};
    // RAM: start in the first range that ends after `from`; what lies before it, and
    // every gap between ranges, is busy.
    const phys_range* ram =
        std::partition_point(ram_.data(), ram_.data() + ram_.size(), [&](const phys_range& r) {
          return r.end.value <= from;
        });
    const phys_range* const ram_last = ram_.data() + ram_.size() - 1;
    u64 cursor = std::max(from, ram->start.value);
    // Tree pages: the first one that ends after `from`.
    const u64* node = nullptr;
    const u64* node_end = nullptr;
    if constexpr (lists_node_pages<Map>) {
      const std::span<const u64> nodes = map_->nodes();
      node = std::lower_bound(nodes.data(), nodes.data() + nodes.size(),
                              from >= geometry::size ? from - geometry::size + 1 : 0);
      node_end = nodes.data() + nodes.size();
    }
    const phys_range* res = reserved_.data();
    const phys_range* const res_end = reserved_.data() + reserved_.size();
    bool open = cursor < to;
    // Counted in locals, stored once: a store per range to a member would make the
    // compiler reload the walk's cursors, which are u64 too.
    u64 ranges = 0, holes = 0;

    auto busy = [&](u64 s, u64 e) {
      if (s > cursor) {
        ++holes;
        if (!sink(cursor, std::min(s, to))) return open = false;
        cursor = s;
      }
      if (e > cursor) cursor = e;
      if (cursor >= to) open = false;
      return open;
    };
    // The lowest start among the three pulled streams, or `none`.
    auto pull_head = [&]() {
      while (res != res_end && res->start == res->end) ++res;  // empty: nothing busy
      while (ram != ram_last && ram->end == ram[1].start) ++ram;  // touching: no gap
      u64 h = none;
      if (node != node_end) h = *node;
      if (res != res_end) h = std::min(h, round_down(res->start.value));
      if (ram != ram_last) h = std::min(h, ram->end.value);
      return h;
    };
    u64 head = pull_head();
    // Feeds every pulled range that starts before `limit`, in ascending order.
    auto drain = [&](u64 limit) {
      while (open && head < limit) {
        if (node != node_end && *node == head) {
          busy(head, *node++ + geometry::size);
        } else if (res != res_end && round_down(res->start.value) == head) {
          busy(head, round_up(res->end.value));
          ++res;
        } else {
          ++ram;
          busy(head, ram->start.value);
        }
        head = pull_head();
      }
      return open;
    };

    if (open) {
      // Preserved ranges ascend, do not touch and end by `to`; only a pulled range can
      // have moved the cursor past one's start.
      map_->for_each_range(phys_addr{cursor}, phys_addr{to}, [&](phys_addr s, u64 n) {
        ++ranges;
        const u64 start = s.value, end = start + n;
        if (head < start && !drain(start)) return false;
        if (start > cursor) {
          ++holes;
          if (!sink(cursor, start)) return open = false;
        }
        if (end > cursor) cursor = end;
        return true;
      });
      if (open && drain(to) && cursor < to) {
        ++holes;
        sink(cursor, to);
      }
    }
    stats_.ranges += ranges;
    stats_.holes += holes;
  }

  const Map* map_;
  std::span<const phys_range> ram_;
  std::span<const phys_range> reserved_;
  u64 ram_bytes_ = 0;
  // One leaf's order-0 span (128 MiB with 4 KiB pages): a smaller first chunk would
  // descend to the same leaf again for the next chunk, for little gain.
  u64 first_chunk_ = geometry::size << (Map::geometry::page_shift + 3);
  mutable hole_stats stats_{};
};

/// A finder with the map type deduced. Errors: as hole_finder::create.
template <preserved_map Map>
result<hole_finder<Map>> make_hole_finder(const Map& map, std::span<const phys_range> ram,
                                          std::span<const phys_range> reserved = {}) {
  return hole_finder<Map>::create(map, ram, reserved);
}

}  // namespace kho
