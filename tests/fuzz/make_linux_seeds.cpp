// make_linux_seeds DIR: writes seed inputs for the fuzz targets of Linux's formats
// (DIR/fuzz_linux_vmalloc/, DIR/fuzz_linux_luo_v5/, DIR/fuzz_linux_memfd/,
// DIR/fuzz_linux_luo_versions/, DIR/fuzz_linux_luo_layouts/,
// DIR/fuzz_linux_boot/, DIR/fuzz_linux_meta/, DIR/fuzz_linux_hugetlb/,
// DIR/fuzz_linux_guest_memfd/, DIR/fuzz_linux_kvm/, DIR/fuzz_linux_tmpfs/,
// DIR/fuzz_linux_pci/, DIR/fuzz_linux_iommu/, DIR/fuzz_linux_device_files/), each a
// fuzz input as fuzz_input.hpp reads it: the root's offset (8 bytes LE), then a memory
// image starting at physical kho::fuzz::image_base; and for DIR/fuzz_kho_fdt/ the root
// FDT's bytes alone (its blobs zero pages after it). Deterministic; run by hand when a
// format changes (build/tests/fuzz/kho_make_linux_seeds tests/fuzz/corpus).
#include <kho/linux/guest_memfd.hpp>
#include <kho/linux/hugetlb.hpp>
#include <kho/linux/iommu.hpp>
#include <kho/linux/iommufd.hpp>
#include <kho/linux/kexec_metadata.hpp>
#include <kho/linux/pci.hpp>
#include <kho/linux/vfio_pci.hpp>
#include <kho/linux/kho_fdt.hpp>
#include <kho/linux/kho_vmalloc.hpp>
#include <kho/linux/kvm.hpp>
#include <kho/linux/luo_v5.hpp>
#include <kho/linux/luo_versions.hpp>
#include <kho/linux/memblock.hpp>
#include <kho/linux/memfd.hpp>
#include <kho/linux/tmpfs.hpp>
#include <kho/linux/x86_boot.hpp>

#include "fuzz_input.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

using namespace kho;
using namespace kho::upstream;

struct image {
  std::vector<unsigned char> bytes;
  flat_memory mem;
  bump_page_source<flat_memory> pages;
  explicit image(u64 size)
      : bytes(size),
        mem(phys_addr{fuzz::image_base}, size, bytes.data()),
        pages(mem, phys_addr{fuzz::image_base}, phys_addr{fuzz::image_base + size}) {}
  phys_addr alloc() { return *alloc_zeroed(pages, order{0}, 4096); }
};

// `bytes`: how much of the image to keep; 0 keeps every page allocated.
void write_seed(const std::filesystem::path& dir, const std::string& name, const image& img, phys_addr root,
                u64 bytes = 0) {
  std::filesystem::create_directories(dir);
  const u64 used = bytes != 0 ? bytes : img.pages.high_water() - phys_addr{fuzz::image_base};
  std::vector<unsigned char> out(8 + used);
  const u64 offset = root.value - fuzz::image_base;
  std::memcpy(out.data(), &offset, 8);
  std::memcpy(out.data() + 8, img.bytes.data(), used);
  std::ofstream(dir / name, std::ios::binary).write(reinterpret_cast<const char*>(out.data()),
                                                     static_cast<std::streamsize>(out.size()));
}

void vmalloc_seeds(const std::filesystem::path& dir) {
  for (u64 units : {u64{0}, u64{3}, u64{511}, u64{600}}) {
    image img(u64{4} << 20);
    const phys_addr holder = img.alloc();
    auto w = vmalloc_writer<bump_page_source<flat_memory>>::create(img.pages, 0);
    // Four distinct unit pages, reused: the reader does not require distinct units
    // (claim_pages does), and small seeds fuzz faster.
    phys_addr unit_pages[4];
    for (phys_addr& u : unit_pages) u = img.alloc();
    for (u64 i = 0; i < units; ++i) (void)w->push(unit_pages[i % 4]);
    const kho_vmalloc d = w->descriptor();
    std::memcpy(img.mem.to_virt(holder, sizeof d), &d, sizeof d);
    write_seed(dir, "units-" + std::to_string(units), img, holder);
  }
}

