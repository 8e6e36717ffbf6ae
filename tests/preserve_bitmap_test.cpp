// Radix preservation bitmaps: golden keys and bytes, edges, all page sizes.
#include <kho/preserve_bitmap.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

namespace kho::test::preserve_bitmap_test {
namespace {

using ranges = std::vector<std::pair<u64, u64>>;

template <class Tree>
ranges walk(const Tree& t, phys_addr from = phys_addr{0}, phys_addr to = phys_addr{~u64{0}}) {
  ranges out;
  t.for_each_range(from, to, [&](phys_addr s, u64 n) { out.emplace_back(s.value, n); });
  return out;
}

template <unsigned S>
u64 key_of(u64 pa, unsigned o) {
  u64 key = 0;
  EXPECT_EQ(radix_geometry<S>::encode(phys_addr{pa}, order{o}, key), errc::ok);
  return key;
}

TEST(RadixGeometry, DepthAndWidthPerPageSize) {
  EXPECT_EQ(radix_geometry<12>::depth, 6u);
  EXPECT_EQ(radix_geometry<12>::tree_bits, 60u);
  EXPECT_EQ(radix_geometry<14>::depth, 5u);  // 51 key bits: 17 + 3 * 11 would be one short
  EXPECT_EQ(radix_geometry<14>::tree_bits, 61u);
  EXPECT_EQ(radix_geometry<16>::depth, 4u);
  EXPECT_EQ(radix_geometry<16>::tree_bits, 58u);
  // One 4 KiB leaf covers 2^15 order-0 pages: 128 MiB.
  EXPECT_EQ((u64{1} << radix_geometry<12>::leaf_bits) * 4096, u64{128} << 20);
}

TEST(RadixGeometry, GoldenKeysComputedByHand) {
  EXPECT_EQ(key_of<12>(0, 0), 0x0010000000000000u);
  EXPECT_EQ(key_of<12>(0x1000, 0), 0x0010000000000001u);
  EXPECT_EQ(key_of<12>(0xfffff000, 0), 0x00100000000fffffu);
  EXPECT_EQ(key_of<12>(0x200000, 9), 0x0000080000000001u);       // 2^43 | 1
  EXPECT_EQ(key_of<12>(0x40000000, 18), 0x0000000400000001u);    // 2^34 | 1
  EXPECT_EQ(key_of<12>(0x8000000000000000, 51), 0x3u);           // 2^1 | 1
  EXPECT_EQ(key_of<14>(0x8000, 1), 0x0002000000000001u);         // 2^49 | 1
  EXPECT_EQ(key_of<16>(0x10000, 0), 0x0001000000000001u);        // 2^48 | 1
  EXPECT_EQ(key_of<16>(0x200000000, 4), 0x0000100000002000u);    // 2^44 | 2^33 >> 20
  u64 key = 0;
  EXPECT_EQ(radix_geometry<12>::encode(phys_addr{0x1000}, order{1}, key), errc::misaligned);
  EXPECT_EQ(radix_geometry<12>::encode(phys_addr{0}, order{52}, key), errc::out_of_range);
  EXPECT_EQ(key_of<14>(0x4000, 0), 0x0004000000000001u);  // order 0's bit is bit 50
  for (u64 k : {u64{2}, u64{3}, u64{0x0010000000000001}, u64{0x0000080000000001}}) {
    phys_addr pa{};
    order o{};
    ASSERT_TRUE(radix_geometry<12>::decode(k, pa, o));
    u64 back = 0;
    EXPECT_EQ(radix_geometry<12>::encode(pa, o, back), errc::ok);
    EXPECT_EQ(back, k);
  }
  phys_addr pa{};
  order o{};
  EXPECT_FALSE(radix_geometry<12>::decode(0, pa, o));
  EXPECT_FALSE(radix_geometry<12>::decode(1, pa, o));
}

TEST(PreserveBitmap, GoldenTreeBytes) {
  arena<12> mem;
  auto t = preserve_bitmap<arena<12>::source_type>::create(mem.pages(), /*record_own_pages=*/false);
  ASSERT_TRUE(t);
  const phys_addr root = t->root();
  ASSERT_TRUE(t->preserve(phys_addr{0x1000}, order{0}));
  // Key 2^52|1: root digit (bits 59..51) 2, four zero digits, leaf bit 1. The bump
  // source hands out consecutive pages: root, then one table per level, then the leaf.
  auto u64_at = [&](phys_addr page, u64 index) {
    u64 v;
    std::memcpy(&v, mem.bytes(page) + index * 8, 8);
    return v;
  };
  for (u64 i = 0; i < 512; ++i) EXPECT_EQ(u64_at(root, i), i == 2 ? root.value + 0x1000 : 0) << i;
  for (unsigned level = 1; level <= 4; ++level) {
    const phys_addr table = root + level * 0x1000;
    for (u64 i = 0; i < 512; ++i)
      EXPECT_EQ(u64_at(table, i), i == 0 ? table.value + 0x1000 : 0) << level << ":" << i;
  }
  const phys_addr leaf = root + 5 * 0x1000;
  for (u64 i = 0; i < 512; ++i) EXPECT_EQ(u64_at(leaf, i), i == 0 ? 2u : 0u) << i;
  // Bit n is bit n%64 of little-endian word n/64: the byte image says it too.
  EXPECT_EQ(mem.bytes(leaf)[0], 0x02);
  EXPECT_EQ(t->node_count(), 6u);
}

TEST(PreserveBitmap, EdgesAndErrors) {
  arena<12> mem;
  auto t = preserve_bitmap<arena<12>::source_type>::create(mem.pages(), false);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->preserve(phys_addr{0x1000}, order{1}).code(), errc::misaligned);
  EXPECT_EQ(t->preserve(phys_addr{0}, order{52}).code(), errc::out_of_range);
  EXPECT_EQ(t->unpreserve(phys_addr{0x1000}, order{0}).code(), errc::not_found);
  ASSERT_TRUE(t->preserve(phys_addr{0x1000}, order{0}));
  EXPECT_EQ(t->preserve(phys_addr{0x1000}, order{0}).code(), errc::already_exists);
  EXPECT_EQ(t->unpreserve(phys_addr{0x2000}, order{0}).code(), errc::not_found);
  // The largest order: a block of 2^63 bytes at 2^63, and the page at the very top.
  ASSERT_TRUE(t->preserve(phys_addr{u64{1} << 63}, order{51}));
  ASSERT_TRUE(t->preserve(phys_addr{~u64{0} & ~u64{0xfff}}, order{0}));
  EXPECT_TRUE(t->is_preserved(phys_addr{(u64{1} << 63) + 12345}));
  EXPECT_FALSE(t->is_preserved(phys_addr{(u64{1} << 62)}));
  EXPECT_EQ(t->count(order{51}), 1u);
  EXPECT_EQ(t->total(), 3u);
  const ranges r = walk(*t);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0], (std::pair<u64, u64>{0x1000, 0x1000}));
  // The top block ends at 2^64: reported up to the last byte the window allows.
  EXPECT_EQ(r[1].first, u64{1} << 63);
  EXPECT_EQ(r[1].second, (u64{1} << 63) - 1);
}

