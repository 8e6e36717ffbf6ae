// Fuzz target: HugeTLB's state at the root, read as the hugetlb-v1 FLB and as a
// huge-memfd-v1 file (kho/linux/hugetlb.hpp). After a successful attach every read is
// through the armed memory (a read outside it traps); the FLB's entries must have
// distinct plausible orders, the file's folios must be aligned to its order, in order
// without overlap and inside the file; the pages are claimed once each.
#include <kho/linux/hugetlb.hpp>
#include <kho/page_owners.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

namespace {

kho::fuzz::pages<16 << 20> scratch_memory;

template <class Claim>
void claim(Claim&& c) {
  kho::flat_memory scratch_mem(kho::phys_addr{kho::u64{1} << 46}, scratch_memory.size, scratch_memory);
  kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  kho::page_owners<decltype(scratch)> owners(scratch);
  (void)c(owners);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kho::upstream;
  {
    kho::fuzz::image img(data, size);
    if (auto flb = attach_hugetlb_flb<12>(img.memory(), img.root())) {
      img.arm();
      if (flb->nr_hstates() > hugetlb_max_hstates) __builtin_trap();
      for (kho::u64 i = 0; i < flb->nr_hstates(); ++i) {
        if (!hugetlb_order_plausible<12>(flb->hstate(i).order)) __builtin_trap();
        for (kho::u64 j = 0; j < i; ++j)
          if (flb->hstate(j).order == flb->hstate(i).order) __builtin_trap();
      }
      claim([&](auto& owners) { return flb->claim_pages(owners); });
    }
  }
  kho::fuzz::image img(data, size);
  auto file = attach_huge_memfd<12>(img.memory(), img.root());
  if (!file) return 0;
  img.arm();
  const kho::u64 span = kho::u64{1} << file->folio_order();
  kho::u64 n = 0, clear_from = 0;
  file->for_each_folio([&](const huge_folio& f) {
    if (f.frame.value == 0 || (f.frame.value & (span - 1)) != 0 || (f.index & (span - 1)) != 0 ||
        f.index < clear_from || f.index + span > (file->size() >> 12))
      __builtin_trap();
    clear_from = f.index + span;
    ++n;
  });
  if (n != file->nr_folios()) __builtin_trap();
  claim([&](auto& owners) { return file->claim_pages(owners); });
  return 0;
}
