// Kernel-shim check for the device formats (LINUX-FORMATS-NEXT.md section 5): the PCI
// FLB, the IOMMU FLB, iommufd and vfio-pci, every writer and view instantiated
// freestanding for each page size. check_nm.cmake then allows only
// memcpy/memset/memmove/memcmp, kho_shim_* and libfdt's fdt_*.
#include <kho/linux/iommu.hpp>
#include <kho/linux/iommufd.hpp>
#include <kho/linux/pci.hpp>
#include <kho/linux/vfio_pci.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>

namespace {

using namespace kho;
using namespace kho::upstream;

alignas(65536) unsigned char pool[4u << 20];
alignas(65536) unsigned char scratch_pool[2u << 20];
constexpr u64 pool_base = u64{1} << 32;
constexpr u64 scratch_base = u64{1} << 40;

template <unsigned PageShift>
int exercise() {
  using source = bump_page_source<flat_memory, PageShift>;
  flat_memory mem(phys_addr{pool_base}, sizeof pool, pool);
  source pages(mem, phys_addr{pool_base}, phys_addr{pool_base + sizeof pool});
  flat_memory smem(phys_addr{scratch_base}, sizeof scratch_pool, scratch_pool);
  source scratch(smem, phys_addr{scratch_base}, phys_addr{scratch_base + sizeof scratch_pool});
  page_owners<source, PageShift> owners(scratch);
  int n = 0;

  const pci_device devs[2] = {{0, 0x0310}, {1, 0x0008}};
  for (pci_variant v : {pci_variant::v1, pci_variant::v2, pci_variant::versioned}) {
    auto ser = write_pci_flb<PageShift>(pages, devs, 2, v, 4);
    if (!ser) return -1;
    auto p = attach_pci_flb<PageShift>(mem, *ser, v, owners.scratch());
    if (!p || !p->claim_pages(owners) || !p->contains(1, 0x0008)) return -2;
    p->for_each_device([&](const pci_device& d) { n += d.bdf; });
  }

  for (iommu_variant v : {iommu_variant::v1, iommu_variant::versioned}) {
    auto w = iommu_flb_writer<source, PageShift>::create(pages, v);
    if (!w) return -3;
    iommu_hw h;
    h.mmio = 0xfed90000;
    auto hw = w->add_hw(h);
    auto dom = w->add_domain(iommu_domain{});
    iommu_device d;
    d.iommu_phys = hw ? hw->value : 0;
    d.domain_phys = dom ? dom->value : 0;
    if (!hw || !dom || !w->add_device(d)) return -4;
    auto view = attach_iommu_flb<PageShift>(mem, w->data(), v, scratch);
    if (!view) return -5;
    view->for_each_device([&](const iommu_device& x) { n += static_cast<int>(x.devid); });
    view->for_each_domain([&](const iommu_domain& x) { n += static_cast<int>(x.vasz); });
    view->for_each_hw([&](const iommu_hw& x) { n += static_cast<int>(x.type); });
    const bool ok = view->find(iommu_list::domain, *dom).has_value() && view->claim_pages(owners);
    view->release();
    if (!ok) return -6;
  }

  const iommufd_hwpt hwpts[1] = {{0, 5, 0}};
  auto fd = write_iommufd<PageShift>(pages, hwpts, 1);
  if (!fd) return -7;
  auto fv = attach_iommufd<PageShift>(mem, *fd);
  if (!fv || !fv->claim_pages(owners)) return -8;
  fv->for_each_hwpt([&](const iommufd_hwpt& x, phys_addr) { n += static_cast<int>(x.token); });

  auto vf = write_vfio_pci<PageShift>(pages, vfio_pci_device{0x0310, 0, 1});
  if (!vf) return -9;
  auto vv = attach_vfio_pci<PageShift>(mem, *vf);
  if (!vv || !vv->claim_pages(owners)) return -10;
  return n + vv->device().bdf;
}

}  // namespace

extern "C" int kho_shim_devices_4k() { return exercise<12>(); }
extern "C" int kho_shim_devices_16k() { return exercise<14>(); }
extern "C" int kho_shim_devices_64k() { return exercise<16>(); }
