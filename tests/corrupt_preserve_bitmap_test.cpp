// Radix preservation bitmaps against hostile trees: cycles, shared subtrees,
// addresses outside memory, misaligned entries, keys the format cannot hold, budgets,
// and every bit of every table flipped in turn.
#include <kho/model/inspect_radix.hpp>
#include <kho/page_owners.hpp>
#include <kho/preserve_bitmap.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <span>
#include <vector>

namespace kho::test::corrupt_preserve_bitmap_test {
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
    return attach_tree(mem.memory(), root(), scratch);
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

void expect_radix_error(const result<preserve_bitmap_view<flat_memory, 12>>& v, errc code,
                        phys_addr at, u32 depth) {
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.code(), code) << to_string(v.code());
  EXPECT_STREQ(v.err().loc.structure, "radix");
  EXPECT_EQ(v.err().loc.at, at) << std::hex << v.err().loc.at.value;
  EXPECT_EQ(v.err().loc.depth, depth);
}

TEST(CorruptPreserveBitmap, PointerBackToTheRootIsACycle) {
  small_tree t;
  t.slot(t.page(3), 100) = t.root().value;
  // page(3) is at depth 3: the root is reached again as its child, at depth 4.
  expect_radix_error(t.attach(), errc::cycle, t.root(), 4);
}

// The path check: a child naming its parent or grandparent is caught where the
// ancestor is reached again, at the depth of that second arrival, before its subtree
// is read a second time.
TEST(CorruptPreserveBitmap, ChildPointingAtItsParentOrGrandparent) {
  {
    small_tree t;
    t.slot(t.page(4), 100) = t.page(3).value;  // page(4) at depth 4, page(3) its parent
    expect_radix_error(t.attach(), errc::cycle, t.page(3), 5);
  }
  {
    small_tree t;
    t.slot(t.page(4), 100) = t.page(2).value;  // the grandparent
    expect_radix_error(t.attach(), errc::cycle, t.page(2), 5);
  }
  {
    small_tree t;
    t.slot(t.page(2), 300) = t.page(1).value;  // page(2) at depth 2, its parent
    expect_radix_error(t.attach(), errc::cycle, t.page(1), 3);
  }
}

TEST(CorruptPreserveBitmap, SharedSubtreeIsReachedTwice) {
  small_tree t;
  t.slot(t.root(), 3) = t.slot(t.root(), 2);  // two top digits, one subtree
  expect_radix_error(t.attach(), errc::cycle, phys_addr{t.slot(t.root(), 2)}, 1);
}

TEST(CorruptPreserveBitmap, SharedLeafIsReachedTwice) {
  small_tree t;
  t.slot(t.page(4), 300) = t.page(5).value;  // a second slot naming 0x1000's leaf
  expect_radix_error(t.attach(), errc::cycle, t.page(5), 5);
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
  expect_radix_error(attach_tree(truncated, t.root(), t.scratch), errc::out_of_bounds, t.page(7), 1);
}

TEST(CorruptPreserveBitmap, MisalignedEntryAndRoot) {
  small_tree t;
  t.slot(t.page(1), 0) += 8;
  expect_radix_error(t.attach(), errc::misaligned, t.page(2) + 8, 2);
  expect_radix_error(attach_tree(t.mem.memory(), t.root() + 16, t.scratch), errc::misaligned,
                     t.root() + 16, 0);
}

TEST(CorruptPreserveBitmap, KeysTheFormatCannotHold) {
  {
    // Top digits 4..511 would be keys of 54+ bits: an order below zero.
    small_tree t;
    t.slot(t.root(), 4) = t.slot(t.root(), 2);
    t.slot(t.root(), 2) = 0;
    expect_radix_error(t.attach(), errc::out_of_range, t.root(), 0);
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
    expect_radix_error(t.attach(), errc::out_of_range, phys_addr{leaf}, 5);
    *reinterpret_cast<u64*>(t.mem.bytes(phys_addr{leaf})) ^= 3;  // key 1 alone
    expect_radix_error(t.attach(), errc::out_of_range, phys_addr{leaf}, 5);
    *reinterpret_cast<u64*>(t.mem.bytes(phys_addr{leaf})) ^= 2;  // back to key 3 alone
    EXPECT_TRUE(t.attach());
  }
}

// Keys need 65 - PAGE_SHIFT = 53 bits: root digit 4 starts at key 4 << 51 = 2^53, the
// key limit exactly, and is refused; digit 3 (keys from 3 << 51) is the last valid one.
TEST(CorruptPreserveBitmap, TableEntryAtExactlyTheKeyLimitAndOneBelow) {
  static_assert((u64{4} << radix_geometry<12>::span_bits(4)) == radix_geometry<12>::key_limit);
  {
    small_tree t;
    t.slot(t.root(), 4) = alloc_zeroed(t.mem.pages(), order{0}, 4096)->value;  // an empty table
    expect_radix_error(t.attach(), errc::out_of_range, t.root(), 0);
  }
  {
    small_tree t;
    const phys_addr empty = *alloc_zeroed(t.mem.pages(), order{0}, 4096);
    t.slot(t.root(), 3) = empty.value;
    auto v = t.attach();
    ASSERT_TRUE(v) << to_string(v.code());
    EXPECT_EQ(v->node_count(), 13u);  // 12 nodes and the empty table
  }
}

