// kho/linux/luo_handlers.hpp: what a LUO file's or an FLB's `data` is, decided by the
// string that names its handler, and what the check claims for it.
//
// LUO (every layout: luo_v1.hpp, luo_v5.hpp, luo_versions.hpp) carries per file only
// (compatible, data, token) and per FLB only (name, data, count); the handler the
// string names owns what `data` points at. Every layout's walk calls
//
//   claim_luo_flb(mem, flb, flbs, owners, map)                   each FLB, first
//   claim_luo_file(mem, file, session_files, flbs, owners, map)  each file of a session
//
// which dispatch on the string to the format's reader: it validates the state, claims
// its pages for their owner and checks the pages it names are preserved. A string no
// reader knows is an opaque handle: nothing is claimed (the report calls its data
// payload). A handler may look across: `session_files` (any range of luo_file_ser:
// a guest_memfd names its VM by token) and `flbs` (iommufd names domains inside the
// IOMMU FLB).
#pragma once

#include <kho/linux/luo_v5.hpp>
#include <kho/linux/luo_versions.hpp>
#include <kho/linux/memfd.hpp>
#include <kho/memory.hpp>
#include <kho/result.hpp>

namespace kho::upstream {

/// The FLB entries of one handover (none for layouts without FLBs).
struct luo_flb_list {
  const luo_flb_ser* items = nullptr;
  u64 count = 0;
  const luo_flb_ser* begin() const { return items; }
  const luo_flb_ser* end() const { return items + count; }
  /// The entry named `name`, or nullptr.
  const luo_flb_ser* find(const char* name) const {
    for (const luo_flb_ser& b : *this)
      if (detail::string_equals(b.name, luo_v5_flb_name_len, name)) return &b;
    return nullptr;
  }
};

/// Whether file record `f` names handler `compatible`.
inline bool names_handler(const luo_file_ser& f, const char* compatible) {
  return detail::string_equals(f.compatible, luo_v5_file_compatible_len, compatible);
}

/// The file of `session_files` with `token`, or nullptr.
template <class Files>
const luo_file_ser* find_file_by_token(const Files& session_files, u64 token) {
  for (const luo_file_ser& f : session_files)
    if (f.token.get() == token) return &f;
  return nullptr;
}

/// The order of the preserved block whose head is `head`, or Map::orders if none is.
template <class Map>
unsigned preserved_order_at(const Map& map, phys_addr head) {
  unsigned o = 0;
  while (o < Map::orders && !(map.count(order{o}) != 0 && map.contains(head, order{o}))) ++o;
  return o;
}

namespace impl {

// A memfd's folios are the file's data, not the structure's: each must be the head of
// a preserved block (the kernel's kho_restore_folio finds its order and magic there,
// else the retrieval fails with -EIO), and is claimed for its memfd, so a folio two
// files name, or one that is also a structure's page, has two owners. One page per
// folio: the block's other pages are the folio's own. The block's order is the
// folio's: it spans file pages [index, index + 2^order), and the kernel adds it to
// the page cache there, which needs the index aligned to the order (a misaligned
// folio trips shmem_add_to_page_cache's VM_BUG_ON) and the span clear of the next
// record's (-EEXIST fails memfd_luo_retrieve): misaligned and already_exists here.
template <unsigned PageShift, Memory M, class Owners, class Map>
status claim_folios(const memfd_view<M, PageShift>& m, Owners& owners, const Map& map) {
  using view = memfd_view<M, PageShift>;
  status s;
  u64 clear_from = 0;  // the first file page past the previous folio
  m.for_each_folio([&](const memfd_folio& f) {
    if (!s) return;
    const phys_addr head{f.frame.value << PageShift};
    const unsigned o = preserved_order_at(map, head);
    if (o == Map::orders) {
      s = make_error(errc::not_preserved, view::structure, head, 1);
    } else if (o >= 64 || (f.index & ((u64{1} << o) - 1)) != 0) {
      s = make_error(errc::misaligned, view::structure, head, 1);
    } else if (f.index < clear_from) {
      s = make_error(errc::already_exists, view::structure, head, 1);
    } else {
      const u64 end = f.index + (u64{1} << o);
      clear_from = end < f.index ? ~u64{0} : end;
      s = owners.claim(head, 1, page_owner{view::structure, m.address()});
    }
  });
  return s;
}

}  // namespace impl

/// Claims what FLB entry `b` names, by its name. Complexity: the format's reader.
/// Errors: the format's reader's; aliased; not_preserved.
template <unsigned PageShift, Memory M, class Owners, class Map>
status claim_luo_flb(const M& mem, const luo_flb_ser& b, const luo_flb_list& flbs, Owners& owners, const Map& map) {
  (void)mem, (void)b, (void)flbs, (void)owners, (void)map;
  // -- FLB handlers: hugetlb --

  // -- FLB handlers: devices (PCI, IOMMU) --

  return {};
}

/// Claims what file record `f` names, by its compatible. Complexity: the format's
/// reader. Errors: the format's reader's; aliased; not_preserved; misaligned and
/// already_exists (folios).
template <unsigned PageShift, Memory M, class Files, class Owners, class Map>
status claim_luo_file(const M& mem, const luo_file_ser& f, const Files& session_files, const luo_flb_list& flbs,
                      Owners& owners, const Map& map) {
  (void)session_files, (void)flbs;
  if (f.data.get() == 0) return {};
  if (auto version = memfd_version_of(f)) {
    auto m = attach_memfd<PageShift>(mem, phys_addr{f.data.get()}, *version);
    if (!m) return m.err();
    KHO_TRY(m->claim_pages(owners));
    return impl::claim_folios(*m, owners, map);
  }
  // -- file handlers: hugetlb, guest_memfd, KVM, tmpfs --

  // -- file handlers: devices (iommufd, vfio-pci) --

  return {};
}

}  // namespace kho::upstream
