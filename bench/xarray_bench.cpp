// Xarray: random load, store, ordered iteration, find_marked, attach+validate and bytes
// per entry, for four index patterns, against std::map, std::unordered_map and the
// kernel's current memfd approach (a flat array of 16-byte {pfn|flags, index} records
// sorted by index and binary-searched).
//
//   dense      a 64 GiB file of 4 KiB folios: indices 0 .. 16M-1
//   sparse     1M uniformly random 64-bit indices
//   clustered  1M indices in runs of 512 consecutive pages at random bases
//   huge       64K 2 MiB folios (order-9 entries) at random aligned bases; loads hit
//              random pages inside them
//
//   bench/xarray_bench --benchmark_min_time=0.2
#include "xarray_arena.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

namespace {

using namespace kho_bench;

enum pattern : int { dense, sparse, clustered, huge };
constexpr u64 dense_n = u64{16} << 20;
constexpr u64 other_n = u64{1} << 20;
constexpr u64 huge_n = u64{1} << 16;

/// The folio record the kernel keeps per entry today.
struct record {
  u64 index;
  u64 pfn_flags;
};

/// The entries of a pattern: first index, order, value.
struct workload {
  std::vector<u64> index;
  unsigned order = 0;
  std::vector<u64> probes;  // random indices that are present
};

const workload& load_of(int p) {
  static std::unique_ptr<workload> cache[4];
  if (cache[p]) return *cache[p];
  auto w = std::make_unique<workload>();
  std::mt19937_64 rng(1234 + p);
  if (p == dense) {
    for (u64 i = 0; i < dense_n; ++i) w->index.push_back(i);
  } else if (p == sparse) {
    for (u64 i = 0; i < other_n; ++i) w->index.push_back(rng());
  } else if (p == clustered) {
    for (u64 r = 0; r < other_n / 512; ++r) {
      const u64 base = (rng() >> 20) << 9;
      for (u64 i = 0; i < 512; ++i) w->index.push_back(base + i);
    }
  } else {
    w->order = 9;
    for (u64 i = 0; i < huge_n; ++i) w->index.push_back((rng() >> 24) << 9);
  }
  std::sort(w->index.begin(), w->index.end());
  w->index.erase(std::unique(w->index.begin(), w->index.end()), w->index.end());
  std::shuffle(w->index.begin(), w->index.end(), rng);  // insertion order: random
  for (u64 i = 0; i < (u64{1} << 20); ++i)
    w->probes.push_back(w->index[rng() % w->index.size()] + (rng() & ((u64{1} << w->order) - 1)));
  cache[p] = std::move(w);
  return *cache[p];
}


// Physical memory for the xarray: a sparse memfd.
struct built_xarray {
  std::unique_ptr<model::physical_memory> pm;
  std::unique_ptr<source> pages;
  std::unique_ptr<xa> x;
  explicit built_xarray(const workload& w) {
    const u64 size = u64{1} << 31;
    pm = std::make_unique<model::physical_memory>(model::physical_memory::create(u64{4} << 30, size));
    pages = std::make_unique<source>(pm->memory(), pm->base(), pm->base() + size);
    x = std::make_unique<xa>(std::move(*xa::create(*pages)));
    for (u64 i : w.index)
      if (!x->store_range(i, order{w.order}, value_of(i))) std::abort();
    x->seal();
  }
};

const built_xarray& xarray_of(int p) {
  static std::unique_ptr<built_xarray> cache[4];
  if (!cache[p]) cache[p] = std::make_unique<built_xarray>(load_of(p));
  return *cache[p];
}

std::vector<record> flat_of(const workload& w) {
  std::vector<record> out;
  out.reserve(w.index.size());
  for (u64 i : w.index) out.push_back({i, value_of(i)});
  std::sort(out.begin(), out.end(), [](const record& a, const record& b) { return a.index < b.index; });
  return out;
}

/// The kernel's lookup: the last record whose index is <= i, holding i if its folio does.
u64 flat_find(const std::vector<record>& a, u64 i, unsigned o) {
  auto it = std::upper_bound(a.begin(), a.end(), i, [](u64 k, const record& r) { return k < r.index; });
  if (it == a.begin()) return 0;
  --it;
  return ((i - it->index) >> o) == 0 ? it->pfn_flags : 0;
}

void set_counters(benchmark::State& st, u64 n) {
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * n));
}

