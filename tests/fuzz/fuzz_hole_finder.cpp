// Fuzz target: hole finder queries over an attached preserved-memory map. Query
// parameters come from a hash of the input. Every hole returned must lie in RAM and in
// the window, and contain no preserved byte and no tree page.
#include <kho/checksum.hpp>
#include <kho/hole_finder.hpp>
#include <kho/preserve_bitmap.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

#include <vector>

namespace {

kho::fuzz::pages<8 << 20> scratch_memory;  // the visited set of node pages

template <class View>
void must_be_free(const View& view, kho::phys_range hole, kho::phys_range window) {
  if (hole.empty() || hole.start < window.start || hole.end > window.end) __builtin_trap();
  view.for_each_range(hole.start, hole.end, [](kho::phys_addr, kho::u64) -> bool { __builtin_trap(); });
  for (kho::u64 n : view.nodes())
    if (n + 4096 > hole.start.value && n < hole.end.value) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kho::fuzz::image img(data, size);
  std::vector<kho::u64> nodes(img.size() / 4096 + 1);
  kho::flat_memory scratch_mem(kho::phys_addr{kho::u64{1} << 46}, scratch_memory.size, scratch_memory);
  kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  auto view = kho::attach_preserve_bitmap(img.memory(), img.root(), scratch, nodes);
  if (!view) return 0;
  img.arm();
  const kho::u64 h = kho::checksum(data, size);
  // RAM: two ranges with a gap, somewhere in the low 64 GiB.
  const kho::u64 a = (h & 0xfff) << 20, b = a + (((h >> 12) & 0xff) + 1) * (kho::u64{1} << 20);
  const kho::phys_range ram[] = {{kho::phys_addr{a}, kho::phys_addr{b}},
                                 {kho::phys_addr{b + (kho::u64{1} << 21)}, kho::phys_addr{b + (kho::u64{1} << 30)}}};
  auto finder = kho::make_hole_finder(*view, ram);
  if (!finder) __builtin_trap();  // the RAM list above is valid
  const kho::phys_range window{ram[0].start, ram[1].end};
  const kho::u64 want = ((h >> 20) & 0x3ff) * 4096;
  const kho::u64 align = kho::u64{1} << (12 + ((h >> 30) % 20));
  if (auto r = finder->largest_hole(window)) must_be_free(*view, *r, window);
  if (auto r = finder->first_fit(want, align, window)) {
    must_be_free(*view, *r, window);
    if (r->size() != want || r->start.value % align != 0) __builtin_trap();
  }
  if (auto r = finder->last_fit(want, align, window)) must_be_free(*view, *r, window);
  (void)finder->for_each_hole(window, want, [&](kho::phys_addr start, kho::u64 bytes) {
    must_be_free(*view, kho::phys_range{start, start + bytes}, window);
    return true;
  });
  kho::phys_range pieces[4];
  if (auto plan = finder->grow_scratch(want * 8, pieces))
    for (kho::u64 i = 0; i < plan->pieces; ++i) must_be_free(*view, pieces[i], window);
  return 0;
}
