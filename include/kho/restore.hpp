// kho/restore.hpp: reserving preserved memory in the next kernel, two ways.
//
// Before its allocator may hand out a single page, the next kernel reserves every
// preserved range in memblock. memblock keeps reserved regions in one sorted array:
//
//   regions[0..cnt)   {base, size}, ascending, non-overlapping, adjacent ones merged
//   capacity          starts at 128 (INIT_MEMBLOCK_REGIONS), doubled when full by
//                     allocating a new array and copying
//
// memblock_model reproduces that array and its reserve(): a scan from the first
// region for the place of the new range, a memmove to open a slot, a merge with
// neighbours. Restoring N blocks one reserve() each, in tree order (largest order
// first), is what Linux does today; each reserve lands in the middle of the array, so
// the whole restore is O(N^2) ("more than 2 s for 48 GiB of order-0 pages").
//
// reserve() here is the cheap single-pass insert (scan, memmove, merge): about half
// of what the kernel's memblock_add_range pays per call once the array has doubled
// (a count pass, then the insert pass). memblock_kernel.hpp models the kernel's
// two-pass version; benchmarks that quote "naive" use that one.
//
// restore_linear walks the tree in address order (the k-way merge of
// preserve_bitmap.hpp), coalesces, merges in the tree's own pages, and appends: each
// range extends or follows the last region, O(1) each, O(blocks + nodes) in all. It
// still grows the array by doublings (a copy each) and calls append() per range.
//
// restore_at_bound sizes the array once, from an upper bound on the regions (blocks
// plus tree pages, O(orders)), and fills it with a dedicated leaf scan that keeps the
// open region in registers: one 16-byte store per region, no doublings, no call per
// region. restore_part restores one address window into a caller's slice, so that
// callers with threads can restore disjoint windows at once; join_parts closes the
// slices up and merges a range that a split cut in two:
//
//   split at S      [0 ................ S)[S ................ top)
//   slices          | part 0 regions |gap| part 1 regions |     (bounds from
//   join            | part 0 regions  part 1 regions |          restore_capacity)
//                   a region ending at S and one starting at S become one
//
// Every strategy leaves identical region arrays; the tests hold them to it.
#pragma once

#include <kho/detail/page_array.hpp>
#include <kho/memory.hpp>
#include <kho/phys.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/preserve_bitmap/leaf_scan.hpp>
#include <kho/result.hpp>

#include <algorithm>
#include <cstring>
#include <span>

namespace kho {

struct memblock_region {
  u64 base;
  u64 size;
  u64 end() const { return base + size; }
};

/// A model of memblock.reserved: a sorted array of regions in pages from Source.
template <PageSource Source, unsigned PageShift = 12>
class memblock_model {
 public:
  static constexpr u64 initial_capacity = 128;  // INIT_MEMBLOCK_REGIONS

  /// An empty array of 128 regions. Errors: out_of_memory.
  static result<memblock_model> create(Source& source) {
    memblock_model m(source);
    KHO_TRY(m.grow(initial_capacity));
    return m;
  }

  memblock_model(memblock_model&&) noexcept = default;
  memblock_model& operator=(memblock_model&&) = delete;

  /// memblock_reserve() in one pass: inserts [base, base+size), keeping the array sorted
  /// and merged. Cheaper than the kernel's memblock_add_range, which counts first once
  /// the array has doubled (see memblock_kernel.hpp): a lower bound on today's cost.
  /// Complexity: O(regions) (scan, memmove, merge). Errors: out_of_memory, invalid_argument.
  status reserve(phys_addr base, u64 size) {
    u64 start = base.value, end = 0;
    if (size == 0) return {};
    if (!checked_add(start, size, end)) return errc::invalid_argument;
    memblock_region* r = regions();
    u64 i = 0, first = ~u64{0}, last = 0;
    for (; i < count_; ++i) {  // the scan for the place, from the first region
      const u64 rbase = r[i].base, rend = r[i].end();
      if (rbase >= end) break;
      if (rend <= start) continue;
      if (rbase > start) {  // the part before this region
        KHO_TRY(insert(i, start, rbase - start));
        r = regions();
        if (first == ~u64{0}) first = i;
        last = i++;
      }
      start = rend < end ? rend : end;
    }
    if (start < end) {
      KHO_TRY(insert(i, start, end - start));
      if (first == ~u64{0}) first = i;
      last = i;
    }
    if (first != ~u64{0}) merge_touching(first > 0 ? first - 1 : 0, last + 1);
    return {};
  }