void memfd_seeds(const std::filesystem::path& dir) {
  for (u64 n : {u64{0}, u64{2}, u64{300}}) {
    for (memfd_version v : {memfd_version::v1, memfd_version::v2}) {
      image img(u64{2} << 20);
      std::vector<memfd_folio> folios;
      for (u64 i = 0; i < n; ++i) folios.push_back({pfn{0x100000 + i}, 3 * i});
      auto ser = write_memfd(img.pages, memfd_file{5, 3 * n * 4096, v == memfd_version::v2 ? 0x5u : 0u,
                                                   folios.data(), n}, v);
      write_seed(dir, "folios-" + std::to_string(n) + "-v" + std::to_string(static_cast<int>(v)), img, *ser);
    }
  }
}

void luo_seeds(const std::filesystem::path& dir) {
  struct shape {
    const char* name;
    u64 sessions, files, flbs;
  };
  for (const shape& s : {shape{"empty", 0, 0, 0}, shape{"small", 3, 2, 2}, shape{"two-blocks", 55, 1, 1},
                         shape{"many-files", 2, 70, 63}}) {
    image img(u64{2} << 20);
    auto w = luo_v5_writer<bump_page_source<flat_memory>>::create(img.pages, 3);
    for (u64 i = 0; i < s.sessions; ++i) {
      const std::string name = "session-" + std::to_string(i);
      (void)w->create_session(name.c_str());
      for (u64 f = 0; i < 3 && f < s.files; ++f)  // files in the first sessions only
        (void)w->preserve_file(name.c_str(), "memfd-v2", 0x1000 * f, f);
    }
    for (u64 i = 0; i < s.flbs; ++i)
      (void)w->add_flb(("liveupdate-test-flb-v" + std::to_string(i)).c_str(), i, 1);
    write_seed(dir, s.name, img, w->blob().phys);
  }
}

// The root FDT at image_base, its blobs zeroed pages after it: what fuzz_kho_fdt
// lays out, so a sealed seed's checksums hold there.
void kho_fdt_seeds(const std::filesystem::path& dir) {
  struct shape {
    const char* name;
    bool kho;
    int subtrees;
  };
  for (const shape& s : {shape{"stock-empty", false, 0}, shape{"stock-three", false, 3}, shape{"sealed-empty", true, 0},
                         shape{"sealed-four", true, 4}}) {
    image img(u64{1} << 20);
    auto w = kho_fdt_writer<bump_page_source<flat_memory>>::create(img.pages, phys_addr{fuzz::image_base + 0x80000},
                                                                    kho_fdt_options{s.kho, 3});
    const char* names[] = {luo_v5_subtree, "kexec-metadata", "memblock", "kho-memfd-index"};
    const char* formats[] = {luo_v5_compatible, nullptr, nullptr, "kho-xarray-v1"};
    for (int i = 0; i < s.subtrees; ++i) (void)w->add(names[i], img.alloc(), 64u << i, formats[i]);
    if (s.kho && s.subtrees > 0) {
      (void)w->set_deep_checksum(names[0], 0x1234);
      (void)w->set_memory_map_checksum(0x5678);
    }
    (void)w->seal();
    const auto* f = img.mem.to_virt(w->root(), 4096);
    std::filesystem::create_directories(dir);
    std::ofstream(dir / s.name, std::ios::binary)
        .write(static_cast<const char*>(f), static_cast<std::streamsize>(fdt_totalsize(f)));
  }
}

