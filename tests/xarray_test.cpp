// Xarray: edges of the writer and the view: empty, the ends of the index space, the
// largest orders, erase and store inside a multi-order entry, marks and their summaries,
// the height growing and shrinking, compact leaves turning dense and back; the in-place
// write paths, the bulk append and cursors at index 0, the top index, leaf boundaries,
// multi-order neighbours and the last slot of a dense leaf.
#include <kho/xarray.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace kho::test::xarray_test {
namespace {

using source = arena<12>::source_type;
using xa = xarray<u64, 12, source>;
constexpr u64 top = ~u64{0};
constexpr u64 half = u64{1} << 63;

struct XarrayTest : ::testing::Test {
  arena<12> mem{u64{64} << 20};
  arena<12> scratch{u64{4} << 20};
  xa x = std::move(*xa::create(mem.pages()));

  auto view() {
    x.seal();
    auto v = attach_xarray<u64>(mem.remap(), x.root(), scratch.pages());
    EXPECT_TRUE(v.has_value()) << to_string(v.code()) << " at " << v.err().loc.at.value;
    return v;
  }
  std::vector<u64> indices() const {
    std::vector<u64> out;
    x.for_each(0, top, [&](const xarray_entry<u64>& e) { out.push_back(e.index); });
    return out;
  }
};

TEST_F(XarrayTest, EmptyMapAnswersNotFoundEverywhere) {
  EXPECT_EQ(x.count(), 0u);
  EXPECT_EQ(x.height(), 0u);
  for (u64 i : {u64{0}, half, top}) {
    EXPECT_EQ(x.load(i).code(), errc::not_found);
    EXPECT_EQ(x.erase(i).code(), errc::not_found);
    EXPECT_EQ(x.exchange(i, 5).code(), errc::not_found);
    EXPECT_EQ(x.set_mark(i, xa_mark::mark0).code(), errc::not_found);
  }
  EXPECT_EQ(x.find(0).code(), errc::not_found);
  EXPECT_EQ(x.find_marked(0, xa_mark::mark1).code(), errc::not_found);
  auto v = view();
  ASSERT_TRUE(v);
  EXPECT_EQ(v->count(), 0u);
  EXPECT_EQ(v->find(0).code(), errc::not_found);
}

TEST_F(XarrayTest, ExtremeIndicesRoundTripAndDriveTheHeight) {
  ASSERT_TRUE(x.store(0, 10));
  EXPECT_EQ(x.height(), 0u);
  ASSERT_TRUE(x.store(half, 20));
  ASSERT_TRUE(x.store(top, 30));
  EXPECT_EQ(x.height(), xa::max_height);
  EXPECT_EQ(*x.load(0), 10u);
  EXPECT_EQ(*x.load(half), 20u);
  EXPECT_EQ(*x.load(top), 30u);
  EXPECT_EQ(x.load(top - 1).code(), errc::not_found);
  EXPECT_EQ(indices(), (std::vector<u64>{0, half, top}));
  EXPECT_EQ(x.find_after(half)->index, top);
  EXPECT_EQ(x.find_after(top).code(), errc::not_found);
  auto v = view();
  ASSERT_TRUE(v);
  EXPECT_EQ(*v->load(top), 30u);
  ASSERT_TRUE(x.erase(top));
  ASSERT_TRUE(x.erase(half));
  EXPECT_EQ(x.height(), 0u) << "the height follows the largest index back down";
  ASSERT_TRUE(x.erase(0));
  EXPECT_EQ(x.count(), 0u);
  EXPECT_EQ(x.nodes(), 0u);
  EXPECT_EQ(mem.pages().pages_in_use(), 1u) << "only the root block is left";
}

TEST_F(XarrayTest, ZeroValueAndBadArgumentsAreRefused) {
  EXPECT_EQ(x.store(3, 0).code(), errc::invalid_argument);
  EXPECT_EQ(x.store_range(3, order{1}, 7).code(), errc::misaligned);
  EXPECT_EQ(x.store_range(0, order{64}, 7).code(), errc::out_of_range);
  ASSERT_TRUE(x.store(3, 1));
  EXPECT_EQ(x.exchange(3, 0).code(), errc::invalid_argument);
  EXPECT_EQ(x.set_mark(3, static_cast<xa_mark>(3)).code(), errc::invalid_argument);
  EXPECT_EQ(x.count(), 1u);
}

TEST_F(XarrayTest, LargestOrdersAreOneEntryEach) {
  ASSERT_TRUE(x.store_range(0, order{63}, 1));
  ASSERT_TRUE(x.store_range(half, order{63}, 2));
  EXPECT_EQ(x.count(), 2u);
  EXPECT_EQ(*x.load(half - 1), 1u);
  EXPECT_EQ(*x.load(top), 2u);
  auto e = x.entry_at(top);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->index, half);
  EXPECT_EQ(e->span.value, 63u);
  EXPECT_EQ(x.nodes(), 1u) << "two order-63 entries fit one compact leaf";
  auto v = view();
  ASSERT_TRUE(v);
  EXPECT_EQ(*v->load(12345), 1u);
}

