// kho/model/free_pages.hpp: the next kernel's page allocator once preserved memory is
// fenced off (hosted only).
//
// A live update that hands over again needs an allocator that never hands out a page
// that is still preserved, and that takes back the pages of the previous handover once
// they are no longer needed. free_page_source keeps one bit per page of [start, end) in
// host memory (never in the pages themselves: a freed page may still be read), starts
// with every page free, and is told which pages are busy (`reserve`) or given back
// (`release`). alloc(o) hands out naturally aligned blocks of 2^o free pages.
//
//   pages:  [ busy | free | free | busy | free ... ]   one host bit each
//   alloc:  next fit from the last block of that order, wrapping once
//
// Complexity: alloc O(pages scanned), at most O(range) when memory is full; free,
// reserve and release O(pages of the block).
#pragma once

#include <kho/memory.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <vector>

namespace kho::model {

class free_page_source {
 public:
  using geometry = page_geometry<>;

  /// Every page of [range.start, range.end) (page-aligned) free.
  free_page_source(const flat_memory& mem, phys_range range)
      : mem_(mem), start_(range.start), busy_(range.size() >> geometry::shift, false) {}

  /// A naturally aligned block of 2^o free pages, now busy; contents unspecified.
  /// Complexity: O(pages scanned). Errors: out_of_range (order), out_of_memory.
  result<phys_addr> alloc(order o) {
    if (o.value >= 40) return errc::out_of_range;
    const u64 n = u64{1} << o.value;
    const u64 pages = busy_.size();
    if (n > pages) return errc::out_of_memory;
    // Blocks are aligned in physical addresses, not in indices of busy_.
    const u64 pfn0 = start_.value >> geometry::shift;
    const u64 first = ((pfn0 + n - 1) & ~(n - 1)) - pfn0;
    u64& hint = hint_[o.value];
    hint = hint < first || hint >= pages ? first : first + (hint - first) / n * n;
    for (int pass = 0; pass < 2; ++pass) {
      for (u64 i = pass == 0 ? hint : first; i + n <= pages && (pass == 0 || i < hint); i += n) {
        if (run_free(i, n)) {
          mark(i, n, true);
          hint = i + n;
          allocated_ += n;
          return start_ + (i << geometry::shift);
        }
      }
    }
    return errc::out_of_memory;
  }

  /// Gives a block back. A block outside the range or not busy is ignored.
  void free(phys_addr pa, order o) {
    const u64 n = u64{1} << o.value;
    if (!inside(pa, n)) return;
    const u64 i = index(pa);
    if (!run_busy(i, n)) return;
    mark(i, n, false);
    lower_hints(i);
    freed_ += n;
  }

  /// Marks `pages` pages from `pa` busy (preserved memory, structures still read);
  /// the part outside the range is ignored. Complexity: O(pages).
  void reserve(phys_addr pa, u64 pages) { set_clipped(pa, pages, true); }

  /// Marks `pages` pages from `pa` free again (memory no longer needed); returns how
  /// many were busy. Complexity: O(pages).
  u64 release(phys_addr pa, u64 pages) { return set_clipped(pa, pages, false); }

  bool is_free(phys_addr pa) const { return inside(pa, 1) && !busy_[index(pa)]; }
  u64 free_pages() const {
    u64 n = 0;
    for (bool b : busy_) n += !b;
    return n;
  }
  /// Pages handed out by alloc and given back by free, since construction.
  u64 allocated() const { return allocated_; }
  u64 freed() const { return freed_; }
  const flat_memory& memory() const { return mem_; }

 private:
  bool inside(phys_addr pa, u64 n) const {
    return pa >= start_ && geometry::is_aligned(pa) && index(pa) + n <= busy_.size() && index(pa) + n >= n;
  }
  u64 index(phys_addr pa) const { return (pa.value - start_.value) >> geometry::shift; }
  bool run_free(u64 i, u64 n) const {
    for (u64 k = 0; k < n; ++k)
      if (busy_[i + k]) return false;
    return true;
  }
  bool run_busy(u64 i, u64 n) const {
    for (u64 k = 0; k < n; ++k)
      if (!busy_[i + k]) return false;
    return true;
  }
  // A page freed behind a hint is found again before the scan wraps.
  void lower_hints(u64 i) {
    for (u64& h : hint_) h = h > i ? i : h;
  }
  void mark(u64 i, u64 n, bool busy) {
    for (u64 k = 0; k < n; ++k) busy_[i + k] = busy;
  }
  u64 set_clipped(phys_addr pa, u64 pages, bool busy) {
    u64 changed = 0;
    for (u64 k = 0; k < pages; ++k) {
      const phys_addr p = pa + (k << geometry::shift);
      if (!inside(p, 1)) continue;
      const u64 i = index(p);
      changed += busy_[i] != busy;
      busy_[i] = busy;
      if (!busy) lower_hints(i);
    }
    return changed;
  }

  flat_memory mem_;
  phys_addr start_;
  std::vector<bool> busy_;
  u64 hint_[40]{};
  u64 allocated_ = 0, freed_ = 0;
};

}  // namespace kho::model