// The x86 hand-off at the image's base: a setup_data list (an unrelated node, then
// SETUP_KEXEC_KHO), kho_data and the scratch array (at +0x200) in the seed's few
// hundred bytes; the FDT page lies past them (its content is not read). The scratch
// ranges lie in or next to the image; fuzz_linux_boot preserves base+0x8000,
// base+0x20000 (8 pages) and base+0x100000, so "in-scratch" names preserved pages.
void boot_seeds(const std::filesystem::path& dir) {
  struct shape {
    const char* name;
    std::vector<std::pair<u64, u64>> scratch;  // offsets from the base, sizes
  };
  for (const shape& s : {shape{"two-entries", {{0x10000, 0x8000}, {0x40000, 0x10000}}},
                         shape{"in-scratch", {{0x10000, 0x8000}, {0x1c000, 0x8000}}},
                         shape{"lowmem-global-nodes", {{0x200000, 0x1000}, {0x30000, 0x10000},
                                                       {0x400000, 0x100000}, {0x600000, 0x2000}}}}) {
    image img(0x1000);
    (void)img.alloc();
    setup_data_header first{}, kho{};
    first.next.set(fuzz::image_base + 100);  // an unaligned next node: allowed
    first.type.set(1);
    first.len.set(8);
    kho.type.set(setup_kexec_kho);
    kho.len.set(sizeof(kho_data));
    kho_data d{};
    d.fdt_addr.set(fuzz::image_base + 0x1000);
    d.fdt_size.set(4096);
    d.scratch_addr.set(fuzz::image_base + 0x200);
    d.scratch_size.set(s.scratch.size() * sizeof(kho_scratch));
    std::memcpy(img.bytes.data(), &first, sizeof first);
    std::memcpy(img.bytes.data() + 100, &kho, sizeof kho);
    std::memcpy(img.bytes.data() + 100 + sizeof kho, &d, sizeof d);
    for (std::size_t i = 0; i < s.scratch.size(); ++i) {
      kho_scratch e{};
      e.addr.set(fuzz::image_base + s.scratch[i].first);
      e.size.set(s.scratch[i].second);
      std::memcpy(img.bytes.data() + 0x200 + i * sizeof e, &e, sizeof e);
    }
    write_seed(dir, s.name, img, phys_addr{fuzz::image_base}, 0x200 + s.scratch.size() * sizeof(kho_scratch));
  }
}

// A kexec-metadata blob and memblock FDTs, each at the image's base.
void meta_seeds(const std::filesystem::path& dir) {
  {
    image img(0x1000);
    auto blob = write_kexec_metadata(img.pages, "6.19.0-rc1-kho", 7);
    write_seed(dir, "kexec-metadata", img, blob->phys);
    write_seed(dir, "kexec-metadata-73", img, blob->phys, sizeof(kexec_metadata));
  }
  for (u64 n : {u64{0}, u64{1}, u64{4}}) {
    image img(0x1000);
    std::vector<std::string> names;
    std::vector<reserve_mem_region> regions;
    for (u64 i = 0; i < n; ++i) names.push_back("region" + std::to_string(i));
    for (u64 i = 0; i < n; ++i)
      regions.push_back({names[i].c_str(), phys_addr{0x80000000 + 0x100000 * i}, 0x4000 * (i + 1)});
    auto blob = write_memblock(img.pages, regions.data(), n);
    // Only totalsize bytes: blob-size is the bytes from the root to the image's end.
    write_seed(dir, "memblock-" + std::to_string(n), img, blob->phys, blob->size);
  }
  {
    // "crash" must not find "crash@1", which comes first (libfdt's lookup would).
    image img(0x1000);
    const reserve_mem_region regions[] = {{"crash@1", phys_addr{0x80000000}, 0x4000},
                                          {"crash", phys_addr{0x90000000}, 0x8000}};
    auto blob = write_memblock(img.pages, regions, 2);
    write_seed(dir, "memblock-unit-address", img, blob->phys, blob->size);
  }
}

// The other LUO layouts, as write_luo writes them, and feature-header memfds.
void luo_version_seeds(const std::filesystem::path& dir, const std::filesystem::path& memfd_dir,
                       const std::filesystem::path& layouts_dir) {
  const luo_file_content files[] = {{"memfd", 0x1000, 1}, {"memfd-v2", 0x2000, 2}};
  const luo_session_content sessions[] = {{"vm", files, 2}, {"empty", nullptr, 0}};
  const luo_flb_content flbs[] = {{"liveupdate-test-flb-v1", 1, 1}};
  for (luo_version v : {luo_version::v1, luo_version::v5_block_v1, luo_version::feature}) {
    image img(u64{2} << 20);
    const bool flb = v != luo_version::v1;
    auto blob = write_luo(img.pages, v, luo_content{3, sessions, 2, flb ? flbs : nullptr, flb ? 1u : 0u});
    write_seed(dir, luo_version_name(v) == std::string("luo-v5;block-v1") ? "block-v1" : luo_version_name(v), img,
               blob->phys);
  }
  // The layouts of luo_layouts.hpp (LINUX-FORMATS-NEXT.md 1.2-1.7), one seed each.
  for (const luo_layout& l : luo_layouts) {
    image img(u64{2} << 20);
    auto blob = write_luo(img.pages, l.version, luo_content{3, sessions, 2, flbs, 1});
    std::string name = luo_version_name(l.version);
    for (char& ch : name)
      if (ch == ' ' || ch == '(' || ch == ')') ch = '_';
    write_seed(layouts_dir, name, img, blob->phys);
  }
  image img(u64{1} << 20);
  std::vector<memfd_folio> folios;
  for (u64 i = 0; i < 3; ++i) folios.push_back({pfn{(fuzz::image_base >> 12) + 200 + i}, i * 2});
  auto ser = write_memfd(img.pages, memfd_file{5, 0x6000, memfd_seal_grow, folios.data(), folios.size()},
                         memfd_version::feature);
  write_seed(memfd_dir, "folios-3-feature", img, *ser);
}

}  // namespace

