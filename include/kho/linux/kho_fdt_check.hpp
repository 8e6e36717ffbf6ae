// kho/linux/kho_fdt_check.hpp: attach a Linux KHO handover (the "kho-v4" root FDT) as a
// whole, trusting nothing but its shape: what handover_check.hpp does for kho-root-v1.
//
//   1. the root FDT (kho_fdt_view::attach): libfdt's full check, properties, kho's seal
//   2. preserved-memory-map, by the root's version: the radix tree (kho-v2 on; with
//      kho-v2's depth formula, one level fewer at 16 KiB pages) or kho-v1's chunk
//      chain (kho_mem_chunks.hpp); its deep checksum verified when kho's seal carries
//      one; its pages are claimed but exempt from (4), as upstream never records them
//   3. each subtree, by the name the kernel gives it, else by kho,compatible:
//        "LUO"            any LUO layout (detect_luo_version: luo-v1, luo-v5,
//                         luo-v5;block-v1, feature header, luo_layouts.hpp's
//                         eight): sessions, files, FLBs;
//                         each memfd-v2/v1/feature ("memfd") file's state,
//                         folio array, and each folio's head page, which must start
//                         a preserved block (not_preserved at the folio otherwise)
//        "kexec-metadata" version 1 metadata
//        "memblock"       the reserve_mem sub-FDT (its regions are payload)
//        "mshv_prsv_pt"   MSHV's FDT page and raw-pfn radix tree (mshv.hpp): every
//                         page of it an order-0 key of the main map; its key pages
//                         owned by the hypervisor
//        kho-xarray-v1, kho-luo-v1  kho's own proposals, as in kho-root-v1
//        anything else    an opaque blob: the pages [phys, phys + blob-size) span
//      A subtree under an upstream name whose kho,compatible says otherwise is refused
//      (bad_compatible): the name is what a stock kernel dispatches on. "LUO"'s may
//      name any LUO layout (luo_version_name), which its bytes must then be in.
//   4. one owner per page (page_owners), and every claimed page not exempt inside the
//      preserved-memory map (errc::not_preserved)
//   5. on request, a visitor sees the owners and the map once all is checked, to find
//      the preserved blocks no structure reaches (find_orphans). Not an error of
//      kho's: a stock kernel keeps such a block reserved for good (leaked on every
//      live update), so the caller says so.
//
// Budget: as handover_check.hpp, O(bytes reachable from the root) time and scratch
// (kho-v1's chain is indexed in a scratch radix tree first, O(blocks * depth)).
#pragma once

#include <kho/handover_check.hpp>
#include <kho/linux/kexec_metadata.hpp>
#include <kho/linux/kho_fdt.hpp>
#include <kho/linux/kho_mem_chunks.hpp>
#include <kho/linux/luo_handlers.hpp>
#include <kho/linux/luo_v5.hpp>
#include <kho/linux/luo_versions.hpp>
#include <kho/linux/memblock.hpp>
#include <kho/linux/memfd.hpp>
#include <kho/linux/mshv.hpp>

#include <cstring>
#include <new>
#include <optional>
#include <span>
#include <type_traits>

namespace kho::upstream {

// kexec-metadata carries a version, not a compatible string; this names it for
// kho,compatible and for reports.
inline constexpr const char* kexec_metadata_format = "kexec-metadata-v1";

/// The format a subtree is in: its upstream name decides, then kho,compatible; an
/// empty string for an opaque blob. Errors: bad_compatible (an upstream name with a
/// kho,compatible naming another format).
inline result<const char*> subtree_format(const kho_subtree& t) {
  struct known {
    const char* name;
    const char* format;
  };
  static constexpr known upstream_names[] = {
      {luo_v5_subtree, luo_v5_compatible},
      {kexec_metadata_subtree, kexec_metadata_format},
      {memblock_subtree, memblock_compatible},
      {mshv_subtree, mshv_compatible},
  };
  for (const known& k : upstream_names) {
    if (!impl::answers_to(t.name, k.name)) continue;  // "LUO@0" is LUO to the kernel
    // The LUO subtree's kho,compatible may name any LUO layout; claim_luo_v5 then
    // requires the bytes to be in that layout.
    const bool luo_layout = k.format == luo_v5_compatible && t.compatible != nullptr &&
                            luo_version_of_name(t.compatible).has_value();
    if (t.compatible != nullptr && !detail::same_string(t.compatible, k.format) && !luo_layout)
      return errc::bad_compatible;
    return k.format;
  }
  return t.compatible != nullptr ? t.compatible : "";
}

/// Preserved blocks no structure reaches (find_orphans): counted in full, the first
/// `listed` of them kept, in the map's order (largest order first).
struct orphan_blocks {
  static constexpr unsigned listed = 8;
  u64 count = 0;
  u64 pages = 0;
  phys_addr first[listed]{};
  order first_order[listed]{};