  /// The linear path: a range at or after the last region's start, in O(1).
  /// Falls back to reserve() for anything earlier. Errors: out_of_memory, invalid_argument.
  status append(phys_addr base, u64 size) {
    u64 end = 0;
    if (size == 0) return {};
    if (!checked_add(base.value, size, end)) return errc::invalid_argument;
    if (count_ > 0) {
      memblock_region& last = regions()[count_ - 1];
      if (base.value < last.base) return reserve(base, size);
      if (base.value <= last.end()) {
        if (end > last.end()) last.size = end - last.base;
        return {};
      }
    }
    if (count_ == capacity()) KHO_TRY(grow(capacity() * 2));
    regions()[count_++] = memblock_region{base.value, size};
    return {};
  }

  u64 size() const { return count_; }
  u64 capacity() const { return array_.capacity(); }
  u64 doublings() const { return doublings_; }
  const memblock_region& operator[](u64 i) const { return regions()[i]; }
  const memblock_region* begin() const { return regions(); }
  const memblock_region* end() const { return regions() + count_; }
  /// Bytes reserved in all.
  u64 reserved_bytes() const {
    u64 n = 0;
    for (const memblock_region& r : *this) n += r.size;
    return n;
  }
  void clear() { count_ = 0; }

  /// Room for `n` regions to be written in ascending order by a restore, with one
  /// allocation at most (no doublings). The k regions already present move to the
  /// array's tail, where the restore reads them (`present`) and merges them into what
  /// it writes from slot 0 (`slots`, n of them: n must count the k as well).
  /// Complexity: O(k) plus one allocation. Errors: out_of_memory, out_of_range.
  struct restore_slots {
    std::span<memblock_region> slots;
    std::span<const memblock_region> present;
  };
  result<restore_slots> prepare(u64 n) {
    const u64 k = count_;
    if (n > (~u64{0} / sizeof(memblock_region)) / 2) return errc::out_of_range;
    const u64 need = n + k;
    if (need > capacity()) KHO_TRY(grow(need, false));
    memblock_region* r = regions();
    std::memmove(r + capacity() - k, r, k * sizeof(memblock_region));
    prepared_ = k;
    count_ = 0;
    return restore_slots{{r, n}, {r + capacity() - k, k}};
  }

  /// Ends a prepare(): slots [0, m) hold the sorted, coalesced regions (the present
  /// ones merged in). Complexity: O(1).
  void commit(u64 m) {
    count_ = m;
    prepared_ = 0;
  }

  /// Ends a prepare() that failed: the regions present before come back.
  /// Complexity: O(k).
  void cancel() {
    memblock_region* r = regions();
    std::memmove(r, r + capacity() - prepared_, prepared_ * sizeof(memblock_region));
    count_ = prepared_;
    prepared_ = 0;
  }

 private:
  explicit memblock_model(Source& source) : array_(source) {}

  memblock_region* regions() const { return array_.data(); }

  // memblock_double_array(): a new array twice the size, the old one copied and freed.
  status grow(u64 capacity, bool doubling = true) {
    const bool had = !array_.empty();
    KHO_TRY(array_.resize(capacity, count_));
    doublings_ += had && doubling;
    return {};
  }

  status insert(u64 at, u64 base, u64 size) {
    if (count_ == capacity()) KHO_TRY(grow(capacity() * 2));
    memblock_region* r = regions();
    std::memmove(r + at + 1, r + at, (count_ - at) * sizeof(memblock_region));
    r[at] = memblock_region{base, size};
    ++count_;
    return {};
  }

  // memblock_merge_regions() over [lo, hi]: folds each region into a touching predecessor.
  void merge_touching(u64 lo, u64 hi) {
    memblock_region* r = regions();
    u64 i = lo;
    while (i < hi && i + 1 < count_) {
      if (r[i].end() != r[i + 1].base) {
        ++i;
        continue;
      }
      r[i].size += r[i + 1].size;
      std::memmove(r + i + 1, r + i + 2, (count_ - i - 2) * sizeof(memblock_region));
      --count_;
      --hi;
    }
  }

