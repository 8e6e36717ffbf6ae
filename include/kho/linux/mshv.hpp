// kho/linux/mshv.hpp: the MSHV driver's KHO subtree "mshv_prsv_pt" (compatible
// "mshv_kho-v1"), which carries the pages Linux donated to the Hyper-V hypervisor
// across a kexec.
//
// shared/LINUX-FORMATS-NEXT.md, section 6 (an RFC series, not merged). The subtree's
// blob is one whole page (blob-size PAGE_SIZE, not fdt_totalsize) holding an FDT built
// in that page:
//
//   /  compatible  "mshv_kho-v1" (with its NUL)
//   /  root_table  8 bytes, little-endian u64: phys of the root table of a SECOND radix
//                  tree, a tree of the preserved-memory map's geometry (table pages of
//                  PAGE_SIZE/8 u64 phys, bitmap leaves, the same depth and per-level
//                  index) whose keys are raw page frame numbers: key p is the page at
//                  p << PAGE_SHIFT, one 4 KiB page per key, no order bit
//
// The same radix reader and writer as the main map read and write it, with the key
// encoding as their parameter (raw_pfn_keys in preserve_bitmap.hpp).
//
// Who preserves what: the old kernel preserves every key page, every page of the MSHV
// tree itself (tables and leaves) and the FDT page, each as one order-0 key in the MAIN
// preserved-memory map. The next kernel restores each of them as a single page.
//
// Reader (mshv_view::attach), what a stock kernel checks: the root node compatible with
// "mshv_kho-v1", root_table exactly 8 bytes (either failure panics it). kho's own:
// blob-size a page, the blob page-aligned and inside memory, libfdt's full check, the
// tree's shape (radix view: every node aligned, in memory, reached once, exact depth,
// no key at or above 2^(64 - PAGE_SHIFT)). check_main_map: every MSHV page (FDT, tree
// node, key page) an order-0 key of the main map (not_preserved otherwise: a stock
// kernel's restore of it would fail and panic). claim_pages: the FDT page and the tree's
// pages for "mshv", the key pages for "mshv-hypervisor" (one owner per page: a key page
// another structure also reaches is aliased).
//
// Complexity: attach O(N * PAGE_SIZE/8 + N log N) for the N tree pages, scratch O(N);
// check_main_map and claim_pages O(N + K * depth) for the K key pages.
#pragma once

#include <kho/handover_check.hpp>
#include <kho/linux/memblock.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/result.hpp>

#include <cstring>
#include <new>

#include <libfdt.h>

