// Fuzz target: Linux's kho_vmalloc reader. The descriptor (16 bytes) is read from the
// image at the root offset; after a successful attach every unit is touched through
// the armed memory (a read outside it traps), and the pages are claimed once each.
#include <kho/linux/kho_vmalloc.hpp>
#include <kho/page_owners.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

#include <cstring>

namespace {

kho::fuzz::pages<16 << 20> scratch_memory;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kho::fuzz::image img(data, size);
  const auto mem = img.memory();
  const void* d = mem.to_virt(img.root(), sizeof(kho::upstream::kho_vmalloc));
  if (d == nullptr) return 0;
  kho::upstream::kho_vmalloc desc;
  std::memcpy(&desc, d, sizeof desc);
  auto view = kho::upstream::attach_vmalloc<12>(mem, desc);
  if (!view) return 0;
  img.arm();
  kho::u64 pages = 0;
  view->for_each_unit([&](kho::phys_addr unit, kho::u64 idx) {
    if (idx != pages) __builtin_trap();  // units cover the area in order
    volatile const unsigned char* p = static_cast<const unsigned char*>(
        mem.to_virt(unit, view->unit_pages() << 12));
    (void)p[0];
    pages += view->unit_pages();
  });
  if (pages != view->total_pages()) __builtin_trap();
  kho::flat_memory scratch_mem(kho::phys_addr{kho::u64{1} << 46}, scratch_memory.size, scratch_memory);
  kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  kho::page_owners<decltype(scratch)> owners(scratch);
  (void)view->claim_pages(owners);
  return 0;
}