  void add(phys_addr pa, order o) {
    if (count < listed) first[count] = pa, first_order[count] = o;
    ++count;
    pages += u64{1} << o.value;
  }
};

namespace impl {

// LUO's pages in whichever layout the bytes are, then what each FLB and file names
// (luo_handlers.hpp), through the one walk every layout shares (walk_luo).
template <unsigned PageShift, Memory M, class Owners, class Map>
struct luo_claim_visitor {
  const M& mem;
  Owners& owners;
  const Map& map;
  kvm_vm_dialect dialect = kvm_vm_dialect::undecided;
  luo_flb_list flbs_{};
  template <class View>
  status view(const View& v) {
    return v.claim_pages(owners);
  }
  status flbs(const luo_flb_ser* items, u64 n) {
    flbs_ = {items, n};
    for (const luo_flb_ser& b : flbs_) KHO_TRY(claim_luo_flb<PageShift>(mem, b, flbs_, owners, map));
    return {};
  }
  // A token one file names is looked up in an index of its session (built in scratch
  // only if a file names one), so the check stays linear in the session's files.
  template <class Files>
  status session(const luo_session_ser&, const Files& files) {
    using scratch_type = std::remove_reference_t<decltype(owners.scratch())>;
    indexed_session_files<Files, scratch_type, PageShift> indexed(files, owners.scratch());
    for (const luo_file_ser& f : files) {
      KHO_TRY(claim_luo_file<PageShift>(mem, f, indexed, flbs_, owners, map, dialect));
      KHO_TRY(indexed.error());
    }
    return {};
  }
};

template <unsigned PageShift, Memory M, PageSource Scratch, class Owners, class Map>
status claim_luo_v5(const M& mem, const kho_subtree& t, Scratch& scratch, Owners& owners, const Map& map,
                    kvm_vm_dialect dialect = kvm_vm_dialect::undecided) {
  auto version = detect_luo_version(mem, t.phys, t.size);
  if (!version) return version.err();
  if (t.compatible != nullptr && !detail::same_string(t.compatible, luo_version_name(*version)))
    return make_error(errc::bad_compatible, luo_v5_view<M, Scratch, PageShift>::structure, t.phys, 0);
  auto r = walk_luo<PageShift>(mem, t.phys, t.size, scratch, luo_claim_visitor<PageShift, M, Owners, Map>{mem, owners, map, dialect});
  if (!r) return r.err();
  return {};
}

template <unsigned PageShift, Memory M, PageSource Scratch, class Owners, class Map>
status claim_subtree(const M& mem, const kho_subtree& t, const char* format, Scratch& scratch, Owners& owners,
                     const Map& map, kvm_vm_dialect dialect = kvm_vm_dialect::undecided) {
  if (detail::same_string(format, luo_v5_compatible))
    return claim_luo_v5<PageShift>(mem, t, scratch, owners, map, dialect);
  if (detail::same_string(format, kexec_metadata_format)) {
    auto v = kexec_metadata_view<PageShift>::attach(mem, t.phys, t.size);
    return v ? v->claim_pages(owners) : status{v.err()};
  }
  if (detail::same_string(format, memblock_compatible)) {
    auto v = attach_memblock<PageShift>(mem, t.phys, t.size);
    return v ? v->claim_pages(owners) : status{v.err()};
  }
  if (detail::same_string(format, mshv_compatible)) {
    auto v = attach_mshv<PageShift>(mem, t.phys, t.size, scratch);
    if (!v) return v.err();
    KHO_TRY(v->check_main_map(map));
    return v->claim_pages(owners);
  }
  return detail::claim_kho_structure<PageShift>(mem, format, t.phys, t.size, scratch, owners);
}

}  // namespace impl

/// Checks every structure an attached root FDT names, one owner per page, and (by
/// default) that every page reached is preserved.
/// Complexity: O(bytes reachable from the root) time; scratch O(pages reachable), all
/// returned before it returns.
/// Errors: each structure's own validation errors; bad_checksum (the map's deep
/// checksum); bad_compatible (subtree_format);
/// aliased (loc the second claim, other the first owner); not_preserved;
/// out_of_memory or budget_exceeded (scratch).
namespace impl {

// The map's checksum, its pages, every subtree, then the preserved check: the same
// for a radix tree and a kho-v1 chunk chain.
template <unsigned PageShift, Memory M, PageSource Scratch, class Owners, class Map, class Visit>
status check_with_map(const kho_fdt_view<M, PageShift>& root, Scratch& scratch, Owners& owners, const Map& map,
                      const handover_check_options& options, Visit&& visit) {
  if (root.has_memory_map_checksum() && map.deep_checksum() != root.memory_map_checksum())
    return make_error(errc::bad_checksum, Map::structure, root.memory_map());
  KHO_TRY(map.claim_pages(owners));
  status s;
  root.for_each([&](const kho_subtree& t) {
    if (!s) return;
    auto format = subtree_format(t);
    if (!format) {
      s = make_error(errc::bad_compatible, kho_fdt_view<M, PageShift>::structure, t.phys, 1);
      return;
    }
    s = claim_subtree<PageShift>(root.memory(), t, *format, scratch, owners, map, options.kvm_vm_dialect);
  });
  KHO_TRY(s);
  if (options.require_preserved) KHO_TRY(owners.check_preserved(map));
  visit(owners, map);
  return {};
}

struct no_visit {
  template <class Owners, class Map>
  void operator()(const Owners&, const Map&) const {}
};

// kho-v1's chain answers a lookup by scanning its entries, and the whole-handover
// check asks once per page it claims: so the chain's blocks are first copied into a
// radix tree in scratch (O(blocks * depth): the bits actually set), which answers in
// O(depth), while checksum and page claims stay the chain's own.
template <unsigned PageShift, Memory M, PageSource Scratch>
struct chunk_map {
  static constexpr const char* structure = kho_mem_chunks_view<M, PageShift>::structure;
  static constexpr unsigned orders = radix_geometry<PageShift>::max_order + 1;
  const kho_mem_chunks_view<M, PageShift>* chain;
  const preserve_bitmap<Scratch, PageShift>* index;

