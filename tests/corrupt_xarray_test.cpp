// Xarray against hostile bytes: wrong levels, counts that disagree with slots, cycles,
// nodes outside memory, bad mark summaries, a dense leaf linked twice, every bit of the
// root block flipped, and random flips in every node: a named error, never a crash.
#include <kho/xarray.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace kho::test {
namespace {

using geo = detail::xa_geometry<u64, 12>;
using xa = xarray<u64, 12, arena<12>::source_type>;

struct built {
  arena<12> mem{u64{32} << 20};
  xa x = std::move(*xa::create(mem.pages()));
  u64 level1 = 0;  // the level-1 branch over indices [0, 2000)

  built() {
    for (u64 i = 0; i < 2000; ++i) EXPECT_TRUE(x.store(i, i + 1));
    for (u64 i = 0; i < 300; ++i) EXPECT_TRUE(x.store((i + 1) * 0x9e3779b97f4a7c15ULL, i + 1));
    EXPECT_TRUE(x.store_range(1 << 20, order{4}, 77));
    EXPECT_TRUE(x.set_mark(1000, xa_mark::mark1));
    x.seal();
    u64 ref = root_block().root.get();
    while (detail::header(node(ref)).level > 1) ref = get(ref, geo::slots_off);
    level1 = ref;
  }
  xarray_root& root_block() { return *reinterpret_cast<xarray_root*>(mem.bytes(x.root())); }
  unsigned char* node(u64 ref) { return mem.bytes(phys_addr{ref & ~geo::page_mask}); }
  u64 get(u64 ref, u64 off) { return detail::get64(node(ref) + off); }
  void put(u64 ref, u64 off, u64 v) { detail::put64(node(ref) + off, v); }
  error attach() {
    auto v = attach_xarray<u64>(mem.memory(), x.root());
    return v ? error{} : v.err();
  }
  void reseal() { x.seal(); }
};

TEST(CorruptXarray, TheUntouchedMapAttaches) {
  built b;
  EXPECT_EQ(b.attach().code, errc::ok);
  EXPECT_EQ(detail::header(b.node(b.level1)).level, 1u);
  EXPECT_NE(b.get(b.level1, geo::side_off), 0u) << "the mark put a side node on the level-1 branch";
}

TEST(CorruptXarray, WrongLevelIsNamedWithItsNode) {
  built b;
  detail::header(b.node(b.level1)).level = 2;
  const error e = b.attach();
  EXPECT_EQ(e.code, errc::bad_level);
  EXPECT_EQ(e.loc.at.value, b.level1 & ~geo::page_mask);
  EXPECT_STREQ(e.loc.structure, "xarray");
  EXPECT_GT(e.loc.depth, 1u);
}

TEST(CorruptXarray, CountsThatDisagreeWithSlotsAreRefused) {
  {
    built b;
    auto& h = detail::header(b.node(b.level1));
    h.entries.set(h.entries.get() + 1);
    EXPECT_EQ(b.attach().code, errc::bad_count);
  }
  {
    built b;
    detail::put16(b.node(b.level1) + geo::dense_count_off, 511);
    EXPECT_EQ(b.attach().code, errc::bad_count);
  }
  {
    built b;
    auto& h = detail::header(b.node(b.level1));
    h.count.set(h.count.get() + 1);
    EXPECT_EQ(b.attach().code, errc::bad_count);
  }
  {
    built b;  // the root's entry count
    b.root_block().count.set(b.root_block().count.get() - 1);
    b.reseal();
    EXPECT_EQ(b.attach().code, errc::bad_count);
  }
  {
    built b;  // a compact leaf claiming more records than fit
    const u64 top = b.root_block().root.get();
    u64 leaf = 0;
    for (u64 j = 1; j < geo::fanout && leaf == 0; ++j) {
      const u64 s = b.get(top, geo::slots_off + 8 * j);
      if ((s & 3) == detail::xa_compact) leaf = s;
    }
    ASSERT_NE(leaf, 0u);
    detail::header(b.node(leaf)).count.set(geo::compact_capacity + 1);
    EXPECT_EQ(b.attach().code, errc::bad_count);
  }
}

TEST(CorruptXarray, CyclesAreFound) {
  built b;
  const u64 top = b.root_block().root.get();
  // a level-1 slot pointing back at the top branch
  b.put(b.level1, geo::slots_off + 8 * 3, (top & ~geo::page_mask) | detail::xa_dense);
  EXPECT_EQ(b.attach().code, errc::cycle);
  built c;
  const u64 l1 = c.level1;
  c.put(l1, geo::slots_off, (l1 & ~geo::page_mask) | detail::xa_dense);  // itself
  EXPECT_EQ(c.attach().code, errc::cycle);
}

TEST(CorruptXarray, NodesOutsideMemoryOrMisalignedAreRefused) {
  built b;
  b.put(b.level1, geo::slots_off, (u64{1} << 50) | detail::xa_dense);
  EXPECT_EQ(b.attach().code, errc::out_of_bounds);
  built c;
  c.put(c.level1, geo::slots_off, c.get(c.level1, geo::slots_off) + 0x800);
  EXPECT_EQ(c.attach().code, errc::misaligned);
  built d;
  d.root_block().root.set(d.mem.memory().end().value | detail::xa_branch);
  d.reseal();
  EXPECT_EQ(d.attach().code, errc::out_of_bounds);
}

TEST(CorruptXarray, BadMarkSummariesAreRefused) {
  built b;  // a summary bit for a slot whose leaf has no mark 0
  detail::assign_bit(b.node(b.level1) + geo::summary_off, 2, true);
  EXPECT_EQ(b.attach().code, errc::bad_count);
  built c;  // the summary bit for the marked entry's leaf (1000 / 512 = slot 1) cleared
  detail::assign_bit(c.node(c.level1) + geo::summary_off + geo::fanout / 8, 1, false);
  EXPECT_EQ(c.attach().code, errc::bad_count);
}

TEST(CorruptXarray, ADenseLeafLinkedTwiceIsCaughtByTheFingerprint) {
  built b;  // slots 0 and 2 hold full unmarked leaves (512 entries each): counts agree
  b.put(b.level1, geo::slots_off + 16, b.get(b.level1, geo::slots_off));
  EXPECT_EQ(b.attach().code, errc::duplicate);
}

TEST(CorruptXarray, EveryBitFlipOfTheRootBlockIsRefused) {
  built b;
  std::set<errc> seen;
  for (u64 byte = 0; byte < sizeof(xarray_root); ++byte) {
    for (unsigned bit = 0; bit < 8; ++bit) {
      b.mem.bytes(b.x.root())[byte] ^= static_cast<unsigned char>(1u << bit);
      const errc e = b.attach().code;
      b.mem.bytes(b.x.root())[byte] ^= static_cast<unsigned char>(1u << bit);
      EXPECT_NE(e, errc::ok) << byte << ":" << bit;
      seen.insert(e);
    }
  }
  EXPECT_TRUE(seen.count(errc::bad_magic));
  EXPECT_TRUE(seen.count(errc::bad_checksum));
  EXPECT_TRUE(seen.count(errc::bad_compatible));
  EXPECT_EQ(b.attach().code, errc::ok);
}

TEST(CorruptXarray, ForgedRootFieldsAreNamed) {
  built b;
  b.root_block().height.set(geo::max_height + 1);
  b.reseal();
  EXPECT_EQ(b.attach().code, errc::too_deep);
  built c;
  c.root_block().nodes.set(3);
  c.reseal();
  EXPECT_EQ(c.attach().code, errc::budget_exceeded);
  built d;
  d.root_block().version_major.set(2);
  d.reseal();
  EXPECT_EQ(d.attach().code, errc::bad_version);
}

TEST(CorruptXarray, RandomFlipsInNodesNeverCrash) {
  built b;
  std::vector<u64> pages;
  b.x.for_each(0, ~u64{0}, [](const xarray_entry<u64>&) {});
  const phys_addr base = b.mem.memory().base();
  for (phys_addr pa = base; pa < b.mem.pages().high_water(); pa = pa + 4096)
    if (pa != b.x.root()) pages.push_back(pa.value);
  std::mt19937_64 rng(42);
  u64 refused = 0, accepted = 0;
  for (int round = 0; round < 3000; ++round) {
    const u64 pa = pages[rng() % pages.size()];
    const u64 off = rng() % 4096;
    const auto flip = static_cast<unsigned char>(1u << (rng() % 8));
    b.mem.bytes(phys_addr{pa})[off] ^= flip;
    auto v = attach_xarray<u64>(b.mem.memory(), b.x.root());
    if (v) {
      ++accepted;  // a flip in a value or in unused bytes: the view must still answer
      v->for_each(0, ~u64{0}, [](const xarray_entry<u64>&) {});
    } else {
      ++refused;
      EXPECT_STREQ(v.err().loc.structure, "xarray");
    }
    b.mem.bytes(phys_addr{pa})[off] ^= flip;
  }
  EXPECT_GT(refused, 300u);
  EXPECT_EQ(b.attach().code, errc::ok);
}

}  // namespace
}  // namespace kho::test
