// Fuzz target: Linux's IOMMU FLB at the root, read as iommu-liveupdate-v1 and the
// versioned iommu-liveupdate: after a successful attach every object is read through
// the armed memory (a read outside it traps); every live device's references resolve
// with find(); the pages are claimed once each.
#include <kho/linux/iommu.hpp>
#include <kho/page_owners.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

namespace {

kho::fuzz::pages<16 << 20> scratch_memory;

template <class Image>
void check(Image& img, kho::upstream::iommu_variant v) {
  using namespace kho::upstream;
  kho::flat_memory scratch_mem(kho::phys_addr{kho::u64{1} << 46}, scratch_memory.size, scratch_memory);
  kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  auto view = attach_iommu_flb<12>(img.memory(), img.root(), v, scratch, iommu_limits{4096});
  if (!view) return;
  img.arm();
  view->for_each_hw([&](const iommu_hw& h) {
    if (h.type > iommu_type_intel) __builtin_trap();
  });
  view->for_each_domain([&](const iommu_domain& d) {
    if (d.sign_extend > 1) __builtin_trap();
  });
  view->for_each_device([&](const iommu_device& d) {
    if ((d.flags & iommu_flag_deleted) != 0) return;
    if (!view->find(iommu_list::hw, kho::phys_addr{d.iommu_phys})) __builtin_trap();
    if (d.domain_phys != 0 && !view->find(iommu_list::domain, kho::phys_addr{d.domain_phys})) __builtin_trap();
  });
  kho::page_owners<decltype(scratch)> owners(scratch);
  (void)view->claim_pages(owners);
  view->release();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (auto v : {kho::upstream::iommu_variant::v1, kho::upstream::iommu_variant::versioned}) {
    kho::fuzz::image img(data, size);
    check(img, v);
  }
  return 0;
}