TEST_F(XarrayTest, EraseInsideARangeRemovesTheWholeEntry) {
  ASSERT_TRUE(x.store_range(u64{1} << 30, order{18}, 9));  // a 1 GiB folio of 4 KiB pages
  ASSERT_TRUE(x.store(5, 1));
  EXPECT_EQ(x.count(), 2u);
  ASSERT_TRUE(x.erase((u64{1} << 30) + 4097));
  EXPECT_EQ(x.count(), 1u);
  EXPECT_EQ(x.load(u64{1} << 30).code(), errc::not_found);
  EXPECT_EQ(x.load((u64{1} << 30) + (u64{1} << 18) - 1).code(), errc::not_found);
  EXPECT_EQ(*x.load(5), 1u);
}

TEST_F(XarrayTest, StoreInsideARangeReplacesItAndARangeSwallowsWhatItCovers) {
  ASSERT_TRUE(x.store_range(512, order{9}, 7));
  ASSERT_TRUE(x.set_mark(600, xa_mark::mark1));
  ASSERT_TRUE(x.store(700, 8));  // splits nothing: the order-9 entry is replaced
  EXPECT_EQ(x.count(), 1u);
  EXPECT_EQ(x.load(600).code(), errc::not_found);
  for (u64 i = 1024; i < 1024 + 300; ++i) ASSERT_TRUE(x.store(i, i));
  ASSERT_TRUE(x.store_range(1024, order{10}, 3));
  EXPECT_EQ(x.count(), 2u);
  EXPECT_EQ(*x.load(2047), 3u);
  // the same block again keeps marks, and exchange keeps the extent
  ASSERT_TRUE(x.set_mark(1024, xa_mark::mark2));
  ASSERT_TRUE(x.store_range(1024, order{10}, 4));
  EXPECT_TRUE(x.get_mark(1500, xa_mark::mark2));
  EXPECT_EQ(*x.exchange(2000, 5), 4u);
  EXPECT_EQ(x.entry_at(1024)->span.value, 10u);
  EXPECT_EQ(*x.load(1024), 5u);
  ASSERT_TRUE(view());
}

TEST_F(XarrayTest, DenseLeavesHoldRangesAndMarksInSideNodes) {
  // 512 consecutive indices overflow a compact leaf: the slot turns dense
  for (u64 i = 0; i < 4096; ++i)
    if (i % 64 != 8) {
      ASSERT_TRUE(x.store(i, i + 1));
    }
  ASSERT_TRUE(x.store_range(4096 + 64, order{5}, 99));
  for (u64 i = 4096; i < 4096 + 400; ++i)
    if (i < 4096 + 64 || i >= 4096 + 96) {
      ASSERT_TRUE(x.store(i, i + 1));
    }
  const u64 n = x.count();
  ASSERT_TRUE(x.set_mark(4096 + 70, xa_mark::mark0));
  ASSERT_TRUE(x.set_mark(300, xa_mark::mark0));
  auto m = x.find_marked(0, xa_mark::mark0);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->index, 300u);
  auto m2 = x.find_marked(301, xa_mark::mark0);
  ASSERT_TRUE(m2);
  EXPECT_EQ(m2->index, 4096u + 64);
  EXPECT_EQ(m2->span.value, 5u);
  EXPECT_EQ(x.find_marked(4096 + 65, xa_mark::mark1).code(), errc::not_found);
  auto v = view();
  ASSERT_TRUE(v);
  EXPECT_EQ(v->count(), n);
  EXPECT_EQ(v->find_marked(4096 + 65, xa_mark::mark0)->index, 4096u + 64);
  EXPECT_EQ(*v->load(4096 + 95), 99u);
  ASSERT_TRUE(x.erase(4096 + 80));
  EXPECT_EQ(x.load(4096 + 64).code(), errc::not_found);
  ASSERT_TRUE(x.clear_mark(300, xa_mark::mark0));
  EXPECT_EQ(x.find_marked(0, xa_mark::mark0).code(), errc::not_found);
  EXPECT_EQ(x.marks(), 0u);
  ASSERT_TRUE(view());
}

