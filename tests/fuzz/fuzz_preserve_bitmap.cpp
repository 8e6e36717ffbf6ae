// Fuzz target: the radix preservation bitmap reader, the walk, both restores (which
// must agree) and the deep checksum.
#include <kho/preserve_bitmap.hpp>
#include <kho/restore.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

#include <vector>

namespace {

kho::fuzz::pages<8 << 20> boot_memory;
kho::fuzz::pages<8 << 20> scratch_memory;  // the visited set of node pages

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kho::fuzz::image img(data, size);
  std::vector<kho::u64> nodes(img.size() / 4096 + 1);
  kho::flat_memory scratch_mem(kho::phys_addr{kho::u64{1} << 46}, scratch_memory.size, scratch_memory);
  kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  auto view = kho::attach_preserve_bitmap(img.memory(), img.root(), scratch, nodes);
  if (!view) return 0;
  img.arm();
  kho::u64 ranges = 0, last_end = 0;
  view->for_each_range([&](kho::phys_addr s, kho::u64 n) {
    if (ranges != 0 && s.value <= last_end) __builtin_trap();  // ascending and coalesced
    last_end = s.value + n;
    ++ranges;
  });
  kho::u64 blocks = 0;
  view->for_each_block([&](kho::phys_addr, kho::order) { return ++blocks < (1u << 16); });
  (void)view->deep_checksum();
  (void)view->is_preserved(kho::phys_addr{0x1000});
  if (blocks < (1u << 12)) {  // naive restore is quadratic: keep inputs fast
    kho::flat_memory boot(kho::phys_addr{kho::u64{1} << 44}, boot_memory.size, boot_memory);
    kho::bump_page_source<kho::flat_memory> pages(boot, boot.base(), boot.end());
    auto naive = kho::memblock_model<decltype(pages)>::create(pages);
    auto linear = kho::memblock_model<decltype(pages)>::create(pages);
    if (!naive || !linear) return 0;
    if (!kho::restore_naive(*view, *naive) || !kho::restore_linear(*view, *linear)) return 0;
    if (naive->size() != linear->size()) __builtin_trap();
    for (kho::u64 i = 0; i < naive->size(); ++i)
      if ((*naive)[i].base != (*linear)[i].base || (*naive)[i].size != (*linear)[i].size) __builtin_trap();
  }
  return 0;
}