  u64 deep_checksum() const { return chain->deep_checksum(); }
  template <class Owners>
  status claim_pages(Owners& owners) const {
    return chain->claim_pages(owners);
  }
  u64 count(order o) const { return index->count(o); }
  bool contains(phys_addr pa, order o) const { return index->contains(pa, o); }
  bool is_preserved(phys_addr pa) const { return index->is_preserved(pa); }
};

// An empty index built in `room`. Not inlined (noinline_for_stack): create() builds
// the writer in its own frame before moving it out, and that frame would otherwise be
// check_with_chunks's.
template <class Index, class Scratch>
[[gnu::noinline]] result<Index>& emplace_index(void* room, Scratch& scratch) {
  return *new (room) result<Index>(Index::create(scratch, false));
}

// The chain's blocks indexed in a radix tree of scratch pages. The index's writer
// (1.5 KiB, most of it its pending-record lists) lives in a scratch page too, not on
// the stack: a kernel frame has 2 KiB.
template <unsigned PageShift, Memory M, PageSource Scratch, class Owners, class Visit>
status check_with_chunks(const kho_fdt_view<M, PageShift>& root, Scratch& scratch, Owners& owners,
                         const handover_check_options& options, Visit&& visit) {
  using index_type = preserve_bitmap<Scratch, PageShift>;
  static_assert(sizeof(result<index_type>) <= page_geometry<PageShift>::size);
  auto chain = attach_kho_mem_chunks<PageShift>(root.memory(), root.memory_map(), scratch);
  if (!chain) return chain.err();
  auto slot = scratch.alloc(order{0});
  if (!slot) return make_error(errc::out_of_memory, chain->structure, root.memory_map());
  void* room = scratch.memory().to_virt(*slot, sizeof(result<index_type>));
  auto& index = emplace_index<index_type>(room, scratch);
  status s = index ? status{} : status{make_error(errc::out_of_memory, chain->structure, root.memory_map())};
  if (s) {
    chain->for_each_block([&](phys_addr pa, order o) {
      if (s) s = index->preserve(pa, o);
    });
    if (!s) s = make_error(s.code(), chain->structure, root.memory_map());
    else s = check_with_map(root, scratch, owners, chunk_map<PageShift, M, Scratch>{&*chain, &*index}, options, visit);
    index->clear();
    scratch.free(index->root(), order{0});
  }
  index.~result<index_type>();
  scratch.free(*slot, order{0});
  return s;
}

}  // namespace impl

/// Checks the whole handover behind `root` (steps 1-4 above); then, if all passed,
/// calls visit(owners, map) (step 5): the page owners and the preserved-memory map
/// (a preserve_bitmap_view, or for kho-v1 an index with no block walk), both valid
/// only during the call.
template <unsigned PageShift, Memory M, PageSource Scratch, class Visit = impl::no_visit>
status check_kho_fdt(const kho_fdt_view<M, PageShift>& root, Scratch& scratch,
                     const handover_check_options& options = {}, Visit&& visit = {}) {
  page_owners<Scratch, PageShift> owners(scratch);
  KHO_TRY(root.claim_pages(owners));
  if (!kho_root_has_radix(root.version())) return impl::check_with_chunks(root, scratch, owners, options, visit);
  detail::radix_nodes<PageShift, M, Scratch> map_nodes{&scratch};
  map_nodes.depth = kho_root_radix_depth(root.version(), PageShift);
  auto map = map_nodes.attach(root.memory(), root.memory_map());
  if (!map) return map.err();
  return impl::check_with_map(root, scratch, owners, *map, options, visit);
}

/// Step 5: the preserved blocks of `map` that nothing reaches. A block is reached when
/// its first page has an owner (a structure's page, a folio's head) or when
/// `referenced(pa, o)` says a structure names it as payload (a reserve_mem region, an
/// FLB's or a file handler's data). O(blocks) lookups. kho-v1's chain offers no walk
/// of its blocks: nothing is reported for it.
template <class Owners, class Map, class Referenced>
void find_orphans(const Owners& owners, const Map& map, Referenced&& referenced, orphan_blocks& orphans) {
  if constexpr (requires { map.for_each_block([](phys_addr, order) {}); })
    map.for_each_block([&](phys_addr pa, order o) {
      if (owners.find(pa) == nullptr && !referenced(pa, o)) orphans.add(pa, o);
    });
}

/// Subtrees by their position in the root, as a bit set: a root page of 64 KiB holds
/// fewer than max_subtrees nodes.
class subtree_set {
 public:
  static constexpr unsigned max_subtrees = 4096;
  bool has(unsigned i) const { return i < max_subtrees && (bits_[i / 64] >> (i % 64) & 1) != 0; }
  void add(unsigned i) {
    if (i < max_subtrees) bits_[i / 64] |= u64{1} << (i % 64);
  }