namespace kho::upstream {

inline constexpr const char* mshv_subtree = "mshv_prsv_pt";
inline constexpr char mshv_compatible[] = "mshv_kho-v1";
inline constexpr const char* mshv_root_table_property = "root_table";
/// Owner of the pages the hypervisor holds (the tree's keys), beside "mshv" for the
/// FDT and the tree's own pages.
inline constexpr const char* mshv_hypervisor_owner = "mshv-hypervisor";

/// What the KHO root names for the subtree: the FDT page and blob-size (a page), plus
/// the tree's root for the caller's information.
struct mshv_blob {
  phys_addr phys{};
  u64 size = 0;
  phys_addr root_table{};
};

/// Writes the MSHV state the way the old kernel does at reboot: a raw-pfn radix tree
/// holding `pages` (each page-aligned, no duplicates), the one-page FDT naming its root,
/// and, in `main_map` (a preserve_bitmap writer of the main map, order-marker keys),
/// one order-0 key for every key page, every tree page and the FDT page.
/// Complexity: O(K * depth) for the K pages, plus the tree's node allocations.
/// Errors: misaligned, already_exists (a page given twice, or already preserved in the
/// main map: kho refuses where kho_preserve_pages would not say), out_of_memory,
/// out_of_range (a page at or above 2^64 / PAGE_SIZE pages: never).
namespace impl {

// The tree's writer (over 1 KiB, most of it pending-record lists it does not use here)
// is built in a page of its own, not on the stack: a kernel frame has 2 KiB. Not
// inlined, so create()'s temporary stays in this frame.
template <class Tree, class Source>
[[gnu::noinline]] result<Tree>& emplace_mshv_tree(void* room, Source& source) {
  // The kernel's tree never records its own pages in itself: they go to the main map.
  return *new (room) result<Tree>(Tree::create(source, false));
}

template <unsigned PageShift, class Tree, PageSource Source, class MainMap>
result<mshv_blob> write_mshv_with(Tree& tree, Source& source, std::span<const phys_addr> pages, MainMap& main_map) {
  using geometry = page_geometry<PageShift>;
  for (phys_addr pa : pages) KHO_TRY(tree.preserve(pa, order{0}));
  auto fdt_pa = alloc_zeroed(source, order{0}, geometry::size);
  if (!fdt_pa) return fdt_pa.err();
  void* fdt = source.memory().to_virt(*fdt_pa, geometry::size);
  unsigned char root[8];
  fdt_put_le64(root, tree.root().value);
  int err = fdt_create(fdt, static_cast<int>(geometry::size));
  if (!err) err = fdt_finish_reservemap(fdt);
  if (!err) err = fdt_begin_node(fdt, "");
  if (!err) err = fdt_property(fdt, "compatible", mshv_compatible, sizeof mshv_compatible);
  if (!err) err = fdt_property(fdt, mshv_root_table_property, root, sizeof root);
  if (!err) err = fdt_end_node(fdt);
  if (!err) err = fdt_finish(fdt);
  if (err) return fdt_write_error(err);
  // Key pages and tree pages (in any order: each is one order-0 key), then the FDT.
  for (phys_addr pa : pages) KHO_TRY(main_map.preserve(pa, order{0}));
  status s;
  typename Tree::walker walk(&source.memory(), tree.root());
  walk.for_each_node([&](phys_addr pa) {
    if (s) s = main_map.preserve(pa, order{0});
  });
  KHO_TRY(s);
  KHO_TRY(main_map.preserve(*fdt_pa, order{0}));
  return mshv_blob{*fdt_pa, geometry::size, tree.root()};
}

}  // namespace impl

template <unsigned PageShift = 12, PageSource Source, class MainMap>
result<mshv_blob> write_mshv(Source& source, std::span<const phys_addr> pages, MainMap& main_map) {
  using tree_type = preserve_bitmap<Source, PageShift, raw_pfn_keys<PageShift>>;
  static_assert(sizeof(result<tree_type>) <= page_geometry<PageShift>::size);
  auto room = source.alloc(order{0});
  if (!room) return room.err();
  void* at = source.memory().to_virt(*room, sizeof(result<tree_type>));
  if (at == nullptr) return errc::out_of_bounds;
  result<tree_type>& tree = impl::emplace_mshv_tree<tree_type>(at, source);
  result<mshv_blob> out = tree ? impl::write_mshv_with<PageShift>(*tree, source, pages, main_map)
                               : result<mshv_blob>(tree.err());
  tree.~result<tree_type>();
  source.free(*room, order{0});
  return out;
}

/// A validated MSHV subtree. Holds a block of `scratch` (the tree's sorted node list)
/// until release() or destruction.
template <Memory M, PageSource Scratch, unsigned PageShift = 12>
class mshv_view {
 public:
  using geometry = page_geometry<PageShift>;
  using keys = raw_pfn_keys<PageShift>;
  using tree_view = preserve_bitmap_view<M, PageShift, keys>;
  static constexpr const char* structure = "mshv";

  /// Validates the subtree whose FDT page is at `pa` with blob-size `blob_size`.
  /// Errors (at `pa`, depth 0, unless the tree's): bad_count (blob-size not a page),
  /// misaligned, out_of_bounds, bad_fdt (libfdt refuses the page), bad_compatible (not
  /// "mshv_kho-v1"), not_found (no root_table), bad_count at depth 1 (root_table not 8
  /// bytes: told apart from blob-size, which only kho checks);
  /// the radix view's errors for the tree (structure "radix", at the node).
  static result<mshv_view> attach(const M& mem, phys_addr pa, u64 blob_size, Scratch& scratch) {
    auto fail = [pa](errc c) { return make_error(c, structure, pa, 0); };
    if (blob_size != geometry::size) return fail(errc::bad_count);
    if (!geometry::is_aligned(pa)) return fail(errc::misaligned);
    const void* fdt = mem.to_virt(pa, geometry::size);
    if (fdt == nullptr) return fail(errc::out_of_bounds);
    if (impl::fdt_check_untrusted(fdt, geometry::size) != 0 || fdt_totalsize(fdt) > geometry::size)
      return fail(errc::bad_fdt);
    if (fdt_node_check_compatible(fdt, 0, mshv_compatible) != 0) return fail(errc::bad_compatible);
    int len = 0;
    const void* prop = fdt_getprop(fdt, 0, mshv_root_table_property, &len);
    if (prop == nullptr) return fail(errc::not_found);
    if (len != 8) return make_error(errc::bad_count, structure, pa, 1);  // depth 1: the property
    const phys_addr root{impl::fdt_le64(prop)};
    detail::radix_nodes<PageShift, M, Scratch, keys> nodes{&scratch};
    auto tree = nodes.attach(mem, root);
    if (!tree) return tree.err();
    mshv_view v(pa, *tree, scratch, nodes.block, nodes.block_order);
    nodes.block = phys_addr{};  // the view owns the node list now
    return v;
  }

