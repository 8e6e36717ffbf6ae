// tests/xarray_reseal.hpp: what a writer who knows the format recomputes after tampering.
//
// A hostile (or buggy) old kernel can always make the root block agree with its nodes:
// the entry count and marks from the root node's header, the node count and both
// address sums from the links as they now stand (a page reached from two places counted
// twice, a compact leaf's run of equal slots once), then the checksum. Corruption tests
// and the re-seal fuzz target call this after every tamper, so that only the structural
// validator stands between the bytes and a view.
#pragma once

#include <kho/xarray.hpp>

namespace kho::test {

template <class Value, unsigned PageShift, Memory M>
class xarray_resealer {
  using geo = detail::xa_geometry<Value, PageShift>;

 public:
  /// Recomputes the root block at `root` from its links; at most `limit` arrivals are
  /// followed (a DAG built by a fuzzer can have astronomically many).
  static void reseal(const M& mem, phys_addr root, u64 limit = ~u64{0}) {
    auto* r = phys_to<xarray_root>(mem, root);
    if (r == nullptr) return;
    xarray_resealer w{mem, limit};
    const u64 ref = r->root.get();
    if (ref != 0) {
      // A height past the format's (refused as too_deep anyway) would only deepen the walk.
      const unsigned h = r->height.get() > geo::max_height ? geo::max_height : r->height.get();
      w.follow(ref, h);
      if (const unsigned char* n = w.page(ref)) {
        const detail::xa_node_header& h = detail::header(n);
        r->count.set((ref & detail::xa_kind_mask) == detail::xa_compact ? h.count.get() : h.entries.get());
        r->marks.set(h.marks);
      }
    }
    r->nodes.set(w.nodes_);
    r->address_sum.set(w.sum_);
    r->address_mix.set(w.mix_);
    seal(mem, root);
  }

  /// Only the checksum (after editing a root field on purpose).
  static void seal(const M& mem, phys_addr root) {
    auto* r = phys_to<xarray_root>(mem, root);
    if (r != nullptr) r->checksum.set(checksum_with_hole(r, sizeof *r, offsetof(xarray_root, checksum)));
  }

 private:
  xarray_resealer(const M& mem, u64 limit) : mem_(mem), left_(limit) {}

  const unsigned char* page(u64 ref) const {
    return static_cast<const unsigned char*>(mem_.to_virt(phys_addr{ref & ~geo::page_mask}, geo::page));
  }

  void count(u64 ref) {
    const u64 pa = ref & ~geo::page_mask;
    ++nodes_;
    sum_ += pa;
    mix_ += detail::xa_mix(pa);
  }

  // Levels only go down, so this ends whatever the links say.
  void follow(u64 ref, unsigned h) {
    if (left_ == 0) return;
    --left_;
    count(ref);
    const unsigned char* br = page(ref);
    if ((ref & detail::xa_kind_mask) != detail::xa_branch || h == 0 || br == nullptr) return;
    if (h == 1)
      for (u64 g = 0; g < geo::side_count; ++g)
        if (const u64 s = detail::get64(br + geo::side_off + 8 * g)) count(s);
    for (u64 j = 0; j < geo::fanout; ++j) {
      const u64 child = detail::get64(br + geo::slots_off + 8 * j);
      if (child == 0) continue;
      follow(child, h - 1);
      if ((child & detail::xa_kind_mask) == detail::xa_compact) {
        const u64 run = (child >> detail::xa_run_shift) & detail::xa_run_mask;
        if (run < 64) j |= (u64{1} << run) - 1;
      }
    }
  }

  const M& mem_;
  u64 left_;
  u64 nodes_ = 0, sum_ = 0, mix_ = 0;
};

/// reseal_xarray<u64>(mem, root): the root block made to agree with the nodes below it.
template <class Value = u64, unsigned PageShift = 12, Memory M>
void reseal_xarray(const M& mem, phys_addr root, u64 limit = ~u64{0}) {
  xarray_resealer<Value, PageShift, M>::reseal(mem, root, limit);
}

}  // namespace kho::test