 private:
  u64 bits_[max_subtrees / 64]{};
};

namespace impl {

// One pass of the per-structure check: every subtree not in `skip`, each followed by
// the preserved check of all claimed so far, so the first failure belongs to the
// subtree just claimed. Fills `failed` (its position) and returns its error; fatal
// errors (root, map) come back with `failed` unset.
// Not inlined, as the kernel's noinline_for_stack: its owners and map view would join
// the caller's subtree set and kho_handover in one frame past the kernel's 2 KiB.
template <unsigned PageShift, Memory M, PageSource Scratch>
[[gnu::noinline]] status check_pass(const kho_fdt_view<M, PageShift>& root, Scratch& scratch,
                                    const handover_check_options& options, const subtree_set& skip,
                                    unsigned& failed, kho_subtree& failed_subtree, bool& fatal) {
  fatal = true;
  page_owners<Scratch, PageShift> owners(scratch);
  KHO_TRY(root.claim_pages(owners));
  detail::radix_nodes<PageShift, M, Scratch> map_nodes{&scratch};
  map_nodes.depth = kho_root_radix_depth(root.version(), PageShift);
  auto map = map_nodes.attach(root.memory(), root.memory_map());
  if (!map) return map.err();
  if (root.has_memory_map_checksum() && map->deep_checksum() != root.memory_map_checksum())
    return make_error(errc::bad_checksum, map->structure, root.memory_map());
  KHO_TRY(map->claim_pages(owners));
  if (options.require_preserved) KHO_TRY(owners.check_preserved(*map));
  fatal = false;
  status s;
  unsigned i = 0;
  root.for_each([&](const kho_subtree& t) {
    const unsigned at = i++;
    if (!s || skip.has(at)) return;
    auto format = subtree_format(t);
    s = format ? claim_subtree<PageShift>(root.memory(), t, *format, scratch, owners, *map, options.kvm_vm_dialect)
               : status{make_error(errc::bad_compatible, kho_fdt_view<M, PageShift>::structure, t.phys, 1)};
    if (s && options.require_preserved) s = owners.check_preserved(*map);
    if (!s) failed = at, failed_subtree = t;
  });
  return s;
}

}  // namespace impl

/// Failed subtrees a per-structure check reports before it refuses the handover whole.
inline constexpr unsigned max_failed_subtrees = 8;

/// The check structure by structure, for a next kernel that keeps what stands: the
/// root FDT and the preserved-memory map are the handover (an error there is returned,
/// and nothing stands); each subtree then stands or falls alone. A subtree that fails
/// is reported and left out, and the check runs again without it, so the others are
/// judged as if it had not been written (its pages claim nothing). `report(t, e)` is
/// called once per subtree: first each failed one as it is found (e its error), then
/// every one that stands, in the root's order (e.code ok).
/// Complexity: O((failed subtrees + 1) * subtrees * bytes reachable): each pass checks
/// the preserved state after every subtree, to know whose claim failed it; more than
/// max_failed_subtrees failures refuse the handover whole (budget_exceeded), so at most
/// max_failed_subtrees + 1 passes run. A kho-v1 root (a chunk chain, no radix) is
/// checked whole: all stand or the error returns.
template <unsigned PageShift, Memory M, PageSource Scratch, class Report>
status check_kho_fdt_each(const kho_fdt_view<M, PageShift>& root, Scratch& scratch, Report&& report,
                          const handover_check_options& options = {}) {
  if (!kho_root_has_radix(root.version())) {
    KHO_TRY(check_kho_fdt(root, scratch, options));
    root.for_each([&](const kho_subtree& t) { report(t, error{}); });
    return {};
  }
  if (root.count() > subtree_set::max_subtrees) return make_error(errc::budget_exceeded, root.structure, root.address());
  subtree_set failed;
  for (unsigned failures = 0;; ++failures) {
    unsigned at = 0;
    kho_subtree t{};
    bool fatal = false;
    const status s = impl::check_pass(root, scratch, options, failed, at, t, fatal);
    if (s) break;
    if (fatal) return s;
    if (failures == max_failed_subtrees) return make_error(errc::budget_exceeded, root.structure, root.address());
    failed.add(at);
    report(t, s.err());
  }
  unsigned i = 0;
  root.for_each([&](const kho_subtree& t) {
    if (!failed.has(i++)) report(t, error{});
  });
  return {};
}

/// A handover checked structure by structure: the root, and the subtrees that fell with
/// the error each fell with. A next kernel asks find() for what it needs and decides: it
/// may boot on without kexec-metadata, while a fallen LUO means every session is lost.
template <Memory M, unsigned PageShift = 12>
class kho_handover {
 public:
  static constexpr unsigned max_fallen = max_failed_subtrees;
  struct fallen_subtree {
    const char* name;  // the subtree's node name, in the FDT
    error why;
  };

