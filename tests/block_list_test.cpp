// Block list: edges of the writer and the reader, for every page size and several
// entry sizes, and the kernel's byte layout.
#include <kho/block_list.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <vector>

namespace kho::test::block_list_test {
namespace {

template <u64 Bytes>
struct entry_of {
  std::array<u64, Bytes / 8> words;
  static entry_of make(u64 i) {
    entry_of e{};
    for (u64 w = 0; w < e.words.size(); ++w) e.words[w] = i * 1000 + w;
    return e;
  }
  u64 id() const { return words[0] / 1000; }
};

template <unsigned Shift, u64 Bytes>
struct config {
  static constexpr unsigned shift = Shift;
  using entry = entry_of<Bytes>;
};

template <class Config>
class BlockListTest : public ::testing::Test {
 protected:
  static constexpr unsigned shift = Config::shift;
  using entry = typename Config::entry;
  using source = typename arena<shift>::source_type;
  using list = block_list<entry, source, shift>;
  static constexpr u64 cap = block_capacity<entry, shift>;

  arena<shift> mem{u64{256} << 20};

  list make(u64 n) {
    list l(mem.pages());
    for (u64 i = 0; i < n; ++i) EXPECT_TRUE(l.push_back(entry::make(i)).has_value()) << i;
    return l;
  }
  std::vector<u64> ids_of(phys_addr head) {
    auto v = attach_block_list<entry, shift>(mem.memory(), head);
    EXPECT_TRUE(v.has_value()) << to_string(v.code());
    std::vector<u64> out;
    if (!v) return out;
    for (const entry& e : *v) out.push_back(e.id());
    EXPECT_EQ(out.size(), v->size());
    return out;
  }
};

using configs = ::testing::Types<config<12, 16>, config<12, 80>, config<12, 256>, config<14, 64>,
                                 config<16, 16>, config<12, 4080>>;
TYPED_TEST_SUITE(BlockListTest, configs);

TYPED_TEST(BlockListTest, EmptyListHasNoBlockAndAttaches) {
  auto l = this->make(0);
  EXPECT_EQ(l.head(), phys_addr{});
  EXPECT_EQ(l.blocks(), 0u);
  auto v = attach_block_list<typename TestFixture::entry, TestFixture::shift>(this->mem.memory(),
                                                                            l.head());
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->empty());
  EXPECT_EQ(v->begin(), v->end());
}

TYPED_TEST(BlockListTest, FillsBlocksExactlyAndKeepsInsertionOrder) {
  const u64 cap = TestFixture::cap;
  for (u64 n : {u64{1}, cap - 1, cap, cap + 1, 3 * cap, 3 * cap + 2}) {
    if (n == 0) continue;
    auto l = this->make(n);
    EXPECT_EQ(l.size(), n);
    EXPECT_EQ(l.blocks(), (n + cap - 1) / cap) << n;
    std::vector<u64> want(n);
    for (u64 i = 0; i < n; ++i) want[i] = i;
    EXPECT_EQ(this->ids_of(l.head()), want);
    l.clear();
  }
}

TYPED_TEST(BlockListTest, EraseMovesTheLastEntryIntoTheHoleAndFreesEmptyBlocks) {
  const u64 cap = TestFixture::cap;
  const u64 baseline = this->mem.pages().pages_in_use();
  const u64 n = 4 * cap + 1;
  auto l = this->make(n);
  std::vector<u64> model(n);
  for (u64 i = 0; i < n; ++i) model[i] = i;
  // Erase the second entry (when there is one), then from the front until empty.
  while (!model.empty()) {
    const u64 victim = model.size() > 1 ? 1 : 0;
    auto it = l.begin();
    for (u64 i = 0; i < victim; ++i) ++it;
    const phys_addr at = it.phys();
    auto moved = l.erase(at);
    ASSERT_TRUE(moved);
    EXPECT_EQ(*moved == at, victim == model.size() - 1);
    model[victim] = model.back();
    model.pop_back();
    EXPECT_EQ(l.size(), model.size());
    EXPECT_EQ(l.blocks(), (model.size() + cap - 1) / cap);
    if (model.size() % cap == 0 || model.size() < 3) {
      EXPECT_EQ(this->ids_of(l.head()), model);
    }
  }
  EXPECT_EQ(l.head(), phys_addr{});
  EXPECT_EQ(this->mem.pages().pages_in_use(), baseline);  // blocks and the spine all freed
}

TYPED_TEST(BlockListTest, EraseRefusesWhatIsNotAnEntry) {
  auto l = this->make(3);
  const phys_addr first = l.begin().phys();
  EXPECT_EQ(l.erase(first + 1).code(), errc::invalid_argument);
  EXPECT_EQ(l.erase(phys_addr{first.value - sizeof(block_header)}).code(), errc::invalid_argument);
  if (TestFixture::cap > 3) {
    EXPECT_EQ(l.erase(first + 3 * sizeof(typename TestFixture::entry)).code(), errc::invalid_argument);
  }
  auto empty = this->make(0);
  EXPECT_EQ(empty.erase(first).code(), errc::invalid_argument);
  EXPECT_EQ(l.size(), 3u);
}

TYPED_TEST(BlockListTest, AdoptedViewContinuesAtAnotherAddress) {
  const u64 cap = TestFixture::cap;
  auto l = this->make(3 * cap + 1);
  const block_list_state before = l.state();
  const flat_memory moved = this->mem.remap();
  auto v = attach_block_list<typename TestFixture::entry, TestFixture::shift>(moved, l.head());
  ASSERT_TRUE(v);
  auto w = TestFixture::list::adopt(this->mem.pages(), *v);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->head(), before.head);
  EXPECT_EQ(w->state().tail, before.tail);
  EXPECT_EQ(w->blocks(), before.blocks);
  EXPECT_EQ(w->size(), before.size);
  // Empty the tail block and one more: the adopted spine must know the predecessors.
  for (u64 i = 0; i < cap + 1; ++i) ASSERT_TRUE(w->erase(w->begin().phys()));
  ASSERT_TRUE(w->push_back(TestFixture::entry::make(777)));
  auto ids = this->ids_of(w->head());
  ASSERT_EQ(ids.size(), 2 * cap + 1);
  EXPECT_EQ(ids.back(), 777u);
  EXPECT_EQ(w->blocks(), 3u);
}

