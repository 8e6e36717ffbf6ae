// The bounded restore (restore_at_bound, restore_part + join_parts, the threaded
// restore) and the kernel-faithful memblock, against an interval-union oracle and
// against each other.
#include <kho/memblock_kernel.hpp>
#include <kho/model/parallel_restore.hpp>
#include <kho/restore.hpp>

#include "region_oracle.hpp"
#include "test_arena.hpp"

#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

namespace kho::test::restore_bound_test {
namespace {

using source = arena<12>::source_type;

/// The union clipped to [lo, hi).
regions clip(const regions& all, u64 lo, u64 hi) {
  regions out;
  for (auto [b, n] : all) {
    const u64 s = std::max(b, lo), e = std::min(b + n, hi);
    if (s < e) out.emplace_back(s, e - s);
  }
  return out;
}

// ---- memblock_kernel ---------------------------------------------------------------

TEST(MemblockKernel, FirstRangeTakesSlotZero) {
  arena<12> mem;
  auto m = memblock_kernel<source>::create(mem.pages());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->capacity(), 128u);
  ASSERT_TRUE(m->reserve(phys_addr{0x5000}, 0x1000));
  EXPECT_EQ(dump(*m), (regions{{0x5000, 0x1000}}));
  EXPECT_EQ((*m)[0].nid, -1);
  EXPECT_TRUE(m->reserve(phys_addr{0}, 0));  // empty: nothing
  EXPECT_EQ(m->size(), 1u);
  EXPECT_EQ(m->reserve(phys_addr{~u64{0} - 10}, 100).code(), errc::invalid_argument);
}

TEST(MemblockKernel, CountsOnlyOnceHalfFullAndDoubles) {
  arena<12> mem;
  auto m = memblock_kernel<source>::create(mem.pages());
  ASSERT_TRUE(m);
  // Descending, so each insert lands at slot 0 and moves everything.
  for (u64 i = 0; i < 64; ++i) ASSERT_TRUE(m->reserve(phys_addr{(299 - i) * 0x2000}, 0x1000));
  EXPECT_EQ(m->count_passes(), 0u);  // 63 * 2 + 1 <= 128: inserted directly
  ASSERT_TRUE(m->reserve(phys_addr{(299 - 64) * 0x2000}, 0x1000));
  EXPECT_EQ(m->count_passes(), 1u);  // 64 * 2 + 1 > 128: counted first
  for (u64 i = 65; i < 300; ++i) ASSERT_TRUE(m->reserve(phys_addr{(299 - i) * 0x2000}, 0x1000));
  EXPECT_EQ(m->size(), 300u);
  EXPECT_EQ(m->capacity(), 512u);
  EXPECT_EQ(m->doublings(), 2u);
  EXPECT_EQ(m->count_passes(), 300u - 64u);
  // A range already covered needs no piece: the count pass finds none and stops.
  ASSERT_TRUE(m->reserve(phys_addr{0x2000}, 0x800));
  EXPECT_EQ(m->size(), 300u);
  // Filling the gaps merges everything into one region.
  for (u64 i = 0; i < 299; ++i) ASSERT_TRUE(m->reserve(phys_addr{i * 0x2000 + 0x1000}, 0x1000));
  EXPECT_EQ(dump(*m), (regions{{0, 300 * 0x2000 - 0x1000}}));
  // A range over many regions and gaps adds only the gaps.
  ASSERT_TRUE(m->reserve(phys_addr{0x10000}, 0x10000000));
  EXPECT_EQ(dump(*m), (regions{{0, 0x10010000}}));
}

RC_GTEST_PROP(MemblockKernel, MatchesIntervalUnionAndOnePassModel, ()) {
  const auto spans = *rc::gen::container<std::vector<std::pair<u64, u64>>>(
      rc::gen::map(rc::gen::pair(rc::gen::inRange<u64>(0, 400), rc::gen::inRange<u64>(1, 20)),
                   [](std::pair<u64, u64> p) {
                     return std::pair<u64, u64>{p.first * 0x1000, (p.first + p.second) * 0x1000};
                   }));
  arena<12> mem(u64{8} << 20);
  auto k = memblock_kernel<source>::create(mem.pages());
  auto one = memblock_model<source>::create(mem.pages());
  RC_ASSERT(k.has_value() && one.has_value());
  for (auto [s, e] : spans) {
    RC_ASSERT(k->reserve(phys_addr{s}, e - s).ok());
    RC_ASSERT(one->reserve(phys_addr{s}, e - s).ok());
  }
  RC_ASSERT(dump(*k) == union_of(spans));
  RC_ASSERT(dump(*k) == dump(*one));
}

// ---- prepare / commit --------------------------------------------------------------

TEST(MemblockPrepare, OneAllocationPresentRegionsAtTheTailCancelRestoresThem) {
  arena<12> mem;
  auto m = memblock_model<source>::create(mem.pages());
  ASSERT_TRUE(m);
  ASSERT_TRUE(m->reserve(phys_addr{0x3000}, 0x1000));
  ASSERT_TRUE(m->reserve(phys_addr{0x10000}, 0x4000));
  const regions before = dump(*m);
  auto room = m->prepare(1000);
  ASSERT_TRUE(room);
  EXPECT_EQ(room->slots.size(), 1000u);
  EXPECT_EQ(dump(room->present), before);
  EXPECT_GE(m->capacity(), 1002u);
  EXPECT_EQ(m->doublings(), 0u);  // one resize, not a doubling
  room->slots[0] = {0x1000, 0x1000};
  m->cancel();  // a restore that failed leaves memblock as it was
  EXPECT_EQ(dump(*m), before);
  room = m->prepare(10);
  ASSERT_TRUE(room);
  room->slots[0] = {0x1000, 0x1000};
  m->commit(1);
  EXPECT_EQ(dump(*m), (regions{{0x1000, 0x1000}}));
  EXPECT_EQ(m->prepare(~u64{0}).code(), errc::out_of_range);
}

TEST(RestoreAtBound, MergesThePresentRegionsAsItWrites) {
  arena<12> mem(u64{16} << 20, u64{1} << 40);
  auto tree = preserve_bitmap<source>::create(mem.pages(), false);
  ASSERT_TRUE(tree);
  ASSERT_TRUE(tree->preserve(phys_addr{0x1000}, order{0}));
  ASSERT_TRUE(tree->preserve(phys_addr{0x12000}, order{1}));
  ASSERT_TRUE(tree->preserve(phys_addr{0x20000}, order{0}));
  std::vector<u64> scratch(64);
  auto view = attach_tree(mem.remap(), tree->root(), scratch);
  ASSERT_TRUE(view);
  auto m = memblock_model<source>::create(mem.pages());
  ASSERT_TRUE(m);
  ASSERT_TRUE(m->reserve(phys_addr{0x2000}, 0x1000));   // touches a restored region
  ASSERT_TRUE(m->reserve(phys_addr{0x10000}, 0x4000));  // overlaps one
  ASSERT_TRUE(m->reserve(phys_addr{0x40000}, 0x1000));  // between the blocks and the tree
  ASSERT_TRUE(restore_at_bound(*view, *m));
  EXPECT_EQ(dump(*m), (regions{{0x1000, 0x2000},
                               {0x10000, 0x4000},
                               {0x20000, 0x1000},
                               {0x40000, 0x1000},
                               {tree->root().value, 4096 * view->node_count()}}));
}

// ---- restore_part / join_parts -----------------------------------------------------

struct tree_fixture {
  arena<12> mem{u64{16} << 20, u64{1} << 40};
  std::optional<preserve_bitmap<source>> tree;
  std::vector<u64> scratch = std::vector<u64>(2048);

