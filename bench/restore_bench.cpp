// Restore scalability: preserve throughput, the merged address-order walk, naive
// (one memblock reserve per block, today's kernel) vs linear restore, and the bound:
// reading every leaf word of the tree once.
//
// Patterns over a physical address space of 64 GiB or 1 TiB:
//   scattered  distinct order-0 pages spread evenly (a bijective stride over the pages)
//   runs       order-0 pages in runs of 512 (2 MiB of contiguous 4 KiB pages)
//   mixed      1/4096 of the blocks 1 GiB, 1/64 2 MiB, the rest 4 KiB pages, each
//              kind in its own part of the space
#include <kho/preserve_bitmap.hpp>
#include <kho/restore.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <tuple>
#include <vector>

#include <sys/mman.h>

namespace {

using namespace kho;

/// Anonymous memory standing for the pages the tree and memblock live in.
struct bench_memory {
  static constexpr u64 base = u64{1} << 44;  // above both address spaces under test
  u64 size;
  void* virt;
  flat_memory mem;
  bump_page_source<flat_memory> pages;

  explicit bench_memory(u64 bytes)
      : size(bytes),
        virt(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)),
        mem(phys_addr{base}, bytes, virt),
        pages(mem, mem.base(), mem.end()) {}
  ~bench_memory() { ::munmap(virt, size); }
};

enum pattern : int { scattered = 0, runs = 1, mixed = 2 };

/// Calls f(pa, order) for the n blocks of a pattern over 2^space_log2 bytes.
template <class F>
void generate(pattern p, u64 n, unsigned space_log2, F&& f) {
  const u64 space = u64{1} << space_log2;
  // An odd stride is a bijection on a power-of-two number of slots: distinct blocks.
  auto spread = [](u64 i, u64 slots) { return (i * 0x9e3779b97f4a7c15ULL) & (slots - 1); };
  if (p == scattered) {
    for (u64 i = 0; i < n; ++i) f(phys_addr{spread(i, space >> 12) << 12}, order{0});
  } else if (p == runs) {
    const u64 run_slots = space >> 21;
    for (u64 i = 0; i < n; ++i)
      f(phys_addr{(spread(i / 512, run_slots) << 21) + ((i % 512) << 12)}, order{0});
  } else {
    u64 gib = 0, huge = 0, small = 0;
    for (u64 i = 0; i < n; ++i) {
      if (i % 4096 == 0)
        f(phys_addr{space / 4 * 3 + (spread(gib++, space >> 32) << 30)}, order{18});
      else if (i % 64 == 0)
        f(phys_addr{space / 2 + (spread(huge++, space >> 23) << 21)}, order{9});
      else
        f(phys_addr{spread(small++, space >> 13) << 12}, order{0});
    }
  }
}

/// A built tree, kept across benchmark invocations (building 2^24 blocks takes seconds).
struct built_tree {
  bench_memory memory{u64{1} << 30};
  std::optional<preserve_bitmap<bump_page_source<flat_memory>>> tree;
  std::vector<u64> scratch;
  std::vector<u64> leaves;
  u64 blocks = 0;

  built_tree(pattern p, u64 n, unsigned space_log2) {
    tree.emplace(std::move(*preserve_bitmap<bump_page_source<flat_memory>>::create(memory.pages, false)));
    generate(p, n, space_log2, [&](phys_addr pa, order o) {
      const status s = tree->preserve(pa, o);
      if (!s && s.code() != errc::already_exists) std::abort();  // 1 GiB slots can repeat
      blocks += s.ok();
    });
    scratch.resize(tree->node_count());
    collect_leaves(tree->root(), radix_geometry<12>::depth - 1);
  }
  auto view() const {
    auto v = attach_preserve_bitmap(memory.mem, tree->root(), std::span<u64>(const_cast<u64*>(scratch.data()), scratch.size()));
    if (!v) std::abort();
    return std::move(*v);
  }
  void collect_leaves(phys_addr table, unsigned level) {
    const u64* t = static_cast<const u64*>(memory.mem.to_virt(table, 4096));
    for (u64 i = 0; i < 512; ++i) {
      if (t[i] == 0) continue;
      if (level == 1)
        leaves.push_back(t[i]);
      else
        collect_leaves(phys_addr{t[i]}, level - 1);
    }
  }
};

