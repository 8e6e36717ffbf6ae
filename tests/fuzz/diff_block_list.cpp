// Differential fuzz target: push_back and erase (the last entry moves into the hole)
// on the block list and on a std::vector with the same rule; iteration must agree.
#include <kho/block_list.hpp>

#include "fuzz_pages.hpp"

#include <cstdint>
#include <vector>

namespace {

kho::fuzz::pages<16 << 20> arena;

struct record {
  kho::u64 key, payload;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kho;
  flat_memory mem(phys_addr{u64{1} << 40}, arena.size, arena);
  bump_page_source<flat_memory> pages(mem, mem.base(), mem.end());
  block_list<record, bump_page_source<flat_memory>> list(pages);
  std::vector<record> oracle;
  u64 next_key = 1;
  for (size_t p = 0; p + 3 <= size; p += 3) {
    const unsigned count = 1 + data[p + 1] % 64;  // bursts cross block boundaries
    if (data[p] % 3 != 0) {
      for (unsigned i = 0; i < count; ++i) {
        const record r{next_key++, data[p + 2]};
        if (!list.push_back(r)) __builtin_trap();
        oracle.push_back(r);
      }
    } else if (!oracle.empty()) {
      const u64 victim = (u64{data[p + 1]} << 8 | data[p + 2]) % oracle.size();
      phys_addr at{};
      u64 i = 0;
      for (auto it = list.begin(); it != list.end(); ++it, ++i)
        if (i == victim) at = it.phys();
      if (!list.erase(at)) __builtin_trap();
      oracle[victim] = oracle.back();
      oracle.pop_back();
    } else if (list.erase(phys_addr{u64{1} << 40}).code() != errc::invalid_argument) {
      __builtin_trap();
    }
  }
  if (list.size() != oracle.size()) __builtin_trap();
  u64 i = 0;
  for (const record& r : list) {
    if (i >= oracle.size() || r.key != oracle[i].key || r.payload != oracle[i].payload) __builtin_trap();
    ++i;
  }
  if (i != oracle.size()) __builtin_trap();
  return 0;
}
