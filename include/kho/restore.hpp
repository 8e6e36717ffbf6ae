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
// restore_linear walks the tree in address order (the k-way merge of
// preserve_bitmap.hpp), coalesces, merges in the tree's own pages, and appends: each
// range extends or follows the last region, O(1) each, O(blocks + nodes) in all.
// Both strategies leave identical region arrays; the tests hold them to it.
#pragma once

#include <kho/memory.hpp>
#include <kho/phys.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/result.hpp>

#include <cstring>

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

  memblock_model(memblock_model&& o) noexcept
      : source_(o.source_), array_(o.array_), array_virt_(o.array_virt_), order_(o.order_), capacity_(o.capacity_),
        count_(o.count_), doublings_(o.doublings_) {
    o.array_ = phys_addr{};
  }
  memblock_model& operator=(memblock_model&&) = delete;
  ~memblock_model() {
    if (array_) source_->free(array_, order_);
  }

  /// memblock_reserve(): inserts [base, base+size), keeping the array sorted and merged.
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
      memblock_region& last = array_virt_[count_ - 1];
      if (base.value < last.base) return reserve(base, size);
      if (base.value <= last.end()) {
        if (end > last.end()) last.size = end - last.base;
        return {};
      }
    }
    if (count_ == capacity_) KHO_TRY(grow(capacity_ * 2));
    array_virt_[count_++] = memblock_region{base.value, size};
    return {};
  }

  u64 size() const { return count_; }
  u64 capacity() const { return capacity_; }
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

 private:
  explicit memblock_model(Source& source) : source_(&source) {}

  memblock_region* regions() const { return array_virt_; }

  // memblock_double_array(): a new array twice the size, the old one copied and freed.
  status grow(u64 capacity) {
    const u64 bytes = capacity * sizeof(memblock_region);
    unsigned o = 0;
    while ((page_geometry<PageShift>::size << o) < bytes) ++o;
    auto fresh = source_->alloc(order{o});
    if (!fresh) return fresh.err();
    void* to = source_->memory().to_virt(*fresh, bytes);
    if (to == nullptr) return errc::out_of_bounds;
    if (array_) {
      std::memcpy(to, regions(), count_ * sizeof(memblock_region));
      source_->free(array_, order_);
      ++doublings_;
    }
    array_ = *fresh;
    array_virt_ = static_cast<memblock_region*>(to);
    order_ = order{o};
    capacity_ = capacity;
    return {};
  }

  status insert(u64 at, u64 base, u64 size) {
    if (count_ == capacity_) KHO_TRY(grow(capacity_ * 2));
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

  Source* source_;
  phys_addr array_{};
  memblock_region* array_virt_ = nullptr;  // where array_ is mapped; it never moves
  order order_{};
  u64 capacity_ = 0;
  u64 count_ = 0;
  u64 doublings_ = 0;
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

}  // namespace kho