// ---- random load -------------------------------------------------------------------------

void BM_Load_Xarray(benchmark::State& st) {
  const auto& w = load_of(static_cast<int>(st.range(0)));
  const auto& b = xarray_of(static_cast<int>(st.range(0)));
  u64 sum = 0;
  for (auto _ : st)
    for (u64 i : w.probes) sum += *b.x->load(i);
  benchmark::DoNotOptimize(sum);
  set_counters(st, w.probes.size());
  st.counters["bytes_per_entry"] =
      static_cast<double>((b.x->nodes() + 1) << 12) / static_cast<double>(b.x->count());
}

void BM_Load_FlatSorted(benchmark::State& st) {
  const auto& w = load_of(static_cast<int>(st.range(0)));
  const auto a = flat_of(w);
  u64 sum = 0;
  for (auto _ : st)
    for (u64 i : w.probes) sum += flat_find(a, i, w.order);
  benchmark::DoNotOptimize(sum);
  set_counters(st, w.probes.size());
  st.counters["bytes_per_entry"] = sizeof(record);
}

void BM_Load_StdMap(benchmark::State& st) {
  const auto& w = load_of(static_cast<int>(st.range(0)));
  std::map<u64, u64> m;
  for (u64 i : w.index) m.emplace(i, value_of(i));
  u64 sum = 0;
  for (auto _ : st)
    for (u64 i : w.probes) {
      auto it = m.upper_bound(i);  // a folio lookup: the last entry <= i
      sum += std::prev(it)->second;
    }
  benchmark::DoNotOptimize(sum);
  set_counters(st, w.probes.size());
}

void BM_Load_UnorderedMap(benchmark::State& st) {
  const auto& w = load_of(static_cast<int>(st.range(0)));
  std::unordered_map<u64, u64> m;
  for (u64 i : w.index) m.emplace(i, value_of(i));
  const u64 mask = ~((u64{1} << w.order) - 1);
  u64 sum = 0;
  for (auto _ : st)
    for (u64 i : w.probes) sum += m.find(i & mask)->second;
  benchmark::DoNotOptimize(sum);
  set_counters(st, w.probes.size());
}

// ---- store (building the whole map, random insertion order) ----------------------------

void BM_Store_Xarray(benchmark::State& st) {
  const auto& w = load_of(static_cast<int>(st.range(0)));
  for (auto _ : st) {
    built_xarray b(w);
    benchmark::DoNotOptimize(b.x->count());
  }
  set_counters(st, w.index.size());
}

void BM_Store_FlatSorted(benchmark::State& st) {
  // The kernel builds its array once, at preservation: append then sort.
  const auto& w = load_of(static_cast<int>(st.range(0)));
  for (auto _ : st) benchmark::DoNotOptimize(flat_of(w).size());
  set_counters(st, w.index.size());
}

void BM_Store_StdMap(benchmark::State& st) {
  const auto& w = load_of(static_cast<int>(st.range(0)));
  for (auto _ : st) {
    std::map<u64, u64> m;
    for (u64 i : w.index) m.emplace(i, value_of(i));
    benchmark::DoNotOptimize(m.size());
  }
  set_counters(st, w.index.size());
}

void BM_Store_UnorderedMap(benchmark::State& st) {
  const auto& w = load_of(static_cast<int>(st.range(0)));
  for (auto _ : st) {
    std::unordered_map<u64, u64> m;
    for (u64 i : w.index) m.emplace(i, value_of(i));
    benchmark::DoNotOptimize(m.size());
  }
  set_counters(st, w.index.size());
}

// ---- ordered iteration ------------------------------------------------------------------

void BM_Iterate_Xarray(benchmark::State& st) {
  const auto& b = xarray_of(static_cast<int>(st.range(0)));
  u64 sum = 0;
  for (auto _ : st) b.x->for_each(0, ~u64{0}, [&](const xarray_entry<u64>& e) { sum += e.value; });
  benchmark::DoNotOptimize(sum);
  set_counters(st, b.x->count());
}

