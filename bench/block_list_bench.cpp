// Block list: push_back, attach + validate + iterate, and erase, for 10^3..10^7
// entries of 16, 64 and 256 bytes, against std::vector (the in-memory bound) and the
// old fixed-array approach (one preallocated array of `capacity` entries behind a
// count, as LUO's sessions and files were before the block lists).
//
//   bench/block_list_bench --benchmark_min_time=0.05
#include <kho/block_list.hpp>
#include <kho/model/physical_memory.hpp>

#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

namespace {

using namespace kho;

template <u64 Bytes>
struct entry {
  u64 words[Bytes / 8];
};

// Physical memory for one benchmark: a sparse memfd, twice what the entries need.
struct bench_arena {
  std::unique_ptr<model::physical_memory> pm;
  std::unique_ptr<bump_page_source<flat_memory>> pages;
  explicit bench_arena(u64 bytes) {
    const u64 size = ((2 * bytes + (u64{64} << 20)) + 4095) & ~u64{4095};
    pm = std::make_unique<model::physical_memory>(model::physical_memory::create(u64{4} << 30, size));
    pages = std::make_unique<bump_page_source<flat_memory>>(pm->memory(), pm->base(),
                                                             pm->base() + size);
  }
};

template <class E>
E make(u64 i) {
  E e{};
  e.words[0] = i;
  return e;
}

// The fixed-array baseline: {count, capacity} then capacity entries, contiguous.
template <class E>
struct fixed_array {
  u64* count;
  u64 capacity;
  E* entries;
  static fixed_array create(bump_page_source<flat_memory>& pages, u64 capacity) {
    const u64 bytes = 16 + capacity * sizeof(E);
    unsigned o = 0;
    while ((u64{4096} << o) < bytes) ++o;
    auto pa = pages.alloc(order{o});
    auto* base = static_cast<unsigned char*>(pages.memory().to_virt(*pa, bytes));
    fixed_array f{reinterpret_cast<u64*>(base), capacity, reinterpret_cast<E*>(base + 16)};
    f.count[0] = 0;
    f.count[1] = capacity;
    return f;
  }
  bool push_back(const E& e) {
    if (*count == capacity) return false;
    entries[(*count)++] = e;
    return true;
  }
};

template <class E>
void push_back_block_list(benchmark::State& state) {
  const u64 n = static_cast<u64>(state.range(0));
  bench_arena a(n * sizeof(E));
  for (auto _ : state) {
    block_list<E, bump_page_source<flat_memory>> l(*a.pages);
    for (u64 i = 0; i < n; ++i) benchmark::DoNotOptimize(l.push_back(make<E>(i)).has_value());
    state.PauseTiming();
    l.clear();
    state.ResumeTiming();
  }
  state.SetComplexityN(static_cast<int64_t>(n));
  state.SetItemsProcessed(static_cast<int64_t>(n * state.iterations()));
}

template <class E>
void push_back_vector(benchmark::State& state) {
  const u64 n = static_cast<u64>(state.range(0));
  for (auto _ : state) {
    std::vector<E> v;
    for (u64 i = 0; i < n; ++i) v.push_back(make<E>(i));
    benchmark::DoNotOptimize(v.data());
  }
  state.SetComplexityN(static_cast<int64_t>(n));
  state.SetItemsProcessed(static_cast<int64_t>(n * state.iterations()));
}

template <class E>
void push_back_fixed_array(benchmark::State& state) {
  const u64 n = static_cast<u64>(state.range(0));
  bench_arena a(n * sizeof(E));
  auto f = fixed_array<E>::create(*a.pages, n);
  for (auto _ : state) {
    *f.count = 0;
    for (u64 i = 0; i < n; ++i) benchmark::DoNotOptimize(f.push_back(make<E>(i)));
  }
  state.SetComplexityN(static_cast<int64_t>(n));
  state.SetItemsProcessed(static_cast<int64_t>(n * state.iterations()));
}

template <class E>
void attach_iterate_block_list(benchmark::State& state) {
  const u64 n = static_cast<u64>(state.range(0));
  bench_arena a(n * sizeof(E));
  block_list<E, bump_page_source<flat_memory>> l(*a.pages);
  for (u64 i = 0; i < n; ++i) (void)l.push_back(make<E>(i));
  const flat_memory mem = a.pm->memory();
  for (auto _ : state) {
    auto v = attach_block_list<E>(mem, l.head());
    u64 sum = 0;
    for (const E& e : *v) sum += e.words[0];
    benchmark::DoNotOptimize(sum);
  }
  // Wire bytes per entry: the entry, plus 16 header bytes (and any tail too small for
  // an entry) shared by the block's entries.
  state.counters["wire_bytes_per_entry"] =
      static_cast<double>(l.blocks() * 4096) / static_cast<double>(n);
  state.SetComplexityN(static_cast<int64_t>(n));
  state.SetItemsProcessed(static_cast<int64_t>(n * state.iterations()));
}

template <class E>
void attach_for_each_block(benchmark::State& state) {
  const u64 n = static_cast<u64>(state.range(0));
  bench_arena a(n * sizeof(E));
  block_list<E, bump_page_source<flat_memory>> l(*a.pages);
  for (u64 i = 0; i < n; ++i) (void)l.push_back(make<E>(i));
  const flat_memory mem = a.pm->memory();
  for (auto _ : state) {
    auto v = attach_block_list<E>(mem, l.head());
    u64 sum = 0;
    v->for_each_block([&](phys_addr, const E* first, u64 count) {
      for (u64 i = 0; i < count; ++i) sum += first[i].words[0];
    });
    benchmark::DoNotOptimize(sum);
  }
  state.SetComplexityN(static_cast<int64_t>(n));
  state.SetItemsProcessed(static_cast<int64_t>(n * state.iterations()));
}

template <class E>
void iterate_vector(benchmark::State& state) {
  const u64 n = static_cast<u64>(state.range(0));
  std::vector<E> v;
  for (u64 i = 0; i < n; ++i) v.push_back(make<E>(i));
  for (auto _ : state) {
    u64 sum = 0;
    for (const E& e : v) sum += e.words[0];
    benchmark::DoNotOptimize(sum);
  }
  state.SetComplexityN(static_cast<int64_t>(n));
  state.SetItemsProcessed(static_cast<int64_t>(n * state.iterations()));
}

template <class E>
void attach_iterate_fixed_array(benchmark::State& state) {
  const u64 n = static_cast<u64>(state.range(0));
  bench_arena a(n * sizeof(E));
  auto f = fixed_array<E>::create(*a.pages, n);
  for (u64 i = 0; i < n; ++i) f.push_back(make<E>(i));
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.count[0] <= f.count[1]);  // its whole validation
    u64 sum = 0;
    for (u64 i = 0; i < f.count[0]; ++i) sum += f.entries[i].words[0];
    benchmark::DoNotOptimize(sum);
  }
  state.SetComplexityN(static_cast<int64_t>(n));
  state.SetItemsProcessed(static_cast<int64_t>(n * state.iterations()));
}