const built_tree& tree_for(pattern p, u64 n, unsigned space_log2) {
  static std::map<std::tuple<int, u64, unsigned>, std::unique_ptr<built_tree>> cache;
  auto& slot = cache[{p, n, space_log2}];
  if (!slot) {
    cache.clear();  // one tree at a time keeps memory bounded
    auto& fresh = cache[{p, n, space_log2}];
    fresh = std::make_unique<built_tree>(p, n, space_log2);
    return *fresh;
  }
  return *slot;
}

pattern pattern_of(const benchmark::State& s) { return static_cast<pattern>(s.range(1)); }
unsigned space_of(const benchmark::State& s) { return static_cast<unsigned>(s.range(2)); }

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

template <bool Linear>
void BM_Restore(benchmark::State& state) {
  const built_tree& t = tree_for(pattern_of(state), static_cast<u64>(state.range(0)), space_of(state));
  auto view = t.view();
  bench_memory boot(u64{1} << 30);  // the next kernel's boot memory holds memblock's array
  u64 regions = 0;
  for (auto _ : state) {
    auto memblock = memblock_model<bump_page_source<flat_memory>>::create(boot.pages);
    const status s = Linear ? restore_linear(view, *memblock) : restore_naive(view, *memblock);
    if (!s) state.SkipWithError(to_string(s.code()));
    regions = memblock->size();
  }
  state.counters["regions"] = static_cast<double>(regions);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(t.blocks));
  state.SetComplexityN(state.range(0));
}

constexpr int64_t gib64 = 36, tib1 = 40;

void preserve_args(benchmark::internal::Benchmark* b) {
  for (int64_t p : {scattered, runs, mixed})
    for (int64_t n = 1 << 10; n <= 1 << 20; n <<= 5) b->Args({n, p, tib1});
}

// Each (pattern, space) is its own family so that each complexity fit is its own.
#define KHO_RESTORE_FAMILY(name, pat, space, max_n, naive_max_n)                                   \
  BENCHMARK(BM_Walk)->Name("Walk/" name)->ArgNames({"n", "pattern", "space_log2"})                 \
      ->RangeMultiplier(4)->Ranges({{1 << 10, max_n}, {pat, pat}, {space, space}})                \
      ->Complexity(benchmark::oN)->Unit(benchmark::kMillisecond);                                 \
  BENCHMARK(BM_LeafReadBound)->Name("LeafReadBound/" name)->ArgNames({"n", "pattern", "space_log2"}) \
      ->RangeMultiplier(4)->Ranges({{1 << 10, max_n}, {pat, pat}, {space, space}})                \
      ->Complexity(benchmark::oN)->Unit(benchmark::kMillisecond);                                 \
  BENCHMARK(BM_Restore<true>)->Name("RestoreLinear/" name)->ArgNames({"n", "pattern", "space_log2"}) \
      ->RangeMultiplier(4)->Ranges({{1 << 10, max_n}, {pat, pat}, {space, space}})                \
      ->Complexity(benchmark::oN)->Unit(benchmark::kMillisecond);                                 \
  BENCHMARK(BM_Restore<false>)->Name("RestoreNaive/" name)->ArgNames({"n", "pattern", "space_log2"}) \
      ->RangeMultiplier(4)->Ranges({{1 << 10, naive_max_n}, {pat, pat}, {space, space}})          \
      ->Complexity(benchmark::oNSquared)->Unit(benchmark::kMillisecond)

KHO_RESTORE_FAMILY("scattered_64GiB", scattered, gib64, 1 << 22, 1 << 16);
KHO_RESTORE_FAMILY("scattered_1TiB", scattered, tib1, 1 << 24, 1 << 16);
KHO_RESTORE_FAMILY("runs_1TiB", runs, tib1, 1 << 24, 1 << 16);
KHO_RESTORE_FAMILY("mixed_1TiB", mixed, tib1, 1 << 24, 1 << 16);

BENCHMARK(BM_Preserve)->ArgNames({"n", "pattern", "space_log2"})->Apply(preserve_args)
    ->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace
