// Radix preservation bitmaps against hostile trees: cycles, shared subtrees,
// addresses outside memory, misaligned entries, keys the format cannot hold, budgets,
// and every bit of every table flipped in turn.
#include <kho/preserve_bitmap.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace kho::test {
namespace {

using tree_type = preserve_bitmap<arena<12>::source_type>;

// A tree without own-page records: root, then the path to 0x1000's leaf at root+1..5
// pages, then (after 0x10000000) a second leaf.
struct small_tree {
  arena<12> mem{u64{8} << 20};
  std::optional<tree_type> tree;
  std::vector<u64> scratch = std::vector<u64>(64);

  small_tree() {
    tree.emplace(std::move(*tree_type::create(mem.pages(), false)));
    EXPECT_TRUE(tree->preserve(phys_addr{0x1000}, order{0}));
    EXPECT_TRUE(tree->preserve(phys_addr{0x10000000}, order{0}));
    EXPECT_TRUE(tree->preserve(phys_addr{0x200000}, order{9}));
  }
  phys_addr root() const { return tree->root(); }
  phys_addr page(u64 i) const { return root() + i * 4096; }
  u64& slot(phys_addr table, u64 i) { return *reinterpret_cast<u64*>(mem.bytes(table) + i * 8); }
  result<preserve_bitmap_view<flat_memory, 12>> attach() {
    return attach_preserve_bitmap(mem.memory(), root(), scratch);
  }
};

TEST(CorruptPreserveBitmap, TableEntryPointingToItselfIsACycle) {
  small_tree t;
  t.slot(t.page(1), 7) = t.page(1).value;
  auto v = t.attach();
  EXPECT_EQ(v.code(), errc::cycle);
  EXPECT_EQ(v.err().loc.at, t.page(1));
  EXPECT_STREQ(v.err().loc.structure, "radix");
}

TEST(CorruptPreserveBitmap, PointerBackToTheRootIsACycle) {
  small_tree t;
  t.slot(t.page(3), 100) = t.root().value;
  EXPECT_EQ(t.attach().code(), errc::cycle);
}

TEST(CorruptPreserveBitmap, SharedSubtreeIsReachedTwice) {
  small_tree t;
  t.slot(t.root(), 3) = t.slot(t.root(), 2);  // two top digits, one subtree
  EXPECT_EQ(t.attach().code(), errc::cycle);
}

TEST(CorruptPreserveBitmap, AddressesOutsideMemory) {
  for (u64 bad : {u64{0x1000}, u64{0xfffffffffffff000}, u64{(u64{4} << 30) + (u64{8} << 20)}}) {
    small_tree t;
    t.slot(t.page(2), 5) = bad;
    auto v = t.attach();
    EXPECT_EQ(v.code(), errc::out_of_bounds) << std::hex << bad;
    EXPECT_EQ(v.err().loc.at.value, bad);
    EXPECT_EQ(v.err().loc.depth, 3u);
  }
  small_tree t;
  flat_memory truncated(t.mem.memory().base(), 4096 * 3, t.mem.memory().virt());
  EXPECT_EQ(attach_preserve_bitmap(truncated, t.root(), t.scratch).code(), errc::out_of_bounds);
}

TEST(CorruptPreserveBitmap, MisalignedEntryAndRoot) {
  small_tree t;
  t.slot(t.page(1), 0) += 8;
  EXPECT_EQ(t.attach().code(), errc::misaligned);
  EXPECT_EQ(attach_preserve_bitmap(t.mem.memory(), t.root() + 16, t.scratch).code(), errc::misaligned);
}

TEST(CorruptPreserveBitmap, KeysTheFormatCannotHold) {
  {
    // Top digits 4..511 would be keys of 54+ bits: an order below zero.
    small_tree t;
    t.slot(t.root(), 4) = t.slot(t.root(), 2);
    t.slot(t.root(), 2) = 0;
    EXPECT_EQ(t.attach().code(), errc::out_of_range);
  }
  {
    // Keys 0 and 1 stand for no block.
    small_tree t;
    ASSERT_TRUE(t.tree->preserve(phys_addr{u64{1} << 63}, order{51}));  // key 3: the all-zero path
    auto v = t.attach();
    ASSERT_TRUE(v);
    const u64 leaf = [&] {
      u64 table = t.root().value;
      for (int level = 5; level > 0; --level) table = t.slot(phys_addr{table}, 0);
      return table;
    }();
    *reinterpret_cast<u64*>(t.mem.bytes(phys_addr{leaf})) |= 1;
    EXPECT_EQ(t.attach().code(), errc::out_of_range);
  }
}

TEST(CorruptPreserveBitmap, NodeBudgetIsTheScratch) {
  small_tree t;
  std::vector<u64> tiny(5);
  EXPECT_EQ(attach_preserve_bitmap(t.mem.memory(), t.root(), tiny).code(), errc::budget_exceeded);
  std::vector<u64> none;
  EXPECT_EQ(attach_preserve_bitmap(t.mem.memory(), t.root(), none).code(), errc::budget_exceeded);
}

TEST(CorruptPreserveBitmap, DepthIsExactNoMatterWhatTheLeavesHold) {
  // A leaf full of what look like table addresses is still a leaf: never followed.
  small_tree t;
  auto v = t.attach();
  ASSERT_TRUE(v);
  const u64 nodes = v->node_count();
  const phys_addr leaf = t.page(5);
  for (u64 i = 0; i < 512; ++i) t.slot(leaf, i) = t.root().value;
  auto again = t.attach();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->node_count(), nodes);
}

TEST(CorruptPreserveBitmap, EveryBitFlipOfEveryTableIsRefusedOrReadSafely) {
  small_tree t;
  auto v = t.attach();
  ASSERT_TRUE(v);
  std::vector<u64> tables;
  for (u64 n : v->nodes())
    if (n != t.page(5).value) tables.push_back(n);  // flips in leaves change the set, legally
  u64 refused = 0, accepted = 0;
  for (u64 table : tables) {
    for (u64 byte = 0; byte < 4096; byte += 8) {  // one word in eight keeps this fast
      for (unsigned bit = 0; bit < 64; ++bit) {
        u64& w = t.slot(phys_addr{table}, byte / 8);
        w ^= u64{1} << bit;
        auto r = t.attach();
        if (r) {
          ++accepted;
          u64 sum = 0;  // whatever was accepted must walk without faults
          r->for_each_range([&](phys_addr s, u64 n) { sum += s.value ^ n; });
          r->for_each_block([&](phys_addr s, order o) { sum += s.value + o.value; });
          (void)sum;
        } else {
          ++refused;
        }
        w ^= u64{1} << bit;
      }
    }
  }
  EXPECT_GT(refused, 0u);
  EXPECT_TRUE(t.attach());
  RecordProperty("refused", static_cast<int>(refused));
  RecordProperty("accepted", static_cast<int>(accepted));
}

}  // namespace
}  // namespace kho::test