void BM_Iterate_FlatSorted(benchmark::State& st) {
  const auto a = flat_of(load_of(static_cast<int>(st.range(0))));
  u64 sum = 0;
  for (auto _ : st)
    for (const record& r : a) sum += r.pfn_flags;
  benchmark::DoNotOptimize(sum);
  set_counters(st, a.size());
}

void BM_Iterate_StdMap(benchmark::State& st) {
  const auto& w = load_of(static_cast<int>(st.range(0)));
  std::map<u64, u64> m;
  for (u64 i : w.index) m.emplace(i, value_of(i));
  u64 sum = 0;
  for (auto _ : st)
    for (const auto& [k, v] : m) sum += v;
  benchmark::DoNotOptimize(sum);
  set_counters(st, m.size());
}

// ---- find_marked: 1 entry in 4096 carries mark 0 ----------------------------------------

void BM_FindMarked_Xarray(benchmark::State& st) {
  const auto& w = load_of(dense);
  built_xarray b(w);
  for (u64 i = 0; i < dense_n; i += 4096) (void)b.x->set_mark(i + 7, xa_mark::mark0);
  u64 found = 0;
  for (auto _ : st) {
    for (auto e = b.x->find_marked(0, xa_mark::mark0); e; e = b.x->find_marked(e->last() + 1, xa_mark::mark0))
      ++found;
  }
  benchmark::DoNotOptimize(found);
  set_counters(st, dense_n / 4096);
  st.counters["bytes_per_entry"] = static_cast<double>((b.x->nodes() + 1) << 12) / static_cast<double>(dense_n);
}

void BM_FindMarked_XarrayCursor(benchmark::State& st) {
  const auto& w = load_of(dense);
  built_xarray b(w);
  for (u64 i = 0; i < dense_n; i += 4096) (void)b.x->set_mark(i + 7, xa_mark::mark0);
  u64 found = 0;
  for (auto _ : st) {
    auto c = b.x->marked_cursor(0, xa_mark::mark0);
    while (c.next()) ++found;
  }
  benchmark::DoNotOptimize(found);
  set_counters(st, dense_n / 4096);
}

void BM_FindMarked_FlatScan(benchmark::State& st) {
  // The flat array keeps flags in each record: finding marked folios is a full scan.
  auto a = flat_of(load_of(dense));
  for (u64 i = 0; i < dense_n; i += 4096) a[i + 7].pfn_flags |= u64{1} << 11;
  u64 found = 0;
  for (auto _ : st)
    for (const record& r : a) found += (r.pfn_flags >> 11) & 1;
  benchmark::DoNotOptimize(found);
  set_counters(st, dense_n / 4096);
}

// ---- attach + validate ------------------------------------------------------------------

void BM_AttachValidate_Xarray(benchmark::State& st) {
  const auto& b = xarray_of(static_cast<int>(st.range(0)));
  for (auto _ : st) {
    auto v = attach_xarray<u64>(b.pm->memory(), b.x->root(), *b.pages);  // scratch from the same source
    if (!v) st.SkipWithError(to_string(v.code()));
    benchmark::DoNotOptimize(v->count());
  }
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * ((b.x->nodes() + 1) << 12)));
  set_counters(st, b.x->count());
}

// ---- write paths on dense u64 values (issue 12) ----------------------------------------
// Each builds or changes a map of N consecutive indices. The xarray is rebuilt on the same
// page source every iteration (destroy() returns its pages), so pages are warm, as in a
// kernel's page allocator; setup outside the timed part runs with the timer paused.


void BM_StoreSeq_Xarray(benchmark::State& st) {
  const u64 n = static_cast<u64>(st.range(0));
  arena a;
  for (auto _ : st) {
    xa x = a.fresh();
    for (u64 i = 0; i < n; ++i) (void)x.store(i, value_of(i));
    benchmark::DoNotOptimize(x.count());
    st.PauseTiming();
    x.destroy();
    st.ResumeTiming();
  }
  set_counters(st, n);
}

