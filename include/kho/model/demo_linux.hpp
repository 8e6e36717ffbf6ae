// kho/model/demo_linux.hpp: the handover a stock Linux kernel writes, in the model
// (hosted only): the "kho-v4" root FDT, its subtrees, and the x86 boot hand-off.
//
// Memory of the model, base B, size S, pages P (docs/format.md, "The model's boot
// hand-off"):
//
//   [B, B + P)             boot page: a setup_data node of type SETUP_KEXEC_KHO (10)
//                          at B carrying kho_data; B stands for boot_params'
//                          setup_data pointer, which a real boot loader passes
//   [B + P, K)             the old kernel's memory: every handover page comes from here
//   [K, B + S)             KHO boot memory (scratch), never preserved: two ranges (lowmem, global),
//                          the kho_scratch array in the first page of the second
//
// The old kernel's side (build_linux_handover): the preserved-memory map, the root FDT
// (with kho's seal unless stock), the boot hand-off, kexec-metadata, a memblock
// reserve_mem region, LUO (luo-v5) with memfd-v2 files and a VM host's state
// (demo_vm_host.hpp: a hugetlb file, a KVM VM and its guest_memfd, the IOMMU and PCI
// FLBs with an iommufd and a vfio-pci file), guest memory; with kho's
// formats also kho-xarray-v1 and kho-luo-v1 under names a stock kernel never uses.
// The next kernel's side (reclaim_linux_memfd): a memfd's folio array adopted into a
// kho xarray that keeps taking page faults, then written back as memfd-v2.
#pragma once

#include <kho/linux/kho_fdt.hpp>
#include <kho/linux/kexec_metadata.hpp>
#include <kho/linux/luo_v5.hpp>
#include <kho/linux/memblock.hpp>
#include <kho/linux/memfd.hpp>
#include <kho/linux/x86_boot.hpp>
#include <kho/model/demo_vm_host.hpp>
#include <kho/model/demo_luo.hpp>
#include <kho/model/demo_xarray.hpp>
#include <kho/model/physical_memory.hpp>
#include <kho/model/scratch_pages.hpp>
#include <kho/hole_finder.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/preserving_page_source.hpp>
#include <kho/xarray.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace kho::model {

struct linux_demo_options {
  bool kho_properties = true;  // kho's seal; off: exactly what a stock kernel writes
  bool kho_formats = false;    // also kho's own formats, as subtrees
  u64 generation = 1;
  vm_host_options vm_host;     // hugetlb, guest_memfd, IOMMU state (demo_vm_host.hpp)
};

/// The crash points of build_linux_handover, in order.
inline const std::vector<std::string> linux_demo_steps = {
    "root",          // the preserved-memory map and the root FDT exist
    "boot-data",     // setup_data / kho_data name the FDT and scratch
    "metadata",      // kexec-metadata
    "memblock",      // a reserve_mem region
    "luo",           // LUO sessions with memfd files
    "kho-formats",   // kho's own formats (only with kho_formats)
    "guest",         // guest memory preserved
    "seal-began",    // kho's seal: SEALING
    "seal-entries",  // subtree checksums written
    "seal-root",     // root checksum written, not yet published
    "sealed",        // published
};

/// Bytes the seal's checksums cover: [phys, phys + size).
using covered_spans = std::vector<std::pair<phys_addr, u64>>;

/// Where the model puts scratch: the top eighth of memory (at least 16 pages).
inline phys_range linux_demo_scratch(const physical_memory& pm) {
  const u64 page = page_geometry<>::size;
  const u64 bytes = std::max(pm.size() / 8, 16 * page) & ~(page - 1);
  const phys_addr end = pm.base() + pm.size();
  return {phys_addr{end.value - bytes}, end};
}

