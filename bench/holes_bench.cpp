// Hole finder on 1 TiB of RAM: largest_hole, first_fit, last_fit and grow_scratch
// against (a) the naive test of every page's bit and (b) the merged walk alone.
//
// Blocks: n scattered over [0, 1 TiB) by a bijective stride per order; of every 65536
// blocks one is 1 GiB (order 18), 1023 are 2 MiB (order 9), the rest 4 KiB pages (at
// 2^22 blocks: 64 GiB, 128 GiB and 16 GiB of them). The tree lives above the RAM (at
// 16 TiB), so its own pages are not in the way.
//
// A scale point runs the full-sweep queries on 2^26 blocks over 16 TiB of RAM.
//
// (a) tests is_preserved() for every page (one descent per order present) on the first
// 4 GiB only: all 2^28 pages of 1 TiB take tens of seconds per pass. Its time scales
// linearly with pages (it does not depend on where blocks are), so the README
// extrapolates it x256 to the whole TiB; the extrapolation is the README's, not a run.
#include <kho/hole_finder.hpp>
#include <kho/preserve_bitmap.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include <sys/mman.h>

namespace {

using namespace kho;

constexpr u64 tib = u64{1} << 40;
constexpr u64 naive_window = u64{4} << 30;  // (a) runs on the first 4 GiB

using source_type = bump_page_source<flat_memory>;
using tree_type = preserve_bitmap<source_type>;
using view_type = preserve_bitmap_view<flat_memory>;

/// The tree and its view, built once per block count (building 2^22 blocks takes seconds).
struct machine {
  static constexpr u64 base = u64{1} << 44;
  static constexpr u64 bytes = u64{1} << 30;
  void* virt = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  flat_memory mem{phys_addr{base}, bytes, virt};
  source_type pages{mem, mem.base(), mem.end()};
  std::optional<tree_type> tree;
  std::vector<u64> scratch;
  std::optional<view_type> view;
  const u64 space;
  const phys_range ram[1];
  u64 blocks = 0, ranges = 0;

  machine(u64 n, u64 space_bytes) : space(space_bytes), ram{{phys_addr{0}, phys_addr{space_bytes}}} {
    tree.emplace(std::move(*tree_type::create(pages, false)));
    auto spread = [](u64 i, u64 slots) { return (i * 0x9e3779b97f4a7c15ULL) & (slots - 1); };
    u64 per_order[64]{};
    for (u64 i = 0; i < n; ++i) {
      const unsigned o = i % 65536 == 0 ? 18 : i % 64 == 0 ? 9 : 0;
      const u64 pa = spread(per_order[o]++, space >> (12 + o)) << (12 + o);
      const status s = tree->preserve(phys_addr{pa}, order{o});
      if (!s && s.code() != errc::already_exists) std::abort();
      blocks += s.ok();
    }
    scratch.resize(tree->node_count());
    auto v = attach_preserve_bitmap(mem, tree->root(), pages, scratch);
    if (!v) std::abort();
    view.emplace(*v);
    view->for_each_range([&](phys_addr, u64) { ++ranges; });
  }
  ~machine() { ::munmap(virt, bytes); }

