// Fuzz target: Linux's PCI FLB at the root, read as pci-v1, pci-v2 and the versioned
// "pci": after a successful attach every device is read through the armed memory (a
// read outside it traps), the devices in use number nr_devices with no key twice, and
// the pages are claimed once each.
#include <kho/linux/pci.hpp>
#include <kho/page_owners.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

#include <set>

namespace {

kho::fuzz::pages<16 << 20> scratch_memory;

template <class Image>
void check(Image& img, kho::upstream::pci_variant v) {
  kho::flat_memory scratch_mem(kho::phys_addr{kho::u64{1} << 46}, scratch_memory.size, scratch_memory);
  kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  auto view = kho::upstream::attach_pci_flb<12>(img.memory(), img.root(), v, scratch);
  if (!view) return;
  img.arm();
  std::set<kho::u64> keys;
  view->for_each_device([&](const kho::upstream::pci_device& d) {
    if (!keys.insert(kho::upstream::pci_key(d.domain, d.bdf)).second) __builtin_trap();
  });
  if (keys.size() != view->nr_devices()) __builtin_trap();
  kho::bump_page_source<kho::flat_memory> owner_scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  kho::page_owners<decltype(owner_scratch)> owners(owner_scratch);
  (void)view->claim_pages(owners);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (auto v : {kho::upstream::pci_variant::v1, kho::upstream::pci_variant::v2, kho::upstream::pci_variant::versioned}) {
    kho::fuzz::image img(data, size);
    check(img, v);
  }
  return 0;
}
