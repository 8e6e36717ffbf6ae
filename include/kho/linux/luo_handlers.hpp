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

#include <kho/linux/guest_memfd.hpp>
#include <kho/linux/hugetlb.hpp>
#include <kho/linux/iommu.hpp>
#include <kho/linux/iommufd.hpp>
#include <kho/linux/kvm.hpp>
#include <kho/linux/kvm_dialect.hpp>
#include <kho/linux/luo_v5.hpp>
#include <kho/linux/luo_versions.hpp>
#include <kho/linux/memfd.hpp>
#include <kho/linux/pci.hpp>
#include <kho/linux/tmpfs.hpp>
#include <kho/linux/vfio_pci.hpp>
#include <kho/detail/probe_table.hpp>
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

/// A session's files with a token index built on first use in scratch pages: a file
/// that names another by token (a guest_memfd its VM, a vCPU its VM, a tmpfs file its
/// mount) then costs O(1) expected instead of a scan of the session, so a session of
/// n such files is checked in O(n), not O(n^2). The first file with a token is the one
/// found, as a scan finds it. Tokens come from untrusted memory and can be chosen to
/// collide: the table's probe budget turns that into budget_exceeded.
template <class Files, PageSource Scratch, unsigned PageShift = 12>
class indexed_session_files {
  struct slot {
    u64 tag;
    u64 token;
    const luo_file_ser* file;
    u64 unused;
  };
  static u64 tag_of(u64 token) { return detail::tag_of(detail::mix64(token)); }

 public:
  indexed_session_files(const Files& files, Scratch& scratch) : files_(files), scratch_(scratch) {}
  indexed_session_files(const indexed_session_files&) = delete;
  ~indexed_session_files() { table_.release(scratch_); }

  auto begin() const { return files_.begin(); }
  auto end() const { return files_.end(); }

  /// The first file with `token`, or nullptr. Errors (in `err`): the index's
  /// out_of_memory or budget_exceeded, kept for the caller (error()).
  const luo_file_ser* find_token(u64 token) const {
    if (!built_ && status_) status_ = build();
    if (!status_) return nullptr;
    const slot* hit = table_.find(scratch_, tag_of(token), [&](const slot& e) { return e.token == token; });
    return hit != nullptr ? hit->file : nullptr;
  }
  /// Why the index could not be built (ok when it was, or never needed).
  const status& error() const { return status_; }

 private:
  status build() const {
    built_ = true;
    u64 n = 0;
    for (const luo_file_ser& f : files_) (void)f, ++n;
    KHO_TRY(table_.reserve(scratch_, n));
    table_.set_probe_budget(16 * n + 1024);
    for (const luo_file_ser& f : files_) {
      const u64 token = f.token.get();
      bool inserted = false;
      auto r = table_.insert_unique(scratch_, slot{tag_of(token), token, &f, 0},
                                    [&](const slot& e) { return e.token == token; }, inserted);
      if (!r) return r.err();
    }
    return {};
  }

  const Files& files_;
  Scratch& scratch_;
  mutable detail::probe_table<slot, Scratch, PageShift> table_{};
  mutable bool built_ = false;
  mutable status status_{};
};

