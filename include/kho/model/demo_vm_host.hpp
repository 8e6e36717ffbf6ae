// kho/model/demo_vm_host.hpp: the kexec model's VM host (hosted): what a hypervisor
// preserves beside its memfds, written by the old image and taken back by the next.
//
// Old image (preserve_vm_host), all in LUO session "vm-alpha" and its FLBs:
//   hugetlb      a hugetlb-backed file, "huge-memfd-v1" (token 10): 2 MiB folios at
//                file huge pages 0, 2, 3 and 5 of 6 (holes stay holes), each one
//                preserved block of order 9; the "hugetlb-v1" FLB counts them
//   guest_memfd  the VM, "kvm_vm_luo_v1" (token 20, layout A: linux-mm; no memory
//                attributes, the VM is fully shared as guest_memfd requires), and its
//                guest memory, "guest_memfd_luo_v1" (token 21, vm_token 20): order-0
//                folios at every third page of 96
//   iommu        the "iommu-liveupdate-v1" FLB (one Intel unit with its MMIO base
//                outside RAM, one domain with a preserved top-level I/O page table,
//                one device 00:03.0), the "pci-v2" FLB holding that device, an
//                "iommufd-v1" file (token 30) whose HWPT names the domain and a
//                "vfio-pci-v1" file (token 31) for the device
// Each part can be left out (vm_host_options).
//
// Next image (reclaim_vm_host_file / reclaim_vm_host_flbs): each file as the kernel
// retrieves it, through kho's validating readers; the huge folios and the guest
// memory adopted into kho xarrays as multi-order entries (adopt_folios: a 2 MiB folio
// is one entry covering 512 indices) and every adopted page read back; the IOMMU
// state followed from the device to its domain and unit, and the iommufd's HWPT to
// the same domain.
#pragma once

#include <kho/linux/adopt_folios.hpp>
#include <kho/linux/guest_memfd.hpp>
#include <kho/linux/hugetlb.hpp>
#include <kho/linux/iommu.hpp>
#include <kho/linux/iommufd.hpp>
#include <kho/linux/kvm.hpp>
#include <kho/linux/luo_handlers.hpp>
#include <kho/linux/luo_v5.hpp>
#include <kho/linux/pci.hpp>
#include <kho/linux/vfio_pci.hpp>
#include <kho/memory.hpp>
#include <kho/model/scratch_pages.hpp>
#include <kho/xarray.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace kho::model {

struct vm_host_options {
  bool hugetlb = true;      // a hugetlb-backed file and the hugetlb-v1 FLB
  bool guest_memfd = true;  // a KVM VM and its guest_memfd
  bool iommu = true;        // the IOMMU and PCI FLBs, an iommufd and a vfio-pci file
};

inline constexpr const char* vm_host_session = "vm-alpha";
inline constexpr u64 vm_host_huge_token = 10, vm_host_vm_token = 20, vm_host_guest_token = 21,
                     vm_host_iommufd_token = 30, vm_host_vfio_token = 31;
inline constexpr u64 vm_host_huge_pages = 6;         // file size in 2 MiB pages
inline constexpr u64 vm_host_huge_present[] = {0, 2, 3, 5};
inline constexpr u64 vm_host_guest_pages = 96;       // guest_memfd size in pages
inline constexpr u16 vm_host_bdf = 0x0018;           // 00:03.0
inline constexpr u64 vm_host_iommu_mmio = u64{0xfed90000};  // below 4 GiB, never the model's RAM

namespace detail_vm_host {

[[noreturn]] inline void fail(const char* what, errc code) {
  throw std::runtime_error(fmt::format("{}: {}", what, to_string(code)));
}
template <class T>
T must(result<T> r, const char* what) {
  if (!r) fail(what, r.code());
  return *r;
}
inline void must(const status& s, const char* what) {
  if (!s) fail(what, s.code());
}

// What the old image writes into each data page, read back by the next image.
inline std::string huge_text(u64 file_page) { return fmt::format("vm-alpha hugetlb page {}", file_page); }
inline std::string guest_text(u64 index) { return fmt::format("vm-alpha guest page {}", index); }

template <class Tracked>
void write_text(Tracked& tracked, phys_addr at, const std::string& text) {
  std::memcpy(tracked.memory().to_virt(at, text.size()), text.data(), text.size());
}

inline bool holds_text(const flat_memory& mem, phys_addr at, const std::string& text) {
  const void* p = mem.to_virt(at, text.size());
  return p != nullptr && std::memcmp(p, text.data(), text.size()) == 0;
}

}  // namespace detail_vm_host

