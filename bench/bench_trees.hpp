// bench/bench_trees.hpp: the preserved-memory trees the restore and boot benchmarks
// share: anonymous memory standing for physical memory, the block patterns, and a
// cache that keeps one built tree across benchmark invocations.
//
// Patterns over a physical address space of 2^space_log2 bytes:
//   scattered  distinct order-0 pages spread evenly (a bijective stride over the pages)
//   runs       order-0 pages in runs of 512 (2 MiB of contiguous 4 KiB pages)
//   mixed      1/4096 of the blocks 1 GiB, 1/64 2 MiB, the rest 4 KiB pages, each
//              kind in its own part of the space
#pragma once

#include <kho/preserve_bitmap.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <tuple>
#include <vector>

#include <sys/mman.h>

namespace kho::bench {

/// Anonymous memory standing for the pages the tree and memblock live in.
struct bench_memory {
  static constexpr u64 base = u64{1} << 44;  // above every address space under test
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
  bench_memory memory{u64{2} << 30};
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
    // The visited set borrows pages from the tree's own source and gives them back.
    auto& pages = const_cast<bump_page_source<flat_memory>&>(memory.pages);
    auto v = attach_preserve_bitmap(memory.mem, tree->root(), pages,
                                    std::span<u64>(const_cast<u64*>(scratch.data()), scratch.size()));
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

inline const built_tree& tree_for(pattern p, u64 n, unsigned space_log2) {
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

inline pattern pattern_of(const benchmark::State& s) { return static_cast<pattern>(s.range(1)); }
inline unsigned space_of(const benchmark::State& s) { return static_cast<unsigned>(s.range(2)); }

/// One boot memory for every benchmark that restores: its page source's free lists
/// hand the same (already touched) blocks back to each iteration.
inline bench_memory& boot_memory() {
  static bench_memory boot(u64{8} << 30);
  return boot;
}

}  // namespace kho::bench
