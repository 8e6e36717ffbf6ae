// Restore scalability: preserve throughput, the merged address-order walk, and the
// restore strategies of restore.hpp against today's kernel:
//   RestoreNaive         one reserve per block in tree order through memblock_kernel
//                        (the kernel's memblock_add_range: count pass once the array
//                        is half full, insert pass, merge, doublings; 24-byte regions)
//   RestoreNaiveOnePass  the same order through memblock_model's one-pass reserve:
//                        cheaper than the kernel, kept to show by how much
//   RestoreLinear        the merged walk appended region by region, array doubling
//   RestoreAtBound       the array sized once, one leaf scan storing regions
// and the bound: reading every leaf word of the tree once.
//
// Boot memory (where memblock's arrays live) is touched once before timing, so page
// faults are not measured: the next kernel's direct map has none. Every restore reports
// wall-clock time (UseRealTime), as does everything it is compared with in the README.
// No two-thread variant: restore is bound by memory writes, which a second thread did
// not speed up on the machine these figures come from (bench/README.md).
//
// Patterns (bench_trees.hpp): scattered, runs, mixed. Space: 64 GiB, 1 TiB, 16 n pages
// (scattered_1in16: constant density, for the linearity fit), or 16 TiB
// for the 2^26-block scale family (256 GiB of 4 KiB pages; 0.5 GiB of tree, a 1 GiB
// region array).
#include <kho/memblock_kernel.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/restore.hpp>

#include "bench_trees.hpp"

#include <benchmark/benchmark.h>

#include <type_traits>

namespace {

using namespace kho;
using namespace kho::bench;

void BM_Preserve(benchmark::State& state) {
  const u64 n = static_cast<u64>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    auto memory = std::make_unique<bench_memory>(u64{1} << 30);
    auto tree = preserve_bitmap<bump_page_source<flat_memory>>::create(memory->pages, false);
    state.ResumeTiming();
    generate(pattern_of(state), n, space_of(state), [&](phys_addr pa, order o) {
      benchmark::DoNotOptimize(tree->preserve(pa, o).ok());
    });
    state.counters["tree_bytes_per_block"] = static_cast<double>(tree->node_count() * 4096) / static_cast<double>(n);
    state.PauseTiming();
    memory.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
}

void BM_Walk(benchmark::State& state) {
  const built_tree& t = tree_for(pattern_of(state), static_cast<u64>(state.range(0)), space_of(state));
  u64 ranges = 0;
  for (auto _ : state) {
    ranges = 0;
    t.tree->for_each_range([&](phys_addr s, u64 n) { benchmark::DoNotOptimize(s.value + n); ++ranges; });
  }
  state.counters["ranges_per_s"] = benchmark::Counter(static_cast<double>(ranges), benchmark::Counter::kIsIterationInvariantRate);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(t.tree->node_count() * 4096));
  state.SetComplexityN(state.range(0));
}

void BM_LeafReadBound(benchmark::State& state) {
  const built_tree& t = tree_for(pattern_of(state), static_cast<u64>(state.range(0)), space_of(state));
  for (auto _ : state) {
    u64 acc = 0;
    for (u64 leaf : t.leaves) {
      const u64* w = static_cast<const u64*>(t.memory.mem.to_virt(phys_addr{leaf}, 4096));
      for (u64 i = 0; i < 512; ++i) acc += w[i];
    }
    benchmark::DoNotOptimize(acc);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(t.leaves.size() * 4096));
  state.SetComplexityN(state.range(0));
}

enum strategy { naive_kernel, naive_one_pass, linear, at_bound };

template <class Memblock>
status run_strategy(strategy s, const preserve_bitmap_view<flat_memory>& view, Memblock& m) {
  if constexpr (std::is_same_v<Memblock, memblock_kernel<bump_page_source<flat_memory>>>) {
    return restore_naive(view, m);
  } else {
    switch (s) {
      case naive_one_pass: return restore_naive(view, m);
      case linear: return restore_linear(view, m);
      default: return restore_at_bound(view, m);
    }
  }
}

template <strategy S>
void BM_Restore(benchmark::State& state) {
  const built_tree& t = tree_for(pattern_of(state), static_cast<u64>(state.range(0)), space_of(state));
  auto view = t.view();
  bench_memory& boot = boot_memory();
  using memblock_type = std::conditional_t<S == naive_kernel, memblock_kernel<bump_page_source<flat_memory>>,
                                           memblock_model<bump_page_source<flat_memory>>>;
  u64 regions = 0, doublings = 0;
  auto once = [&] {
    auto memblock = memblock_type::create(boot.pages);
    if (!memblock) return status{memblock.err()};
    const status s = run_strategy(S, view, *memblock);
    regions = memblock->size();
    doublings = memblock->doublings();
    return s;
  };
  // Touch the arrays once (naive ones are small: at most 2^16 regions).
  if (S != naive_kernel && S != naive_one_pass) (void)once();
  for (auto _ : state) {
    const status s = once();
    if (!s) state.SkipWithError(to_string(s.code()));
  }
  state.counters["regions"] = static_cast<double>(regions);
  state.counters["doublings"] = static_cast<double>(doublings);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(t.blocks));
  state.SetComplexityN(state.range(0));
}

