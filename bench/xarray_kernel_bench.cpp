// Xarray against the kernel's own xarray, side by side in one run (issue 22): ordered
// iteration (cursor() vs xas_for_each), marked iteration (marked_cursor() vs
// xas_for_each_marked), the first marking of a freshly built map (set_mark vs
// xa_set_mark), stores into an empty map (store vs xa_store) and random loads (load vs
// xa_load). The kernel's side is linux_xarray_model.hpp, a userspace reimplementation
// of those paths of lib/xarray.c (what it keeps and leaves out is listed there). Two
// index sets:
//
//   dense  a 64 GiB file of 4 KiB folios: indices 0 .. 16M-1
//   pfns   10^6 distinct random PFNs below 2^28 (1 TiB of 4 KiB pages), stored in
//          random order: a map keyed by physical frame
//
// Marked scans mark every 8th entry in index order. Figures are per entry (per hit for
// the marked scans): items_per_second in the output.
//
//   bench/xarray_kernel_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include "linux_xarray_model.hpp"
#include "xarray_arena.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <random>
#include <vector>

namespace {

using namespace kho_bench;

enum pattern : int { dense, pfns };
constexpr u64 dense_n = u64{16} << 20;
constexpr u64 pfn_n = 1000000;
constexpr unsigned pfn_bits = 28;

struct workload {
  std::vector<u64> index;   // insertion order
  std::vector<u64> sorted;  // index order
  std::vector<u64> probes;  // present indices in random order
};

std::vector<u64> dense_indices() {
  std::vector<u64> out(dense_n);
  for (u64 i = 0; i < dense_n; ++i) out[i] = i;
  return out;
}

/// pfn_n distinct random PFNs below 2^pfn_bits, in random order.
std::vector<u64> random_pfns(std::mt19937_64& rng) {
  std::vector<u64> out;
  while (out.size() < pfn_n) {
    while (out.size() < pfn_n) out.push_back(rng() >> (64 - pfn_bits));
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}

const workload& load_of(int p) {
  static std::unique_ptr<workload> cache[2];
  if (!cache[p]) {
    std::mt19937_64 rng(2200 + p);
    auto w = std::make_unique<workload>();
    w->index = p == dense ? dense_indices() : random_pfns(rng);
    w->sorted = w->index;
    std::sort(w->sorted.begin(), w->sorted.end());
    for (u64 i = 0; i < pfn_n; ++i) w->probes.push_back(w->index[rng() % w->index.size()]);
    cache[p] = std::move(w);
  }
  return *cache[p];
}

struct kho_side {
  arena a;
  xa x;
  kho_side(const workload& w, bool marked) : x(a.build(w.index)) {
    if (marked)
      for (u64 r = 0; r < w.sorted.size(); r += 8)
        if (!x.set_mark(w.sorted[r], xa_mark::mark0)) std::abort();
  }
};

struct linux_side {
  linux_model::xarray x;
  linux_side(const workload& w, bool marked) {
    for (u64 i : w.index) x.store(i, value_of(i));
    if (marked)
      for (u64 r = 0; r < w.sorted.size(); r += 8) x.set_mark(w.sorted[r], 0);
  }
};

/// Built once per (pattern, marked): the maps the read paths walk.
template <class Side>
const Side& side_of(int p, bool marked) {
  static std::unique_ptr<Side> cache[2][2];
  auto& c = cache[p][marked];
  if (!c) c = std::make_unique<Side>(load_of(p), marked);
  return *c;
}

void set_counters(benchmark::State& st, u64 n) {
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * n));
}

// ---- ordered iteration -------------------------------------------------------------------

void BM_Iterate_LinuxXasForEach(benchmark::State& st) {
  const auto& s = side_of<linux_side>(static_cast<int>(st.range(0)), false);
  u64 sum = 0, n = 0;
  for (auto _ : st) {
    auto xas = s.x.begin(0);
    for (void* e = linux_model::xarray::find(xas, ~u64{0}); e != nullptr;
         e = linux_model::xarray::next_entry(xas, ~u64{0})) {
      sum += linux_model::to_value(e);
      ++n;
    }
  }
  benchmark::DoNotOptimize(sum);
  set_counters(st, n / st.iterations());
}

void BM_Iterate_KhoCursor(benchmark::State& st) {
  const auto& s = side_of<kho_side>(static_cast<int>(st.range(0)), false);
  u64 sum = 0, n = 0;
  for (auto _ : st) {
    auto c = s.x.cursor(0);
    for (auto e = c.next(); e; e = c.next()) {
      sum += e->value;
      ++n;
    }
  }
  benchmark::DoNotOptimize(sum);
  set_counters(st, n / st.iterations());
}

// ---- marked iteration: every 8th entry carries mark 0 --------------------------------------

void BM_MarkedIterate_LinuxXasForEachMarked(benchmark::State& st) {
  const auto& s = side_of<linux_side>(static_cast<int>(st.range(0)), true);
  u64 sum = 0, n = 0;
  for (auto _ : st) {
    auto xas = s.x.begin(0);
    for (void* e = linux_model::xarray::find_marked(xas, ~u64{0}, 0, false); e != nullptr;
         e = linux_model::xarray::find_marked(xas, ~u64{0}, 0, true)) {
      sum += linux_model::to_value(e);
      ++n;
    }
  }
  benchmark::DoNotOptimize(sum);
  set_counters(st, n / st.iterations());
}