  explicit kho_handover(const kho_fdt_view<M, PageShift>& root) : root_(root) {}

  const kho_fdt_view<M, PageShift>& root() const { return root_; }
  /// Subtree `name` (found as kho_fdt_view::find finds it) if it stands; the error it
  /// fell with if it fell; not_found if the root has no such subtree.
  result<kho_subtree> find(const char* name) const {
    auto t = root_.find(name);
    if (!t) return t;
    if (const fallen_subtree* f = fallen_as(*t)) return f->why;
    return t;
  }
  bool stands(const kho_subtree& t) const { return fallen_as(t) == nullptr; }
  unsigned fallen_count() const { return fallen_count_; }
  const fallen_subtree* begin_fallen() const { return fallen_; }
  const fallen_subtree* end_fallen() const { return fallen_ + fallen_count_; }

  /// Records `t` as fallen; false once max_fallen are recorded.
  bool add_fallen(const kho_subtree& t, const error& why) {
    if (fallen_count_ == max_fallen) return false;
    fallen_[fallen_count_++] = {t.name, why};
    return true;
  }

 private:
  // Subtrees of one root are told apart by their node's name, which points into the FDT.
  const fallen_subtree* fallen_as(const kho_subtree& t) const {
    for (const fallen_subtree& f : *this)
      if (f.name == t.name) return &f;
    return nullptr;
  }
  const fallen_subtree* begin() const { return begin_fallen(); }
  const fallen_subtree* end() const { return end_fallen(); }

