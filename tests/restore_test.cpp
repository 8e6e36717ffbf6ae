// memblock model and the two restore strategies.
#include <kho/restore.hpp>

#include "region_oracle.hpp"
#include "test_arena.hpp"

#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <utility>
#include <vector>

namespace kho::test::restore_test {
namespace {

TEST(Memblock, ReserveKeepsSortedMergedAndDoubles) {
  arena<12> mem;
  auto m = memblock_model<arena<12>::source_type>::create(mem.pages());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->capacity(), 128u);
  for (u64 i = 0; i < 300; ++i) ASSERT_TRUE(m->reserve(phys_addr{(299 - i) * 0x2000}, 0x1000));
  EXPECT_EQ(m->size(), 300u);
  EXPECT_EQ(m->capacity(), 512u);
  EXPECT_EQ(m->doublings(), 2u);
  // Filling the gaps merges everything into one region.
  for (u64 i = 0; i < 299; ++i) ASSERT_TRUE(m->reserve(phys_addr{i * 0x2000 + 0x1000}, 0x1000));
  EXPECT_EQ(dump(*m), (regions{{0, 300 * 0x2000 - 0x1000}}));
  // Overlaps add only what is new.
  ASSERT_TRUE(m->reserve(phys_addr{0x10000}, 0x10000000));
  EXPECT_EQ(dump(*m), (regions{{0, 0x10010000}}));
  EXPECT_EQ(m->reserve(phys_addr{~u64{0} - 10}, 100).code(), errc::invalid_argument);
}

RC_GTEST_PROP(Memblock, ReserveAndAppendMatchIntervalUnion, ()) {
  const auto spans = *rc::gen::container<std::vector<std::pair<u64, u64>>>(
      rc::gen::map(rc::gen::pair(rc::gen::inRange<u64>(0, 400), rc::gen::inRange<u64>(1, 20)),
                   [](std::pair<u64, u64> p) {
                     return std::pair<u64, u64>{p.first * 0x1000, (p.first + p.second) * 0x1000};
                   }));
  arena<12> mem(u64{4} << 20);
  auto m = memblock_model<arena<12>::source_type>::create(mem.pages());
  auto a = memblock_model<arena<12>::source_type>::create(mem.pages());
  RC_ASSERT(m.has_value() && a.has_value());
  for (auto [s, e] : spans) {
    RC_ASSERT(m->reserve(phys_addr{s}, e - s).ok());
    RC_ASSERT(a->append(phys_addr{s}, e - s).ok());  // out of order falls back to reserve
  }
  RC_ASSERT(dump(*m) == union_of(spans));
  RC_ASSERT(dump(*a) == union_of(spans));
}

RC_GTEST_PROP(Restore, NaiveAndLinearLeaveIdenticalRegions, ()) {
  const auto blocks = *rc::gen::container<std::set<std::pair<u64, unsigned>>>(
      rc::gen::map(rc::gen::pair(rc::gen::inRange<u64>(0, 2000), rc::gen::element(0u, 0u, 1u, 9u, 18u)),
                   [](std::pair<u64, unsigned> p) {
                     const u64 span = u64{4096} << p.second;
                     return std::pair<u64, unsigned>{(p.first * 0x5000 / span) * span, p.second};
                   }));
  const bool own_pages = *rc::gen::arbitrary<bool>();
  arena<12> mem(u64{16} << 20, u64{1} << 40);
  auto tree = preserve_bitmap<arena<12>::source_type>::create(mem.pages(), own_pages);
  RC_ASSERT(tree.has_value());
  for (auto [pa, o] : blocks) RC_ASSERT(tree->preserve(phys_addr{pa}, order{o}).ok());
  std::vector<u64> scratch(1024);
  auto view = attach_tree(mem.remap(), tree->root(), scratch);
  RC_ASSERT(view.has_value());
  auto naive = memblock_model<arena<12>::source_type>::create(mem.pages());
  auto linear = memblock_model<arena<12>::source_type>::create(mem.pages());
  RC_ASSERT(naive.has_value() && linear.has_value());
  RC_ASSERT(restore_naive(*view, *naive).ok());
  RC_ASSERT(restore_linear(*view, *linear).ok());
  std::vector<std::pair<u64, u64>> spans;
  for (auto [pa, o] : blocks) spans.emplace_back(pa, pa + (u64{4096} << o));
  for (u64 n : view->nodes()) spans.emplace_back(n, n + 4096);
  RC_ASSERT(dump(*naive) == dump(*linear));
  RC_ASSERT(dump(*linear) == union_of(spans));
}

}  // namespace
}  // namespace kho::test::restore_test