  mshv_view(mshv_view&& o) noexcept
      : pa_(o.pa_), tree_(o.tree_), scratch_(o.scratch_), block_(o.block_), block_order_(o.block_order_) {
    o.block_ = phys_addr{};
  }
  mshv_view(const mshv_view&) = delete;
  mshv_view& operator=(const mshv_view&) = delete;
  mshv_view& operator=(mshv_view&&) = delete;
  ~mshv_view() { release(); }

  /// Returns the node list's scratch block; the view must not be used afterwards.
  void release() {
    if (block_) scratch_->free(block_, block_order_);
    block_ = phys_addr{};
  }

  phys_addr address() const { return pa_; }
  phys_addr root_table() const { return tree_.root(); }
  const tree_view& tree() const { return tree_; }
  /// Hypervisor pages (keys) in the tree.
  u64 page_count() const { return tree_.count(order{0}); }
  /// Pages of the tree itself (tables and leaves).
  u64 node_count() const { return tree_.node_count(); }

  /// Calls f(pa) for every key page, ascending.
  template <class F>
  void for_each_page(F&& f) const {
    tree_.for_each_block([&](phys_addr page, order) { f(page); });
  }

  /// Every MSHV page must be an order-0 key of the main map `map` (anything with
  /// contains(pa, order)): what the old kernel preserved and the next one restores
  /// page by page. Errors: not_preserved (at the first page that is not, "mshv").
  template <class Map>
  status check_main_map(const Map& map) const {
    auto missing = [&](phys_addr page) { return !map.contains(page, order{0}); };
    if (missing(pa_)) return make_error(errc::not_preserved, structure, pa_, 0);
    for (u64 page : tree_.nodes())
      if (missing(phys_addr{page})) return make_error(errc::not_preserved, structure, phys_addr{page}, 1);
    status s;
    for_each_page([&](phys_addr page) {
      if (s && missing(page)) s = make_error(errc::not_preserved, structure, page, 2);
    });
    return s;
  }

  /// Claims the FDT page and the tree's pages for {"mshv", pa}, and the key pages (in
  /// coalesced runs) for {"mshv-hypervisor", pa}. Errors: those of Owners::claim.
  template <class Owners>
  status claim_pages(Owners& owners) const {
    KHO_TRY(owners.claim(pa_, 1, page_owner{structure, pa_}));
    for (u64 page : tree_.nodes()) KHO_TRY(owners.claim(phys_addr{page}, 1, page_owner{structure, pa_}));
    status s;
    tree_.for_each_range([&](phys_addr start, u64 bytes) {
      if (s) s = owners.claim(start, bytes >> PageShift, page_owner{mshv_hypervisor_owner, pa_});
      return s.ok();
    });
    return s;
  }

 private:
  mshv_view(phys_addr pa, const tree_view& tree, Scratch& scratch, phys_addr block, order block_order)
      : pa_(pa), tree_(tree), scratch_(&scratch), block_(block), block_order_(block_order) {}

  phys_addr pa_;
  tree_view tree_;
  Scratch* scratch_;
  phys_addr block_;
  order block_order_;
};

/// Attaches with the Memory and Scratch types deduced.
template <unsigned PageShift = 12, Memory M, PageSource Scratch>
result<mshv_view<M, Scratch, PageShift>> attach_mshv(const M& mem, phys_addr pa, u64 blob_size, Scratch& scratch) {
  return mshv_view<M, Scratch, PageShift>::attach(mem, pa, blob_size, scratch);
}

}  // namespace kho::upstream
