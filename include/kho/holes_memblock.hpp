// kho/holes_memblock.hpp: a boot that never fills memblock.reserved.
//
// Restoring the preserved-memory map into memblock.reserved costs one region per
// preserved range, only for memblock_free_all to subtract them all again at the end
// of boot. This model side-steps it: the map itself is the record of what is busy,
// and memblock answers from its holes.
//
//   busy     preserved blocks (the radix walk), the tree's own pages (a view lists
//            them; a Linux-written tree does not record them), the caller's reserved
//            ranges (kernel image, firmware, the handover), and early allocations
//   alloc    memblock_alloc(): the highest fitting hole (top-down, as memblock
//            places), recorded as one more reserved range
//   free_all memblock_free_all(): one sweep of the holes, each handed to the buddy
//            allocator in maximal naturally aligned blocks (buddy_model.hpp)
//   free_all_words
//            the same hand-over into free bitmaps (bitmap_buddy.hpp), word by word:
//            order-0 leaf words complemented straight in, everything else busy taken
//            back as ranges; no per-hole and no per-block work
//
//   RAM       [=================================================)
//   busy        ##   N    rrr   ##   ####            aaaa
//   free_all  [)  [)  [)   [)  [)  [)    [============)    [====)   -> buddy
//
// Early allocations are few (the kernel makes a few hundred before the page allocator
// exists), so they live in a caller-sized array kept sorted with the reserved ranges;
// each alloc costs one last_fit query plus O(reserved) to insert.
//
// Memory: none; the map, RAM and storage arrays belong to the caller and must outlive
// this object. Complexity: free_all is one hole-finder sweep plus O(blocks handed
// over): O(B*k + L*depth + W + N + X) as in hole_finder.hpp, with no region array.
#pragma once

#include <kho/bitmap_buddy.hpp>
#include <kho/buddy_model.hpp>
#include <kho/hole_finder.hpp>
#include <kho/phys.hpp>
#include <kho/preserve_bitmap/leaf_scan.hpp>
#include <kho/result.hpp>

#include <algorithm>
#include <cstring>
#include <span>

namespace kho {

namespace detail {

// The caller's reserved ranges (rounded out to whole pages) and the gaps between RAM
// ranges, merged into one ascending stream of busy ranges for scan_busy.
template <unsigned PageShift>
class reserved_and_gaps {
 public:
  static constexpr u64 mask = (u64{1} << PageShift) - 1;

  reserved_and_gaps(std::span<const phys_range> reserved, std::span<const phys_range> ram)
      : res_(reserved.data()), res_end_(reserved.data() + reserved.size()), ram_(ram.data()),
        ram_last_(ram.data() + ram.size() - 1) {
    settle();
  }

  u64 head() const { return start_; }
  u64 head_end() const { return end_; }
  void next() {
    if (from_ram_)
      ++ram_;
    else
      ++res_;
    settle();
  }

 private:
  void settle() {
    while (res_ != res_end_ && res_->empty()) ++res_;       // empty: nothing busy
    while (ram_ != ram_last_ && ram_->end == ram_[1].start) ++ram_;  // touching: no gap
    const u64 r = res_ != res_end_ ? res_->start.value & ~mask : ~u64{0};
    const u64 g = ram_ != ram_last_ ? ram_->end.value : ~u64{0};
    from_ram_ = g < r;
    start_ = from_ram_ ? g : r;
    if (start_ == ~u64{0}) return;
    end_ = from_ram_ ? ram_[1].start.value
                     : (res_->end.value > (~u64{0} & ~mask) ? ~u64{0} : (res_->end.value + mask) & ~mask);
  }

  const phys_range* res_;
  const phys_range* res_end_;
  const phys_range* ram_;
  const phys_range* ram_last_;
  u64 start_ = ~u64{0}, end_ = 0;
  bool from_ram_ = false;
};

}  // namespace detail

/// memblock answered from the holes of a preserved-memory map.
template <preserved_map Map>
class holes_memblock {
 public:
  using geometry = page_geometry<Map::geometry::page_shift>;
  using finder_type = hole_finder<Map>;
  static constexpr const char* structure = "holes_memblock";

  /// A memblock over `map` and `ram`; `reserved` (ascending by start) is copied into
  /// `storage`, whose spare room bounds the early allocations.
  /// Complexity: O(RAM ranges + reserved ranges).
  /// Errors: table_full (storage smaller than reserved), and as hole_finder::create.
  static result<holes_memblock> create(const Map& map, std::span<const phys_range> ram,
                                       std::span<const phys_range> reserved, std::span<phys_range> storage) {
    if (storage.size() < reserved.size()) return make_error(errc::table_full, structure);
    if (!reserved.empty()) std::memmove(storage.data(), reserved.data(), reserved.size() * sizeof(phys_range));
    auto f = finder_type::create(map, ram, storage.first(reserved.size()));
    if (!f) return f.err();
    return holes_memblock(map, ram, storage, reserved.size(), *f);
  }