void BM_EraseSeq_Xarray(benchmark::State& st) {
  const u64 n = static_cast<u64>(st.range(0));
  arena a;
  for (auto _ : st) {
    st.PauseTiming();
    xa x = a.sequential(n);
    st.ResumeTiming();
    for (u64 i = 0; i < n; ++i) (void)x.erase(i);
    benchmark::DoNotOptimize(x.count());
    st.PauseTiming();
    x.destroy();
    st.ResumeTiming();
  }
  set_counters(st, n);
}

void BM_SetMark_Xarray(benchmark::State& st) {
  // set_mark on every 8th entry (timed), then clear them again (not timed).
  const u64 n = static_cast<u64>(st.range(0));
  arena a;
  xa x = a.sequential(n);
  for (auto _ : st) {
    for (u64 i = 0; i < n; i += 8) (void)x.set_mark(i, xa_mark::mark0);
    st.PauseTiming();
    for (u64 i = 0; i < n; i += 8) (void)x.clear_mark(i, xa_mark::mark0);
    st.ResumeTiming();
  }
  set_counters(st, n / 8);
}

void BM_Exchange_Xarray(benchmark::State& st) {
  const u64 n = static_cast<u64>(st.range(0));
  arena a;
  xa x = a.sequential(n);
  u64 sum = 0;
  for (auto _ : st)
    for (u64 i = 0; i < n; ++i) sum += *x.exchange(i, value_of(i) + 8);
  benchmark::DoNotOptimize(sum);
  set_counters(st, n);
}

/// 16M consecutive entries, every 8th carrying mark 0 (built once).
xa& marked_dense() {
  static arena a;
  static xa x = [] {
    xa m = a.sequential(dense_n);
    for (u64 i = 0; i < dense_n; i += 8)
      if (!m.set_mark(i, xa_mark::mark0)) std::abort();
    return m;
  }();
  return x;
}

void BM_MarkedScan_Restart(benchmark::State& st) {
  // find_marked from the index after each hit: every hit descends from the root again.
  const xa& x = marked_dense();
  u64 hits = 0;
  for (auto _ : st)
    for (auto e = x.find_marked(0, xa_mark::mark0); e; e = x.find_marked(e->last() + 1, xa_mark::mark0)) ++hits;
  benchmark::DoNotOptimize(hits);
  set_counters(st, dense_n / 8);
}

void BM_MarkedScan_Cursor(benchmark::State& st) {
  // The same scan through a cursor that resumes where it stopped.
  const xa& x = marked_dense();
  u64 hits = 0;
  for (auto _ : st) {
    auto c = x.marked_cursor(0, xa_mark::mark0);
    while (c.next()) ++hits;
  }
  benchmark::DoNotOptimize(hits);
  set_counters(st, dense_n / 8);
}

void BM_BulkBuild_Xarray(benchmark::State& st) {
  // append_ordered of N consecutive indices from empty (a memfd's folios in index order).
  const u64 n = static_cast<u64>(st.range(0));
  arena a;
  for (auto _ : st) {
    xa x = a.fresh();
    for (u64 i = 0; i < n; ++i) (void)x.append_ordered(i, value_of(i));
    benchmark::DoNotOptimize(x.count());
    st.PauseTiming();
    x.destroy();
    st.ResumeTiming();
  }
  set_counters(st, n);
}

void BM_Iterate_XarrayAscending(benchmark::State& st) {
  // The dense map built in index order (the random-order build is BM_Iterate_Xarray).
  const xa& x = marked_dense();
  u64 sum = 0;
  for (auto _ : st) x.for_each(0, ~u64{0}, [&](const xarray_entry<u64>& e) { sum += e.value; });
  benchmark::DoNotOptimize(sum);
  set_counters(st, x.count());
}

void BM_BulkBuild_Vector(benchmark::State& st) {
  // The flat baseline: append the same (index, value) records to a std::vector whose
  // capacity is kept across iterations (warm, as the xarray's pages are).
  const u64 n = static_cast<u64>(st.range(0));
  std::vector<record> v;
  for (auto _ : st) {
    v.clear();
    for (u64 i = 0; i < n; ++i) v.push_back({i, value_of(i)});
    benchmark::DoNotOptimize(v.data());
  }
  set_counters(st, n);
}

