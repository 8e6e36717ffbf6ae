// Differential fuzz target: a byte stream decoded into preserve/unpreserve operations,
// applied to the writer and to a std::set oracle; any divergence traps.
#include <kho/preserve_bitmap.hpp>

#include "fuzz_pages.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <utility>
#include <vector>

namespace {

kho::fuzz::pages<16 << 20> arena;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kho;
  flat_memory mem(phys_addr{u64{1} << 40}, arena.size, arena);
  bump_page_source<flat_memory> pages(mem, mem.base(), mem.end());
  auto tree = preserve_bitmap<decltype(pages)>::create(pages, (size & 1) != 0);
  if (!tree) return 0;
  std::set<std::pair<u64, unsigned>> oracle;
  for (size_t i = 0; i + 4 <= size; i += 4) {
    const unsigned o = data[i] % 20;
    // Blocks stay below 2^39, clear of the tree's own pages at 2^40.
    const u64 slot = (u64{data[i + 1]} | u64{data[i + 2]} << 8) & ((u64{1} << std::min(10u, 27 - o)) - 1);
    const u64 pa = slot << (12 + o);
    const bool add = (data[i + 3] & 1) != 0;
    const status s = add ? tree->preserve(phys_addr{pa}, order{o}) : tree->unpreserve(phys_addr{pa}, order{o});
    const bool present = oracle.count({pa, o}) != 0;
    if (add && s.code() != (present ? errc::already_exists : errc::ok)) __builtin_trap();
    if (!add && s.code() != (present ? errc::ok : errc::not_found)) __builtin_trap();
    if (add) oracle.insert({pa, o}); else oracle.erase({pa, o});
  }
  // The walk (below the tree's own pages at 2^40) matches the oracle's coalesced spans.
  std::vector<std::pair<u64, u64>> spans, walked;
  for (auto [pa, o] : oracle) spans.emplace_back(pa, pa + (u64{4096} << o));
  std::sort(spans.begin(), spans.end());
  std::vector<std::pair<u64, u64>> merged;
  for (auto [s, e] : spans) {
    if (!merged.empty() && s <= merged.back().second) merged.back().second = std::max(merged.back().second, e);
    else merged.emplace_back(s, e);
  }
  tree->for_each_range(phys_addr{0}, phys_addr{u64{1} << 40},
                       [&](phys_addr s, u64 n) { walked.emplace_back(s.value, s.value + n); });
  if (walked != merged) __builtin_trap();
  return 0;
}