/// Writes the parts `opt` names through `luo` (a luo_v5_writer whose session
/// vm_host_session exists) with pages from `tracked`, which preserves each.
/// Throws std::runtime_error when memory runs out or a writer refuses.
template <class Tracked, class LuoWriter>
void preserve_vm_host(Tracked& tracked, LuoWriter& luo, const vm_host_options& opt) {
  using namespace upstream;
  using detail_vm_host::must;
  constexpr unsigned shift = page_geometry<>::shift;
  if (opt.hugetlb) {
    std::vector<huge_folio> folios;
    for (u64 page : vm_host_huge_present) {
      const phys_addr head = must(tracked.alloc(order{9}), "huge folio");
      detail_vm_host::write_text(tracked, head, detail_vm_host::huge_text(page));
      folios.push_back({pfn{head.value >> shift}, page << 9});
    }
    const huge_memfd_file file{vm_host_huge_pages << (9 + shift), 0, 9, folios.data(), folios.size()};
    must(luo.preserve_file(vm_host_session, huge_memfd_compatible, must(write_huge_memfd(tracked, file), "huge-memfd").value,
                           vm_host_huge_token),
         "LUO huge-memfd file");
    const hugetlb_hstate hstates[] = {{9, folios.size()}, {18, 0}};  // x86's two hstates
    must(luo.add_flb(hugetlb_flb_name, must(write_hugetlb_flb(tracked, hstates, 2), "hugetlb FLB").value, 1),
         "hugetlb FLB");
  }
  if (opt.guest_memfd) {
    kvm_vm_file vm;  // type 0 (KVM_X86_DEFAULT_VM), fully shared: no attributes
    must(luo.preserve_file(vm_host_session, kvm_vm_compatible,
                           must(write_kvm_vm(tracked, vm, kvm_vm_dialect::linux_mm), "KVM VM").value, vm_host_vm_token),
         "LUO KVM VM file");
    std::vector<guest_memfd_folio> folios;
    for (u64 i = 0; i < vm_host_guest_pages; i += 3) {
      const phys_addr page = must(tracked.alloc(order{0}), "guest page");
      detail_vm_host::write_text(tracked, page, detail_vm_host::guest_text(i));
      folios.push_back({pfn{page.value >> shift}, i, guest_memfd_folio_uptodate});
    }
    const guest_memfd_file file{vm_host_guest_pages << shift, guest_memfd_flag_mmap | guest_memfd_flag_init_shared,
                                vm_host_vm_token, folios.data(), folios.size()};
    must(luo.preserve_file(vm_host_session, guest_memfd_compatible, must(write_guest_memfd(tracked, file), "guest_memfd").value,
                           vm_host_guest_token),
         "LUO guest_memfd file");
  }
  if (opt.iommu) {
    auto w = must(iommu_flb_writer<Tracked>::create(tracked), "IOMMU FLB");
    const phys_addr root_table = must(alloc_zeroed(tracked, order{0}, page_geometry<>::size), "root table");
    iommu_hw hw;
    hw.token = 1;
    hw.mmio = vm_host_iommu_mmio;
    hw.root_table = root_table.value;
    const phys_addr unit = must(w.add_hw(hw), "IOMMU unit");
    const phys_addr top = must(alloc_zeroed(tracked, order{0}, page_geometry<>::size), "I/O page table");
    const phys_addr domain = must(w.add_domain(iommu_domain{1, 0, top.value, 4, 48, 0, 0, {}}), "IOMMU domain");
    iommu_device dev;
    dev.devid = vm_host_bdf;
    dev.attachment_id = 1;
    dev.domain_phys = domain.value;
    dev.iommu_phys = unit.value;
    must(w.add_device(dev), "IOMMU device");
    must(luo.add_flb(iommu_v1_name, w.data().value, 2), "IOMMU FLB");
    const pci_device pci[] = {{0, vm_host_bdf}};
    must(luo.add_flb(pci_v2_name, must(write_pci_flb(tracked, pci, 1, pci_variant::v2), "PCI FLB").value, 1), "PCI FLB");
    const iommufd_hwpt hwpt{domain.value, 1, 0};
    must(luo.preserve_file(vm_host_session, iommufd_v1_compatible, must(write_iommufd(tracked, &hwpt, 1), "iommufd").value,
                           vm_host_iommufd_token),
         "LUO iommufd file");
    must(luo.preserve_file(vm_host_session, vfio_pci_v1_compatible,
                           must(write_vfio_pci(tracked, vfio_pci_device{vm_host_bdf, 0, 1}), "vfio-pci").value,
                           vm_host_vfio_token),
         "LUO vfio-pci file");
  }
}