/// The file of `session_files` with `token`, or nullptr: through the index when the
/// range has one (indexed_session_files), else by a scan.
template <class Files>
const luo_file_ser* find_file_by_token(const Files& session_files, u64 token) {
  if constexpr (requires { session_files.find_token(token); }) {
    return session_files.find_token(token);
  } else {
    for (const luo_file_ser& f : session_files)
      if (f.token.get() == token) return &f;
    return nullptr;
  }
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
// The same for any view whose for_each_folio yields memfd_folio records (memfd, and
// tmpfs-file-v1, whose records are memfd's).
template <unsigned PageShift, class View, class Owners, class Map>
status claim_folio_records(const View& m, Owners& owners, const Map& map) {
  status s;
  u64 clear_from = 0;  // the first file page past the previous folio
  m.for_each_folio([&](const memfd_folio& f) {
    if (!s) return;
    const phys_addr head{f.frame.value << PageShift};
    const unsigned o = preserved_order_at(map, head);
    if (o == Map::orders) {
      s = make_error(errc::not_preserved, View::structure, head, 1);
    } else if (o >= 64 || (f.index & ((u64{1} << o) - 1)) != 0) {
      s = make_error(errc::misaligned, View::structure, head, 1);
    } else if (f.index < clear_from) {
      s = make_error(errc::already_exists, View::structure, head, 1);
    } else {
      const u64 end = f.index + (u64{1} << o);
      clear_from = end < f.index ? ~u64{0} : end;
      s = owners.claim(head, 1, page_owner{View::structure, m.address()});
    }
  });
  return s;
}

template <unsigned PageShift, Memory M, class Owners, class Map>
status claim_folios(const memfd_view<M, PageShift>& m, Owners& owners, const Map& map) {
  return claim_folio_records<PageShift>(m, owners, map);
}

// A folio whose order the format fixes (a huge-memfd's hstate order; a guest_memfd's
// 0): the head must be a preserved block of exactly that order (kho_restore_folio
// restores the order the map records, and a folio of another size would not fit the
// file's page cache: out_of_range), and is claimed for its file. The reader has
// already checked alignment and overlap.
template <unsigned PageShift, class Owners, class Map>
status claim_fixed_order_folio(phys_addr head, unsigned expected, const char* structure, phys_addr ser,
                               Owners& owners, const Map& map) {
  const unsigned o = preserved_order_at(map, head);
  if (o == Map::orders) return make_error(errc::not_preserved, structure, head, 1);
  if (o != expected) return make_error(errc::out_of_range, structure, head, 1);
  return owners.claim(head, 1, page_owner{structure, ser});
}

// A huge-memfd's order against the hugetlb-v1 FLB, when there is one: the old
// kernel's FLB lists every hstate it had, so a file of an order it lacks did not come
// from that kernel (missing_dependency, at the file's order field); a file holding
// more folios than the FLB says arrive of its order makes the next kernel's early
// hstate allocation count too few preserved pages (bad_count, at nr_folios). Fewer is
// no error: other files' folios share the count. Without the FLB the kernel assumes
// no preserved huge pages; kho accepts that (a finding for the report, not an error).
template <unsigned PageShift, Memory M>
status check_against_hugetlb_flb(const M& mem, const huge_memfd_view<M, PageShift>& h, const luo_flb_list& flbs) {
  const luo_flb_ser* b = flbs.find(hugetlb_flb_name);
  if (b == nullptr || b->data.get() == 0) return {};
  auto flb = attach_hugetlb_flb<PageShift>(mem, phys_addr{b->data.get()});
  if (!flb) return flb.err();
  u64 nr_pages = 0;
  if (!flb->find(static_cast<u8>(h.folio_order()), nr_pages))
    return make_error(errc::missing_dependency, h.structure, h.address() + offsetof(hugemfd_ser, order), 0);
  if (h.nr_folios() > nr_pages)
    return make_error(errc::bad_count, h.structure, h.address() + offsetof(hugemfd_ser, nr_folios), 0);
  return {};
}

// A token that must name a file of the same session with handler `compatible`
// (missing_dependency at the token's field otherwise).
template <class Files>
status check_token(const Files& session_files, u64 token, const char* compatible, const char* structure,
                   phys_addr field) {
  const luo_file_ser* f = find_file_by_token(session_files, token);
  if constexpr (requires { session_files.error(); }) KHO_TRY(session_files.error());  // the index, not the token
  if (f == nullptr || !names_handler(*f, compatible)) return make_error(errc::missing_dependency, structure, field, 0);
  return {};
}

// -- devices (PCI, IOMMU, iommufd, vfio-pci) --

// The bytes a structure reads from `at` must end inside the preserved block that
// starts there: kho_alloc_preserve gave one folio of get_order(bytes), and the kernel
// reads as far as the counts say without looking at the folio's size.
template <unsigned PageShift, class Map>
status fits_preserved_block(const Map& map, phys_addr at, u64 bytes, const char* structure) {
  const unsigned o = preserved_order_at(map, at);
  if (o == Map::orders) return make_error(errc::not_preserved, structure, at, 0);
  if (o + PageShift < 64 && bytes > (u64{1} << (o + PageShift))) return make_error(errc::out_of_bounds, structure, at, 0);
  return {};
}

/// The PCI FLB of `flbs` (whichever variant), or nullptr.
inline const luo_flb_ser* find_pci_flb(const luo_flb_list& flbs, pci_variant& v) {
  for (const luo_flb_ser& b : flbs)
    if ((v = pci_variant_of_name(b.name, luo_v5_flb_name_len)) != pci_variant{0}) return &b;
  return nullptr;
}

/// The IOMMU FLB of `flbs` (whichever variant), or nullptr.
inline const luo_flb_ser* find_iommu_flb(const luo_flb_list& flbs, iommu_variant& v) {
  for (const luo_flb_ser& b : flbs)
    if ((v = iommu_variant_of_name(b.name, luo_v5_flb_name_len)) != iommu_variant{0}) return &b;
  return nullptr;
}

template <unsigned PageShift, Memory M, class Owners, class Map>
status claim_pci_flb(const M& mem, phys_addr data, pci_variant v, Owners& owners, const Map& map) {
  // The slots must end inside the allocation before any is read: past it they are
  // whatever else the memory holds, which the kernel would take for devices.
  if (v != pci_variant::versioned && page_geometry<PageShift>::is_aligned(data))
    if (const auto* h = static_cast<const pci_ser*>(mem.to_virt(data, sizeof(pci_ser))))
      KHO_TRY(fits_preserved_block<PageShift>(map, data, pci_ser_bytes(h->max_nr_devices.get()), "pci"));
  auto p = attach_pci_flb<PageShift>(mem, data, v, owners.scratch());
  if (!p) return p.err();
  KHO_TRY(p->claim_pages(owners));
  return fits_preserved_block<PageShift>(map, data, p->bytes(), p->structure);
}

template <unsigned PageShift, Memory M, class Owners, class Map>
status claim_iommu_flb(const M& mem, phys_addr data, iommu_variant v, Owners& owners, const Map& map) {
  auto view = attach_iommu_flb<PageShift>(mem, data, v, owners.scratch());
  if (!view) return view.err();
  status s = view->claim_pages(owners);
  if (s) s = view->check_references(map);
  if (s) s = view->claim_io_page_tables(owners);
  view->release();
  return s;
}

// An iommufd's pages, and each HWPT's domain_data against the handover's IOMMU FLB.
// A layout without FLBs (luo-v1 as kho reads it) has nothing to check them against.
template <unsigned PageShift, Memory M, class Owners, class Map>
status claim_iommufd(const M& mem, phys_addr data, const luo_flb_list& flbs, Owners& owners, const Map& map) {
  auto fd = attach_iommufd<PageShift>(mem, data);
  if (!fd) return fd.err();
  KHO_TRY(fd->claim_pages(owners));
  KHO_TRY(fits_preserved_block<PageShift>(map, data, fd->bytes(), fd->structure));
  if (flbs.count == 0) return {};
  iommu_variant v{};
  const luo_flb_ser* b = find_iommu_flb(flbs, v);
  status s;
  if (b == nullptr || b->data.get() == 0) {
    fd->for_each_hwpt([&](const iommufd_hwpt& h, phys_addr at) {
      if (s && h.domain_data != 0) s = make_error(errc::missing_dependency, fd->structure, at, 1);
    });
    return s;
  }
  auto iommu = attach_iommu_flb<PageShift>(mem, phys_addr{b->data.get()}, v, owners.scratch());
  if (!iommu) return iommu.err();
  fd->for_each_hwpt([&](const iommufd_hwpt& h, phys_addr at) {
    if (!s || h.domain_data == 0) return;
    if (auto i = iommu->find(iommu_list::domain, phys_addr{h.domain_data}); !i)
      s = make_error(i.code(), fd->structure, at, 1);
  });
  iommu->release();
  return s;
}

// A vfio-pci file's page, and its device in the handover's PCI FLB (when the layout
// has FLBs). vfio-pci's domain is 16 bits wide, pci_dev_ser's 32: compared as numbers.
template <unsigned PageShift, Memory M, class Owners>
status claim_vfio_pci(const M& mem, phys_addr data, const luo_flb_list& flbs, Owners& owners) {
  auto dev = attach_vfio_pci<PageShift>(mem, data);
  if (!dev) return dev.err();
  KHO_TRY(dev->claim_pages(owners));
  if (flbs.count == 0) return {};
  pci_variant v{};
  const luo_flb_ser* b = find_pci_flb(flbs, v);
  if (b == nullptr || b->data.get() == 0) return make_error(errc::missing_dependency, dev->structure, data, 0);
  auto pci = attach_pci_flb<PageShift>(mem, phys_addr{b->data.get()}, v, owners.scratch());
  if (!pci) return pci.err();
  if (!pci->contains(dev->device().domain, dev->device().bdf))
    return make_error(errc::missing_dependency, dev->structure, data, 0);
  return {};
}

}  // namespace impl