TEST_F(XarrayTest, DenseU64FileCostsAtMost8AndAHalfBytesPerEntry) {
  constexpr u64 n = 1 << 16;
  for (u64 i = 0; i < n; ++i) ASSERT_TRUE(x.store(i, (i << 12) | 3));
  const double bytes = static_cast<double>(x.nodes() * 4096) / static_cast<double>(n);
  EXPECT_LE(bytes, 8.5);
  EXPECT_GE(bytes, 8.0);
  EXPECT_EQ(x.height(), 1u);
  u64 seen = 0;
  x.for_each(0, top, [&](const xarray_entry<u64>& e) { seen += e.index == seen; });
  EXPECT_EQ(seen, n);
}

TEST_F(XarrayTest, EmptyingEverythingFreesEveryNode) {
  std::vector<u64> keys;
  for (u64 i = 0; i < 3000; ++i) keys.push_back(i * 0x9e3779b97f4a7c15ULL);
  for (u64 i = 0; i < 2000; ++i) keys.push_back(i);
  for (u64 k : keys) ASSERT_TRUE(x.store(k, k | 1));
  ASSERT_TRUE(x.set_mark(17, xa_mark::mark2));
  EXPECT_GT(x.nodes(), 10u);
  ASSERT_TRUE(view());
  for (u64 k : keys) (void)x.erase(k);
  EXPECT_EQ(x.count(), 0u);
  EXPECT_EQ(x.nodes(), 0u);
  EXPECT_EQ(x.height(), 0u);
  EXPECT_EQ(mem.pages().pages_in_use(), 1u);
  ASSERT_TRUE(view());
}

TEST_F(XarrayTest, SparseKeysShareCompactLeaves) {
  u64 k = 1;
  for (int i = 0; i < 20000; ++i) {
    k = k * 6364136223846793005ULL + 1442695040888963407ULL;
    ASSERT_TRUE(x.store(k, k | 1));
  }
  const double bytes = static_cast<double>(x.nodes() * 4096) / static_cast<double>(x.count());
  EXPECT_LT(bytes, 64.0) << "a page per entry is what this format exists to avoid";
  auto v = view();
  ASSERT_TRUE(v);
  EXPECT_EQ(v->count(), x.count());
}

TEST_F(XarrayTest, AdoptedWriterKeepsGrowingInPlace) {
  for (u64 i = 0; i < 1000; ++i) ASSERT_TRUE(x.store(i * 3, i + 1));
  auto v = view();
  ASSERT_TRUE(v);
  auto w = xa::adopt(*v, mem.pages());
  ASSERT_TRUE(w);
  EXPECT_EQ(w->root(), x.root());
  for (u64 i = 0; i < 1000; ++i) ASSERT_TRUE(w->store(i * 3 + 1, i + 7));
  EXPECT_EQ(w->count(), 2000u);
  w->seal();
  auto v2 = attach_xarray<u64>(mem.remap(), w->root(), scratch.pages());
  ASSERT_TRUE(v2);
  EXPECT_EQ(*v2->load(2998), 1006u);
}

TEST_F(XarrayTest, UnsealedChangesAreRefused) {
  ASSERT_TRUE(x.store(1, 1));
  x.seal();
  ASSERT_TRUE(x.store(2, 2));
  EXPECT_EQ(attach_xarray<u64>(mem.memory(), x.root(), scratch.pages()).code(), errc::bad_checksum);
  arena<16> scratch16{u64{1} << 20};
  EXPECT_EQ((attach_xarray<u64, 16>(mem.memory(), x.root(), scratch16.pages()).code()), errc::page_size_mismatch);
}

// ---- in-place writes, bulk append, cursors --------------------------------------------

/// Every entry a cursor returns, from `start`, with mark m (or all when m < 0).
template <class R>
std::vector<u64> scan(const R& r, u64 start, int m = -1) {
  std::vector<u64> out;
  auto c = m < 0 ? r.cursor(start) : r.marked_cursor(start, static_cast<xa_mark>(m));
  while (auto e = c.next()) out.push_back(e->index);
  return out;
}

TEST_F(XarrayTest, AppendAtIndexZeroAndTheTopIndexThenRefusesAnythingElse) {
  ASSERT_TRUE(x.append_ordered(0, 1));
  EXPECT_EQ(x.append_ordered(0, 2).code(), errc::invalid_argument);
  ASSERT_TRUE(x.append_ordered(top, 3));
  EXPECT_EQ(x.height(), xa::max_height);
  EXPECT_EQ(x.append_ordered(top, 4).code(), errc::invalid_argument);
  EXPECT_EQ(x.append_ordered(5, 4).code(), errc::invalid_argument);
  EXPECT_EQ(x.append_ordered(half, order{63}, 4).code(), errc::invalid_argument);
  EXPECT_EQ(x.count(), 2u);
  EXPECT_EQ(scan(x, 0), (std::vector<u64>{0, top}));
  EXPECT_EQ(scan(x, 1), (std::vector<u64>{top}));
  EXPECT_EQ(scan(x, top), (std::vector<u64>{top}));
  ASSERT_TRUE(x.erase(top));  // the last entry gone: appends after index 0 work again
  ASSERT_TRUE(x.append_ordered(half, order{63}, 4));
  EXPECT_EQ(x.entry_at(top)->index, half);
  auto v = view();
  ASSERT_TRUE(v);
  EXPECT_EQ(scan(*v, 7), (std::vector<u64>{half}));
}

TEST_F(XarrayTest, AppendFillsDenseLeavesAcrossLeafBoundaries) {
  constexpr u64 n = 5 * xa::leaf_slots + 17;
  for (u64 i = 0; i < n; ++i) ASSERT_TRUE(x.append_ordered(i, i + 1)) << i;
  // one compact leaf turned dense, then one dense leaf per window: no pages to spare
  EXPECT_EQ(x.nodes(), 1u + 6u);
  EXPECT_EQ(x.count(), n);
  EXPECT_EQ(x.append_ordered(n - 1, 1).code(), errc::invalid_argument);
  auto v = view();
  ASSERT_TRUE(v);
  EXPECT_EQ(*v->load(xa::leaf_slots - 1), xa::leaf_slots);
  EXPECT_EQ(*v->load(xa::leaf_slots), xa::leaf_slots + 1);
  std::vector<u64> want(n);
  for (u64 i = 0; i < n; ++i) want[i] = i;
  EXPECT_EQ(scan(*v, 0), want);
  // the writer keeps appending after the remap: its hint re-descends
  ASSERT_TRUE(x.append_ordered(n, 9));
  ASSERT_TRUE(view());
}

TEST_F(XarrayTest, OneDescentChangesFollowTheLeafAcrossRemapsSplitsAndBursts) {
  // The writer keeps the leaf it last changed (as xa_state keeps its node); every
  // change that moves nodes or records, and a remap of the writer's memory (the old
  // mapping is gone: a stale pointer would fault), must make it descend again.
  std::map<u64, std::pair<u64, bool>> want;  // index -> value, mark 0
  auto check = [&] {
    auto v = view();
    ASSERT_TRUE(v);
    ASSERT_EQ(v->count(), want.size());
    for (const auto& [i, vm] : want) {
      ASSERT_EQ(*v->load(i), vm.first) << i;
      ASSERT_EQ(v->get_mark(i, xa_mark::mark0), vm.second) << i;
    }
  };
  auto store = [&](u64 i, u64 val) {
    ASSERT_TRUE(x.store(i, val)) << i;
    auto& slot = want[i];
    slot.first = val;
  };
  auto mark = [&](u64 i) {
    ASSERT_TRUE(x.set_mark(i, xa_mark::mark0)) << i;
    want[i].second = true;
  };
  for (u64 i = 0; i < 100; ++i) store(3 * i, i + 1);  // one compact leaf
  mark(30);
  check();  // remapped: the next change in the same leaf re-descends
  store(301, 7);
  mark(33);
  ASSERT_TRUE(x.erase(36));
  want.erase(36);
  EXPECT_EQ(*x.exchange(39, 99), 14u);
  want[39].first = 99;
  // fill the leaf until it splits and bursts (records move, nodes change) while
  // changing entries of the leaf last reached
  for (u64 i = 100; i < 700; ++i) {
    store(3 * i, i + 1);
    if (i % 7 == 0 && want.count(3 * (i - 50))) mark(3 * (i - 50));
    if (i % 11 == 0) {
      ASSERT_TRUE(x.erase(3 * (i - 1)));
      want.erase(3 * (i - 1));
    }
  }
  check();
  // a dense run, then a mark that allocates a side node under the leaf last reached
  for (u64 i = 4096; i < 4096 + 600; ++i) store(i, i);
  mark(4096 + 5);
  ASSERT_TRUE(x.clear_mark(4096 + 5, xa_mark::mark0));
  want[4096 + 5].second = false;
  mark(4096 + 511);
  ASSERT_TRUE(x.erase(4096 + 511));
  want.erase(4096 + 511);
  check();
  store(4096 + 511, 5);
  check();
}

TEST_F(XarrayTest, BatchAppendFillsLeavesAndStopsAtTheFirstRefusedEntry) {
  using entry = xarray_entry<u64>;
  std::vector<entry> batch;
  for (u64 i = 0; i < 3 * xa::leaf_slots + 5; ++i) batch.push_back(entry{i, order{0}, 0, i + 1});
  batch[700].marks = 0b101;                              // marked: through set_mark
  batch.push_back(entry{u64{1} << 40, order{9}, 0, 7});  // multi-order: the slow path
  batch.push_back(entry{(u64{1} << 40) + 512, order{0}, 0, 8});
  ASSERT_TRUE(x.append_ordered(std::span<const entry>(batch)));
  EXPECT_EQ(x.count(), batch.size());
  {
    auto v = view();
    ASSERT_TRUE(v);
    for (const entry& e : batch) {
      auto got = v->entry_at(e.index);
      ASSERT_TRUE(got) << e.index;
      EXPECT_EQ(got->value, e.value);
      EXPECT_EQ(got->span.value, e.span.value);
      EXPECT_EQ(got->marks, e.marks) << e.index;
    }
  }
  // refused entries: the ones before stay, nothing of the refused one or after it
  const u64 base = u64{1} << 41;
  const entry zero_value[] = {{base, order{0}, 0, 1}, {base + 1, order{0}, 0, 2}, {base + 2, order{0}, 0, 0},
                              {base + 3, order{0}, 0, 4}};
  EXPECT_EQ(x.append_ordered(std::span<const entry>(zero_value)).code(), errc::invalid_argument);
  EXPECT_EQ(x.count(), batch.size() + 2);
  EXPECT_EQ(x.load(base + 3).code(), errc::not_found);
  const entry backwards[] = {{base + 10, order{0}, 0, 1}, {base + 9, order{0}, 0, 2}};
  EXPECT_EQ(x.append_ordered(std::span<const entry>(backwards)).code(), errc::invalid_argument);
  EXPECT_EQ(x.count(), batch.size() + 3);
  const entry bad_mark[] = {{base + 11, order{0}, 0x10, 1}};
  EXPECT_EQ(x.append_ordered(std::span<const entry>(bad_mark)).code(), errc::invalid_argument);
  EXPECT_EQ(x.load(base + 11).code(), errc::not_found);
  EXPECT_TRUE(x.append_ordered(std::span<const entry>{}));
  EXPECT_EQ(x.count(), batch.size() + 3);
  ASSERT_TRUE(view());
}

TEST_F(XarrayTest, AppendAfterSparseRunsAndIntoCompactLeavesUntilTheySplit) {
  u64 k = 0;
  for (u64 i = 0; i < 3 * xa::compact_capacity; ++i) {
    k += 1000;
    ASSERT_TRUE(x.append_ordered(k, k));
  }
  ASSERT_TRUE(x.append_ordered(u64{1} << 50, order{20}, 7));
  for (u64 i = 1; i < 300; ++i) ASSERT_TRUE(x.append_ordered((u64{1} << 50) + (i << 20), 8));
  EXPECT_EQ(x.count(), 3 * xa::compact_capacity + 300);
  auto v = view();
  ASSERT_TRUE(v);
  EXPECT_EQ(v->entry_at((u64{1} << 50) + 5)->span.value, 20u);
  auto w = xa::adopt(*v, mem.pages());
  ASSERT_TRUE(w);
  EXPECT_EQ(w->append_ordered(u64{1} << 50, 1).code(), errc::invalid_argument);
  ASSERT_TRUE(w->append_ordered(u64{1} << 51, 1));
}

TEST_F(XarrayTest, InPlaceStoresAndErasesAtLeafBoundaries) {
  for (u64 i = 0; i < 3 * xa::leaf_slots; ++i) ASSERT_TRUE(x.store(i, i + 1));
  const u64 nodes = x.nodes();
  for (u64 i : {xa::leaf_slots - 1, xa::leaf_slots, 2 * xa::leaf_slots - 1, u64{0}}) {
    ASSERT_TRUE(x.store(i, 77));  // overwrite in place
    ASSERT_TRUE(x.erase(i));
    EXPECT_EQ(x.erase(i).code(), errc::not_found);
    ASSERT_TRUE(x.store(i, i + 1));  // back into the dense leaf
  }
  EXPECT_EQ(x.nodes(), nodes);
  EXPECT_EQ(x.count(), 3 * xa::leaf_slots);
  ASSERT_TRUE(view());
  // emptying one dense leaf frees it (the general path)
  for (u64 i = xa::leaf_slots; i < 2 * xa::leaf_slots; ++i) ASSERT_TRUE(x.erase(i));
  EXPECT_EQ(x.nodes(), nodes - 1);
  EXPECT_EQ(x.find(xa::leaf_slots)->index, 2 * xa::leaf_slots);
  ASSERT_TRUE(view());
}

TEST_F(XarrayTest, MultiOrderNeighboursInADenseLeaf) {
  for (u64 i = 0; i < xa::leaf_slots; ++i) ASSERT_TRUE(x.store(i, i + 1));
  ASSERT_TRUE(x.store_range(8, order{2}, 50));  // 8..11 one entry between 7 and 12
  EXPECT_EQ(*x.exchange(10, 60), 50u);           // every slot of the entry
  EXPECT_EQ(*x.load(8), 60u);
  EXPECT_EQ(*x.load(11), 60u);
  ASSERT_TRUE(x.set_mark(9, xa_mark::mark1));    // marks the head
  EXPECT_EQ(x.find_marked(0, xa_mark::mark1)->index, 8u);
  EXPECT_EQ(scan(x, 10).front(), 8u);             // the scan starts inside the entry
  EXPECT_EQ(scan(x, 10)[1], 12u);
  EXPECT_EQ(scan(x, 0, 1), (std::vector<u64>{8}));
  ASSERT_TRUE(x.erase(12));                      // neighbours erase in place
  ASSERT_TRUE(x.erase(7));
  ASSERT_TRUE(x.store(7, 1));
  EXPECT_EQ(x.entry_at(9)->span.value, 2u);
  ASSERT_TRUE(x.store(11, 5));                   // inside the entry: replaces it whole
  EXPECT_EQ(x.load(8).code(), errc::not_found);
  EXPECT_EQ(*x.load(11), 5u);
  EXPECT_EQ(x.marks(), 0u);
  ASSERT_TRUE(view());
}

TEST_F(XarrayTest, MarksOnTheLastSlotOfADenseLeafReachTheSummaries) {
  for (u64 i = 0; i < 2 * xa::leaf_slots; ++i) ASSERT_TRUE(x.store(i, i + 1));
  const u64 last = xa::leaf_slots - 1;
  ASSERT_TRUE(x.set_mark(last, xa_mark::mark2));
  ASSERT_TRUE(x.set_mark(last, xa_mark::mark2));  // no change, no error
  EXPECT_EQ(x.marks(), 4u);
  EXPECT_EQ(x.find_marked(0, xa_mark::mark2)->index, last);
  EXPECT_EQ(scan(x, 0, 2), (std::vector<u64>{last}));
  ASSERT_TRUE(x.set_mark(2 * xa::leaf_slots - 1, xa_mark::mark2));
  EXPECT_EQ(scan(x, last + 1, 2), (std::vector<u64>{2 * xa::leaf_slots - 1}));
  ASSERT_TRUE(view());
  ASSERT_TRUE(x.erase(last));  // erasing a marked entry clears its leaf's summary bit
  EXPECT_EQ(x.find_marked(0, xa_mark::mark2)->index, 2 * xa::leaf_slots - 1);
  ASSERT_TRUE(x.clear_mark(2 * xa::leaf_slots - 1, xa_mark::mark2));
  EXPECT_EQ(x.marks(), 0u);
  EXPECT_EQ(x.find_marked(0, xa_mark::mark2).code(), errc::not_found);
  EXPECT_EQ(x.nodes(), 3u);  // the side node went with the last mark
  EXPECT_EQ(x.clear_mark(last, xa_mark::mark2).code(), errc::not_found);
  EXPECT_EQ(x.set_mark(last, static_cast<xa_mark>(3)).code(), errc::invalid_argument);
  ASSERT_TRUE(view());
}

TEST_F(XarrayTest, CursorResumesAcrossChangesAndClearingEachHit) {
  for (u64 i = 0; i < 4 * xa::leaf_slots; ++i) ASSERT_TRUE(x.store(i * 3, i + 1));
  for (u64 i = 0; i < 4 * xa::leaf_slots; i += 5) ASSERT_TRUE(x.set_mark(i * 3, xa_mark::mark0));
  // the "find dirty, clean it" loop: each hit cleared while the scan goes on
  u64 hits = 0;
  auto c = x.marked_cursor(0, xa_mark::mark0);
  while (auto e = c.next()) {
    EXPECT_EQ(e->index, hits * 15);
    ASSERT_TRUE(x.clear_mark(e->index, xa_mark::mark0));
    ++hits;
  }
  EXPECT_EQ(hits, (4 * xa::leaf_slots + 4) / 5);
  EXPECT_EQ(x.marks(), 0u);
  // changes ahead of the cursor are seen, erased entries are not, nothing twice
  auto d = x.cursor(0);
  EXPECT_EQ(d.next()->index, 0u);
  ASSERT_TRUE(x.store(1, 9));     // ahead: seen
  ASSERT_TRUE(x.erase(3));        // ahead: gone
  ASSERT_TRUE(x.store(0, 9));     // behind: not again
  EXPECT_EQ(d.next()->index, 1u);
  EXPECT_EQ(d.next()->index, 6u);
  ASSERT_TRUE(x.store_range(u64{1} << 40, order{12}, 5));  // grows the tree: re-descends
  u64 n = 0, lastseen = 0;
  while (auto e = d.next()) ++n, lastseen = e->index;
  EXPECT_EQ(lastseen, u64{1} << 40);
  EXPECT_EQ(n, 4 * xa::leaf_slots - 3 + 1);
  EXPECT_EQ(d.next().code(), errc::not_found);
  EXPECT_EQ(x.marked_cursor(0, static_cast<xa_mark>(5)).next().code(), errc::not_found);
}

TEST(XarrayWide, SixteenByteValuesAndSixtyFourKPages) {
  struct folio {
    u64 pfn_flags, index;
    bool operator==(const folio&) const = default;
  };
  arena<16> mem{u64{64} << 20};
  arena<16> scratch{u64{4} << 20};
  auto x = make_xarray<folio, 16>(mem.pages());
  ASSERT_TRUE(x);
  for (u64 i = 0; i < 10000; ++i) ASSERT_TRUE(x->store(i, folio{i + 1, i}));
  ASSERT_TRUE(x->store_range(u64{1} << 40, order{18}, folio{5, 6}));
  x->seal();
  auto v = attach_xarray<folio, 16>(mem.remap(), x->root(), scratch.pages());
  ASSERT_TRUE(v) << to_string(v.code());
  EXPECT_EQ(v->count(), 10001u);
  EXPECT_EQ(v->load(9999)->index, 9999u);
  EXPECT_EQ(v->load((u64{1} << 40) + 77)->pfn_flags, 5u);
  EXPECT_EQ((attach_xarray<u64, 16>(mem.memory(), x->root(), scratch.pages()).code()), errc::bad_compatible);
}

}  // namespace
}  // namespace kho::test::xarray_test