/// The boot page: a setup_data node at the memory's base, carrying kho_data, and the
/// kho_scratch array (lowmem, global) in the first page of the global range.
inline void write_linux_boot(const physical_memory& pm, phys_addr fdt, u64 fdt_size) {
  using namespace upstream;
  const phys_range scratch = linux_demo_scratch(pm);
  const u64 low_bytes = (scratch.size() / 4) & ~page_geometry<>::mask;
  kho_scratch out[2]{};
  out[0].addr.set(scratch.start.value);
  out[0].size.set(low_bytes);
  out[1].addr.set(scratch.start.value + low_bytes);
  out[1].size.set(scratch.size() - low_bytes);
  const phys_addr array = scratch.start + low_bytes;
  std::memcpy(pm.memory().to_virt(array, sizeof out), out, sizeof out);
  setup_data_header node{};
  node.type.set(setup_kexec_kho);
  node.len.set(sizeof(kho_data));
  kho_data d{};
  d.fdt_addr.set(fdt.value);
  d.fdt_size.set(fdt_size);
  d.scratch_addr.set(array.value);
  d.scratch_size.set(sizeof out);
  auto* boot = static_cast<unsigned char*>(pm.virt());
  std::memcpy(boot, &node, sizeof node);
  std::memcpy(boot + sizeof node, &d, sizeof d);
}

namespace detail_linux {

// kho's own formats under Linux's root: a subtree per structure, named so that no
// stock kernel subsystem ever looks it up, with kho,compatible naming its format.
template <class FdtWriter>
struct fdt_subtrees {
  FdtWriter* fdt;
  status add(const char* name, const char* compatible, phys_addr phys, u64 size) {
    std::string node = std::string("kho-") + name;
    for (char& c : node)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == ',' || c == '.'))
        c = '-';
    return fdt->add(node.c_str(), phys, size, compatible);
  }
};

[[noreturn]] inline void fail(const char* what, const status& s) {
  throw std::runtime_error(fmt::format("{}: {}", what, to_string(s.code())));
}
inline void must(const status& s, const char* what) {
  if (!s) fail(what, s);
}

}  // namespace detail_linux

/// The bytes kho's seal of the root FDT at `root` covers: the FDT, every subtree's blob
/// and the preserved-memory map's node pages. Complexity: O(subtrees + map nodes).
/// Throws std::runtime_error if the root or its map does not validate.
inline covered_spans sealed_spans(const flat_memory& mem, phys_addr root) {
  using namespace upstream;
  constexpr u64 page = page_geometry<>::size;
  covered_spans covered;
  covered.emplace_back(root, fdt_totalsize(mem.to_virt(root, page)));
  auto view = kho_fdt_view<flat_memory>::attach(mem, root);
  if (!view) detail_linux::fail("the root does not validate in the old image", view.err());
  view->for_each([&](const kho_subtree& t) {
    if (t.size) covered.emplace_back(t.phys, t.size);
  });
  std::vector<u64> node_list(mem.size() / page);
  scratch_pages scratch(mem);
  auto nodes = attach_preserve_bitmap(mem, view->memory_map(), scratch.pages(), node_list);
  if (!nodes) detail_linux::fail("the map does not validate in the old image", nodes.err());
  for (u64 n : nodes->nodes()) covered.emplace_back(phys_addr{n}, page);
  return covered;
}