namespace detail_vm_host {

inline nlohmann::json refused(const char* what, const error& e) {
  return {{"ok", false}, {"error", to_string(e.code)}, {"summary", fmt::format("{} refused: {}", what, to_string(e.code))}};
}

// Every adopted base page resolves to its folio's head plus its offset in the folio,
// and the head holds what the old image wrote there.
template <class XArray, class Text>
bool adopted_pages_read_back(const XArray& xa, const flat_memory& mem, u64 first, u64 pages, unsigned o, Text&& text) {
  for (u64 i = first; i < first + pages; ++i) {
    auto head = xa.load(i);
    if (!head || *head == 0) return false;
    if ((i & ((u64{1} << o) - 1)) == 0 &&
        !holds_text(mem, phys_addr{*head << page_geometry<>::shift}, text(i >> o)))
      return false;
  }
  return true;
}

}  // namespace detail_vm_host

/// The next kernel's side of one retrieved file of the VM host, or null when `f` is
/// none of theirs. `session_files` are the file records of its session (a guest_memfd
/// names its VM there). Huge and guest folios are adopted into kho xarrays built in
/// `fresh`. Reports "ok", "summary" and counts.
template <PageSource Source, class Files>
nlohmann::json reclaim_vm_host_file(Source& fresh, const flat_memory& mem, const upstream::luo_file_ser& f,
                                    const Files& session_files) {
  using namespace upstream;
  const phys_addr data{f.data.get()};
  if (names_handler(f, huge_memfd_compatible)) {
    auto h = attach_huge_memfd(mem, data);
    if (!h) return detail_vm_host::refused("huge-memfd-v1", h.err());
    auto xa = make_xarray<u64, 12>(fresh);
    if (!xa) return detail_vm_host::refused("xarray", xa.err());
    auto n = adopt_folios(*xa, *h);
    if (!n) return detail_vm_host::refused("adoption", n.err());
    bool read_back = true;
    h->for_each_folio([&](const huge_folio& folio) {
      read_back = read_back && detail_vm_host::adopted_pages_read_back(*xa, mem, folio.index, u64{1} << h->folio_order(),
                                                                        h->folio_order(), detail_vm_host::huge_text);
    });
    const u64 indices = *n << h->folio_order();
    return {{"ok", read_back},
            {"huge_folios", *n},
            {"xarray_entries", xa->count()},
            {"indices_covered", indices},
            {"summary", fmt::format("{} huge folios of order {} adopted as {} xarray entries covering {} pages; {}", *n,
                                    h->folio_order(), xa->count(), indices,
                                    read_back ? "every page reads back" : "a page does NOT read back")}};
  }
  if (names_handler(f, kvm_vm_compatible)) {
    auto v = attach_kvm_vm(mem, data, kvm_vm_dialect::linux_mm);
    if (!v) return detail_vm_host::refused("kvm_vm_luo_v1", v.err());
    return {{"ok", true},
            {"summary", fmt::format("KVM VM of type {} (layout A), {} memory attributes", v->type(), v->nr_mem_attrs())}};
  }
  if (names_handler(f, guest_memfd_compatible)) {
    auto g = attach_guest_memfd(mem, data);
    if (!g) return detail_vm_host::refused("guest_memfd_luo_v1", g.err());
    const luo_file_ser* vm = find_file_by_token(session_files, g->vm_token());
    if (vm == nullptr || !names_handler(*vm, kvm_vm_compatible))
      return {{"ok", false}, {"summary", fmt::format("guest_memfd names VM token {}, not a VM of its session", g->vm_token())}};
    auto xa = make_xarray<u64, 12>(fresh);
    if (!xa) return detail_vm_host::refused("xarray", xa.err());
    auto n = adopt_folios(*xa, *g);
    if (!n) return detail_vm_host::refused("adoption", n.err());
    bool read_back = true;
    g->for_each_folio([&](const guest_memfd_folio& folio) {
      read_back = read_back && detail_vm_host::adopted_pages_read_back(*xa, mem, folio.index, 1, 0, detail_vm_host::guest_text);
    });
    return {{"ok", read_back},
            {"folios", *n},
            {"vm_token", g->vm_token()},
            {"summary", fmt::format("guest_memfd of {} KiB for VM token {}: {} pages adopted into a kho xarray; {}",
                                    g->size() >> 10, g->vm_token(), *n,
                                    read_back ? "every page reads back" : "a page does NOT read back")}};
  }
  if (names_handler(f, iommufd_v1_compatible)) {
    auto fd = attach_iommufd(mem, data);
    if (!fd) return detail_vm_host::refused("iommufd-v1", fd.err());
    return {{"ok", true}, {"hwpts", fd->nr_hwpts()}, {"summary", fmt::format("iommufd with {} HWPTs", fd->nr_hwpts())}};
  }
  if (names_handler(f, vfio_pci_v1_compatible)) {
    auto dev = attach_vfio_pci(mem, data);
    if (!dev) return detail_vm_host::refused("vfio-pci-v1", dev.err());
    return {{"ok", true},
            {"summary", fmt::format("vfio-pci device {:04x}:{:02x}:{:02x}.{}", dev->device().domain, dev->device().bdf >> 8,
                                    (dev->device().bdf >> 3) & 0x1f, dev->device().bdf & 7)}};
  }
  return nullptr;
}