TEST(CorruptPreserveBitmap, NodeBudgetIsTheNodeList) {
  small_tree t;
  std::vector<u64> tiny(5);
  // Depth-first from root digit 0: root, 0x200000's tables page(7..10), then its leaf
  // page(11), the sixth node, has no slot.
  expect_radix_error(attach_tree(t.mem.memory(), t.root(), tiny), errc::budget_exceeded, t.page(11), 5);
  std::vector<u64> none;
  expect_radix_error(attach_tree(t.mem.memory(), t.root(), none), errc::budget_exceeded, t.root(), 0);
}

TEST(CorruptPreserveBitmap, ScratchExhaustedIsOutOfMemoryAndGivenBack) {
  small_tree t;
  scratch_arena<12> nothing(0);
  expect_radix_error(attach_preserve_bitmap(t.mem.memory(), t.root(), nothing.pages(), t.scratch),
                     errc::out_of_memory, t.root(), 0);
  scratch_arena<12> some;
  ASSERT_TRUE(attach_preserve_bitmap(t.mem.memory(), t.root(), some.pages(), t.scratch));
  EXPECT_EQ(some.pages().pages_in_use(), 0u);  // the visited set went back before attach returned
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

// Six pages posing as 4 * 512^4 paths: every slot of every level names the same child.
// Laid out inside a sparse 1 TiB image, far from its start. The visited set refuses it
// at the leaf's second arrival, after six pages, whatever the size of memory; the node
// list is sized by memory, as the CLI sizes it, and only six of its slots are written.
TEST(CorruptPreserveBitmap, SixPageDagInATebibyteImageIsRefusedAtTheRepeatedLeaf) {
  constexpr u64 tib = u64{1} << 40, base = u64{1} << 40;
  auto pm = model::physical_memory::create(base, tib);
  const flat_memory mem = pm.memory();
  const phys_addr first{base + (u64{700} << 30)};
  auto page = [&](u64 i) { return reinterpret_cast<u64*>(mem.to_virt(first + i * 4096, 4096)); };
  for (u64 level = 0; level < 5; ++level)  // tables 0..4; page 5 is the leaf
    for (u64 i = 0; i < (level == 0 ? 4 : 512); ++i) page(level)[i] = (first + (level + 1) * 4096).value;
  page(5)[7] = 0x5a5a;
  const u64 slots = tib / 4096;
  auto nodes = std::make_unique_for_overwrite<u64[]>(slots);
  scratch_arena<12> scratch;
  auto v = attach_preserve_bitmap(mem, first, scratch.pages(), std::span<u64>(nodes.get(), slots));
  expect_radix_error(v, errc::cycle, first + 5 * 4096, 5);
  EXPECT_LE(scratch.pages().high_water() - phys_addr{scratch_arena<12>::base}, u64{64} << 10);
  EXPECT_EQ(scratch.pages().pages_in_use(), 0u);
  // The CLI's path (kho dump) says the same.
  const nlohmann::json report = model::radix_report(mem, first);
  EXPECT_FALSE(report["ok"].get<bool>());
  EXPECT_EQ(report["error"]["error"], to_string(errc::cycle));
  EXPECT_EQ(report["error"]["at"], model::hex((first + 5 * 4096).value));
}

TEST(RadixClaimPages, EveryNodePageOnceExemptFromThePreservedCheck) {
  small_tree t;
  auto v = t.attach();
  ASSERT_TRUE(v);
  scratch_arena<12> scratch;
  page_owners<scratch_arena<12>::source_type> owners(scratch.pages());
  ASSERT_TRUE(v->claim_pages(owners));
  EXPECT_EQ(owners.size(), v->node_count());
  for (u64 n : v->nodes()) {
    ASSERT_NE(owners.find(phys_addr{n}), nullptr);
    EXPECT_STREQ(owners.find(phys_addr{n})->structure, "radix");
    EXPECT_EQ(owners.find(phys_addr{n})->root, t.root().value);
  }
  // The tree records none of its own pages (record_own_pages off), yet nothing is
  // reported unpreserved: node pages are busy by the restore's rule, not the map's.
  EXPECT_TRUE(owners.check_preserved(*v));
  // Claiming twice is an alias of the tree with itself, at its lowest page.
  kho::status again = v->claim_pages(owners);
  ASSERT_EQ(again.code(), errc::aliased);
  EXPECT_EQ(again.err().loc.at, phys_addr{v->nodes()[0]});
}

}  // namespace
}  // namespace kho::test::corrupt_preserve_bitmap_test
