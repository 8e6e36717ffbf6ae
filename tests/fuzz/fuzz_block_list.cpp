// Fuzz target: the KHO serialization block list reader (Linux's {next, count} pages).
#include <kho/block_list.hpp>

#include "fuzz_input.hpp"

namespace {

struct record {
  kho::u64 a, b;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kho::fuzz::image img(data, size);
  auto view = kho::attach_block_list<record, 12>(img.memory(), img.root(), kho::linux_max_blocks);
  if (!view) return 0;
  img.arm();
  kho::u64 n = 0, sum = 0;
  for (const record& r : *view) {
    sum += r.a ^ r.b;
    ++n;
  }
  if (n != view->size()) __builtin_trap();
  kho::u64 per_block = 0;
  view->for_each_block([&](kho::phys_addr, const record*, kho::u64 count) { per_block += count; });
  if (per_block != n) __builtin_trap();
  return static_cast<int>(sum & 0);
}
