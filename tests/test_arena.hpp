// tests/test_arena.hpp: physical memory for tests, and reattaching it elsewhere.
//
// An arena is a memfd standing for [base, base+size) with a page source over it.
// remap() maps the same file at a new virtual address, as the next kernel would:
// a structure that stored a pointer instead of a physical address breaks there.
#pragma once

#include <kho/memory.hpp>
#include <kho/model/physical_memory.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <optional>

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

}  // namespace kho::test
