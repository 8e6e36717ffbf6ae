// Fuzz target: the device LUO files at the root, read as iommufd-v1 and vfio-pci-v1:
// after a successful attach every HWPT is read through the armed memory (a read
// outside it traps) with reclaimed zero, and the pages are claimed once each.
#include <kho/linux/iommufd.hpp>
#include <kho/linux/vfio_pci.hpp>
#include <kho/page_owners.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

namespace {

kho::fuzz::pages<16 << 20> scratch_memory;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kho::upstream;
  kho::flat_memory scratch_mem(kho::phys_addr{kho::u64{1} << 46}, scratch_memory.size, scratch_memory);
  {
    kho::fuzz::image img(data, size);
    if (auto fd = attach_iommufd<12>(img.memory(), img.root())) {
      img.arm();
      kho::u64 n = 0;
      fd->for_each_hwpt([&](const iommufd_hwpt& h, kho::phys_addr) {
        if (h.reclaimed != 0) __builtin_trap();
        ++n;
      });
      if (n != fd->nr_hwpts()) __builtin_trap();
      kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
      kho::page_owners<decltype(scratch)> owners(scratch);
      (void)fd->claim_pages(owners);
    }
  }
  kho::fuzz::image img(data, size);
  if (auto dev = attach_vfio_pci<12>(img.memory(), img.root())) {
    img.arm();
    kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
    kho::page_owners<decltype(scratch)> owners(scratch);
    if (!dev->claim_pages(owners)) __builtin_trap();
  }
  return 0;
}