  explicit tree_fixture(bool own_pages = false) {
    tree.emplace(std::move(*preserve_bitmap<source>::create(mem.pages(), own_pages)));
  }
  auto view() {
    auto v = attach_tree(mem.remap(), tree->root(), scratch);
    EXPECT_TRUE(v);
    return *v;
  }
};

TEST(RestorePart, EmptyTreeRestoresItsRootPage) {
  tree_fixture f;
  auto view = f.view();
  EXPECT_EQ(restore_bound(view), 1u);
  auto m = memblock_model<source>::create(f.mem.pages());
  ASSERT_TRUE(m);
  ASSERT_TRUE(restore_at_bound(view, *m));
  EXPECT_EQ(dump(*m), (regions{{f.tree->root().value, 4096}}));
}

TEST(RestorePart, WindowClipsBlocksAndSliceTooSmallIsTableFull) {
  tree_fixture f;
  ASSERT_TRUE(f.tree->preserve(phys_addr{u64{1} << 21}, order{9}));  // [2 MiB, 4 MiB)
  ASSERT_TRUE(f.tree->preserve(phys_addr{0x1000}, order{0}));
  ASSERT_TRUE(f.tree->preserve(phys_addr{0x3000}, order{0}));
  auto view = f.view();
  memblock_region out[4];
  auto n = restore_part(view, phys_addr{0x3000}, phys_addr{0x300000}, out);
  ASSERT_TRUE(n);
  EXPECT_EQ(dump(std::span<const memblock_region>(out, *n)), (regions{{0x3000, 0x1000}, {0x200000, 0x100000}}));
  EXPECT_GE(restore_capacity(view, phys_addr{0x3000}, phys_addr{0x300000}), *n);
  EXPECT_EQ(restore_part(view, phys_addr{0}, phys_addr{~u64{0}}, std::span(out, 2)).code(), errc::table_full);
  EXPECT_EQ(restore_part(view, phys_addr{2}, phys_addr{1}, out).code(), errc::invalid_argument);
  // A window with nothing in it.
  n = restore_part(view, phys_addr{0x5000}, phys_addr{0x6000}, out);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0u);
}