/// N consecutive order-0 entries, as the kernel's memfd preservation pins them (an array).
std::vector<xarray_entry<u64>> pinned_entries(u64 n) {
  std::vector<xarray_entry<u64>> out(n);
  for (u64 i = 0; i < n; ++i) out[i] = xarray_entry<u64>{i, order{0}, 0, value_of(i)};
  return out;
}

void BM_BulkBuildBatch_Xarray(benchmark::State& st) {
  // append_ordered(span) of the pinned array from empty.
  const u64 n = static_cast<u64>(st.range(0));
  const auto input = pinned_entries(n);
  arena a;
  for (auto _ : st) {
    xa x = a.fresh();
    if (!x.append_ordered(std::span<const xarray_entry<u64>>(input))) std::abort();
    benchmark::DoNotOptimize(x.count());
    st.PauseTiming();
    x.destroy();
    st.ResumeTiming();
  }
  set_counters(st, n);
}

void BM_BulkBuildBatch_Vector(benchmark::State& st) {
  // The flat baseline for the batch: the same pinned array's (index, value) records
  // pushed to a std::vector whose capacity is kept (warm, as the xarray's pages are).
  const u64 n = static_cast<u64>(st.range(0));
  const auto input = pinned_entries(n);
  std::vector<record> v;
  for (auto _ : st) {
    v.clear();
    for (const auto& e : input) v.push_back({e.index, e.value});
    benchmark::DoNotOptimize(v.data());
  }
  set_counters(st, n);
}

void patterns(benchmark::internal::Benchmark* b) {
  b->ArgName("pattern")->Arg(dense)->Arg(sparse)->Arg(clustered)->Arg(huge)->Unit(benchmark::kMillisecond);
}
void small_patterns(benchmark::internal::Benchmark* b) {  // std::map at 16M would take 1.5 GB
  b->ArgName("pattern")->Arg(sparse)->Arg(clustered)->Arg(huge)->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_Load_Xarray)->Apply(patterns);
BENCHMARK(BM_Load_FlatSorted)->Apply(patterns);
BENCHMARK(BM_Load_StdMap)->Apply(small_patterns);
BENCHMARK(BM_Load_UnorderedMap)->Apply(small_patterns);
BENCHMARK(BM_Store_Xarray)->Apply(patterns)->Iterations(2);
BENCHMARK(BM_Store_FlatSorted)->Apply(patterns)->Iterations(2);
BENCHMARK(BM_Store_StdMap)->Apply(small_patterns)->Iterations(2);
BENCHMARK(BM_Store_UnorderedMap)->Apply(small_patterns)->Iterations(2);
BENCHMARK(BM_Iterate_Xarray)->Apply(patterns);
BENCHMARK(BM_Iterate_FlatSorted)->Apply(patterns);
BENCHMARK(BM_Iterate_StdMap)->Apply(small_patterns);
BENCHMARK(BM_FindMarked_Xarray)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FindMarked_XarrayCursor)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FindMarked_FlatScan)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AttachValidate_Xarray)->Apply(patterns);
BENCHMARK(BM_StoreSeq_Xarray)->ArgName("n")->Arg(1000000)->Arg(dense_n)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EraseSeq_Xarray)->ArgName("n")->Arg(1000000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SetMark_Xarray)->ArgName("n")->Arg(100000)->Arg(dense_n)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Exchange_Xarray)->ArgName("n")->Arg(1000000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MarkedScan_Restart)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MarkedScan_Cursor)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BulkBuild_Xarray)->ArgName("n")->Arg(1000000)->Arg(dense_n)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Iterate_XarrayAscending)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BulkBuild_Vector)->ArgName("n")->Arg(1000000)->Arg(dense_n)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BulkBuildBatch_Xarray)->ArgName("n")->Arg(1000000)->Arg(dense_n)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BulkBuildBatch_Vector)->ArgName("n")->Arg(1000000)->Arg(dense_n)->Unit(benchmark::kMillisecond);

}  // namespace
