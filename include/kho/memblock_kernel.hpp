// kho/memblock_kernel.hpp: memblock.reserved as the kernel keeps it, for honest baselines.
//
// memblock_model (restore.hpp) inserts in one pass. The kernel's memblock_add_range
// (mm/memblock.c) does more per call, and a baseline that skips it flatters nothing
// but the baseline. What this model reproduces, per reserve of [base, end):
//
//   empty array        the first range is stored in slot 0, nothing else
//   insert directly    while cnt * 2 + 1 <= max (the new range cannot need more than
//                      cnt + 1 slots): one pass that inserts
//   count, then insert otherwise (the array more than half full): a first pass counts
//                      the pieces the range needs, the array doubles while they do not
//                      fit, and a second pass inserts them
//   each insert        memmove of every region above the slot (memblock_insert_region)
//   merge              from the slot before the first piece to the last one, each
//                      region folded into a touching predecessor with a memmove
//                      (memblock_merge_regions over [start_rgn, end_rgn))
//   doubling           a new array of twice the bytes, the old regions copied, the new
//                      half zeroed (memblock_double_array)
//
// Regions are the kernel's 24 bytes with NUMA: base, size, flags, nid. Not modelled,
// and each would only add cost to the kernel's side: the search for the doubled
// array's place (a top-down walk of free memory) and the reservation of that array
// in memblock.reserved itself (one more region, and a removal of the old one).
//
// Complexity of one reserve: O(cnt) for the scan and memmoves; O(N^2) for N scattered
// blocks in tree order. Freestanding: arrays come from a PageSource.
#pragma once

#include <kho/detail/page_array.hpp>
#include <kho/memory.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstdint>
#include <cstring>

namespace kho {

/// struct memblock_region with CONFIG_NUMA: 24 bytes.
struct kernel_memblock_region {
  u64 base;
  u64 size;
  u32 flags;  // MEMBLOCK_NONE here
  std::int32_t nid;   // NUMA_NO_NODE (-1) as memblock_reserve passes MAX_NUMNODES through
  u64 end() const { return base + size; }
};
static_assert(sizeof(kernel_memblock_region) == 24);

/// memblock.reserved with the kernel's two-pass add_range.
template <PageSource Source, unsigned PageShift = 12>
class memblock_kernel {
 public:
  static constexpr u64 initial_capacity = 128;  // INIT_MEMBLOCK_REGIONS

  /// An empty array of 128 regions. Errors: out_of_memory, out_of_bounds.
  static result<memblock_kernel> create(Source& source) {
    memblock_kernel m(source);
    KHO_TRY(m.grow(initial_capacity));
    return m;
  }

  memblock_kernel(memblock_kernel&&) noexcept = default;
  memblock_kernel& operator=(memblock_kernel&&) = delete;

  /// memblock_reserve() as memblock_add_range does it (see the header comment).
  /// Complexity: O(regions). Errors: invalid_argument (the range wraps), out_of_memory.
  status reserve(phys_addr base_pa, u64 size) {
    if (size == 0) return {};
    u64 end = 0;
    if (!checked_add(base_pa.value, size, end)) return errc::invalid_argument;
    if (cnt_ == 0) {  // the kernel tests regions[0].size == 0
      r_[0] = kernel_memblock_region{base_pa.value, size, 0, -1};
      cnt_ = 1;
      return {};
    }
    bool insert = cnt_ * 2 + 1 <= max_;
    for (;;) {
      u64 base = base_pa.value, nr_new = 0, idx = 0, start_rgn = none, end_rgn = 0;
      for (; idx < cnt_; ++idx) {
        const u64 rbase = r_[idx].base, rend = r_[idx].end();
        if (rbase >= end) break;
        if (rend <= base) continue;
        if (rbase > base) {  // the part below this region is new
          ++nr_new;
          if (insert) {
            if (start_rgn == none) start_rgn = idx;
            end_rgn = idx + 1;
            insert_region(idx++, base, rbase - base);
          }
        }
        base = rend < end ? rend : end;
      }
      if (base < end) {
        ++nr_new;
        if (insert) {
          if (start_rgn == none) start_rgn = idx;
          end_rgn = idx + 1;
          insert_region(idx, base, end - base);
        }
      }
      if (nr_new == 0) return {};
      if (insert) {
        merge_regions(start_rgn, end_rgn);
        return {};
      }
      ++count_passes_;
      while (cnt_ + nr_new > max_) KHO_TRY(grow(max_ * 2));
      insert = true;
    }
  }

  u64 size() const { return cnt_; }
  u64 capacity() const { return max_; }
  u64 doublings() const { return doublings_; }
  /// Reserves that needed the counting pass.
  u64 count_passes() const { return count_passes_; }
  const kernel_memblock_region& operator[](u64 i) const { return r_[i]; }
  const kernel_memblock_region* begin() const { return r_; }
  const kernel_memblock_region* end() const { return r_ + cnt_; }

 private:
  static constexpr u64 none = ~u64{0};

  explicit memblock_kernel(Source& source) : array_(source) {}

  // memblock_double_array(): twice the bytes, the old regions copied, the rest zeroed.
  status grow(u64 capacity) {
    const bool had = !array_.empty();
    KHO_TRY(array_.resize(capacity, had ? max_ : 0, true));  // the whole old array, as the kernel copies
    r_ = array_.data();
    max_ = capacity;
    doublings_ += had;
    return {};
  }

  // memblock_insert_region(): opens slot idx by moving every region above it.
  void insert_region(u64 idx, u64 base, u64 size) {
    std::memmove(r_ + idx + 1, r_ + idx, (cnt_ - idx) * sizeof(kernel_memblock_region));
    r_[idx] = kernel_memblock_region{base, size, 0, -1};
    ++cnt_;
  }

  // memblock_merge_regions(type, start_rgn, end_rgn).
  void merge_regions(u64 start_rgn, u64 end_rgn) {
    u64 i = start_rgn > 0 ? start_rgn - 1 : 0;
    if (end_rgn > cnt_ - 1) end_rgn = cnt_ - 1;
    while (i < end_rgn) {
      kernel_memblock_region& self = r_[i];
      const kernel_memblock_region& next = r_[i + 1];
      if (self.end() != next.base || self.nid != next.nid || self.flags != next.flags) {
        ++i;
        continue;
      }
      self.size += next.size;
      std::memmove(r_ + i + 1, r_ + i + 2, (cnt_ - (i + 2)) * sizeof(kernel_memblock_region));
      --cnt_;
      --end_rgn;
    }
  }

  detail::page_array<kernel_memblock_region, Source, PageShift> array_;
  kernel_memblock_region* r_ = nullptr;
  u64 max_ = 0;
  u64 cnt_ = 0;
  u64 doublings_ = 0;
  u64 count_passes_ = 0;
};

}  // namespace kho
