// kho/memory.hpp: how a structure reaches physical memory, and where its pages come from.
//
// Two policies, both concepts so that a kernel-shim build and the userspace model
// plug in their own:
//
//   Memory      to_virt(phys_addr, len) -> void*   the bytes [pa, pa+len) or nullptr
//                                                   if any of them is outside memory
//   PageSource  alloc(order) -> result<phys_addr>   a naturally aligned block
//               free(phys_addr, order)
//               memory() -> const Memory&           where its pages can be reached
//
// A reader holds only a Memory: reattaching a structure is building a view with a
// Memory that maps the same physical range at another virtual address. Nothing in
// preserved memory is rewritten.
//
// Provided here: flat_memory (one physical range), range_memory<N> (up to N disjoint
// ranges, as a machine with holes in its RAM map) and bump_page_source (a bump
// pointer with per-order free lists, threaded through the freed pages themselves so
// it needs no heap).
#pragma once

#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <concepts>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace kho {

template <class M>
concept Memory = requires(const M& m, phys_addr pa, u64 len) {
  { m.to_virt(pa, len) } -> std::same_as<void*>;
};

template <class P>
concept PageSource = requires(P& p, const P& cp, order o, phys_addr pa) {
  { p.alloc(o) } -> std::same_as<result<phys_addr>>;
  { p.free(pa, o) } -> std::same_as<void>;
  requires Memory<std::remove_cvref_t<decltype(cp.memory())>>;
};

/// Whether a page source hands out pages of 2^PageShift bytes, as far as its type says
/// (a `geometry` member); a source that does not say is trusted. Readers that keep
/// scratch in a source's pages size their tables by their own page size, so scratch
/// lent in smaller pages would be indexed past its end: they check this at compile time.
template <class Source, unsigned PageShift>
consteval bool pages_of_size() {
  if constexpr (requires { Source::geometry::shift; }) return Source::geometry::shift == PageShift;
  else return true;
}

template <PageSource P>
using memory_of = std::remove_cvref_t<decltype(std::declval<const P&>().memory())>;

/// One physical range [base, base+size) mapped contiguously at `virt`.
class flat_memory {
 public:
  constexpr flat_memory() = default;
  flat_memory(phys_addr base, u64 size, void* virt)
      : base_(base), size_(size), virt_(static_cast<unsigned char*>(virt)) {}

  /// The bytes [pa, pa+len) or nullptr if any of them lies outside. Complexity: O(1).
  void* to_virt(phys_addr pa, u64 len) const {
    if (!range_within(pa.value, len, base_.value, base_.value + size_)) return nullptr;
    if (pa.value - base_.value >= size_) return nullptr;  // len 0 still needs pa inside
    return virt_ + (pa.value - base_.value);
  }

  phys_addr base() const { return base_; }
  u64 size() const { return size_; }
  phys_addr end() const { return base_ + size_; }
  void* virt() const { return virt_; }
  /// Where physical address 0 would be mapped: while it is unchanged, every pointer
  /// to_virt returned still points at the same bytes (a cheap check for readers that
  /// keep pointers between calls, such as an xarray cursor).
  std::uintptr_t translation() const { return reinterpret_cast<std::uintptr_t>(virt_) - base_.value; }

 private:
  phys_addr base_{};
  u64 size_ = 0;
  unsigned char* virt_ = nullptr;
};

/// Up to N disjoint physical ranges, each mapped on its own. Complexity: O(N) per lookup.
template <unsigned N>
class range_memory {
 public:
  /// Adds a range. Errors: table_full, invalid_argument (empty, wraps or overlaps).
  status add(phys_addr base, u64 size, void* virt) {
    u64 end = 0;
    if (size == 0 || !checked_add(base.value, size, end)) return errc::invalid_argument;
    for (unsigned i = 0; i < count_; ++i)
      if (base < ranges_[i].end() && ranges_[i].base() < phys_addr{end})
        return errc::invalid_argument;
    if (count_ == N) return errc::table_full;
    ranges_[count_++] = flat_memory(base, size, virt);
    return {};
  }