  hole_finder<view_type> finder() const {
    auto f = make_hole_finder(*view, ram);
    if (!f) std::abort();
    return *f;
  }
};

// Every block count's tree stays built (about 40 MiB of tree at 2^22 blocks, 0.6 GiB
// at the 2^26-block scale point over 16 TiB).
const machine& machine_for(u64 n, u64 space = tib) {
  static std::map<std::pair<u64, u64>, std::unique_ptr<machine>> built;
  auto& m = built[{n, space}];
  if (!m) m = std::make_unique<machine>(n, space);
  return *m;
}

// The scale point: 2^26 blocks (256 GiB of them 4 KiB pages) over 16 TiB of RAM.
constexpr u64 tib16 = u64{16} << 40;
u64 space_of(const benchmark::State& state) { return state.range(0) >= (1 << 26) ? tib16 : tib; }

void common_counters(benchmark::State& state, const machine& m) {
  state.counters["blocks"] = static_cast<double>(m.blocks);
  state.counters["ranges_total"] = static_cast<double>(m.ranges);
  state.SetComplexityN(state.range(0));
}

// (b) The merged walk alone over all of RAM: what every full sweep must pay.
void BM_Walk(benchmark::State& state) {
  const machine& m = machine_for(static_cast<u64>(state.range(0)), space_of(state));
  for (auto _ : state) {
    u64 sum = 0;  // a register: DoNotOptimize per range would clobber memory each time
    m.view->for_each_range(phys_addr{0}, phys_addr{m.space}, [&](phys_addr s, u64 size) {
      sum += s.value ^ size;
      return true;
    });
    benchmark::DoNotOptimize(sum);
  }
  common_counters(state, m);
}

void BM_LargestHole(benchmark::State& state) {
  const machine& m = machine_for(static_cast<u64>(state.range(0)), space_of(state));
  auto f = m.finder();
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.largest_hole()->start);
  }
  state.counters["ranges_read"] = static_cast<double>(f.stats().ranges);
  state.counters["hole_KiB"] = static_cast<double>(f.largest_hole()->size() >> 10);
  common_counters(state, m);
}

// (a) Every page's bit, on the first 4 GiB: the longest run of unpreserved pages.
void BM_NaiveLargestPerPage(benchmark::State& state) {
  const machine& m = machine_for(static_cast<u64>(state.range(0)));
  for (auto _ : state) {
    u64 run = 0, best = 0;
    for (u64 pa = 0; pa < naive_window; pa += 4096) {
      run = m.view->is_preserved(phys_addr{pa}) ? 0 : run + 1;
      best = std::max(best, run);
    }
    benchmark::DoNotOptimize(best);
  }
  state.counters["pages"] = static_cast<double>(naive_window >> 12);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(naive_window >> 12));
  common_counters(state, m);
}

// (b') The same sub-window with the finder: the like-for-like ratio to (a).
void BM_LargestHoleFirst4GiB(benchmark::State& state) {
  const machine& m = machine_for(static_cast<u64>(state.range(0)));
  auto f = m.finder();
  const phys_range w{phys_addr{0}, phys_addr{naive_window}};
  for (auto _ : state) benchmark::DoNotOptimize(f.largest_hole(w)->start);
  state.counters["ranges_read"] = static_cast<double>(f.stats().ranges);
  common_counters(state, m);
}

// A small first fit: returns after the first occupied leaves. ranges_read shows it;
// answer_MiB says how far up it had to read (the first GiB holds a 1 GiB block, and
// coalescing it means reading the order-0 leaves beneath it).
constexpr u64 small_fit = u64{64} << 10;

void BM_FirstFitSmall(benchmark::State& state) {
  const machine& m = machine_for(static_cast<u64>(state.range(0)));
  auto f = m.finder();
  for (auto _ : state) benchmark::DoNotOptimize(f.first_fit(small_fit, 4096)->start);
  state.counters["ranges_read"] = static_cast<double>(f.stats().ranges);
  state.counters["answer_MiB"] = static_cast<double>(f.first_fit(small_fit, 4096)->start.value >> 20);
  common_counters(state, m);
}

// (b) for the above: the walk alone up to the answer's end, read in full.
void BM_WalkToFirstFit(benchmark::State& state) {
  const machine& m = machine_for(static_cast<u64>(state.range(0)));
  const phys_addr end = m.finder().first_fit(small_fit, 4096)->end;
  for (auto _ : state) {
    u64 sum = 0;
    m.view->for_each_range(phys_addr{0}, end, [&](phys_addr s, u64 size) {
      sum += s.value ^ size;
      return true;
    });
    benchmark::DoNotOptimize(sum);
  }
  common_counters(state, m);
}