// LINUX-FORMATS-NEXT.md sections 2 to 4: one directory per header's target.
// Each seed is checked to attach: a seed its reader refuses fuzzes nothing past the
// first check.
void must(bool attached, const char* what) {
  if (attached) return;
  std::fprintf(stderr, "make_linux_seeds: the %s seed does not attach\n", what);
  std::exit(1);
}

void vmmem_seeds(const std::filesystem::path& dir) {
  using source = bump_page_source<flat_memory>;
  {
    image img(u64{1} << 20);
    const hugetlb_hstate hs[2] = {{9, 3}, {18, 1}};
    const phys_addr at = *write_hugetlb_flb<12, source>(img.pages, hs, 2);
    must(attach_hugetlb_flb<12>(img.mem, at).has_value(), "hugetlb-v1");
    write_seed(dir / "fuzz_linux_hugetlb", "flb-2", img, at);
  }
  for (u64 n : {u64{0}, u64{3}, u64{300}}) {
    image img(u64{1} << 20);
    std::vector<huge_folio> folios;
    for (u64 i = 0; i < n; ++i) folios.push_back({pfn{(i + 1) << 9}, i << 9});
    auto f = write_huge_memfd<12, source>(img.pages, huge_memfd_file{(n + 1) << 21, 7, 9, folios.data(), n});
    must(f && attach_huge_memfd<12>(img.mem, *f).has_value(), "huge-memfd-v1");
    write_seed(dir / "fuzz_linux_hugetlb", "huge-memfd-" + std::to_string(n), img, *f);
  }
  for (u64 n : {u64{0}, u64{4}, u64{300}}) {
    image img(u64{1} << 20);
    std::vector<guest_memfd_folio> folios;
    for (u64 i = 0; i < n; ++i) folios.push_back({pfn{0x100 + i}, i * 2, static_cast<u16>(i & 1)});
    auto g = write_guest_memfd<12, source>(img.pages, guest_memfd_file{(2 * n + 1) << 12, 3, 9, folios.data(), n});
    must(g && attach_guest_memfd<12>(img.mem, *g).has_value(), "guest_memfd_luo_v1");
    write_seed(dir / "fuzz_linux_guest_memfd", "folios-" + std::to_string(n), img, *g);
  }
  {
    image img(u64{1} << 20);
    const kvm_mem_attr attrs[3] = {{0x10, 8}, {0x11, 8}, {0x40, 0}};
    kvm_vm_file vm;
    vm.type = 1, vm.mem_attrs = attrs, vm.nr_mem_attrs = 3;
    const phys_addr at = *write_kvm_vm<12, source>(img.pages, vm, kvm_vm_dialect::linux_mm);
    must(attach_kvm_vm<12>(img.mem, at, kvm_vm_dialect::linux_mm).has_value(), "kvm_vm_luo_v1 A");
    write_seed(dir / "fuzz_linux_kvm", "vm-a", img, at);
  }
  {
    image img(u64{1} << 20);
    kvm_cpuid_entry2 entries[4]{};
    for (u32 i = 0; i < 4; ++i) entries[i].function.set(i), entries[i].flags.set(i & 1);
    kvm_vm_file vm;
    vm.cpuid = entries, vm.cpuid_nent = 4;
    const phys_addr at = *write_kvm_vm<12, source>(img.pages, vm, kvm_vm_dialect::soleen);
    must(attach_kvm_vm<12>(img.mem, at, kvm_vm_dialect::soleen).has_value(), "kvm_vm_luo_v1 B");
    write_seed(dir / "fuzz_linux_kvm", "vm-b", img, at);
  }
  {
    image img(u64{1} << 20);
    kvm_vcpu_file vcpu;
    vcpu.vcpu_id = 2, vcpu.vm_token = 9, vcpu.arch_state = img.alloc(), vcpu.caretaker = true;
    vcpu.cb.pcpu_id.set(0xffffffff);
    const phys_addr at = *write_kvm_vcpu<12, source>(img.pages, vcpu);
    must(attach_kvm_vcpu<12>(img.mem, at).has_value(), "kvm_vcpu_luo_v1");
    write_seed(dir / "fuzz_linux_kvm", "vcpu-caretaker", img, at);
  }
  {
    image img(u64{1} << 20);
    const phys_addr at = *write_tmpfs_mnt<12, source>(img.pages, tmpfs_mount{100, 0755});
    must(attach_tmpfs_mnt<12>(img.mem, at).has_value(), "tmpfs-mnt-v1");
    write_seed(dir / "fuzz_linux_tmpfs", "mnt", img, at);
  }
  for (u64 n : {u64{0}, u64{5}}) {
    image img(u64{1} << 20);
    std::vector<memfd_folio> folios;
    for (u64 i = 0; i < n; ++i) folios.push_back({pfn{0x200 + i}, i * 3, 3});
    auto f = write_tmpfs_file<12, source>(img.pages, tmpfs_file{1, 0, n * 3 << 12, 0640, "vm.img", folios.data(), n});
    must(f && attach_tmpfs_file<12>(img.mem, *f).has_value(), "tmpfs-file-v1");
    write_seed(dir / "fuzz_linux_tmpfs", "file-" + std::to_string(n), img, *f);
  }
}

