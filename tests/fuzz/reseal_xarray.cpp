// Structure-aware fuzz target: hostile xarrays behind a valid checksum.
//
// Input: [n][n build ops of 4 bytes][mutations of 8 bytes...].
//   build op  a b c d: a%4 = store / fill (a run of 64 + b stores) / store_range of
//             order a/4%10 / set mark a/4%3; index = b | c << 8 (| d << 56 when d is odd:
//             far, sparse keys)
//   mutation  t p o0 o1 v0 v1 v2 v3: on node page p (every page the writer left, the root
//             block included) at byte offset o (16 bits, wrapped to the page):
//             t%4 = flip bit v0%8 / set byte v0 / set u64 (v0..v3 sign-extended) / point
//             the slot at o of page p (a branch, when it is one) at page v0 with kind v1%4
//             and run v2%8
// Then the root block is re-sealed (counts, address sums, checksum recomputed from the
// links as a hostile writer would) and attached. A view that attaches is trusted from
// then on: reads outside memory trap (the memory is armed), iteration must be ascending
// and agree with load, claim_pages must find every page exactly once, and the view
// adopted as a writer must take stores without disturbing other entries.
#include <kho/page_owners.hpp>
#include <kho/xarray.hpp>

#include "fuzz_pages.hpp"
#include "../xarray_reseal.hpp"
#include "fuzz_input.hpp"

#include <cstdint>
#include <cstring>
#include <vector>

namespace {

using namespace kho;
using geo = detail::xa_geometry<u64, 12>;

kho::fuzz::pages<8 << 20> arena;
kho::fuzz::pages<4 << 20> scratch_memory;
constexpr u64 arena_base = u64{1} << 40;

u64 used = 0;  // bytes of the arena the previous input dirtied

void build(xarray<u64, 12, bump_page_source<fuzz::guarded_memory>>& x, const uint8_t* ops, size_t n) {
  for (size_t k = 0; k < n; ++k) {
    const uint8_t* op = ops + 4 * k;
    u64 index = u64{op[1]} | u64{op[2]} << 8;
    if (op[3] & 1) index |= u64{op[3]} << 56;
    const u64 value = (index << 4) | 1;
    switch (op[0] % 4) {
      case 0: (void)x.store(index, value); break;
      case 1:
        for (u64 i = 0; i < 64u + op[1]; ++i) (void)x.store(index + i, value + (i << 4));
        break;
      case 2: {
        const unsigned o = (op[0] / 4) % 10;
        (void)x.store_range(index & ~((u64{1} << o) - 1), order{o}, value);
        break;
      }
      default: (void)x.set_mark(index, static_cast<xa_mark>((op[0] / 4) % 3)); break;
    }
  }
  x.seal();
}

void mutate(const std::vector<u64>& pages, const uint8_t* m) {
  const u64 pa = pages[m[1] % pages.size()];
  unsigned char* p = arena + (pa - arena_base);
  const u64 off = (u64{m[2]} | u64{m[3]} << 8) % geo::page;
  switch (m[0] % 4) {
    case 0: p[off] ^= static_cast<unsigned char>(1u << (m[4] % 8)); break;
    case 1: p[off] = m[4]; break;
    case 2: {
      int32_t v;
      std::memcpy(&v, m + 4, 4);
      detail::put64(p + (off & ~u64{7}), static_cast<u64>(static_cast<int64_t>(v)));
      break;
    }
    default: {
      const u64 j = off % geo::fanout;
      const u64 target = pages[m[4] % pages.size()];
      detail::put64(p + geo::slots_off + 8 * j, target | (m[5] % 4) | (u64{m[6] % 8u} << detail::xa_run_shift));
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t n = data[0];
  if (size < 1 + 4 * n) return 0;
  std::memset(arena, 0, used);  // runs do not see each other's bytes
  bool armed = false;
  const fuzz::guarded_memory mem{flat_memory(phys_addr{arena_base}, arena.size, arena), &armed};
  bump_page_source<fuzz::guarded_memory> pages(mem, phys_addr{arena_base}, phys_addr{arena_base + arena.size});
  using writer = xarray<u64, 12, bump_page_source<fuzz::guarded_memory>>;
  auto x = writer::create(pages);
  if (!x) return 0;
  build(*x, data + 1, n);
  used = pages.high_water().value - arena_base;

  // Every page the writer touched (nodes, freed nodes, the root block) is a target.
  std::vector<u64> targets;
  for (u64 pa = arena_base; pa < pages.high_water().value; pa += geo::page) targets.push_back(pa);
  for (size_t at = 1 + 4 * n; at + 8 <= size; at += 8) mutate(targets, data + at);
  test::reseal_xarray<u64>(mem.inner, x->root(), u64{1} << 16);

  flat_memory scratch_mem(phys_addr{u64{1} << 46}, scratch_memory.size, scratch_memory);
  bump_page_source<flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  auto view = attach_xarray<u64, 12>(mem, x->root(), scratch);
  if (!view) {
    if (*view.err().loc.structure == '\0') __builtin_trap();  // every refusal says where
    return 0;
  }
  armed = true;
  if (scratch.pages_in_use() != 0) __builtin_trap();  // attach returned its scratch

  // Iteration is ascending, disjoint and agrees with load and entry_at.
  std::vector<xarray_entry<u64>> seen;
  u64 last = 0;
  bool first = true;
  view->for_each(0, ~u64{0}, [&](const xarray_entry<u64>& e) {
    if (!first && e.index <= last) __builtin_trap();
    first = false;
    last = e.last();
    auto loaded = view->load(e.last());
    if (!loaded || *loaded != e.value) __builtin_trap();
    auto whole = view->entry_at(e.index);
    if (!whole || whole->index != e.index || whole->span.value != e.span.value) __builtin_trap();
    if (seen.size() < 4096) seen.push_back(e);
    return seen.size() < 100000;
  });
  if (seen.size() < 4096 && seen.size() != view->count()) __builtin_trap();
  for (auto m : {xa_mark::mark0, xa_mark::mark1, xa_mark::mark2}) {
    u64 marked = 0;
    view->for_each_marked(0, ~u64{0}, m, [&](const xarray_entry<u64>& e) {
      if (!e.marked(m)) __builtin_trap();
      return ++marked < 100000;
    });
  }

  // A validated view reaches each page once.
  {
    page_owners<bump_page_source<flat_memory>> owners(scratch);
    if (!view->claim_pages(owners)) __builtin_trap();
    if (owners.size() != view->nodes() + 1) __builtin_trap();
  }

  // Adopted, the map takes a store without changing any other entry.
  bump_page_source<fuzz::guarded_memory> fresh(mem, pages.high_water(), phys_addr{arena_base + arena.size});
  used = arena.size;  // the writer may allocate anywhere above
  auto w = writer::adopt(*view, fresh);
  if (!w) __builtin_trap();
  const u64 probe = seen.empty() ? 12345 : seen[seen.size() / 2].index;
  if (!w->store(probe, 0xfeed0001)) return 0;  // out_of_memory is an answer
  for (const auto& e : seen) {
    if (e.index <= probe && probe <= e.last()) continue;
    auto loaded = w->load(e.index);
    if (!loaded || *loaded != e.value) __builtin_trap();
  }
  if (*w->load(probe) != 0xfeed0001) __builtin_trap();
  return 0;
}
