// Fuzz target: MSHV's subtree (mshv_prsv_pt) read from the root as its one-page FDT,
// then its raw-pfn radix tree. After a successful attach, through the armed memory (a
// read outside it traps): every key page comes back ascending, their number is the
// view's count, each is found by a lookup, the pages are claimed once each, and the
// main-map rule holds against a map that preserves everything.
#include <kho/linux/mshv.hpp>
#include <kho/page_owners.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

namespace {

kho::fuzz::pages<16 << 20> scratch_memory;

// A main map in which every page is an order-0 key.
struct everything_preserved {
  bool contains(kho::phys_addr, kho::order o) const { return o.value == 0; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kho::fuzz::image img(data, size);
  kho::flat_memory scratch_mem(kho::phys_addr{kho::u64{1} << 46}, scratch_memory.size, scratch_memory);
  kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  auto view = kho::upstream::attach_mshv<12>(img.memory(), img.root(), 4096, scratch);
  if (!view) return 0;
  img.arm();
  kho::u64 n = 0, last = 0;
  view->for_each_page([&](kho::phys_addr pa) {
    if ((n > 0 && pa.value <= last) || !view->tree().contains(pa, kho::order{0})) __builtin_trap();
    last = pa.value;
    ++n;
  });
  if (n != view->page_count()) __builtin_trap();
  if (!view->check_main_map(everything_preserved{})) __builtin_trap();
  kho::page_owners<decltype(scratch)> owners(scratch);
  (void)view->claim_pages(owners);
  return 0;
}
