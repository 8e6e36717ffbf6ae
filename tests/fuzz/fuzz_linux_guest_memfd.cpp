// Fuzz target: a guest_memfd_luo_v1 state at the root (kho/linux/guest_memfd.hpp).
// After a successful attach every read is through the armed memory; the folios handed
// back (pfn-0 records skipped) must have known flags, indices strictly increasing and
// inside the file; the pages are claimed once each.
#include <kho/linux/guest_memfd.hpp>
#include <kho/page_owners.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

namespace {

kho::fuzz::pages<16 << 20> scratch_memory;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kho::upstream;
  kho::fuzz::image img(data, size);
  auto g = attach_guest_memfd<12>(img.memory(), img.root());
  if (!g) return 0;
  img.arm();
  if ((g->flags() & ~guest_memfd_known_flags) != 0 || g->size() == 0 || (g->size() & 4095) != 0) __builtin_trap();
  kho::u64 n = 0, last = 0;
  g->for_each_folio([&](const guest_memfd_folio& f) {
    if (f.frame.value == 0 || (f.flags & ~guest_memfd_folio_uptodate) != 0 || f.index >= (g->size() >> 12) ||
        (n > 0 && f.index <= last))
      __builtin_trap();
    last = f.index;
    ++n;
  });
  if (n > g->nr_folios()) __builtin_trap();
  kho::flat_memory scratch_mem(kho::phys_addr{kho::u64{1} << 46}, scratch_memory.size, scratch_memory);
  kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  kho::page_owners<decltype(scratch)> owners(scratch);
  (void)g->claim_pages(owners);
  return 0;
}