TEST(PreserveBitmap, WalkMergesOrdersInAddressOrderAndCoalesces) {
  arena<12> mem;
  auto t = preserve_bitmap<arena<12>::source_type>::create(mem.pages(), false);
  ASSERT_TRUE(t);
  ASSERT_TRUE(t->preserve(phys_addr{0x200000}, order{9}));   // [2 MiB, 4 MiB)
  ASSERT_TRUE(t->preserve(phys_addr{0x1ff000}, order{0}));   // touches it from below
  ASSERT_TRUE(t->preserve(phys_addr{0x400000}, order{0}));   // and from above
  ASSERT_TRUE(t->preserve(phys_addr{0x40000000}, order{18}));  // 1 GiB block
  ASSERT_TRUE(t->preserve(phys_addr{0x40001000}, order{0}));   // overlaps it
  ASSERT_TRUE(t->preserve(phys_addr{0x90000000}, order{1}));
  EXPECT_EQ(walk(*t), (ranges{{0x1ff000, 0x202000}, {0x40000000, 0x40000000}, {0x90000000, 0x2000}}));
  // Tree order: largest order first, ascending addresses within.
  std::vector<std::pair<u64, unsigned>> blocks;
  t->for_each_block([&](phys_addr pa, order o) { blocks.emplace_back(pa.value, o.value); });
  EXPECT_EQ(blocks, (std::vector<std::pair<u64, unsigned>>{{0x40000000, 18}, {0x200000, 9},
                                                           {0x90000000, 1}, {0x1ff000, 0},
                                                           {0x400000, 0}, {0x40001000, 0}}));
  // Windows clip ranges and skip what lies outside.
  EXPECT_EQ(walk(*t, phys_addr{0x300000}, phys_addr{0x40000800}),
            (ranges{{0x300000, 0x101000}, {0x40000000, 0x800}}));
  EXPECT_EQ(walk(*t, phys_addr{0x401000}, phys_addr{0x40000000}), ranges{});
  int calls = 0;
  t->for_each_range([&](phys_addr, u64) { return ++calls < 2; });
  EXPECT_EQ(calls, 2);
}

