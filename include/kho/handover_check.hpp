// kho/handover_check.hpp: attach a handover as a whole, trusting nothing but its shape.
//
// handover_view::attach checks the root page alone. A next kernel needs more before
// it hands memory to its page allocator: every structure the root names validates,
// no page belongs to two structures (or is reached twice by one), and every page a
// structure reaches is preserved, or the allocator would reuse it under a live
// reader (a use-after-free across kexec). attach_handover does all of it:
//
//   1. the root page (handover_view::attach): checksums, strings, overlaps
//   2. each entry, by compatible string, with its own validating reader:
//        kho-radix-v1   preserved-memory map   at most one; its tree pages are claimed
//                                               but exempt from (4): upstream never
//                                               records them, restore reserves them
//        kho-xarray-v1  sparse xarray (u64 values)
//        kho-luo-v1     LUO sessions, files, shared objects, each file's state page
//        anything else  an opaque blob: the pages [phys, phys + size) span
//   3. page_owners: the root page and every page of step 2 claimed exactly once;
//      the first conflict names both owners (errc::aliased, error.other)
//   4. every claimed page not exempt is covered by a block of the preserved-memory
//      map (errc::not_preserved); a handover without a map preserves nothing and is
//      refused, unless the caller opts out (a bare root in tests or tools)
//
// Budget: each reader validates in O(bytes reachable from its root) time and scratch,
// and the ownership table holds one 32-byte slot per page claimed (twice that at the
// table's load factor), so attaching costs O(bytes written), not O(RAM) and not
// O(counts the input claims). Scratch comes from the caller's PageSource and is all
// returned before attach_handover returns.
#pragma once

#include <kho/handover.hpp>
#include <kho/linux/kvm_dialect.hpp>
#include <kho/luo.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/result.hpp>
#include <kho/xarray.hpp>

#include <optional>
#include <span>

namespace kho {

struct handover_check_options {
  // Every page a structure reaches must be preserved by the handover's own
  // preserved-memory map. Off only for roots that carry no map on purpose.
  bool require_preserved = true;
  // Which layout a LUO file "kvm_vm_luo_v1" is in (two share the string and the bytes
  // cannot tell them apart: kho/linux/kvm.hpp). Undecided: its own page is claimed,
  // nothing it points at is read.
  upstream::kvm_vm_dialect kvm_vm_dialect = upstream::kvm_vm_dialect::undecided;
};

namespace detail {

// The radix view records its node pages in a caller span whose size caps the node
// count, which is unknown until walked: the span comes from scratch and doubles until
// the tree fits, O(N) in all. A retry that fails where the last one did was stopped
// by the probe budget, not by the span, and ends the search.
// `Keys`: the tree's key encoding (order_marker_keys for the preserved-memory map).
template <unsigned PageShift, Memory M, PageSource Scratch, class Keys = order_marker_keys<PageShift>>
struct radix_nodes {
  static_assert(pages_of_size<Scratch, PageShift>(), "scratch must come in pages of the reader's size");
  Scratch* scratch = nullptr;
  phys_addr block{};
  order block_order{};
  unsigned depth = radix_geometry<PageShift>::depth;  // fewer for an older formula's tree