/// Claims what FLB entry `b` names, by its name. Complexity: the format's reader.
/// Errors: the format's reader's; aliased; not_preserved.
template <unsigned PageShift, Memory M, class Owners, class Map>
status claim_luo_flb(const M& mem, const luo_flb_ser& b, const luo_flb_list& flbs, Owners& owners, const Map& map) {
  (void)mem, (void)b, (void)flbs, (void)owners, (void)map;
  // -- FLB handlers: hugetlb --
  if (detail::string_equals(b.name, luo_v5_flb_name_len, hugetlb_flb_name) && b.data.get() != 0) {
    auto h = attach_hugetlb_flb<PageShift>(mem, phys_addr{b.data.get()});
    return h ? h->claim_pages(owners) : status{h.err()};
  }

  // -- FLB handlers: devices (PCI, IOMMU) --
  if (b.data.get() != 0) {
    if (const pci_variant v = pci_variant_of_name(b.name, luo_v5_flb_name_len); v != pci_variant{0})
      return impl::claim_pci_flb<PageShift>(mem, phys_addr{b.data.get()}, v, owners, map);
    if (const iommu_variant v = iommu_variant_of_name(b.name, luo_v5_flb_name_len); v != iommu_variant{0})
      return impl::claim_iommu_flb<PageShift>(mem, phys_addr{b.data.get()}, v, owners, map);
  }

  return {};
}

