// Block list against hostile bytes: every header field of every block forged in turn,
// cycles of every length, addresses outside memory, truncated memory, budgets. Each
// must give its documented error at the offending block.
#include <kho/block_list.hpp>
#include <kho/page_owners.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <cstring>

namespace kho::test::corrupt_block_list_test {
namespace {

struct rec {
  u64 a, b;
};
using list = block_list<rec, arena<12>::source_type>;
constexpr u64 cap = block_capacity<rec>;

struct chain {
  arena<12> mem{u64{64} << 20};
  list l{mem.pages()};
  std::vector<phys_addr> blocks;

  explicit chain(u64 n) {
    for (u64 i = 0; i < n; ++i) EXPECT_TRUE(l.push_back({i, i}));
    for (phys_addr b = l.head(); b; b = phys_addr{header(b).next.get()}) blocks.push_back(b);
  }
  block_header& header(phys_addr b) { return *reinterpret_cast<block_header*>(mem.bytes(b)); }
  result<block_list_view<rec, flat_memory>> attach(u64 budget = unlimited_blocks) {
    return attach_block_list<rec>(mem.memory(), l.head(), budget);
  }
};

TEST(CorruptBlockList, CountOfZeroOrOverCapacity) {
  for (u64 bad : {u64{0}, cap + 1, u64{1} << 40, ~u64{0}}) {
    chain c(3 * cap);
    c.header(c.blocks[1]).count.set(bad);
    auto v = c.attach();
    EXPECT_EQ(v.code(), errc::bad_count) << bad;
    EXPECT_EQ(v.err().loc.at, c.blocks[1]);
    EXPECT_EQ(v.err().loc.depth, 1u);
    EXPECT_STREQ(v.err().loc.structure, "block_list");
  }
}

TEST(CorruptBlockList, CountsUpToCapacityAreAcceptedAnywhere) {
  chain c(3 * cap);
  c.header(c.blocks[1]).count.set(1);  // a sparse middle block, as Linux may write
  auto v = c.attach();
  ASSERT_TRUE(v);
  EXPECT_EQ(v->size(), 2 * cap + 1);
}

TEST(CorruptBlockList, CyclesOfEveryLengthAndEntryPoint) {
  const u64 n = 40;
  for (u64 from = 0; from < n; ++from) {
    for (u64 to = 0; to <= from; to += (from / 7) + 1) {
      chain c(n * cap);
      c.header(c.blocks[from]).next.set(c.blocks[to].value);
      auto v = c.attach();
      ASSERT_EQ(v.code(), errc::cycle) << from << "->" << to;
      // The reported block is one of the cycle's.
      bool on_cycle = false;
      for (u64 i = to; i <= from; ++i) on_cycle |= v.err().loc.at == c.blocks[i];
      EXPECT_TRUE(on_cycle);
    }
  }
}

TEST(CorruptBlockList, NextOutsideMemoryOrMisaligned) {
  chain c(2 * cap);
  const flat_memory m = c.mem.memory();
  const u64 bad_next[] = {m.end().value, m.base().value - 4096, ~u64{0} & ~u64{4095},
                          c.blocks[1].value + 8, c.blocks[1].value + 2048, 1};
  const errc want[] = {errc::out_of_bounds, errc::out_of_bounds, errc::out_of_bounds,
                       errc::misaligned,    errc::misaligned,    errc::misaligned};
  for (size_t i = 0; i < std::size(bad_next); ++i) {
    c.header(c.blocks[0]).next.set(bad_next[i]);
    auto v = c.attach();
    EXPECT_EQ(v.code(), want[i]) << std::hex << bad_next[i];
    EXPECT_EQ(v.err().loc.at, phys_addr{bad_next[i]});
    EXPECT_EQ(v.err().loc.depth, 1u);
  }
  c.header(c.blocks[0]).next.set(c.blocks[1].value);
  EXPECT_TRUE(c.attach());
}

TEST(CorruptBlockList, HeadOutsideMemory) {
  chain c(1);
  EXPECT_EQ(attach_block_list<rec>(c.mem.memory(), c.mem.memory().end()).code(), errc::out_of_bounds);
  EXPECT_EQ(attach_block_list<rec>(c.mem.memory(), c.l.head() + 16).code(), errc::misaligned);
}

TEST(CorruptBlockList, TruncatedMemoryCutsTheLastBlock) {
  chain c(3 * cap);
  const flat_memory m = c.mem.memory();
  const phys_addr last = c.blocks.back();
  for (u64 keep : {u64{1}, u64{16}, u64{4095}}) {
    flat_memory cut(m.base(), (last - m.base()) + keep, m.virt());
    auto v = attach_block_list<rec>(cut, c.l.head());
    EXPECT_EQ(v.code(), errc::out_of_bounds) << keep;
    EXPECT_EQ(v.err().loc.at, last);
  }
  flat_memory whole(m.base(), (last - m.base()) + 4096, m.virt());
  EXPECT_TRUE(attach_block_list<rec>(whole, c.l.head()));
}

TEST(CorruptBlockList, UpstreamsCapOfTenThousandBlocks) {
  chain c(linux_max_blocks * cap + 1);
  EXPECT_EQ(c.attach(linux_max_blocks).code(), errc::budget_exceeded);
  EXPECT_EQ(c.attach(linux_max_blocks).err().loc.at, c.blocks.back());
  auto v = c.attach();  // kho's default has no cap
  ASSERT_TRUE(v);
  EXPECT_EQ(v->blocks(), linux_max_blocks + 1);
}

TEST(CorruptBlockList, EveryBitOfEveryHeaderFlippedIsRefusedOrHarmless) {
  // Flipping a header bit either yields a named error or a chain that still lies in
  // memory with valid counts (a lower count, a next that happens to be valid).
  chain c(3 * cap);
  u64 refused = 0;
  for (phys_addr b : c.blocks) {
    for (unsigned bit = 0; bit < 128; ++bit) {
      unsigned char* bytes = c.mem.bytes(b);
      bytes[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
      auto v = c.attach();
      bytes[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
      if (!v) {
        ++refused;
        const errc e = v.code();
        EXPECT_TRUE(e == errc::bad_count || e == errc::misaligned || e == errc::out_of_bounds ||
                    e == errc::cycle)
            << to_string(e);
      } else {
        EXPECT_LE(v->blocks(), 3u);
      }
    }
  }
  EXPECT_GT(refused, 3u * 128 / 2);
  EXPECT_TRUE(c.attach());
}

// A cycle back to the head is reported at the head, with the depth the walk had
// reached; a self-loop of the head at depth 1.
TEST(CorruptBlockList, CycleIsReportedAtTheRepeatedBlock) {
  chain c(3 * cap);
  c.header(c.blocks[0]).next.set(c.blocks[0].value);
  auto v = c.attach();
  ASSERT_EQ(v.code(), errc::cycle);
  EXPECT_EQ(v.err().loc.at, c.blocks[0]);
  EXPECT_EQ(v.err().loc.depth, 1u);
  EXPECT_STREQ(v.err().loc.structure, "block_list");
}

// Bytes after a block's last entry: Linux's writer does not promise them zero (a
// rolled-back freeze can leave stale entries there, see block_tail), so a bare chain
// ignores them by default; kho's writer keeps them zero, and block_tail::zero holds a
// chain to that with reserved_nonzero at the first stale byte.
TEST(CorruptBlockList, StaleBytesAfterTheLastEntry) {
  chain c(2 * cap + 3);  // the last block holds 3 entries
  const phys_addr last = c.blocks.back();
  c.mem.bytes(last)[16 + 3 * sizeof(rec) + 9] = 0x42;
  EXPECT_TRUE(c.attach());  // ignored: what a Linux-written chain may hold
  auto v = attach_block_list<rec>(c.mem.memory(), c.l.head(), unlimited_blocks, block_tail::zero);
  ASSERT_EQ(v.code(), errc::reserved_nonzero);
  EXPECT_EQ(v.err().loc.at, last + 16 + 3 * sizeof(rec) + 9);
  EXPECT_EQ(v.err().loc.depth, 2u);
  EXPECT_STREQ(v.err().loc.structure, "block_list");
  c.mem.bytes(last)[16 + 3 * sizeof(rec) + 9] = 0;
  EXPECT_TRUE(attach_block_list<rec>(c.mem.memory(), c.l.head(), unlimited_blocks, block_tail::zero));
}

// Entries of 64 bytes leave (4096 - 16) mod 64 = 48 bytes no entry can use: zero too.
TEST(CorruptBlockList, StaleBytesInTheRemainderNoEntryFits) {
  struct wide {
    u64 w[8];
  };
  arena<12> mem{u64{1} << 20};
  block_list<wide, arena<12>::source_type> l(mem.pages());
  for (u64 i = 0; i < block_capacity<wide>; ++i) ASSERT_TRUE(l.push_back(wide{{i}}));
  ASSERT_EQ(l.blocks(), 1u);
  EXPECT_TRUE(attach_block_list<wide>(mem.memory(), l.head(), unlimited_blocks, block_tail::zero));
  mem.bytes(l.head())[4095] = 1;
  auto v = attach_block_list<wide>(mem.memory(), l.head(), unlimited_blocks, block_tail::zero);
  ASSERT_EQ(v.code(), errc::reserved_nonzero);
  EXPECT_EQ(v.err().loc.at, l.head() + 4095);
  EXPECT_EQ(v.err().loc.depth, 0u);
}

TEST(CorruptBlockList, WriterKeepsTailsZeroThroughErase) {
  chain c(cap + 10);
  for (u64 i = 0; i < 15; ++i) ASSERT_TRUE(c.l.erase(c.l.head() + 16 + i * sizeof(rec)));
  EXPECT_TRUE(attach_block_list<rec>(c.mem.memory(), c.l.head(), unlimited_blocks, block_tail::zero));
}

TEST(BlockListClaimPages, EveryBlockOnceAndATwiceNamedBlockIsAliased) {
  chain c(3 * cap);
  auto v = c.attach();
  ASSERT_TRUE(v);
  scratch_arena<12> scratch;
  page_owners<scratch_arena<12>::source_type> owners(scratch.pages());
  ASSERT_TRUE(v->claim_pages(owners));
  EXPECT_EQ(owners.size(), 3u);
  for (phys_addr b : c.blocks) {
    ASSERT_NE(owners.find(b), nullptr);
    EXPECT_STREQ(owners.find(b)->structure, "block_list");
  }
  // A second list whose head is this list's middle block: two owners for two pages.
  auto tail = attach_block_list<rec>(c.mem.memory(), c.blocks[1]);
  ASSERT_TRUE(tail);
  kho::status st = tail->claim_pages(owners);
  ASSERT_EQ(st.code(), errc::aliased);
  EXPECT_EQ(st.err().loc.at, c.blocks[1]);
  EXPECT_EQ(st.err().loc.structure, std::string("block_list"));
  EXPECT_EQ(st.err().other.at, c.l.head());
}

}  // namespace
}  // namespace kho::test::corrupt_block_list_test