// The device formats (LINUX-FORMATS-NEXT.md section 5): each PCI variant, each IOMMU
// variant with objects on two domain pages, an iommufd and a vfio-pci state.
void device_seeds(const std::filesystem::path& dir) {
  using source = bump_page_source<flat_memory>;
  for (pci_variant v : {pci_variant::v1, pci_variant::v2, pci_variant::versioned}) {
    image img(u64{1} << 20);
    const pci_device devs[] = {{0, 0x0010}, {0, 0x0310}, {1, 0x0008}};
    auto ser = write_pci_flb(img.pages, devs, 3, v, 5);
    write_seed(dir / "fuzz_linux_pci", std::string("devices-3-") + pci_flb_name(v), img, *ser);
  }
  for (iommu_variant v : {iommu_variant::v1, iommu_variant::versioned}) {
    image img(u64{1} << 20);
    auto w = iommu_flb_writer<source>::create(img.pages, v);
    iommu_hw h;
    h.token = 1;
    h.mmio = 0xfed90000;
    const phys_addr hw = *w->add_hw(h);
    phys_addr last{};
    for (int i = 0; i < 112; ++i) last = *w->add_domain(iommu_domain{1, 0, 0, 4, 48, 1, 0, {}});
    iommu_device d;
    d.devid = 0x0310;
    d.domain_phys = last.value;
    d.iommu_phys = hw.value;
    (void)w->add_device(d);
    d.devid = 0x0008;
    d.flags = iommu_flag_deleted;
    (void)w->add_device(d);
    write_seed(dir / "fuzz_linux_iommu", std::string("objects-") + iommu_flb_name(v), img, w->data());
  }
  {
    image img(u64{1} << 20);
    const iommufd_hwpt hwpts[] = {{0x100001025, 1, 0}, {0x100001025, 2, 0}, {0, 3, 0}};
    auto fd = write_iommufd(img.pages, hwpts, 3);
    write_seed(dir / "fuzz_linux_device_files", "iommufd-3", img, *fd);
  }
  {
    image img(u64{1} << 20);
    auto dev = write_vfio_pci(img.pages, vfio_pci_device{0x0310, 0, 1});
    write_seed(dir / "fuzz_linux_device_files", "vfio-pci", img, *dev);
  }
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_linux_seeds DIR\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  vmalloc_seeds(dir / "fuzz_linux_vmalloc");
  memfd_seeds(dir / "fuzz_linux_memfd");
  luo_seeds(dir / "fuzz_linux_luo_v5");
  kho_fdt_seeds(dir / "fuzz_kho_fdt");
  boot_seeds(dir / "fuzz_linux_boot");
  meta_seeds(dir / "fuzz_linux_meta");
  luo_version_seeds(dir / "fuzz_linux_luo_versions", dir / "fuzz_linux_memfd", dir / "fuzz_linux_luo_layouts");
  vmmem_seeds(dir);
  device_seeds(dir);
  return 0;
}