TEST(JoinParts, MergesAtTheSeamAndClosesGaps) {
  memblock_region a[8] = {{0, 0x1000}, {0x2000, 0x2000}, {}, {}, {0x4000, 0x1000}, {0x8000, 0x1000}, {}, {}};
  const restore_slice parts[] = {{0, 2}, {4, 2}};
  auto n = join_parts(a, parts);
  ASSERT_TRUE(n);
  EXPECT_EQ(dump(std::span<const memblock_region>(a, *n)), (regions{{0, 0x1000}, {0x2000, 0x3000}, {0x8000, 0x1000}}));
  const restore_slice overlap[] = {{0, 3}, {2, 1}};
  EXPECT_EQ(join_parts(a, overlap).code(), errc::invalid_argument);
  const restore_slice outside[] = {{7, 2}};
  EXPECT_EQ(join_parts(a, outside).code(), errc::invalid_argument);
  const restore_slice none[] = {{0, 0}, {3, 0}};
  EXPECT_EQ(*join_parts(a, none), 0u);
}

TEST(SplitRestore, CutsOnLeafBoundariesAscending) {
  tree_fixture f;
  for (u64 i = 0; i < 8; ++i) ASSERT_TRUE(f.tree->preserve(phys_addr{i << 27}, order{0}));  // 8 leaves
  auto view = f.view();
  phys_addr splits[3];
  ASSERT_EQ(split_restore(view, splits), 3u);
  EXPECT_EQ(splits[0].value, u64{2} << 27);
  EXPECT_EQ(splits[1].value, u64{4} << 27);
  EXPECT_EQ(splits[2].value, u64{6} << 27);
  phys_addr many[20];
  EXPECT_EQ(split_restore(view, many), 7u);  // one leaf per part at most
}