  /// memblock_alloc(): the highest free [a, a+size) with a a multiple of `align`,
  /// recorded as reserved. Complexity: one last_fit + O(reserved).
  /// Errors: as hole_finder::last_fit; table_full (no room left in storage).
  result<phys_range> alloc(u64 size, u64 align) { return alloc_range(size, align, finder_.ram_window()); }

  /// memblock_alloc_range(): as alloc, inside `window`.
  result<phys_range> alloc_range(u64 size, u64 align, phys_range window) {
    if (count_ == storage_.size()) return make_error(errc::table_full, structure);
    auto r = finder_.last_fit(size, align, window);
    if (!r) return r;
    // Keep storage ascending by start: the finder drains it as a sorted stream.
    phys_range* at = std::upper_bound(storage_.data(), storage_.data() + count_, *r,
                                      [](const phys_range& a, const phys_range& b) { return a.start < b.start; });
    std::memmove(at + 1, at, (storage_.data() + count_ - at) * sizeof(phys_range));
    *at = *r;
    ++count_;
    ++allocations_;
    finder_ = *finder_type::create(*map_, ram_, reserved());  // still sorted: cannot fail
    return r;
  }

  /// memblock_free_all(): every hole, in maximal naturally aligned blocks, to `buddy`.
  /// Over a validated view, one scan of the leaves (leaf_scan.hpp) instead of the
  /// finder's merged walk; over a writer, the finder's sweep.
  /// Complexity: one sweep (see the header comment) plus O(blocks).
  /// Errors: none in practice (the whole RAM window is valid).
  template <class Buddy>
  status free_all(Buddy& buddy) const {
    auto give = [&](u64 s, u64 e) { buddy.free_range(pfn{s >> geometry::shift}, pfn{e >> geometry::shift}); };
    if constexpr (is_view) {
      // A validated view: one scan of its leaves (preserve_bitmap/leaf_scan.hpp), every
      // busy range in ascending order; the holes are the gaps between them.
      const phys_range w = finder_.ram_window();
      u64 cursor = w.start.value;
      const u64 hi = w.end.value;
      detail::scan_busy(*map_, w.start.value, hi,
                        detail::reserved_and_gaps<geometry::shift>(reserved(), ram_), [&](u64 s, u64 e) {
                          if (s > hi) s = hi;  // a reserved range above RAM
                          if (s > cursor) give(cursor, s);
                          if (e > cursor) cursor = e;
                          return true;
                        });
      if (cursor < w.end.value) give(cursor, w.end.value);
      return {};
    } else {
      return finder_.for_each_hole(finder_.ram_window(), 0, [&](phys_addr s, u64 n) {
        give(s.value, s.value + n);
        return true;
      });
    }
  }

  /// memblock_free_all() into free bitmaps: every free RAM frame set in the zone whose
  /// window holds it, nothing else. `zones` ascend, do not overlap, and together cover
  /// every RAM frame (as the kernel's zones do; sparse RAM takes one zone per part, so
  /// the bitmaps do not span the gaps). Their counts equal free_all's into buddy_model
  /// when no zone boundary splits a hole other than at a multiple of 2^MaxOrder frames.
  /// Over a validated view, per zone and RAM range: order-0 leaf words complemented into
  /// the bitmap (a missing leaf frees its whole span), then the other orders' blocks,
  /// the tree's pages and the reserved ranges taken back as ranges. Over a writer, the
  /// finder's holes as ranges.
  /// Complexity: O(W + R * (k + 1) + (RAM ranges + reserved) * zones) for W bitmap
  /// words, R busy ranges other than order-0 blocks, k other orders present; plus the
  /// zones' finishing passes (O(W)) when their counts are read.
  /// Errors: out_of_range (a RAM frame outside every zone), invalid_argument (zones
  /// overlap or descend); nothing is freed then.
  template <unsigned MaxOrder>
  status free_all_words(std::span<bitmap_buddy<MaxOrder>> zones) const {
    KHO_TRY(check_zones(zones));
    if constexpr (is_view) {
      for (bitmap_buddy<MaxOrder>& z : zones) {
        for (const phys_range& r : ram_) {
          const u64 a = std::max(r.start.value >> geometry::shift, z.start().value);
          const u64 b = std::min(r.end.value >> geometry::shift, z.end().value);
          if (a < b) free_leaf_words(z, a, b);
        }
        take_side_ranges(z);
      }
      return {};
    } else {
      size_t first = 0;  // holes ascend: zones below them are done
      return finder_.for_each_hole(finder_.ram_window(), 0, [&](phys_addr s, u64 n) {
        const u64 a = s.value >> geometry::shift, b = (s.value + n) >> geometry::shift;
        while (first < zones.size() && zones[first].end().value <= a) ++first;
        for (size_t i = first; i < zones.size() && zones[i].start().value < b; ++i)
          zones[i].free_range(pfn{a}, pfn{b});
        return true;
      });
    }
  }

