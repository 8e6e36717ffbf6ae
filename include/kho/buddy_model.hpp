// kho/buddy_model.hpp: the page allocator's free lists, as the end of boot fills them.
//
// When memblock retires (memblock_free_all), every page that is RAM and not reserved
// goes to the buddy allocator in the largest naturally aligned blocks that fit, as
// __free_pages_memory does for each free range [start, end) of page frames:
//
//   order = min(MAX_PAGE_ORDER, alignment of start)   (start 0 counts as aligned)
//   shrink order until start + 2^order <= end; free that block; start += 2^order
//
//   pfns   [  3 )[ 4 .. 8 )[ 8 ........ 16 )[ 16 .. 20 )[20,21)
//   order     0      2             3              2        0      for [3, 21)
//
// buddy_model keeps one counter per order (the lengths of the free lists) and calls a
// hook per block, where a kernel would link the block's first struct page into its
// list. It allocates nothing and touches no freed memory, so it can stand for 1 TiB
// of RAM in a benchmark. free_all_regions is the memblock side of the hand-over: the
// gaps between RAM and a sorted reserved array (for_each_free_mem_range).
#pragma once

#include <kho/hole_finder.hpp>
#include <kho/phys.hpp>

#include <span>

namespace kho {

/// The default hook: nothing beyond the counters.
struct no_free_hook {
  void operator()(pfn, order) const {}
};

/// Free-list lengths per order up to MaxOrder (MAX_PAGE_ORDER: 10, 4 MiB blocks with
/// 4 KiB pages), and a hook called once per block handed over.
template <unsigned MaxOrder = 10, class OnFree = no_free_hook>
class buddy_model {
 public:
  static constexpr unsigned max_order = MaxOrder;
  static_assert(MaxOrder < 64);

  explicit buddy_model(OnFree hook = {}) : hook_(hook) {}

  /// Takes one block of 2^o pages at `start` (aligned to it). Complexity: O(1) plus the hook.
  void free_block(pfn start, order o) {
    ++free_[o.value];
    pages_ += u64{1} << o.value;
    hook_(start, o);
  }

  /// __free_pages_memory(): the page frames [start, end) in maximal naturally aligned
  /// blocks, ascending. The kernel's loop (largest aligned order, shrunk to fit) gives
  /// a fixed shape, computed here from bits instead of trial: below the most aligned
  /// point m of (start, end] the blocks are the set bits of m - start, ascending; from
  /// m, whole 2^MaxOrder blocks; then the set bits of what is left, descending.
  /// Complexity: O(blocks) = O(MaxOrder + (end - start) / 2^MaxOrder).
  void free_range(pfn start, pfn end) {
    u64 s = start.value;
    const u64 e = end.value;
    if (s >= e) return;
    pages_ += e - s;
    constexpr u64 top = u64{1} << MaxOrder;
    u64 m = 0;
    if (((s ^ e) >> MaxOrder) != 0 || e - s >= top) {
      m = s == 0 ? 0 : ((s - 1) | (top - 1)) + 1;  // round s up to a 2^MaxOrder boundary
    } else {
      const unsigned h = 63 - static_cast<unsigned>(__builtin_clzll(s ^ e));  // e has bit h, s not
      m = (e >> h) << h;
    }
    for (u64 head = m - s; head != 0; head &= head - 1) {
      const unsigned o = static_cast<unsigned>(__builtin_ctzll(head));
      give(s, o);
      s += u64{1} << o;
    }
    if (e - s >= top) {
      const u64 whole = (e - s) >> MaxOrder;
      free_[MaxOrder] += whole;
      for (u64 i = 0; i < whole; ++i, s += top) hook_(pfn{s}, order{MaxOrder});
    }
    for (u64 tail = e - s; tail != 0;) {
      const unsigned o = 63 - static_cast<unsigned>(__builtin_clzll(tail));
      give(s, o);
      s += u64{1} << o;
      tail ^= u64{1} << o;
    }
  }

  /// Blocks on order o's free list.
  u64 free_blocks(order o) const { return o.value <= MaxOrder ? free_[o.value] : 0; }
  /// Blocks of every order.
  u64 blocks() const {
    u64 n = 0;
    for (u64 c : free_) n += c;
    return n;
  }
  /// Pages handed over in all.
  u64 free_pages() const { return pages_; }
  OnFree& hook() { return hook_; }
  const OnFree& hook() const { return hook_; }

 private:
  void give(u64 s, unsigned o) {
    ++free_[o];
    hook_(pfn{s}, order{o});
  }

  u64 free_[MaxOrder + 1]{};
  u64 pages_ = 0;
  OnFree hook_;
};

/// memblock_free_all over a memblock array: every page of `ram` that no region of
/// `reserved` touches goes to `buddy`, range by range, ascending. `reserved` is any
/// sorted, non-overlapping sequence of {base, size} regions (memblock_model's, or
/// memblock_kernel's); RAM ranges must ascend and be page aligned; touching ones join, as
/// memblock.memory merges them.
/// Complexity: O(RAM ranges + regions + blocks handed over).
template <unsigned PageShift = 12, class Regions, class Buddy>
void free_all_regions(std::span<const phys_range> ram, const Regions& reserved, Buddy& buddy) {
  using geo = page_geometry<PageShift>;
  auto r = reserved.begin();
  const auto r_end = reserved.end();
  auto give = [&](u64 s, u64 e) {  // [s, e) in bytes; reserved bytes make their pages busy
    const u64 first = (s + geo::mask) >> geo::shift, last = e >> geo::shift;
    if (first < last) buddy.free_range(pfn{first}, pfn{last});
  };
  for (size_t i = 0; i < ram.size();) {
    u64 cursor = ram[i].start.value, end = ram[i].end.value;
    for (++i; i < ram.size() && ram[i].start.value == end; ++i) end = ram[i].end.value;  // touching: one range
    while (r != r_end && r->base + r->size <= cursor) ++r;
    for (; r != r_end && r->base < end; ++r) {
      if (r->base > cursor) give(cursor, r->base);
      if (r->base + r->size > cursor) cursor = r->base + r->size;
      if (cursor >= end) break;
    }
    if (cursor < end) give(cursor, end);
  }
}

}  // namespace kho
