// Fuzz target: the sparse KHO xarray reader and every read-side query.
#include <kho/xarray.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

namespace {

kho::fuzz::pages<16 << 20> scratch_memory;  // the visited set: 32 bytes a page

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kho::fuzz::image img(data, size);
  kho::flat_memory scratch_mem(kho::phys_addr{kho::u64{1} << 46}, scratch_memory.size, scratch_memory);
  kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  auto view = kho::attach_xarray<kho::u64, 12>(img.memory(), img.root(), scratch);
  if (!view) return 0;
  img.arm();
  kho::u64 seen = 0, last = 0;
  bool first = true;
  view->for_each(0, ~kho::u64{0}, [&](const auto& e) {
    if (!first && e.index <= last) __builtin_trap();  // ascending, entries disjoint
    first = false;
    last = e.last();
    auto loaded = view->load(e.index);
    if (!loaded || *loaded != e.value) __builtin_trap();
    return ++seen < 100000;
  });
  for (kho::u64 i : {kho::u64{0}, kho::u64{1} << 20, kho::u64{1} << 63, ~kho::u64{0}}) {
    (void)view->find(i);
    (void)view->find_after(i);
    (void)view->entry_at(i);
    for (auto m : {kho::xa_mark::mark0, kho::xa_mark::mark1, kho::xa_mark::mark2}) (void)view->find_marked(i, m);
  }
  return 0;
}