/// Builds and (with kho's properties) seals a Linux handover in `pm`, calling
/// crash_point(step) after each step of linux_demo_steps. Returns the spans the
/// seal's checksums cover. Throws std::runtime_error if memory runs out.
template <class CrashPoint>
covered_spans build_linux_handover(const physical_memory& pm, const linux_demo_options& opt,
                                   CrashPoint&& crash_point) {
  using namespace upstream;
  using detail_linux::must;
  using source = bump_page_source<flat_memory>;
  using map_type = preserve_bitmap<source>;
  using tracked_type = preserving_page_source<source, map_type>;
  constexpr u64 page = page_geometry<>::size;
  const flat_memory mem = pm.memory();
  source pages(mem, pm.base() + page, linux_demo_scratch(pm).start);

  // As the kernel's: the tree does not record its own pages (the restore reserves them).
  auto map = map_type::create(pages, /*record_own_pages=*/false);
  if (!map) detail_linux::fail("preserved-memory map", map.err());
  tracked_type tracked(pages, *map);
  auto root = kho_fdt_writer<tracked_type>::create(tracked, map->root(),
                                                   kho_fdt_options{opt.kho_properties, opt.generation});
  if (!root) detail_linux::fail("root FDT", root.err());
  crash_point("root");

  write_linux_boot(pm, root->root(), root->size());
  crash_point("boot-data");

  auto meta = write_kexec_metadata(tracked, "6.20.0-kho-model", static_cast<u32>(opt.generation));
  if (!meta) detail_linux::fail("kexec-metadata", meta.err());
  must(root->add(kexec_metadata_subtree, meta->phys, meta->size), "add kexec-metadata");
  crash_point("metadata");

  auto trace = tracked.alloc(order{4});  // 64 KiB of trace buffer kept across kexec
  if (!trace) detail_linux::fail("reserve_mem region", trace.err());
  const reserve_mem_region regions[] = {{"trace", *trace, u64{16} * page}};
  auto mb = write_memblock(tracked, regions, 1);
  if (!mb) detail_linux::fail("memblock", mb.err());
  must(root->add(memblock_subtree, mb->phys, mb->size, memblock_compatible), "add memblock");
  crash_point("memblock");

  auto luo = luo_v5_writer<tracked_type>::create(tracked, opt.generation);
  if (!luo) detail_linux::fail("LUO", luo.err());
  for (const char* session : {"vm-alpha", "database"}) must(luo->create_session(session), "LUO session");
  struct memfd_spec {
    const char* session;
    u64 token;
    u64 folios;
  };
  for (const memfd_spec& m : {memfd_spec{"vm-alpha", 1, 48}, memfd_spec{"vm-alpha", 2, 3}, memfd_spec{"database", 7, 20}}) {
    std::vector<memfd_folio> folios;
    for (u64 i = 0; i < m.folios; ++i) {
      auto f = tracked.alloc(order{0});
      if (!f) detail_linux::fail("memfd folio", f.err());
      const std::string text = fmt::format("{} memfd {} page {}", m.session, m.token, i * 2);
      std::memcpy(mem.to_virt(*f, text.size()), text.data(), text.size());
      folios.push_back({pfn{f->value >> page_geometry<>::shift}, i * 2, memfd_folio_dirty | memfd_folio_uptodate});
    }
    auto fd = write_memfd(tracked, memfd_file{0, m.folios * 2 * page, memfd_seal_seal | memfd_seal_grow,
                                              folios.data(), folios.size()});
    if (!fd) detail_linux::fail("memfd", fd.err());
    must(luo->preserve_file(m.session, memfd_v2_compatible, fd->value, m.token), "LUO file");
  }
  preserve_vm_host(tracked, *luo, opt.vm_host);
  must(root->add(luo_v5_subtree, luo->blob().phys, luo->blob().size, luo_v5_compatible), "add LUO");
  crash_point("luo");

  if (opt.kho_formats) {
    detail_linux::fdt_subtrees<std::remove_reference_t<decltype(*root)>> kho_root{&*root};
    must(build_demo_luo(tracked, kho_root), "kho-luo-v1");
    must(build_demo_memfd(tracked, kho_root), "kho-xarray-v1");
    crash_point("kho-formats");
  }

  // Guest memory: 2 MiB blocks and scattered pages, each followed by a hole. It is the
  // VM's RAM, a memfd of vm-alpha (token 3) whose folios are those blocks, so every
  // preserved page is reached by a structure (a stock kernel would leak the others).
  std::vector<memfd_folio> guest;
  for (u64 i = 0; i < 8; ++i) {
    auto block = tracked.alloc(order{9});
    if (!block) detail_linux::fail("guest memory", block.err());
    guest.push_back({pfn{block->value >> page_geometry<>::shift}, i << 9, memfd_folio_dirty | memfd_folio_uptodate});
  }
  for (u64 i = 0; i < 64; ++i) {
    auto p = tracked.alloc(order{0});
    if (!p || !pages.alloc(order{0})) detail_linux::fail("guest memory", errc::out_of_memory);
    guest.push_back({pfn{p->value >> page_geometry<>::shift}, (u64{8} << 9) + i, memfd_folio_dirty | memfd_folio_uptodate});
  }
  auto guest_fd = write_memfd(tracked, memfd_file{0, ((u64{8} << 9) + 64) * page, 0, guest.data(), guest.size()});
  if (!guest_fd) detail_linux::fail("guest memfd", guest_fd.err());
  must(luo->preserve_file("vm-alpha", memfd_v2_compatible, guest_fd->value, 3), "LUO guest file");
  if (opt.kho_properties) must(root->set_memory_map_checksum(map->deep_checksum()), "map checksum");
  crash_point("guest");

  must(root->seal([&](seal_step s) { crash_point(seal_step_name(s)); }),
       "seal");

  // A stock handover carries no checksums.
  return opt.kho_properties ? sealed_spans(mem, root->root()) : covered_spans{};
}