  /// free_all_words with one zone. Complexity and errors: as for a span of zones.
  template <unsigned MaxOrder>
  status free_all_words(bitmap_buddy<MaxOrder>& zone) const {
    return free_all_words(std::span<bitmap_buddy<MaxOrder>>(&zone, 1));
  }

  /// The reserved ranges and early allocations, ascending by start.
  std::span<const phys_range> reserved() const { return {storage_.data(), count_}; }
  u64 allocations() const { return allocations_; }
  const finder_type& finder() const { return finder_; }

 private:
  static constexpr bool is_view = requires(const Map& m) {
    m.memory();
    m.nodes();
    typename Map::walker;
  };

  /// Zones ascending and disjoint, and every RAM frame inside one.
  template <class Zone>
  status check_zones(std::span<Zone> zones) const {
    for (size_t i = 1; i < zones.size(); ++i)
      if (zones[i].start() < zones[i - 1].end()) return make_error(errc::invalid_argument, structure);
    size_t z = 0;
    for (const phys_range& r : ram_) {
      u64 f = r.start.value >> geometry::shift;
      const u64 e = r.end.value >> geometry::shift;
      while (f < e) {  // the zones covering [f, e), in order
        while (z < zones.size() && (zones[z].end().value <= f || zones[z].start() == zones[z].end())) ++z;
        if (z == zones.size() || zones[z].start().value > f) return make_error(errc::out_of_range, structure, r.start);
        f = zones[z].end().value;
      }
    }
    return {};
  }

  /// Frees the RAM frames [a, b) of `z` that no order-0 block holds: each order-0 leaf
  /// complemented word by word, the span of a missing leaf freed whole.
  template <class Zone>
  void free_leaf_words(Zone& z, u64 a, u64 b) const {
    if (map_->count(order{0}) == 0) {
      z.free_range(pfn{a}, pfn{b});
      return;
    }
    using walker = typename Map::walker;
    using geo = typename Map::geometry;
    constexpr u64 span = u64{1} << geo::leaf_bits;  // frames per order-0 leaf
    const u64 bit = geo::order_bit(order{0});
    const walker w(&map_->memory(), map_->root());
    typename walker::leaf_ref leaf{};
    u64 cursor = a;
    for (u64 key = bit + a; key < bit + b && w.next_leaf(key, bit + b, leaf); key = leaf.base + span) {
      const u64 first = leaf.base ^ bit;  // the leaf's bit 0
      if (cursor < first) z.free_range(pfn{cursor}, pfn{first});
      const u64 s = std::max(first, a), e = std::min(first + span, b);
      z.free_where_clear(pfn{s}, pfn{e}, leaf.words + ((s - first) >> 6));
      cursor = e;
    }
    if (cursor < b) z.free_range(pfn{cursor}, pfn{b});
  }

  /// Takes back what is busy in `z` besides order-0 blocks: the other orders' blocks,
  /// the tree's pages, the reserved ranges. RAM gaps were never freed.
  template <class Zone>
  void take_side_ranges(Zone& z) const {
    using walker = typename Map::walker;
    const phys_range w = finder_.ram_window();
    // A frame number past 2^(64 - shift) has no byte address: the window's end then.
    auto bytes = [](pfn f) { return f.value >> (64 - geometry::shift) ? ~u64{0} : f.value << geometry::shift; };
    const u64 lo = std::max(w.start.value, bytes(z.start()));
    const u64 hi = std::min(w.end.value, bytes(z.end()));
    if (lo >= hi) return;
    const walker walk(&map_->memory(), map_->root());
    using extra = detail::reserved_and_gaps<geometry::shift>;
    detail::side_stream<walker, geometry::shift, extra> side(
        walk, detail::orders_present(*map_) & ~u64{1}, lo, hi,
        detail::nodes_in<geometry::shift>(map_->nodes(), lo, hi), extra(reserved(), ram_.first(1)));  // one range: no gaps
    for (; side.head() != side.none; side.next())
      z.take_range(pfn{side.head() >> geometry::shift}, pfn{side.head_end() >> geometry::shift});
  }

  holes_memblock(const Map& map, std::span<const phys_range> ram, std::span<phys_range> storage, u64 count,
                 const finder_type& f)
      : map_(&map), ram_(ram), storage_(storage), count_(count), finder_(f) {}

  const Map* map_;
  std::span<const phys_range> ram_;
  std::span<phys_range> storage_;
  u64 count_ = 0;
  u64 allocations_ = 0;
  finder_type finder_;
};

/// A holes_memblock with the map type deduced. Errors: as holes_memblock::create.
template <preserved_map Map>
result<holes_memblock<Map>> make_holes_memblock(const Map& map, std::span<const phys_range> ram,
                                                std::span<const phys_range> reserved,
                                                std::span<phys_range> storage) {
  return holes_memblock<Map>::create(map, ram, reserved, storage);
}

}  // namespace kho