  kho_fdt_view<M, PageShift> root_;
  fallen_subtree fallen_[max_fallen]{};
  unsigned fallen_count_ = 0;
};

/// Attaches the KHO root FDT at `pa` (`size` bytes) and checks it structure by structure
/// (check_kho_fdt_each): an error of the root or of the preserved-memory map is returned,
/// and nothing stands; otherwise the result says which subtrees stand. Errors: those of
/// kho_fdt_view::attach and check_kho_fdt_each (budget_exceeded when more than
/// max_failed_subtrees subtrees fall).
template <unsigned PageShift = 12, Memory M, PageSource Scratch>
result<kho_handover<M, PageShift>> attach_kho_handover_each(const M& mem, phys_addr pa, Scratch& scratch,
                                                            u64 size = page_geometry<PageShift>::size,
                                                            const handover_check_options& options = {}) {
  auto view = kho_fdt_view<M, PageShift>::attach(mem, pa, size);
  if (!view) return view.err();
  kho_handover<M, PageShift> handover(*view);
  KHO_TRY(check_kho_fdt_each(
      *view, scratch,
      [&](const kho_subtree& t, const error& e) {
        if (e.code != errc::ok) handover.add_fallen(t, e);
      },
      options));
  return handover;
}

/// Attaches the KHO root FDT at `pa` (`size` bytes: kho_data.fdt_size) and checks the
/// whole handover it names. What a next kernel runs before trusting anything.
/// Complexity and errors: those of kho_fdt_view::attach, then check_kho_fdt.
template <unsigned PageShift = 12, Memory M, PageSource Scratch>
result<kho_fdt_view<M, PageShift>> attach_kho_handover(const M& mem, phys_addr pa, Scratch& scratch,
                                                       u64 size = page_geometry<PageShift>::size,
                                                       const handover_check_options& options = {}) {
  auto view = kho_fdt_view<M, PageShift>::attach(mem, pa, size);
  if (!view) return view.err();
  KHO_TRY(check_kho_fdt(*view, scratch, options));
  return view;
}

}  // namespace kho::upstream
