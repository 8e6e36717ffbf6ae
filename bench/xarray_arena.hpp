// bench/xarray_arena.hpp: the page arena the xarray benchmarks build their maps in.
#pragma once

#include <kho/model/physical_memory.hpp>
#include <kho/xarray.hpp>

#include <cstdlib>
#include <memory>

namespace kho_bench {

using namespace kho;
using source = bump_page_source<flat_memory>;
using xa = xarray<u64, 12, source>;

/// The value stored at `index`: a folio's address with two flag bits, never zero.
inline u64 value_of(u64 index) { return (index << 12) | 3; }

/// 2 GiB of "physical memory" (a sparse memfd) and a page source over it that outlives
/// the maps built on it: destroy() returns their pages, so rebuilt maps get warm pages,
/// as from a kernel's page allocator.
struct arena {
  std::unique_ptr<model::physical_memory> pm;
  std::unique_ptr<source> pages;
  arena() {
    const u64 size = u64{1} << 31;
    pm = std::make_unique<model::physical_memory>(model::physical_memory::create(u64{4} << 30, size));
    pages = std::make_unique<source>(pm->memory(), pm->base(), pm->base() + size);
  }
  xa fresh() { return std::move(*xa::create(*pages)); }
  /// Indices 0 .. n-1 stored in order.
  xa sequential(u64 n) {
    xa x = fresh();
    for (u64 i = 0; i < n; ++i)
      if (!x.store(i, value_of(i))) std::abort();
    return x;
  }
  /// `keys` stored in the order given.
  template <class Keys>
  xa build(const Keys& keys) {
    xa x = fresh();
    for (u64 i : keys)
      if (!x.store(i, value_of(i))) std::abort();
    return x;
  }
};

}  // namespace kho_bench