TYPED_TEST(BlockListTest, ForEachBlockSeesEveryEntryOnce) {
  const u64 cap = TestFixture::cap;
  auto l = this->make(2 * cap + 5);
  auto v = attach_block_list<typename TestFixture::entry, TestFixture::shift>(this->mem.memory(),
                                                                            l.head());
  ASSERT_TRUE(v);
  u64 seen = 0, blocks = 0, sum = 0;
  v->for_each_block([&](phys_addr pa, const typename TestFixture::entry* first, u64 n) {
    EXPECT_TRUE(page_geometry<TestFixture::shift>::is_aligned(pa));
    ++blocks;
    for (u64 i = 0; i < n; ++i) sum += first[i].id();
    seen += n;
  });
  EXPECT_EQ(seen, 2 * cap + 5);
  EXPECT_EQ(blocks, (2 * cap + 5 + cap - 1) / cap);
  EXPECT_EQ(sum, (2 * cap + 5) * (2 * cap + 4) / 2);
}

TYPED_TEST(BlockListTest, BudgetBoundsTheWalk) {
  const u64 cap = TestFixture::cap;
  auto l = this->make(3 * cap);
  using entry = typename TestFixture::entry;
  EXPECT_TRUE((attach_block_list<entry, TestFixture::shift>(this->mem.memory(), l.head(), 3)));
  auto v = attach_block_list<entry, TestFixture::shift>(this->mem.memory(), l.head(), 2);
  EXPECT_EQ(v.code(), errc::budget_exceeded);
  EXPECT_EQ(v.err().loc.depth, 2u);
}

// The bytes are the kernel's: {next, count} little-endian, entries packed from byte 16.
TEST(BlockListLayout, MatchesTheKernelsSerializationBlocks) {
  struct pair {
    u64 a, b;
  };
  arena<12> mem;
  block_list<pair, arena<12>::source_type> l(mem.pages());
  for (u64 i = 0; i < 256; ++i) ASSERT_TRUE(l.push_back({i, ~i}));
  ASSERT_EQ(l.blocks(), 2u);  // 255 fit in the first
  const unsigned char* b0 = mem.bytes(l.head());
  u64 next = 0, count = 0;
  for (int i = 7; i >= 0; --i) next = next << 8 | b0[i];
  for (int i = 15; i >= 8; --i) count = count << 8 | b0[i];
  EXPECT_EQ(count, 255u);
  EXPECT_EQ(next, l.state().tail.value);
  for (u64 i = 0; i < 255; ++i) {
    u64 a = 0;
    std::memcpy(&a, b0 + 16 + 16 * i, 8);
    EXPECT_EQ(a, i);
  }
  const unsigned char* b1 = mem.bytes(l.state().tail);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(b1[i], 0) << "last next is 0";
  EXPECT_EQ(b1[8], 1);
  for (u64 i = 32; i < 4096; ++i) ASSERT_EQ(b1[i], 0) << "zero past the last entry, byte " << i;
}

TEST(BlockListLayout, CapacityIsWhatThePageLeavesAfterTheHeader) {
  EXPECT_EQ((block_capacity<std::array<u64, 2>, 12>), 255u);
  EXPECT_EQ((block_capacity<std::array<u64, 10>, 12>), 51u);
  EXPECT_EQ((block_capacity<std::array<u64, 8>, 12>), 63u);
  EXPECT_EQ((block_capacity<std::array<u64, 32>, 12>), 15u);
  EXPECT_EQ((block_capacity<std::array<u64, 2>, 16>), 4095u);
}

}  // namespace
}  // namespace kho::test::block_list_test