  result<preserve_bitmap_view<M, PageShift, Keys>> attach(const M& mem, phys_addr root) {
    error last{};
    for (unsigned o = 0;; ++o) {
      release();
      auto pa = scratch->alloc(order{o});
      if (!pa) return make_error(errc::out_of_memory, "radix", root);
      block = *pa;
      block_order = order{o};
      const u64 slots = (u64{1} << (PageShift + o)) / sizeof(u64);
      auto* span = static_cast<u64*>(scratch->memory().to_virt(block, slots * sizeof(u64)));
      if (span == nullptr) return make_error(errc::out_of_memory, "radix", root);
      auto v = preserve_bitmap_view<M, PageShift, Keys>::attach(mem, root, *scratch, std::span<u64>(span, slots),
                                                                depth);
      if (v || v.code() != errc::budget_exceeded || v.err().loc.at == last.loc.at) return v;
      last = v.err();
    }
  }
  void release() {
    if (block) scratch->free(block, block_order);
    block = phys_addr{};
  }
  ~radix_nodes() { release(); }
};

// Claims what a structure in one of kho's own formats reaches: `compatible` names the
// format; anything unknown is an opaque blob owning the pages [at, at + size) spans.
template <unsigned PageShift, Memory M, PageSource Scratch, class Owners>
status claim_kho_structure(const M& mem, const char* compatible, phys_addr at, u64 size, Scratch& scratch,
                           Owners& owners) {
  if (detail::same_string(compatible, xarray_compatible)) {
    // The root's checksum covers `size` bytes: all of the root block, or it vouches
    // for less than the reader trusts.
    if (size < sizeof(xarray_root)) return make_error(errc::bad_count, "xarray", at);
    auto v = attach_xarray<u64, PageShift>(mem, at, scratch);
    if (!v) return v.err();
    return v->claim_pages(owners);
  }
  if (detail::same_string(compatible, luo_compatible)) {
    if (size < sizeof(luo_root)) return make_error(errc::bad_count, "luo", at);
    auto v = attach_luo<PageShift>(mem, at, scratch);
    if (!v) return v.err();
    status s = v->claim_pages(owners);
    v->release();
    return s;
  }
  // An opaque blob: the root's checksum covered its bytes; it owns the pages they span.
  using geo = page_geometry<PageShift>;
  const u64 bytes = size ? size : 1;
  const u64 first = at.value & ~(geo::size - 1);
  const u64 pages = ((at.value - first) + bytes + geo::size - 1) >> PageShift;
  return owners.claim(phys_addr{first}, pages, page_owner{"blob", at});
}

// Claims what one entry reaches; `map` receives the preserved-memory map's view.
template <unsigned PageShift, Memory M, PageSource Scratch, class Owners, class Map>
status claim_entry(const M& mem, const handover_entry& e, Scratch& scratch, Owners& owners,
                   radix_nodes<PageShift, M, Scratch>& map_nodes, std::optional<Map>& map) {
  const phys_addr at{e.phys.get()};
  if (string_equals(e.compatible, handover_compatible_len, radix_compatible)) {
    if (map) return make_error(errc::duplicate, "radix", at);
    auto v = map_nodes.attach(mem, at);
    if (!v) return v.err();
    if ((e.flags.get() & entry_deep_checksum) != 0 && v->deep_checksum() != e.deep_checksum.get())
      return make_error(errc::bad_checksum, "radix", at);
    KHO_TRY(v->claim_pages(owners));
    map.emplace(*v);
    return {};
  }
  // The root's attach proved the compatible field NUL-terminated.
  return claim_kho_structure<PageShift>(mem, e.compatible, at, e.size.get(), scratch, owners);
}

}  // namespace detail

/// Checks every structure of an attached root, one owner per page, and (by default)
/// that every page reached is preserved.
/// Complexity: O(bytes reachable from the root) time; scratch O(pages reachable),
/// all returned before it returns.
/// Errors: each structure's own validation errors (with its structure and node);
/// duplicate (two preserved-memory maps); bad_checksum (a map's deep checksum);
/// aliased (a page claimed twice: loc the second claim, other the first owner);
/// not_preserved (a reachable page outside the map, or no map at all);
/// out_of_memory or budget_exceeded (scratch).
template <unsigned PageShift, Memory M, PageSource Scratch>
status check_handover(const handover_view<M, PageShift>& root, Scratch& scratch,
                      const handover_check_options& options = {}) {
  using map_view = preserve_bitmap_view<M, PageShift>;
  page_owners<Scratch, PageShift> owners(scratch);
  KHO_TRY(owners.claim(root.root(), 1, page_owner{handover_view<M, PageShift>::structure, root.root()}));
  detail::radix_nodes<PageShift, M, Scratch> map_nodes{&scratch};
  std::optional<map_view> map;
  for (const handover_entry& e : root) {
    if (status s = detail::claim_entry<PageShift>(root.memory(), e, scratch, owners, map_nodes, map); !s)
      return s;
  }
  if (!options.require_preserved) return {};
  if (!map) return make_error(errc::not_preserved, handover_view<M, PageShift>::structure, root.root());
  return owners.check_preserved(*map);
}

/// Attaches the handover at `root`: the root page, every structure it names, one owner
/// per page and (by default) preservation of every page reached. What a next kernel
/// (and `kho verify`) runs before trusting anything.
/// Complexity and errors: those of handover_view::attach, then check_handover.
template <unsigned PageShift = 12, Memory M, PageSource Scratch>
result<handover_view<M, PageShift>> attach_handover(const M& mem, phys_addr root, Scratch& scratch,
                                                    const handover_check_options& options = {}) {
  auto view = handover_view<M, PageShift>::attach(mem, root);
  if (!view) return view.err();
  KHO_TRY(check_handover(*view, scratch, options));
  return view;
}

}  // namespace kho
