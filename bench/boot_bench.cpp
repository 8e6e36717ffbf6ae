// From attach to "every free page handed to the page allocator", three ways, for n
// scattered 4 KiB pages over 1 TiB of RAM:
//   BootSideStep   attach, then holes_memblock.free_all: the hole finder's sweep hands
//                  every hole to the buddy model; memblock.reserved is never filled
//   BootSideStepWords
//                  attach, then holes_memblock.free_all_words into bitmap_buddy zones
//                  (one per RAM range): leaf words complemented into the free bitmaps,
//                  then the per-order counts (bitmap_buddy's finishing pass)
//   BootAtBound    attach, restore_at_bound, then free_all_regions over the array
//   BootLinear     attach, restore_linear (appends, doublings), then free_all_regions
//   BootNaive      attach, restore_naive through memblock_kernel (today's kernel),
//                  then free_all_regions; only up to 2^16 blocks (it is quadratic)
// and the yardsticks: the merged walk alone (Walk) and attach alone (Attach).
//
// RAM is [0, 1 TiB) plus the 2 GiB the tree lives in (its pages are busy); one reserved
// range stands for the kernel image. The buddy model counts blocks per order and its
// hook stores each block's pfn and order once, where a kernel would write the block's
// struct page and link it.
// memblock's arrays come from boot memory touched before timing.
#include <kho/bitmap_buddy.hpp>
#include <kho/buddy_model.hpp>
#include <kho/holes_memblock.hpp>
#include <kho/memblock_kernel.hpp>
#include <kho/restore.hpp>

#include "bench_trees.hpp"

#include <benchmark/benchmark.h>

#include <span>
#include <vector>

namespace {

using namespace kho;
using namespace kho::bench;

constexpr unsigned tib1 = 40;
using source_type = bump_page_source<flat_memory>;

// Where a kernel writes the block's struct page: one store, no chain through memory.
struct last_block_hook {
  u64 last = 0;
  void operator()(pfn f, order o) { last = f.value | o.value; }
};

struct boot_setup {
  const built_tree& t;
  phys_range ram[2];
  phys_range reserved[1] = {{phys_addr{u64{16} << 20}, phys_addr{u64{80} << 20}}};

  explicit boot_setup(u64 n)
      : t(tree_for(scattered, n, tib1)),
        ram{{phys_addr{0}, phys_addr{u64{1} << tib1}}, {t.memory.mem.base(), t.memory.mem.end()}} {}
};

enum path { side_step, at_bound, linear, naive };

template <path P>
void BM_Boot(benchmark::State& state) {
  const boot_setup b(static_cast<u64>(state.range(0)));
  bench_memory& boot = boot_memory();
  u64 sum = 0, pages = 0, blocks = 0, regions = 0;
  auto once = [&] {
    auto view = b.t.view();  // attach: validates the whole tree
    buddy_model<10, last_block_hook> buddy;
    if constexpr (P == side_step) {
      phys_range storage[1];
      auto mb = make_holes_memblock(view, b.ram, b.reserved, storage);
      if (!mb || !mb->free_all(buddy)) std::abort();
    } else {
      using memblock_type = std::conditional_t<P == naive, memblock_kernel<source_type>, memblock_model<source_type>>;
      auto m = memblock_type::create(boot.pages);
      if (!m || !m->reserve(b.reserved[0].start, b.reserved[0].size())) std::abort();
      status s{};
      if constexpr (P == at_bound)
        s = restore_at_bound(view, *m);
      else if constexpr (P == linear)
        s = restore_linear(view, *m);
      else
        s = restore_naive(view, *m);
      if (!s) std::abort();
      regions = m->size();
      free_all_regions(b.ram, *m, buddy);
    }
    sum += buddy.hook().last;
    pages = buddy.free_pages();
    blocks = buddy.blocks();
  };
  if (P != naive) once();  // touch memblock's arrays before timing
  for (auto _ : state) once();
  benchmark::DoNotOptimize(sum);
  state.counters["free_pages"] = static_cast<double>(pages);
  state.counters["buddy_blocks"] = static_cast<double>(blocks);
  state.counters["regions"] = static_cast<double>(regions);
}

// The free bitmaps: one zone per RAM range (1 TiB: 32 MiB of words; the tree's 2 GiB),
// lent by the caller as memblock's arrays are, and touched before timing.
void BM_BootWords(benchmark::State& state) {
  using zone = bitmap_buddy<10>;
  const boot_setup b(static_cast<u64>(state.range(0)));
  static std::vector<u64> words[2];
  pfn bounds[2][2];
  for (int i = 0; i < 2; ++i) {
    bounds[i][0] = pfn{b.ram[i].start.value >> 12};
    bounds[i][1] = pfn{b.ram[i].end.value >> 12};
    words[i].resize(zone::words_for(bounds[i][0], bounds[i][1]));
  }
  u64 pages = 0, blocks = 0;
  auto once = [&] {
    auto view = b.t.view();  // attach: validates the whole tree
    phys_range storage[1];
    auto mb = make_holes_memblock(view, b.ram, b.reserved, storage);
    auto z0 = zone::create(bounds[0][0], bounds[0][1], words[0]);
    auto z1 = zone::create(bounds[1][0], bounds[1][1], words[1]);
    if (!mb || !z0 || !z1) std::abort();
    zone zones[] = {*z0, *z1};
    if (!mb->free_all_words(std::span<zone>(zones))) std::abort();
    pages = zones[0].free_pages() + zones[1].free_pages();  // the finishing passes
    blocks = zones[0].blocks() + zones[1].blocks();
  };
  once();  // touch the words before timing
  for (auto _ : state) once();
  benchmark::DoNotOptimize(pages);
  state.counters["free_pages"] = static_cast<double>(pages);
  state.counters["buddy_blocks"] = static_cast<double>(blocks);
}

void BM_Walk(benchmark::State& state) {
  const boot_setup b(static_cast<u64>(state.range(0)));
  auto view = b.t.view();
  for (auto _ : state) {
    u64 sum = 0;
    view.for_each_range([&](phys_addr s, u64 n) { sum += s.value ^ n; });
    benchmark::DoNotOptimize(sum);
  }
}

void BM_Attach(benchmark::State& state) {
  const boot_setup b(static_cast<u64>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(b.t.view().node_count());
}

void sizes(benchmark::internal::Benchmark* b) {
  b->ArgName("n")->RangeMultiplier(16)->Range(1 << 16, 1 << 24)->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(BM_Walk)->Name("Walk")->Apply(sizes);
BENCHMARK(BM_Attach)->Name("Attach")->Apply(sizes);
BENCHMARK(BM_Boot<side_step>)->Name("BootSideStep")->Apply(sizes);
BENCHMARK(BM_BootWords)->Name("BootSideStepWords")->Apply(sizes);
BENCHMARK(BM_Boot<at_bound>)->Name("BootAtBound")->Apply(sizes);
BENCHMARK(BM_Boot<linear>)->Name("BootLinear")->Apply(sizes);
BENCHMARK(BM_Boot<naive>)->Name("BootNaive")->ArgName("n")->Arg(1 << 16)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
