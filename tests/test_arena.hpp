// tests/test_arena.hpp: physical memory for tests, and reattaching it elsewhere.
//
// An arena is a memfd standing for [base, base+size) with a page source over it.
// remap() maps the same file at a new virtual address, as the next kernel would:
// a structure that stored a pointer instead of a physical address breaks there.
#pragma once

#include <kho/memory.hpp>
#include <kho/model/physical_memory.hpp>
#include <kho/preserve_bitmap.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <span>

#include <cstdlib>

#include <unistd.h>

namespace kho::test {

template <unsigned PageShift = 12>
class arena {
 public:
  using source_type = bump_page_source<flat_memory, PageShift>;
  static constexpr u64 page = page_geometry<PageShift>::size;

  explicit arena(u64 size = u64{64} << 20, u64 base = u64{4} << 30)
      : pm_(std::make_unique<model::physical_memory>(model::physical_memory::create(base, size))),
        source_(pm_->memory(), pm_->base(), pm_->base() + size) {}

  /// Maps the same bytes at a different virtual address; the old mapping goes away.
  /// Returns the new Memory policy; the page source keeps allocating through it.
  flat_memory remap() {
    void* old_virt = pm_->virt();
    auto next = std::make_unique<model::physical_memory>(
        model::physical_memory::adopt_fd(::dup(pm_->fd()), pm_->base().value, true, old_virt));
    EXPECT_NE(next->virt(), old_virt);
    pm_ = std::move(next);
    rebind_source();
    return pm_->memory();
  }

  flat_memory memory() const { return pm_->memory(); }
  source_type& pages() { return source_; }
  const model::physical_memory& file() const { return *pm_; }
  unsigned char* bytes(phys_addr pa) {
    return static_cast<unsigned char*>(pm_->virt()) + (pa - pm_->base());
  }

 private:
  // The bump source keeps its cursor; only its Memory changes to the new mapping.
  void rebind_source() {
    source_.rebind(pm_->memory());
  }

  std::unique_ptr<model::physical_memory> pm_;
  source_type source_;
};

/// Scratch pages for readers' bookkeeping (visited sets, indexes), apart from the
/// memory being read: a heap buffer standing for a physical range of its own, backed
/// only where a reader touches it.
template <unsigned PageShift = 12>
class scratch_arena {
 public:
  using source_type = bump_page_source<flat_memory, PageShift>;
  static constexpr u64 base = u64{1} << 46;

  explicit scratch_arena(u64 size = u64{32} << 20)
      : buf_(static_cast<unsigned char*>(std::aligned_alloc(u64{1} << 16, size))),
        source_(flat_memory(phys_addr{base}, size, buf_.get()), phys_addr{base}, phys_addr{base + size}) {}

  source_type& pages() { return source_; }

 private:
  struct release {
    void operator()(unsigned char* p) const { std::free(p); }
  };
  std::unique_ptr<unsigned char, release> buf_;
  source_type source_;
};

/// Attaches a radix tree with its visited set in a per-thread scratch arena (freed
/// pages return to it, so repeated attaches do not grow it).
template <unsigned PageShift = 12, Memory M>
auto attach_tree(const M& mem, phys_addr root, std::span<u64> nodes) {
  static thread_local scratch_arena<PageShift> scratch;
  return attach_preserve_bitmap<PageShift>(mem, root, scratch.pages(), nodes);
}

}  // namespace kho::test