TEST(PreserveBitmap, UnpreserveFreesEmptyNodesUpThePath) {
  arena<12> mem;
  auto t = preserve_bitmap<arena<12>::source_type>::create(mem.pages(), false);
  ASSERT_TRUE(t);
  const u64 before = mem.pages().pages_in_use();
  ASSERT_TRUE(t->preserve(phys_addr{0x5000}, order{0}));
  ASSERT_TRUE(t->preserve(phys_addr{0x6000}, order{0}));
  EXPECT_EQ(t->node_count(), 6u);
  ASSERT_TRUE(t->unpreserve(phys_addr{0x5000}, order{0}));
  EXPECT_EQ(t->node_count(), 6u);  // the leaf still holds 0x6000
  ASSERT_TRUE(t->unpreserve(phys_addr{0x6000}, order{0}));
  EXPECT_EQ(t->node_count(), 1u);  // leaf and four tables freed, root kept
  EXPECT_EQ(mem.pages().pages_in_use(), before);
  EXPECT_EQ(walk(*t), ranges{});
}

TEST(PreserveBitmap, RecordsItsOwnPages) {
  arena<12> mem;
  auto t = preserve_bitmap<arena<12>::source_type>::create(mem.pages());
  ASSERT_TRUE(t);
  ASSERT_TRUE(t->preserve(phys_addr{0x1000}, order{0}));
  std::vector<u64> scratch(64);
  auto v = attach_tree(mem.memory(), t->root(), scratch);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->total(), 1 + v->node_count());
  v->for_each_node([&](phys_addr n) { EXPECT_TRUE(t->is_preserved(n)) << std::hex << n.value; });
  ASSERT_TRUE(t->unpreserve(phys_addr{0x1000}, order{0}));
  EXPECT_FALSE(t->is_preserved(phys_addr{0x1000}));
  t->clear();
  EXPECT_EQ(t->node_count(), t->total() - 0);  // only node records remain
}

template <class Shift>
class PreserveBitmapShift : public ::testing::Test {};
using shifts = ::testing::Types<std::integral_constant<unsigned, 12>,
                                std::integral_constant<unsigned, 14>,
                                std::integral_constant<unsigned, 16>>;
TYPED_TEST_SUITE(PreserveBitmapShift, shifts);

TYPED_TEST(PreserveBitmapShift, RoundTripAtAnotherAddress) {
  constexpr unsigned S = TypeParam::value;
  using geo = page_geometry<S>;
  arena<S> mem(u64{64} << 20);
  auto t = preserve_bitmap<typename arena<S>::source_type, S>::create(mem.pages());
  ASSERT_TRUE(t);
  ASSERT_TRUE(t->preserve(phys_addr{geo::size * 3}, order{0}));
  for (u64 i = 0; i < 300; ++i)
    ASSERT_TRUE(t->preserve(phys_addr{(i * 7919 % 4096) * (geo::size << 1)}, order{1})) << i;
  ASSERT_TRUE(t->preserve(phys_addr{u64{1} << 40}, order{9}));
  const ranges before = walk(*t);
  std::vector<u64> scratch(256);
  auto v = attach_tree<S>(mem.remap(), t->root(), scratch);
  ASSERT_TRUE(v) << to_string(v.code());
  EXPECT_EQ(walk(*v), before);
  EXPECT_EQ(v->count(order{1}), 300u);
  EXPECT_EQ(v->count(order{9}), 1u);
  EXPECT_TRUE(v->is_preserved(phys_addr{(u64{1} << 40) + geo::size * 5}));
  EXPECT_TRUE(v->contains(phys_addr{u64{1} << 40}, order{9}));
}

TEST(PreserveBitmapView, ReadsALinuxStyleTree) {
  // Built by hand the way Linux leaves it: nothing records the tree's own pages, and
  // an emptied leaf stays linked.
  arena<12> mem;
  auto t = preserve_bitmap<arena<12>::source_type>::create(mem.pages(), false);
  ASSERT_TRUE(t);
  ASSERT_TRUE(t->preserve(phys_addr{0x7000}, order{0}));
  ASSERT_TRUE(t->preserve(phys_addr{0x10000000}, order{0}));  // another leaf: 256 MiB
  // Empty that second leaf by hand, as a kernel that never frees nodes would.
  std::vector<u64> scratch(32);
  {
    auto v = attach_tree(mem.memory(), t->root(), scratch);
    ASSERT_TRUE(v);
    const u64 leaf = v->nodes().back();
    std::memset(mem.bytes(phys_addr{leaf}), 0, 4096);
  }
  auto v = attach_tree(mem.memory(), t->root(), scratch);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->total(), 1u);
  EXPECT_EQ(v->node_count(), 7u);  // root, 4 tables, 2 leaves
  EXPECT_EQ(walk(*v), (ranges{{0x7000, 0x1000}}));
}

}  // namespace
}  // namespace kho::test::preserve_bitmap_test
