// Fuzz target: Linux's memfd state, read as memfd-v2, memfd-v1 and the feature-header
// layout at the root:
// after a successful attach every folio record is read through the armed memory (a
// read outside it traps), indices must come back strictly increasing, and the pages
// are claimed once each.
#include <kho/linux/memfd.hpp>
#include <kho/page_owners.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

namespace {

kho::fuzz::pages<16 << 20> scratch_memory;

template <class Image>
void check(Image& img, kho::upstream::memfd_version v) {
  auto view = kho::upstream::attach_memfd<12>(img.memory(), img.root(), v);
  if (!view) return;
  img.arm();
  kho::u64 n = 0, last = 0;
  view->for_each_folio([&](const kho::upstream::memfd_folio& f) {
    if (f.frame.value == 0 || (n > 0 && f.index <= last)) __builtin_trap();
    last = f.index;
    ++n;
  });
  if (n != view->nr_folios()) __builtin_trap();
  kho::flat_memory scratch_mem(kho::phys_addr{kho::u64{1} << 46}, scratch_memory.size, scratch_memory);
  kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  kho::page_owners<decltype(scratch)> owners(scratch);
  (void)view->claim_pages(owners);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    kho::fuzz::image img(data, size);
    check(img, kho::upstream::memfd_version::v2);
  }
  {
    kho::fuzz::image img(data, size);
    check(img, kho::upstream::memfd_version::v1);
  }
  kho::fuzz::image img(data, size);
  check(img, kho::upstream::memfd_version::feature);
  return 0;
}
