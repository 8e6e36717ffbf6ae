// Preserving page source: every block it hands out is preserved, every block it takes
// back is unpreserved, and a failed preserve gives the block back. With a set-based fake
// preserver, then with the real preserve_bitmap under an xarray growing after
// preservation.
#include <kho/preserve_bitmap.hpp>
#include <kho/preserving_page_source.hpp>
#include <kho/xarray.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <set>
#include <utility>

namespace kho::test::preserving_page_source_test {
namespace {

/// A Preserver that remembers blocks in a std::set and can be told to fail.
struct fake_preserver {
  std::set<std::pair<u64, unsigned>> blocks;
  bool fail_next = false;

  status preserve(phys_addr pa, order o) {
    if (std::exchange(fail_next, false)) return errc::out_of_memory;
    return blocks.insert({pa.value, o.value}).second ? status{} : status{errc::already_exists};
  }
  status unpreserve(phys_addr pa, order o) {
    return blocks.erase({pa.value, o.value}) ? status{} : status{errc::not_found};
  }
};
static_assert(Preserver<fake_preserver>);

using bump = arena<12>::source_type;
static_assert(PageSource<preserving_page_source<bump, fake_preserver>>);

TEST(PreservingPageSource, RecordsAllocAndForgetsFree) {
  arena<12> mem{u64{8} << 20};
  fake_preserver map;
  preserving_page_source<bump, fake_preserver> pages(mem.pages(), map);
  auto a = pages.alloc(order{0});
  auto b = pages.alloc(order{3});
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(map.blocks.count({a->value, 0}));
  EXPECT_TRUE(map.blocks.count({b->value, 3}));
  pages.free(*a, order{0});
  EXPECT_FALSE(map.blocks.count({a->value, 0}));
  EXPECT_EQ(map.blocks.size(), 1u);
  EXPECT_EQ(mem.pages().pages_in_use(), 8u);
}

TEST(PreservingPageSource, AFailedPreserveReturnsTheBlock) {
  arena<12> mem{u64{8} << 20};
  fake_preserver map;
  preserving_page_source<bump, fake_preserver> pages(mem.pages(), map);
  map.fail_next = true;
  auto a = pages.alloc(order{0});
  EXPECT_EQ(a.code(), errc::out_of_memory);
  EXPECT_TRUE(map.blocks.empty());
  EXPECT_EQ(mem.pages().pages_in_use(), 0u);
}

TEST(PreservingPageSource, XarrayNodesStayExactlyPreservedThroughGrowthAndErase) {
  arena<12> mem{u64{32} << 20};
  fake_preserver map;
  preserving_page_source<bump, fake_preserver> pages(mem.pages(), map);
  auto x = make_xarray<u64>(pages);
  ASSERT_TRUE(x);
  for (u64 i = 0; i < 5000; ++i) ASSERT_TRUE(x->store(i * 7, i + 1));
  ASSERT_TRUE(x->set_mark(14, xa_mark::mark0));
  EXPECT_EQ(map.blocks.size(), x->nodes() + 1);  // + the root block
  for (u64 i = 0; i < 5000; i += 2) ASSERT_TRUE(x->erase(i * 7));
  EXPECT_EQ(map.blocks.size(), x->nodes() + 1);
  map.fail_next = true;  // a node allocation whose preservation fails is refused
  const u64 before = x->count();
  status s = errc::ok;
  for (u64 i = 0; i < 100000 && s.ok(); ++i) s = x->store((u64{1} << 40) + i * 4096, 1);
  EXPECT_EQ(s.code(), errc::out_of_memory);
  EXPECT_EQ(map.blocks.size(), x->nodes() + 1);
  EXPECT_GE(x->count(), before);
}

TEST(PreservingPageSource, RealPreserveBitmapTracksInsertsAfterPreservation) {
  arena<12> mem{u64{64} << 20};
  auto bitmap = preserve_bitmap<bump, 12>::create(mem.pages(), false);
  ASSERT_TRUE(bitmap);
  preserving_page_source<bump, preserve_bitmap<bump, 12>> pages(mem.pages(), *bitmap);
  auto x = make_xarray<u64>(pages);
  ASSERT_TRUE(x);
  for (u64 i = 0; i < 3000; ++i) ASSERT_TRUE(x->store(i, i + 1));
  // "preserved" here; faults keep arriving
  for (u64 i = 0; i < 3000; ++i) ASSERT_TRUE(x->store((u64{1} << 30) + i * 513, i + 1));
  EXPECT_TRUE(bitmap->is_preserved(x->root()));
  EXPECT_EQ(bitmap->total(), x->nodes() + 1);
  for (u64 i = 0; i < 3000; ++i) ASSERT_TRUE(x->erase(i));
  EXPECT_EQ(bitmap->total(), x->nodes() + 1);
  u64 preserved_pages = 0;
  bitmap->for_each_block([&](phys_addr pa, order o) {
    preserved_pages += u64{1} << o.value;
    EXPECT_TRUE(bitmap->is_preserved(pa));
  });
  EXPECT_EQ(preserved_pages, x->nodes() + 1);
}

}  // namespace
}  // namespace kho::test::preserving_page_source_test