// Random trees of mixed orders (tree pages recorded or not), random regions already
// in memblock, random windows: every strategy gives the union, and the parts joined
// give it too.
RC_GTEST_PROP(RestoreBound, AllStrategiesAgreeWithTheUnion, ()) {
  const auto blocks = *rc::gen::container<std::set<std::pair<u64, unsigned>>>(
      rc::gen::map(rc::gen::pair(rc::gen::inRange<u64>(0, 3000), rc::gen::element(0u, 0u, 0u, 1u, 9u, 18u)),
                   [](std::pair<u64, unsigned> p) {
                     const u64 span = u64{4096} << p.second;
                     return std::pair<u64, unsigned>{(p.first * 0x5000 / span) * span, p.second};
                   }));
  const auto present = *rc::gen::container<std::vector<std::pair<u64, u64>>>(
      rc::gen::map(rc::gen::pair(rc::gen::inRange<u64>(0, 4000), rc::gen::inRange<u64>(1, 40)),
                   [](std::pair<u64, u64> p) {
                     return std::pair<u64, u64>{p.first * 0x3000, p.first * 0x3000 + p.second * 0x800};
                   }));
  const bool own_pages = *rc::gen::arbitrary<bool>();
  tree_fixture f(own_pages);
  for (auto [pa, o] : blocks) {
    const status s = f.tree->preserve(phys_addr{pa}, order{o});
    RC_ASSERT(s.ok() || s.code() == errc::already_exists);  // a node page recorded first
  }
  auto view = f.view();
  std::vector<std::pair<u64, u64>> spans;
  view.for_each_range([&](phys_addr s, u64 n) { spans.emplace_back(s.value, s.value + n); });
  for (u64 n : view.nodes()) spans.emplace_back(n, n + 4096);
  const regions tree_union = union_of(spans);
  spans.insert(spans.end(), present.begin(), present.end());
  const regions all = union_of(spans);

  auto with_present = [&]() {
    auto m = memblock_model<source>::create(f.mem.pages());
    RC_ASSERT(m.has_value());
    for (auto [s, e] : present) RC_ASSERT(m->reserve(phys_addr{s}, e - s).ok());
    return std::move(*m);
  };
  auto linear = with_present();
  RC_ASSERT(restore_linear(view, linear).ok());
  RC_ASSERT(dump(linear) == all);
  auto bounded = with_present();
  RC_ASSERT(restore_at_bound(view, bounded).ok());
  RC_ASSERT(dump(bounded) == all);
  RC_ASSERT(bounded.doublings() == 0u);
  const unsigned threads = *rc::gen::inRange(1u, 5u);
  auto parallel = with_present();
  RC_ASSERT(model::restore_parallel(view, parallel, threads).ok());
  RC_ASSERT(dump(parallel) == all);

  // Any cut of the address space, page aligned or not: parts joined give the union.
  auto cuts = *rc::gen::container<std::vector<u64>>(*rc::gen::inRange<int>(0, 5),
                                                     rc::gen::inRange<u64>(0, u64{3000} * 0x5000 + (u64{1} << 31)));
  std::sort(cuts.begin(), cuts.end());
  cuts.insert(cuts.begin(), 0);
  cuts.push_back(~u64{0});
  std::vector<memblock_region> array(restore_bound(view) + cuts.size() * 64);
  std::vector<restore_slice> slices;
  u64 offset = 0;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    const phys_addr lo{cuts[i]}, hi{cuts[i + 1]};
    const u64 cap = restore_capacity(view, lo, hi);
    auto n = restore_part(view, lo, hi, std::span(array).subspan(offset, cap));
    RC_ASSERT(n.has_value());
    RC_ASSERT(*n <= cap);
    RC_ASSERT(dump(std::span<const memblock_region>(array.data() + offset, *n)) == clip(tree_union, lo.value, hi.value));
    slices.push_back({offset, *n});
    offset += cap;
  }
  auto joined = join_parts(array, slices);
  RC_ASSERT(joined.has_value());
  RC_ASSERT(dump(std::span<const memblock_region>(array.data(), *joined)) == tree_union);
}

// Linux's naive restore through the kernel model leaves the same regions.
RC_GTEST_PROP(RestoreBound, KernelNaiveAgrees, ()) {
  const auto pages = *rc::gen::container<std::set<u64>>(rc::gen::inRange<u64>(0, 1u << 16));
  tree_fixture f;
  for (u64 p : pages) RC_ASSERT(f.tree->preserve(phys_addr{p << 12}, order{0}).ok());
  auto view = f.view();
  auto k = memblock_kernel<source>::create(f.mem.pages());
  auto b = memblock_model<source>::create(f.mem.pages());
  RC_ASSERT(k.has_value() && b.has_value());
  RC_ASSERT(restore_naive(view, *k).ok());
  RC_ASSERT(restore_at_bound(view, *b).ok());
  RC_ASSERT(dump(*k) == dump(*b));
}

}  // namespace
}  // namespace kho::test::restore_bound_test