/// The next kernel's side of the VM host's FLBs: hugetlb-v1's counts, and the IOMMU
/// state followed from each live device to its domain and unit (and the PCI FLB
/// holding the device). Reports "ok", "summary" per FLB it knows; others are absent.
inline nlohmann::json reclaim_vm_host_flbs(const flat_memory& mem, const upstream::luo_flb_ser* flbs, u64 count) {
  using namespace upstream;
  nlohmann::json out = nlohmann::json::object();
  const luo_flb_list list{flbs, count};
  if (const luo_flb_ser* b = list.find(hugetlb_flb_name)) {
    auto h = attach_hugetlb_flb(mem, phys_addr{b->data.get()});
    if (!h) {
      out["hugetlb"] = detail_vm_host::refused("hugetlb-v1", h.err());
    } else {
      u64 pages = 0;
      const bool found = h->find(9, pages);
      out["hugetlb"] = {{"ok", found},
                        {"summary", fmt::format("hugetlb-v1: {} hstates, {} preserved 2 MiB pages to keep out of the pool",
                                                h->nr_hstates(), pages)}};
    }
  }
  if (const luo_flb_ser* b = list.find(iommu_v1_name)) {
    scratch_pages scratch(mem);
    auto v = attach_iommu_flb(mem, phys_addr{b->data.get()}, iommu_variant::v1, scratch.pages());
    if (!v) {
      out["iommu"] = detail_vm_host::refused("iommu-liveupdate-v1", v.err());
    } else {
      u64 devices = 0, followed = 0;
      v->for_each_device([&](const iommu_device& d) {
        ++devices;
        if (v->find(iommu_list::domain, phys_addr{d.domain_phys}) && v->find(iommu_list::hw, phys_addr{d.iommu_phys}))
          ++followed;
      });
      bool in_pci = false;
      if (const luo_flb_ser* p = list.find(pci_v2_name)) {
        auto pci = attach_pci_flb(mem, phys_addr{p->data.get()}, pci_variant::v2, scratch.pages());
        in_pci = pci && pci->contains(0, vm_host_bdf);
      }
      v->release();
      out["iommu"] = {{"ok", devices > 0 && followed == devices && in_pci},
                      {"summary", fmt::format("iommu-liveupdate-v1: {} of {} devices lead to their domain and unit; "
                                              "device 00:03.0 {} the pci-v2 FLB",
                                              followed, devices, in_pci ? "is in" : "is NOT in")}};
    }
  }
  return out;
}

}  // namespace kho::model