  detail::page_array<memblock_region, Source, PageShift> array_;
  u64 count_ = 0;
  u64 doublings_ = 0;
  u64 prepared_ = 0;
};

/// Today's restore: one reserve() per block in tree order, then one per tree page.
/// Complexity: O(N^2) for N blocks in the worst (scattered) case.
template <class View, class Memblock>
status restore_naive(const View& tree, Memblock& memblock) {
  status st{};
  tree.for_each_block([&](phys_addr pa, order o) {
    st = memblock.reserve(pa, page_geometry<View::geometry::page_shift>::block_bytes(o));
    return st.ok();
  });
  KHO_TRY(st);
  for (u64 node : tree.nodes()) KHO_TRY(memblock.reserve(phys_addr{node}, View::geometry::page_size));
  return {};
}

/// The linear restore: the merged ascending walk and the sorted tree pages, appended.
/// Complexity: O(blocks * orders present + leaf words + nodes).
template <class View, class Memblock>
status restore_linear(const View& tree, Memblock& memblock) {
  const auto nodes = tree.nodes();
  u64 next_node = 0;
  constexpr u64 page = View::geometry::page_size;
  errc failed = errc::ok;  // a code, not a status: this closure runs once per range
  tree.for_each_range([&](phys_addr start, u64 size) {
    for (; next_node < nodes.size() && nodes[next_node] < start.value; ++next_node)
      if ((failed = memblock.append(phys_addr{nodes[next_node]}, page).code()) != errc::ok) return false;
    failed = memblock.append(start, size).code();
    return failed == errc::ok;
  });
  if (failed != errc::ok) return failed;
  for (; next_node < nodes.size(); ++next_node)
    KHO_TRY(memblock.append(phys_addr{nodes[next_node]}, page));
  return {};
}

/// One slice of a split restore: its regions are array[offset, offset+count).
struct restore_slice {
  u64 offset = 0;
  u64 count = 0;
};

namespace detail {

// The restore's output: coalesced ranges stored to a raw array, the open region held
// in registers, so that each region costs one 16-byte store and no call.
struct region_sink {
  memblock_region* out;
  memblock_region* limit;
  u64 start = 0, end = 0;
  bool pending = false, overflow = false;

  void emit(u64 s, u64 e) {
    if (s <= end && pending) {  // s > end first: scattered blocks rarely touch
      if (e > end) end = e;
      return;
    }
    flush();
    start = s;
    end = e;
    pending = true;
  }
  void flush() {
    if (!pending) return;
    if (out == limit) {
      overflow = true;
      return;
    }
    *out++ = memblock_region{start, end - start};
  }
};

// What memblock held before a restore, pulled in ascending order as one extra stream.
class present_stream {
 public:
  present_stream(std::span<const memblock_region> present, u64 from, u64 to)
      : at_(std::partition_point(present.data(), present.data() + present.size(),
                                 [&](const memblock_region& r) { return r.end() <= from; })),
        end_(std::partition_point(at_, present.data() + present.size(),
                                  [&](const memblock_region& r) { return r.base < to; })),
        from_(from), to_(to) {}

  u64 head() const { return at_ != end_ ? std::max(at_->base, from_) : ~u64{0}; }
  u64 head_end() const { return std::min(at_->end(), to_); }
  void next() { ++at_; }
  u64 size() const { return static_cast<u64>(end_ - at_); }

