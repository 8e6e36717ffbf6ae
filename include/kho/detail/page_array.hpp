// kho/detail/page_array.hpp: an array of T in one block from a PageSource.
//
// memblock's region arrays live in boot memory, not on a heap: a resize allocates a
// new naturally aligned block, copies what it keeps and frees the old block, as
// memblock_double_array does. Move-only; frees its block when destroyed.
#pragma once

#include <kho/memory.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstring>
#include <type_traits>

namespace kho::detail {

template <class T, PageSource Source, unsigned PageShift>
class page_array {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  explicit page_array(Source& source) : source_(&source) {}
  page_array(page_array&& o) noexcept
      : source_(o.source_), block_(o.block_), data_(o.data_), order_(o.order_), capacity_(o.capacity_) {
    o.block_ = phys_addr{};
  }
  page_array& operator=(page_array&&) = delete;
  ~page_array() {
    if (block_) source_->free(block_, order_);
  }

  /// Moves to a block for `capacity` elements, keeping the first `keep` (<= both
  /// capacities); with `zero_rest`, the others are zeroed.
  /// Complexity: O(keep), plus O(capacity) with zero_rest. Errors: out_of_memory,
  /// out_of_bounds (the source's block is not mapped).
  status resize(u64 capacity, u64 keep, bool zero_rest = false) {
    const u64 bytes = capacity * sizeof(T);
    unsigned o = 0;
    while ((page_geometry<PageShift>::size << o) < bytes) ++o;
    auto fresh = source_->alloc(order{o});
    if (!fresh) return fresh.err();
    T* to = static_cast<T*>(source_->memory().to_virt(*fresh, bytes));
    if (to == nullptr) {
      source_->free(*fresh, order{o});
      return errc::out_of_bounds;
    }
    if (block_) {
      std::memcpy(to, data_, keep * sizeof(T));
      source_->free(block_, order_);
    }
    if (zero_rest) std::memset(to + keep, 0, (capacity - keep) * sizeof(T));
    block_ = *fresh;
    data_ = to;
    order_ = order{o};
    capacity_ = capacity;
    return {};
  }

  T* data() const { return data_; }
  u64 capacity() const { return capacity_; }
  /// True until the first resize.
  bool empty() const { return !block_; }

 private:
  Source* source_;
  phys_addr block_{};
  T* data_ = nullptr;  // where block_ is mapped; it never moves
  order order_{};
  u64 capacity_ = 0;
};

}  // namespace kho::detail