void BM_MarkedIterate_KhoMarkedCursor(benchmark::State& st) {
  const auto& s = side_of<kho_side>(static_cast<int>(st.range(0)), true);
  u64 sum = 0, n = 0;
  for (auto _ : st) {
    auto c = s.x.marked_cursor(0, xa_mark::mark0);
    for (auto e = c.next(); e; e = c.next()) {
      sum += e->value;
      ++n;
    }
  }
  benchmark::DoNotOptimize(sum);
  set_counters(st, n / st.iterations());
}

// ---- first marking of a freshly built dense map: every 8th of N ---------------------------

void BM_SetMarkFresh_Linux(benchmark::State& st) {
  const u64 n = static_cast<u64>(st.range(0));
  for (auto _ : st) {
    st.PauseTiming();
    auto x = std::make_unique<linux_model::xarray>();
    for (u64 i = 0; i < n; ++i) x->store(i, value_of(i));
    st.ResumeTiming();
    for (u64 i = 0; i < n; i += 8) x->set_mark(i, 0);
    st.PauseTiming();
    x.reset();
    st.ResumeTiming();
  }
  set_counters(st, n / 8);
}

void BM_SetMarkFresh_Kho(benchmark::State& st) {
  const u64 n = static_cast<u64>(st.range(0));
  arena a;
  for (auto _ : st) {
    st.PauseTiming();
    xa x = a.sequential(n);
    st.ResumeTiming();
    for (u64 i = 0; i < n; i += 8) (void)x.set_mark(i, xa_mark::mark0);
    st.PauseTiming();
    x.destroy();
    st.ResumeTiming();
  }
  set_counters(st, n / 8);
}

// ---- stores into an empty map, in the workload's order --------------------------------------
// Both sides build once untimed first: the timed builds reuse warm node memory, as a
// kernel's slab or page allocator hands it out, instead of timing the process's page
// faults.

void BM_StoreFresh_LinuxXaStore(benchmark::State& st) {
  const auto& w = load_of(static_cast<int>(st.range(0)));
  auto x = std::make_unique<linux_model::xarray>();
  for (u64 i : w.index) x->locked_store(i, value_of(i));  // the nodes' pages, faulted in
  x->clear();
  for (auto _ : st) {
    for (u64 i : w.index) x->locked_store(i, value_of(i));
    st.PauseTiming();
    x->clear();
    st.ResumeTiming();
  }
  set_counters(st, w.index.size());
}

void BM_StoreFresh_Kho(benchmark::State& st) {
  const auto& w = load_of(static_cast<int>(st.range(0)));
  arena a;
  a.build(w.index).destroy();  // the nodes' pages, faulted in
  for (auto _ : st) {
    xa x = a.fresh();
    for (u64 i : w.index)
      if (!x.store(i, value_of(i))) std::abort();
    st.PauseTiming();
    x.destroy();
    st.ResumeTiming();
  }
  set_counters(st, w.index.size());
}

// ---- random loads of present indices ---------------------------------------------------------

void BM_Load_LinuxXaLoad(benchmark::State& st) {
  const int p = static_cast<int>(st.range(0));
  const auto& w = load_of(p);
  const auto& s = side_of<linux_side>(p, false);
  u64 sum = 0;
  for (auto _ : st)
    for (u64 i : w.probes) sum += linux_model::to_value(s.x.load(i));
  benchmark::DoNotOptimize(sum);
  set_counters(st, w.probes.size());
  st.counters["bytes_per_entry"] = static_cast<double>(s.x.nodes_bytes()) / static_cast<double>(w.index.size());
}

void BM_Load_Kho(benchmark::State& st) {
  const int p = static_cast<int>(st.range(0));
  const auto& w = load_of(p);
  const auto& s = side_of<kho_side>(p, false);
  u64 sum = 0;
  for (auto _ : st)
    for (u64 i : w.probes) sum += *s.x.load(i);
  benchmark::DoNotOptimize(sum);
  set_counters(st, w.probes.size());
  st.counters["bytes_per_entry"] =
      static_cast<double>((s.x.nodes() + 1) << 12) / static_cast<double>(w.index.size());
}

void patterns(benchmark::internal::Benchmark* b) {
  b->ArgName("pattern")->Arg(dense)->Arg(pfns)->Unit(benchmark::kMillisecond);
}

}  // namespace

BENCHMARK(BM_Iterate_LinuxXasForEach)->Apply(patterns);
BENCHMARK(BM_Iterate_KhoCursor)->Apply(patterns);
BENCHMARK(BM_MarkedIterate_LinuxXasForEachMarked)->Apply(patterns);
BENCHMARK(BM_MarkedIterate_KhoMarkedCursor)->Apply(patterns);
BENCHMARK(BM_SetMarkFresh_Linux)->ArgName("n")->Arg(100000)->Arg(dense_n)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SetMarkFresh_Kho)->ArgName("n")->Arg(100000)->Arg(dense_n)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StoreFresh_LinuxXaStore)->ArgName("pattern")->Arg(pfns)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StoreFresh_Kho)->ArgName("pattern")->Arg(pfns)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Load_LinuxXaLoad)->ArgName("pattern")->Arg(pfns)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Load_Kho)->ArgName("pattern")->Arg(pfns)->Unit(benchmark::kMillisecond);