/// The next kernel's side for a memfd-v2 file: its folio array adopted into a kho
/// xarray (index -> pfn << 12 | flags) in `fresh` memory, `faults` more pages faulted
/// in after the handover, then the whole file written back as memfd-v2 for a stock
/// kernel and read back. Reports counts as JSON ("ok", "folios", "faulted_in",
/// "written_back", "summary"), or "error".
template <PageSource Source>
nlohmann::json reclaim_linux_memfd(Source& fresh, const flat_memory& mem, phys_addr ser, u64 faults = 16) {
  using namespace upstream;
  auto fd = attach_memfd(mem, ser);
  if (!fd) return {{"ok", false}, {"error", to_string(fd.code())}};
  auto file = make_xarray<u64, 12>(fresh);
  if (!file) return {{"ok", false}, {"error", to_string(file.code())}};
  status s;
  u64 last = 0;
  fd->for_each_folio([&](const memfd_folio& f) {
    if (s) s = file->store(f.index, (f.frame.value << 12) | f.flags);
    last = f.index;
  });
  const u64 adopted = file->count();
  for (u64 i = 1; s && i <= faults; ++i) {
    auto page = fresh.alloc(order{0});
    s = page ? file->store(last + i, ((page->value >> 12) << 12) | memfd_folio_dirty | memfd_folio_uptodate)
             : status{page.err()};
  }
  if (!s) return {{"ok", false}, {"error", to_string(s.code())}};
  std::vector<memfd_folio> folios;
  // Written back as the kernel's writer would: every folio holds data, DIRTY|UPTODATE.
  file->for_each(0, ~u64{0}, [&](const xarray_entry<u64>& e) {
    folios.push_back({pfn{e.value >> 12}, e.index, memfd_folio_dirty | memfd_folio_uptodate});
  });
  auto back = write_memfd(fresh, memfd_file{fd->pos(), fd->size() + faults * page_geometry<>::size, fd->seals(),
                                            folios.data(), folios.size()});
  if (!back) return {{"ok", false}, {"error", to_string(back.code())}};
  auto again = attach_memfd(fresh.memory(), *back);
  if (!again) return {{"ok", false}, {"error", to_string(again.code())}};
  return {{"ok", true},
          {"folios", adopted},
          {"faulted_in", faults},
          {"written_back", again->nr_folios()},
          {"summary", fmt::format("{} folios adopted into a kho xarray, {} faulted in, {} written back as memfd-v2",
                                  adopted, faults, again->nr_folios())}};
}

}  // namespace kho::model