template <class E>
void erase_block_list(benchmark::State& state) {
  const u64 n = static_cast<u64>(state.range(0));
  bench_arena a(n * sizeof(E));
  for (auto _ : state) {
    state.PauseTiming();
    block_list<E, bump_page_source<flat_memory>> l(*a.pages);
    for (u64 i = 0; i < n; ++i) (void)l.push_back(make<E>(i));
    state.ResumeTiming();
    // From the front: every erase moves the last entry into the hole.
    while (!l.empty()) benchmark::DoNotOptimize(l.erase(l.begin().phys()).has_value());
  }
  state.SetComplexityN(static_cast<int64_t>(n));
  state.SetItemsProcessed(static_cast<int64_t>(n * state.iterations()));
}

template <class E>
void erase_vector(benchmark::State& state) {
  const u64 n = static_cast<u64>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<E> v;
    for (u64 i = 0; i < n; ++i) v.push_back(make<E>(i));
    state.ResumeTiming();
    while (!v.empty()) {
      v.front() = v.back();
      v.pop_back();
      benchmark::DoNotOptimize(v.data());
    }
  }
  state.SetComplexityN(static_cast<int64_t>(n));
  state.SetItemsProcessed(static_cast<int64_t>(n * state.iterations()));
}

template <class E>
void erase_fixed_array(benchmark::State& state) {
  const u64 n = static_cast<u64>(state.range(0));
  bench_arena a(n * sizeof(E));
  auto f = fixed_array<E>::create(*a.pages, n);
  for (auto _ : state) {
    state.PauseTiming();
    *f.count = 0;
    for (u64 i = 0; i < n; ++i) f.push_back(make<E>(i));
    state.ResumeTiming();
    while (*f.count != 0) {
      f.entries[0] = f.entries[--*f.count];
      benchmark::DoNotOptimize(f.entries);
    }
  }
  state.SetComplexityN(static_cast<int64_t>(n));
  state.SetItemsProcessed(static_cast<int64_t>(n * state.iterations()));
}

// 256-byte entries stop at 10^6: 10^7 of them would be 2.5 GiB per container.
#define KHO_BLOCK_BENCH(fn, bytes, top) \
  BENCHMARK_TEMPLATE(fn, entry<bytes>)->RangeMultiplier(10)->Range(1000, top)->Complexity(benchmark::oN)

#define KHO_BLOCK_BENCH_ALL(fn)              \
  KHO_BLOCK_BENCH(fn, 16, 10'000'000);       \
  KHO_BLOCK_BENCH(fn, 64, 10'000'000);       \
  KHO_BLOCK_BENCH(fn, 256, 1'000'000)

KHO_BLOCK_BENCH_ALL(push_back_block_list);
KHO_BLOCK_BENCH_ALL(push_back_vector);
KHO_BLOCK_BENCH_ALL(push_back_fixed_array);
KHO_BLOCK_BENCH_ALL(attach_iterate_block_list);
KHO_BLOCK_BENCH_ALL(attach_for_each_block);
KHO_BLOCK_BENCH_ALL(iterate_vector);
KHO_BLOCK_BENCH_ALL(attach_iterate_fixed_array);
KHO_BLOCK_BENCH_ALL(erase_block_list);
KHO_BLOCK_BENCH_ALL(erase_vector);
KHO_BLOCK_BENCH_ALL(erase_fixed_array);

}  // namespace