 private:
  const memblock_region* at_;
  const memblock_region* end_;
  u64 from_, to_;
};

}  // namespace detail

/// An upper bound on the regions a restore of `view` produces: one per block plus one
/// per tree page. Exact for isolated blocks; loose where blocks coalesce into runs.
/// Complexity: O(orders).
template <class View>
u64 restore_bound(const View& view) {
  return view.total() + view.node_count();
}

/// A tighter bound for the window [from, to): runs of consecutive blocks per order,
/// runs of consecutive tree pages, and the `present` regions in the window. Exact when
/// none of them touch each other.
/// Complexity: O(leaf words of the window + tree pages + log present): one read of
/// the leaves, a fraction of the restore's own walk.
template <class View>
u64 restore_capacity(const View& view, phys_addr from, phys_addr to, std::span<const memblock_region> present = {}) {
  using geo = typename View::geometry;
  using walker = typename View::walker;
  const walker w(&view.memory(), view.root());
  u64 runs = 0;
  for (unsigned o = 0; o < View::orders; ++o) {
    if (view.count(order{o}) == 0) continue;
    u64 key = 0, end_key = 0;
    detail::key_window<geo>(order{o}, from.value, to.value, key, end_key);
    typename walker::leaf_ref leaf{};
    u64 carry = 0, next_base = 0;
    while (key < end_key && w.next_leaf(key, end_key, leaf)) {
      if (leaf.base != next_base) carry = 0;
      const u64 first = key > leaf.base ? key - leaf.base : 0;
      const u64 stop = std::min<u64>(end_key - leaf.base, u64{1} << geo::leaf_bits);  // bits
      for (u64 wi = first >> 6; wi * 64 < stop; ++wi) {
        u64 bits = detail::load_le(leaf.words + wi);
        if (wi == first >> 6 && (first & 63)) bits &= ~u64{0} << (first & 63);
        if ((wi + 1) * 64 > stop) bits &= ~u64{0} >> (64 - (stop & 63));
        runs += detail::popcount64(bits & ~((bits << 1) | carry));
        carry = bits >> 63;
      }
      next_base = leaf.base + (u64{1} << geo::leaf_bits);
      key = next_base;
    }
  }
  u64 prev = ~u64{0};
  for (u64 n : detail::nodes_in<geo::page_shift>(view.nodes(), from.value, to.value)) {
    runs += n != prev + geo::page_size;
    prev = n;
  }
  return runs + detail::present_stream(present, from.value, to.value).size();
}

/// Restores the preserved ranges and tree pages inside [from, to) into out, ascending,
/// coalesced with each other and with the `present` regions (sorted, disjoint: what
/// memblock held before), clipped to the window; returns how many regions it wrote.
/// The order with the most blocks is scanned leaf word by leaf word; the other orders,
/// the tree pages and the present regions are merged in as one pulled stream. The view
/// must be validated (attach).
/// Complexity: O(W + R * (k + 1) + log present) for W leaf words and R runs and
/// regions in the window, k the orders other than the dominant one; one store per
/// region. Concurrent calls on disjoint windows and slices are safe: it only reads.
/// Errors: invalid_argument (to < from), table_full (out too small; out holds the
/// first out.size() regions).
template <class View>
result<u64> restore_part(const View& view, phys_addr from, phys_addr to, std::span<memblock_region> out,
                         std::span<const memblock_region> present = {}) {
  if (to < from) return errc::invalid_argument;
  detail::region_sink sink{out.data(), out.data() + out.size()};
  detail::scan_busy(view, from.value, to.value, detail::present_stream(present, from.value, to.value),
                    [&](u64 s, u64 e) {
                      sink.emit(s, e);
                      return true;
                    });
  sink.flush();
  if (sink.overflow) return errc::table_full;
  return static_cast<u64>(sink.out - out.data());
}

/// Closes up the slices of a split restore in `array`: each slice moves down to follow
/// the last (only when a bound left a gap), and a region that touches or overlaps the
/// previous slice's last region (a range cut by a split) merges into it. Returns the
/// regions in all, now array[0, n). Slices must ascend by window and by offset.
/// Complexity: O(slices + regions moved). Errors: invalid_argument (slices overlap,
/// descend or leave the array).
inline result<u64> join_parts(std::span<memblock_region> array, std::span<const restore_slice> parts) {
  u64 d = 0;
  for (const restore_slice& p : parts) {
    if (p.offset < d || p.offset > array.size() || p.count > array.size() - p.offset)
      return errc::invalid_argument;
    u64 skip = 0;
    for (; skip < p.count && d > 0 && array[p.offset + skip].base <= array[d - 1].end(); ++skip) {
      memblock_region& last = array[d - 1];
      const u64 end = array[p.offset + skip].end();
      if (end > last.end()) last.size = end - last.base;
    }
    if (p.offset + skip != d)
      std::memmove(array.data() + d, array.data() + p.offset + skip, (p.count - skip) * sizeof(memblock_region));
    d += p.count - skip;
  }
  return d;
}

/// Up to splits.size() addresses that cut `view` into windows of about equal numbers
/// of the dominant order's leaves, ascending, each on a leaf boundary; returns how many
/// it wrote (fewer when there are fewer leaves). A window is [split[i-1], split[i]).
/// Complexity: O(leaves * depth).
template <class View>
u64 split_restore(const View& view, std::span<phys_addr> splits) {
  using geo = typename View::geometry;
  using walker = typename View::walker;
  const walker w(&view.memory(), view.root());
  const order dom{detail::dominant_order(view)};
  const unsigned shift = geo::page_shift + dom.value;
  u64 first = 0, end = 0;
  detail::key_window<geo>(dom, 0, ~u64{0}, first, end);
  auto for_each_leaf = [&](auto&& f) {
    typename walker::leaf_ref leaf{};
    for (u64 key = first; key < end && w.next_leaf(key, end, leaf); key = leaf.base + (u64{1} << geo::leaf_bits))
      f(leaf.base);
  };
  u64 leaves = 0;
  for_each_leaf([&](u64) { ++leaves; });
  const u64 parts = splits.size() + 1;
  u64 i = 0, written = 0;
  for_each_leaf([&](u64 base) {
    // Leaf i opens part p when i == ceil(p * leaves / parts), p >= 1.
    if (written < splits.size() && i > 0 && i * parts >= (written + 1) * leaves)
      splits[written++] = phys_addr{(base ^ geo::order_bit(dom)) << shift};
    ++i;
  });
  return written;
}

/// The bounded restore: the array sized once by restore_bound() (plus the regions
/// memblock holds already), filled by one restore_part() over all memory that merges
/// those regions in as it goes. No doublings, no call per region, no copy afterwards.
/// Complexity: O(W + R * (k + 1) + nodes + regions present). Errors: out_of_memory,
/// out_of_range (from prepare); memblock is unchanged after an error.
template <class View, class Memblock>
status restore_at_bound(const View& view, Memblock& memblock) {
  auto room = memblock.prepare(restore_bound(view) + memblock.size());
  if (!room) return room.err();
  auto n = restore_part(view, phys_addr{0}, phys_addr{~u64{0}}, room->slots, room->present);
  if (!n) {
    memblock.cancel();
    return n.err();
  }
  memblock.commit(*n);
  return {};
}

}  // namespace kho