/// Claims what file record `f` names, by its compatible. `dialect` is the layout a
/// kvm_vm_luo_v1 file is read in (undecided: its page is claimed, nothing it names).
/// Complexity: the format's reader. Errors: the format's reader's; aliased;
/// not_preserved; misaligned and already_exists (folios); out_of_range (a huge or
/// guest_memfd folio of another order); missing_dependency (a token naming no file of
/// the right handler; a huge-memfd order the hugetlb-v1 FLB lacks); bad_count (more
/// huge folios than the FLB counts).
template <unsigned PageShift, Memory M, class Files, class Owners, class Map>
status claim_luo_file(const M& mem, const luo_file_ser& f, const Files& session_files, const luo_flb_list& flbs,
                      Owners& owners, const Map& map, kvm_vm_dialect dialect = kvm_vm_dialect::undecided) {
  (void)session_files, (void)flbs, (void)dialect;
  if (f.data.get() == 0) return {};
  if (auto version = memfd_version_of(f)) {
    auto m = attach_memfd<PageShift>(mem, phys_addr{f.data.get()}, *version);
    if (!m) return m.err();
    KHO_TRY(m->claim_pages(owners));
    return impl::claim_folios(*m, owners, map);
  }
  // -- file handlers: hugetlb, guest_memfd, KVM, tmpfs --
  const phys_addr data{f.data.get()};
  if (names_handler(f, huge_memfd_compatible)) {
    auto h = attach_huge_memfd<PageShift>(mem, data);
    if (!h) return h.err();
    KHO_TRY(h->claim_pages(owners));
    KHO_TRY(impl::check_against_hugetlb_flb(mem, *h, flbs));
    status s;
    h->for_each_folio([&](const huge_folio& folio) {
      if (s)
        s = impl::claim_fixed_order_folio<PageShift>(phys_addr{folio.frame.value << PageShift}, h->folio_order(),
                                                     h->structure, data, owners, map);
    });
    return s;
  }
  if (names_handler(f, guest_memfd_compatible)) {
    auto g = attach_guest_memfd<PageShift>(mem, data);
    if (!g) return g.err();
    KHO_TRY(impl::check_token(session_files, g->vm_token(), kvm_vm_compatible, g->structure,
                              data + offsetof(guest_memfd_luo_ser, vm_token)));
    KHO_TRY(g->claim_pages(owners));
    status s;
    g->for_each_folio([&](const guest_memfd_folio& folio) {
      if (s)
        s = impl::claim_fixed_order_folio<PageShift>(phys_addr{folio.frame.value << PageShift}, 0, g->structure, data,
                                                     owners, map);
    });
    return s;
  }
  if (names_handler(f, kvm_vm_compatible)) {
    if (dialect == kvm_vm_dialect::undecided) {
      // Both layouts keep their structure in a page of its own; what it points at
      // cannot be found without knowing which layout it is.
      if (!page_geometry<PageShift>::is_aligned(data)) return make_error(errc::misaligned, kvm_vm_compatible, data, 0);
      return owners.claim(data, 1, page_owner{kvm_vm_compatible, data});
    }
    auto v = attach_kvm_vm<PageShift>(mem, data, dialect);
    return v ? v->claim_pages(owners) : status{v.err()};
  }
  if (names_handler(f, kvm_vcpu_compatible)) {
    auto v = attach_kvm_vcpu<PageShift>(mem, data);
    if (!v) return v.err();
    KHO_TRY(impl::check_token(session_files, v->vm_token(), kvm_vm_compatible, v->structure,
                              data + offsetof(kvm_vcpu_luo_ser, vm_token)));
    return v->claim_pages(owners);
  }
  if (names_handler(f, tmpfs_mnt_compatible)) {
    auto m = attach_tmpfs_mnt<PageShift>(mem, data);
    return m ? m->claim_pages(owners) : status{m.err()};
  }
  if (names_handler(f, tmpfs_file_compatible)) {
    auto t = attach_tmpfs_file<PageShift>(mem, data);
    if (!t) return t.err();
    KHO_TRY(impl::check_token(session_files, t->mnt_token(), tmpfs_mnt_compatible, t->structure,
                              data + offsetof(tmpfs_luo_file_ser, mnt_token)));
    KHO_TRY(t->claim_pages(owners));
    return impl::claim_folio_records<PageShift>(*t, owners, map);
  }

  // -- file handlers: devices (iommufd, vfio-pci) --
  if (names_handler(f, iommufd_v1_compatible))
    return impl::claim_iommufd<PageShift>(mem, phys_addr{f.data.get()}, flbs, owners, map);
  if (names_handler(f, vfio_pci_v1_compatible))
    return impl::claim_vfio_pci<PageShift>(mem, phys_addr{f.data.get()}, flbs, owners);

  return {};
}

}  // namespace kho::upstream