// (a) for the above: every page's bit from 0 until 16 free pages in a row.
void BM_NaiveFirstFitSmallPerPage(benchmark::State& state) {
  const machine& m = machine_for(static_cast<u64>(state.range(0)));
  u64 pages = 0;
  for (auto _ : state) {
    u64 run = 0, pa = 0;
    for (; pa < tib && run < small_fit / 4096; pa += 4096) run = m.view->is_preserved(phys_addr{pa}) ? 0 : run + 1;
    pages = pa >> 12;
    benchmark::DoNotOptimize(pa);
  }
  state.counters["pages"] = static_cast<double>(pages);
  common_counters(state, m);
}

// The worst first fit: one page more than the largest hole, so no hole fits and it
// sweeps all of RAM. Its (b) is BM_Walk.
void BM_FirstFitNone(benchmark::State& state) {
  const machine& m = machine_for(static_cast<u64>(state.range(0)), space_of(state));
  auto f = m.finder();
  const u64 size = f.largest_hole()->size() + 4096;
  u64 found = 0;
  for (auto _ : state) found += f.first_fit(size, 4096).has_value();
  state.counters["found"] = static_cast<double>(found);  // 0: nothing can fit
  state.counters["ranges_read"] = static_cast<double>(f.stats().ranges);
  common_counters(state, m);
}

void BM_LastFitSmall(benchmark::State& state) {
  const machine& m = machine_for(static_cast<u64>(state.range(0)));
  auto f = m.finder();
  for (auto _ : state) benchmark::DoNotOptimize(f.last_fit(small_fit, 4096)->start);
  state.counters["ranges_read"] = static_cast<double>(f.stats().ranges);
  state.counters["walks"] = static_cast<double>(f.stats().walks);
  common_counters(state, m);
}

// Grow scratch by 8 MiB in at most 64 pieces: a full sweep plus a heap of 64.
// (A failed plan shows as pieces=0: this library's complexity fit crashes on a
// benchmark that calls SkipWithError.)
void BM_GrowScratch(benchmark::State& state) {
  const machine& m = machine_for(static_cast<u64>(state.range(0)), space_of(state));
  auto f = m.finder();
  phys_range out[64];
  u64 pieces = 0;
  for (auto _ : state) {
    auto plan = f.grow_scratch(u64{8} << 20, out);
    pieces = plan ? plan->pieces : 0;
    benchmark::DoNotOptimize(out[0].start);
  }
  state.counters["pieces"] = static_cast<double>(pieces);
  common_counters(state, m);
}

void sizes(benchmark::internal::Benchmark* b) {
  b->ArgName("n")->RangeMultiplier(4)->Range(1 << 16, 1 << 22)->Unit(benchmark::kMillisecond);
}

void scale(benchmark::internal::Benchmark* b) {
  b->ArgName("n")->Arg(1 << 26)->Unit(benchmark::kMillisecond)->Iterations(3);
}

BENCHMARK(BM_Walk)->Apply(sizes)->Complexity(benchmark::oN);
BENCHMARK(BM_LargestHole)->Apply(sizes)->Complexity(benchmark::oN);
BENCHMARK(BM_GrowScratch)->Apply(sizes)->Complexity(benchmark::oN);
BENCHMARK(BM_FirstFitNone)->Apply(sizes)->Complexity(benchmark::oN);
BENCHMARK(BM_FirstFitSmall)->Apply(sizes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_WalkToFirstFit)->Apply(sizes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_NaiveFirstFitSmallPerPage)->Apply(sizes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_LastFitSmall)->Apply(sizes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_LargestHoleFirst4GiB)->Apply(sizes);
BENCHMARK(BM_NaiveLargestPerPage)->Apply(sizes)->Iterations(1);
// Named apart so that the complexity fits above stay over 1 TiB.
BENCHMARK(BM_Walk)->Name("BM_Walk_16TiB")->Apply(scale);
BENCHMARK(BM_LargestHole)->Name("BM_LargestHole_16TiB")->Apply(scale);
BENCHMARK(BM_GrowScratch)->Name("BM_GrowScratch_16TiB")->Apply(scale);
BENCHMARK(BM_FirstFitNone)->Name("BM_FirstFitNone_16TiB")->Apply(scale);

}  // namespace