constexpr int64_t gib64 = 36, tib1 = 40, tib16 = 44;

void preserve_args(benchmark::internal::Benchmark* b) {
  for (int64_t p : {scattered, runs, mixed})
    for (int64_t n = 1 << 10; n <= 1 << 20; n <<= 5) b->Args({n, p, tib1});
}

// Each (pattern, space) is its own family so that each complexity fit is its own.
#define KHO_ARGS(pat, space, lo, hi) \
  ArgNames({"n", "pattern", "space_log2"})->RangeMultiplier(4)->Ranges({{lo, hi}, {pat, pat}, {space, space}})
#define KHO_RESTORE_FAMILY(name, pat, space, max_n, naive_max_n)                                             \
  BENCHMARK(BM_Walk)->Name("Walk/" name)->KHO_ARGS(pat, space, 1 << 10, max_n)                                \
      ->Complexity(benchmark::oN)->Unit(benchmark::kMillisecond)->UseRealTime();                              \
  BENCHMARK(BM_LeafReadBound)->Name("LeafReadBound/" name)->KHO_ARGS(pat, space, 1 << 10, max_n)             \
      ->Complexity(benchmark::oN)->Unit(benchmark::kMillisecond)->UseRealTime();                              \
  BENCHMARK(BM_Restore<at_bound>)->Name("RestoreAtBound/" name)->KHO_ARGS(pat, space, 1 << 10, max_n)         \
      ->Complexity(benchmark::oN)->Unit(benchmark::kMillisecond)->UseRealTime();                              \
  BENCHMARK(BM_Restore<linear>)->Name("RestoreLinear/" name)->KHO_ARGS(pat, space, 1 << 10, max_n)            \
      ->Complexity(benchmark::oN)->Unit(benchmark::kMillisecond)->UseRealTime();                              \
  BENCHMARK(BM_Restore<naive_kernel>)->Name("RestoreNaive/" name)->KHO_ARGS(pat, space, 1 << 10, naive_max_n) \
      ->Complexity(benchmark::oNSquared)->Unit(benchmark::kMillisecond)->UseRealTime();                       \
  BENCHMARK(BM_Restore<naive_one_pass>)->Name("RestoreNaiveOnePass/" name)                                    \
      ->KHO_ARGS(pat, space, 1 << 10, naive_max_n)->Complexity(benchmark::oNSquared)                          \
      ->Unit(benchmark::kMillisecond)->UseRealTime()

KHO_RESTORE_FAMILY("scattered_64GiB", scattered, gib64, 1 << 22, 1 << 16);
KHO_RESTORE_FAMILY("scattered_1TiB", scattered, tib1, 1 << 24, 1 << 16);
KHO_RESTORE_FAMILY("runs_1TiB", runs, tib1, 1 << 24, 1 << 16);
KHO_RESTORE_FAMILY("mixed_1TiB", mixed, tib1, 1 << 24, 1 << 16);

// Constant density: n scattered pages over 16 n pages (space grows with n), so the
// cost has no fixed part (over a fixed space every n from 2^14 up reads all the
// leaves) and an oN fit is a fair test of linearity.
void dense_scaled_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "pattern", "space_log2"});
  for (int64_t lg = 10; lg <= 24; lg += 2) b->Args({int64_t{1} << lg, scattered, lg + 4 + 12});
}
#define KHO_SCALED(bm, name)                                                                   \
  BENCHMARK(bm)->Name(name "/scattered_1in16")->Apply(dense_scaled_args)                       \
      ->Complexity(benchmark::oN)->Unit(benchmark::kMillisecond)->UseRealTime()
KHO_SCALED(BM_Walk, "Walk");
KHO_SCALED(BM_Restore<at_bound>, "RestoreAtBound");
KHO_SCALED(BM_Restore<linear>, "RestoreLinear");

// Scale: 2^26 scattered 4 KiB pages (256 GiB) over 16 TiB; one size, no fit.
#define KHO_SCALE(bm, name)                                                                              \
  BENCHMARK(bm)->Name(name "/scattered_16TiB")->ArgNames({"n", "pattern", "space_log2"})                 \
      ->Args({1 << 26, scattered, tib16})->Unit(benchmark::kMillisecond)->UseRealTime()
KHO_SCALE(BM_Walk, "Walk");
KHO_SCALE(BM_LeafReadBound, "LeafReadBound");
KHO_SCALE(BM_Restore<at_bound>, "RestoreAtBound");
KHO_SCALE(BM_Restore<linear>, "RestoreLinear");

BENCHMARK(BM_Preserve)->ArgNames({"n", "pattern", "space_log2"})->Apply(preserve_args)
    ->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace
