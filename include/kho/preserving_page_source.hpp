// kho/preserving_page_source.hpp: a page source that preserves what it hands out.
//
// A structure that keeps growing after it was preserved (an xarray taking page faults,
// a list gaining sessions) allocates new nodes after the preservation map was written.
// Wrapping its page source in preserving_page_source records every block handed out
// in a Preserver (kho::preserve_bitmap in practice) and drops it again on free, so the
// preservation map always covers exactly the live nodes: "allocation tracking
// post-preservation". The decorator is itself a PageSource and stores nothing but two
// references.
//
//   alloc(o):   inner.alloc(o) -> preserver.preserve(pa, o) -> pa
//               (if preserve fails, the block goes back to inner and the error is returned)
//   free(pa,o): preserver.unpreserve(pa, o) -> inner.free(pa, o)
//
// Complexity: one inner call plus one Preserver call per operation.
#pragma once

#include <kho/memory.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <concepts>

namespace kho {

/// Records and forgets preserved blocks.
template <class P>
concept Preserver = requires(P& p, phys_addr pa, order o) {
  { p.preserve(pa, o) } -> std::same_as<status>;
  { p.unpreserve(pa, o) } -> std::same_as<status>;
};

template <PageSource Inner, Preserver Map>
class preserving_page_source {
 public:
  preserving_page_source(Inner& inner, Map& map) : inner_(&inner), map_(&map) {}

  /// A block from the inner source, already preserved.
  /// Errors: those of the inner source and of Map::preserve (the block is then freed).
  result<phys_addr> alloc(order o) {
    auto pa = inner_->alloc(o);
    if (!pa) return pa;
    if (status s = map_->preserve(*pa, o); !s) {
      inner_->free(*pa, o);
      return s.err();
    }
    return pa;
  }

  /// Unpreserves the block, then returns it to the inner source. A block the map does
  /// not know (allocated before wrapping) is freed all the same.
  void free(phys_addr pa, order o) {
    (void)map_->unpreserve(pa, o);
    inner_->free(pa, o);
  }

  const memory_of<Inner>& memory() const { return inner_->memory(); }
  Inner& inner() const { return *inner_; }
  Map& preserver() const { return *map_; }

 private:
  Inner* inner_;
  Map* map_;
};

}  // namespace kho