  void* to_virt(phys_addr pa, u64 len) const {
    for (unsigned i = 0; i < count_; ++i)
      if (void* v = ranges_[i].to_virt(pa, len)) return v;
    return nullptr;
  }

  unsigned size() const { return count_; }
  const flat_memory& operator[](unsigned i) const { return ranges_[i]; }

 private:
  flat_memory ranges_[N]{};
  unsigned count_ = 0;
};

static_assert(Memory<flat_memory>);
static_assert(Memory<range_memory<4>>);

/// Typed access to `count` objects at `pa`, or nullptr if any byte is outside memory.
template <class T, Memory M>
T* phys_to(const M& mem, phys_addr pa, u64 count = 1) {
  if (count > ~u64{0} / sizeof(T)) return nullptr;
  return static_cast<T*>(mem.to_virt(pa, count * sizeof(T)));
}

/// A bump allocator over [start, end) with a LIFO free list per order.
///
/// Freed blocks hold the physical address of the next free block of their order in
/// their first 8 bytes, so the source itself needs no memory beyond this object.
/// Blocks are naturally aligned (an order-9 block starts on a 2 MiB boundary with
/// 4 KiB pages); alignment gaps left by the bump pointer are not reused.
template <Memory M, unsigned PageShift = 12>
class bump_page_source {
 public:
  using geometry = page_geometry<PageShift>;
  static constexpr unsigned max_order = 30;  // 2^30 pages: 4 TiB, beyond any test memory

  bump_page_source(const M& mem, phys_addr start, phys_addr end)
      : mem_(mem), start_(start), next_(start), end_(end) {}

  /// A naturally aligned block of 2^o pages, contents unspecified.
  /// Complexity: O(1). Errors: out_of_range (order), out_of_memory.
  result<phys_addr> alloc(order o) {
    if (o.value > max_order) return errc::out_of_range;
    if (phys_addr head = free_[o.value]) {
      auto* link = phys_to<u64>(mem_, head);
      free_[o.value] = phys_addr{*link};
      pages_in_use_ += u64{1} << o.value;
      return head;
    }
    const u64 bytes = geometry::block_bytes(o);
    u64 aligned = 0, end = 0;
    if (!checked_add(next_.value, bytes - 1, aligned)) return errc::out_of_memory;
    aligned &= ~(bytes - 1);
    if (!checked_add(aligned, bytes, end) || end > end_.value) return errc::out_of_memory;
    if (mem_.to_virt(phys_addr{aligned}, bytes) == nullptr) return errc::out_of_memory;
    next_ = phys_addr{end};
    pages_in_use_ += u64{1} << o.value;
    return phys_addr{aligned};
  }

  /// Returns a block to its order's free list. Complexity: O(1).
  void free(phys_addr pa, order o) {
    auto* link = phys_to<u64>(mem_, pa);
    if (link == nullptr || o.value > max_order) return;
    *link = free_[o.value].value;
    free_[o.value] = pa;
    pages_in_use_ -= u64{1} << o.value;
  }

  /// Continues over another mapping of the same physical memory (a reattach).
  void rebind(const M& mem) { mem_ = mem; }

  const M& memory() const { return mem_; }
  u64 pages_in_use() const { return pages_in_use_; }
  phys_addr start() const { return start_; }
  phys_addr high_water() const { return next_; }
  phys_addr end() const { return end_; }

 private:
  M mem_;
  phys_addr start_, next_, end_;
  phys_addr free_[max_order + 1]{};
  u64 pages_in_use_ = 0;
};

/// Allocates a block and zeroes it: every node of every container starts empty.
template <PageSource P>
result<phys_addr> alloc_zeroed(P& source, order o, u64 bytes) {
  auto pa = source.alloc(o);
  if (!pa) return pa.err();
  void* v = source.memory().to_virt(*pa, bytes);
  if (v == nullptr) {
    source.free(*pa, o);
    return errc::out_of_bounds;
  }
  std::memset(v, 0, bytes);
  return *pa;
}

}  // namespace kho
