// Fuzz target: the x86 boot hand-off. The setup_data list is walked from the root
// (the image's base in the seeds) to its SETUP_KEXEC_KHO node; a kho_data that
// check_kho_boot accepts has its scratch array read again through the armed memory (a
// read outside it traps), and its ranges are checked against a fixed preserve_bitmap:
// an accepted range must hold none of its pages, a refused one must hold one.
#include <kho/linux/x86_boot.hpp>
#include <kho/preserve_bitmap.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

#include <cstring>

namespace {

using kho::phys_addr;
using kho::u64;

kho::fuzz::pages<1 << 20> bitmap_memory;

using source = kho::bump_page_source<kho::flat_memory>;

// Preserved blocks, some inside the image (base + offset), one far above it.
struct preserved_block {
  u64 pa;
  unsigned order;
};
constexpr preserved_block preserved[] = {
    {kho::fuzz::image_base + 0x8000, 0},
    {kho::fuzz::image_base + 0x20000, 3},
    {kho::fuzz::image_base + 0x100000, 0},
    {u64{1} << 40, 9},
};

// Built once: the map is input-independent, and every run only reads it.
const kho::preserve_bitmap<source>& fixed_map() {
  static kho::flat_memory mem(phys_addr{u64{1} << 46}, bitmap_memory.size, bitmap_memory);
  static source pages(mem, mem.base(), mem.end());
  static auto map = [] {
    auto m = kho::preserve_bitmap<source>::create(pages, false);
    if (!m) __builtin_trap();
    for (const preserved_block& b : preserved)
      if (!m->preserve(phys_addr{b.pa}, kho::order{b.order})) __builtin_trap();
    return std::move(*m);
  }();
  return map;
}

bool overlaps_preserved(u64 a, u64 n) {
  for (const preserved_block& b : preserved) {
    const u64 bytes = u64{4096} << b.order;
    if (a < b.pa + bytes && b.pa < a + n) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kho::upstream;
  const auto& map = fixed_map();
  kho::fuzz::image img(data, size);
  const auto mem = img.memory();
  auto k = find_kho_data(mem, img.root());
  if (!k) return 0;
  if (!check_kho_boot(mem, *k)) return 0;
  img.arm();
  const u64 count = kho_scratch_count(k->data);
  const phys_addr array{k->data.scratch_addr.get()};
  bool any_preserved = false;
  for (u64 i = 0; i < count; ++i) {
    kho_scratch e;
    std::memcpy(&e, mem.to_virt(array + i * sizeof e, sizeof e), sizeof e);
    const u64 a = e.addr.get(), n = e.size.get();
    if (n == 0 || (a & 4095) != 0 || (n & 4095) != 0 || a + n < a) __builtin_trap();
    any_preserved = any_preserved || overlaps_preserved(a, n);
  }
  const kho::status s = check_scratch_unpreserved(mem, k->data, map);
  if (bool(s) == any_preserved) __builtin_trap();
  if (!s && s.code() != kho::errc::aliased) __builtin_trap();
  return 0;
}
