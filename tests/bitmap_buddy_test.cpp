// bitmap_buddy: free lists implied by an order-0 free bitmap. Checked against
// buddy_model (the kernel's __free_pages_memory cut) on the maximal holes of random
// bitmaps, block for block, for several MaxOrders and windows aligned to nothing.
#include <kho/bitmap_buddy.hpp>
#include <kho/buddy_model.hpp>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <span>
#include <utility>
#include <vector>

namespace kho::test::bitmap_buddy_test {
namespace {

using block_list = std::vector<std::pair<u64, unsigned>>;

struct record_blocks {
  block_list* out;
  void operator()(pfn f, order o) const { out->emplace_back(f.value, o.value); }
};

/// The blocks the bitmap implies, by the definition: all frames free, and the order
/// is MaxOrder or the aligned parent is not wholly free. Tried block by block.
template <unsigned M>
block_list implied_blocks(const bitmap_buddy<M>& b) {
  auto all_free = [&](u64 s, unsigned k) {
    for (u64 f = s; f < s + (u64{1} << k); ++f)
      if (!b.is_free(pfn{f})) return false;
    return true;
  };
  block_list out;
  const u64 lo = b.origin().value, hi = lo + 64 * b.words().size();
  for (unsigned k = 0; k <= M; ++k)
    for (u64 s = lo; s < hi; s += u64{1} << k)
      if (all_free(s, k) && (k == M || !all_free(s & ~((u64{2} << k) - 1), k + 1))) out.emplace_back(s, k);
  std::sort(out.begin(), out.end());
  return out;
}

/// buddy_model over the maximal runs of `free_frames` (frame lo + i free iff [i]).
template <unsigned M>
block_list model_blocks(u64 lo, const std::vector<bool>& free_frames, buddy_model<M, record_blocks>& model) {
  for (u64 i = 0; i < free_frames.size();) {
    if (!free_frames[i]) {
      ++i;
      continue;
    }
    u64 j = i;
    while (j < free_frames.size() && free_frames[j]) ++j;
    model.free_range(pfn{lo + i}, pfn{lo + j});
    i = j;
  }
  block_list got = *model.hook().out;
  std::sort(got.begin(), got.end());
  return got;
}

template <unsigned M>
void expect_same_counts(const bitmap_buddy<M>& b, const buddy_model<M, record_blocks>& model) {
  for (unsigned k = 0; k <= M + 1; ++k) RC_ASSERT(b.free_blocks(order{k}) == model.free_blocks(order{k}));
  RC_ASSERT(b.blocks() == model.blocks());
  RC_ASSERT(b.free_pages() == model.free_pages());
}

TEST(BitmapBuddy, CreateAndSizes) {
  std::vector<u64> words(64, ~u64{0});
  EXPECT_EQ(bitmap_buddy<10>::words_for(pfn{5}, pfn{5}), 0u);
  EXPECT_EQ(bitmap_buddy<10>::words_for(pfn{5}, pfn{6}), 16u);      // one whole order-10 group
  EXPECT_EQ(bitmap_buddy<10>::words_for(pfn{1000}, pfn{1030}), 32u);  // straddles two groups
  EXPECT_EQ(bitmap_buddy<3>::words_for(pfn{60}, pfn{70}), 2u);      // small orders: whole words
  EXPECT_EQ(bitmap_buddy<10>::create(pfn{6}, pfn{5}, words).code(), errc::invalid_argument);
  EXPECT_EQ(bitmap_buddy<10>::create(pfn{0}, pfn{4097}, words).code(), errc::table_full);  // 80 words
  EXPECT_EQ(bitmap_buddy<10>::create(pfn{0}, pfn{4096}, std::span(words).first(63)).code(), errc::table_full);
  auto c = bitmap_buddy<10>::create(pfn{0}, pfn{4096}, words);  // exactly 64
  ASSERT_TRUE(c);
  EXPECT_EQ(c->free_pages(), 0u);  // create zeroes the lent words
  EXPECT_EQ(words[0], 0u);
}

TEST(BitmapBuddy, EmptyWindow) {
  std::vector<u64> words;
  auto b = bitmap_buddy<10>::create(pfn{7}, pfn{7}, words);
  ASSERT_TRUE(b);
  b->free_range(pfn{0}, pfn{100});
  b->free_word(pfn{0}, ~u64{0});
  EXPECT_EQ(b->blocks(), 0u);
  EXPECT_EQ(b->free_pages(), 0u);
  EXPECT_FALSE(b->is_free(pfn{7}));
}

TEST(BitmapBuddy, TheHeaderPicture) {
  std::vector<u64> words(16);
  auto b = bitmap_buddy<10>::create(pfn{0}, pfn{64}, words);
  ASSERT_TRUE(b);
  b->free_range(pfn{3}, pfn{10});
  EXPECT_EQ(b->free_blocks(order{0}), 1u);  // 3
  EXPECT_EQ(b->free_blocks(order{2}), 1u);  // 4..7
  EXPECT_EQ(b->free_blocks(order{1}), 1u);  // 8..9
  EXPECT_EQ(b->blocks(), 3u);
  EXPECT_EQ(implied_blocks(*b), (block_list{{3, 0}, {4, 2}, {8, 1}}));
  b->take_range(pfn{4}, pfn{5});  // counts follow a change
  EXPECT_EQ(implied_blocks(*b), (block_list{{3, 0}, {5, 0}, {6, 1}, {8, 1}}));
  EXPECT_EQ(b->blocks(), 4u);
  EXPECT_EQ(b->free_pages(), 6u);
}

TEST(BitmapBuddy, WindowSmallerThanAWordAndEdges) {
  std::vector<u64> words(16);
  auto b = bitmap_buddy<10>::create(pfn{70}, pfn{75}, words);  // 5 frames inside one word
  ASSERT_TRUE(b);
  b->free_word(pfn{64}, ~u64{0});  // only the window's frames
  EXPECT_EQ(b->free_pages(), 5u);
  EXPECT_EQ(b->free_blocks(order{1}), 2u);  // 70..71, 72..73 (72..75 would need 75)
  EXPECT_EQ(b->free_blocks(order{0}), 1u);  // 74
  EXPECT_EQ(b->free_blocks(order{2}), 0u);
  EXPECT_FALSE(b->is_free(pfn{69}));
  EXPECT_FALSE(b->is_free(pfn{75}));
  EXPECT_EQ(b->words()[1], u64{0x1f} << 6);  // nothing outside the window is set
}

TEST(BitmapBuddy, WholeRamFromFrameZero) {
  std::vector<u64> words(bitmap_buddy<10>::words_for(pfn{0}, pfn{3000}));
  auto b = bitmap_buddy<10>::create(pfn{0}, pfn{3000}, words);
  ASSERT_TRUE(b);
  b->free_range(pfn{0}, pfn{3000});
  block_list got;
  buddy_model<10, record_blocks> m(record_blocks{&got});
  m.free_range(pfn{0}, pfn{3000});  // frame 0 counts as aligned: order 10 at 0 and 1024
  EXPECT_EQ(b->free_blocks(order{10}), 2u);
  for (unsigned k = 0; k <= 10; ++k) EXPECT_EQ(b->free_blocks(order{k}), m.free_blocks(order{k})) << k;
  EXPECT_EQ(implied_blocks(*b), got);
}

TEST(BitmapBuddy, FreeWhereClearTakesLeafWords) {
  std::vector<u64> words(32);
  auto b = bitmap_buddy<10>::create(pfn{1024}, pfn{2048}, words);
  ASSERT_TRUE(b);
  std::vector<u64> busy(16, 0);
  busy[0] = 0xf0;  // frames 1024+4..1024+7 preserved
  b->free_where_clear(pfn{1024 + 2}, pfn{2048}, busy.data());
  EXPECT_EQ(b->free_pages(), 1024u - 2 - 4);
  EXPECT_FALSE(b->is_free(pfn{1025}));
  EXPECT_TRUE(b->is_free(pfn{1026}));
  EXPECT_FALSE(b->is_free(pfn{1028}));
  EXPECT_TRUE(b->is_free(pfn{1032}));
}

/// Random operations on a window aligned to nothing, against a frame-by-frame oracle;
/// then the counts against buddy_model over the oracle's maximal holes, and the
/// implied blocks against buddy_model's blocks.
template <unsigned M>
void check_random_ops() {
  constexpr unsigned S = M > 8 ? M : 8;  // windows of several words even for small orders
  const u64 start = *rc::gen::inRange<u64>(0, u64{3} << S);
  const u64 len = *rc::gen::inRange<u64>(0, u64{5} << S);
  const u64 end = start + len;
  std::vector<u64> words(bitmap_buddy<M>::words_for(pfn{start}, pfn{end}) + 1, ~u64{0});
  auto b = bitmap_buddy<M>::create(pfn{start}, pfn{end}, words);
  RC_ASSERT(b.has_value());
  const u64 lo = b->origin().value;
  std::vector<bool> oracle(64 * b->words().size(), false);
  auto in = [&](u64 f) { return f >= start && f < end; };
  const u64 span = (end - lo) + 200;
  const unsigned ops = *rc::gen::inRange<unsigned>(0, 24);
  for (unsigned i = 0; i < ops; ++i) {
    const unsigned kind = *rc::gen::inRange<unsigned>(0, 4);
    const u64 s = lo + *rc::gen::inRange<u64>(0, span);
    const u64 n = *rc::gen::inRange<u64>(0, u64{3} << S);
    if (kind == 0 || kind == 1) {  // ranges, also past the window
      if (kind == 0)
        b->free_range(pfn{s}, pfn{s + n});
      else
        b->take_range(pfn{s}, pfn{s + n});
      for (u64 f = s; f < s + n; ++f)
        if (in(f)) oracle[f - lo] = kind == 0;
    } else if (kind == 2) {
      const u64 w = s & ~u64{63}, bits = *rc::gen::arbitrary<u64>();
      b->free_word(pfn{w}, bits);
      for (unsigned j = 0; j < 64; ++j)
        if (((bits >> j) & 1) && in(w + j)) oracle[w + j - lo] = true;
    } else {
      std::vector<u64> busy(n / 64 + 2);
      for (u64& x : busy) x = *rc::gen::arbitrary<u64>() & *rc::gen::arbitrary<u64>();  // mostly free
      b->free_where_clear(pfn{s}, pfn{s + n}, busy.data());
      const u64 base = s & ~u64{63};
      for (u64 f = s; f < s + n; ++f)
        if (in(f) && !((busy[(f - base) / 64] >> ((f - base) % 64)) & 1)) oracle[f - lo] = true;
    }
  }
  for (u64 f = lo; f < lo + oracle.size(); ++f) RC_ASSERT(b->is_free(pfn{f}) == oracle[f - lo]);
  RC_ASSERT(words.back() == ~u64{0});  // nothing written past words_for
  block_list got;
  buddy_model<M, record_blocks> model(record_blocks{&got});
  const block_list want = model_blocks(lo, oracle, model);
  expect_same_counts(*b, model);
  RC_ASSERT(implied_blocks(*b) == want);
}

RC_GTEST_PROP(BitmapBuddy, SameListsAsBuddyModelOrder10, ()) { check_random_ops<10>(); }
RC_GTEST_PROP(BitmapBuddy, SameListsAsBuddyModelOrder3, ()) { check_random_ops<3>(); }
RC_GTEST_PROP(BitmapBuddy, SameListsAsBuddyModelOrder6, ()) { check_random_ops<6>(); }
RC_GTEST_PROP(BitmapBuddy, SameListsAsBuddyModelOrder12, ()) { check_random_ops<12>(); }

// Two levels of "all free" flags (orders 6..11, then 12..13): counts only, as trying
// every block of a 2^13 window one by one is slow.
RC_GTEST_PROP(BitmapBuddy, SameCountsAsBuddyModelOrder13, ()) {
  constexpr unsigned M = 13;
  const u64 start = *rc::gen::inRange<u64>(0, u64{3} << M);
  const u64 end = start + *rc::gen::inRange<u64>(0, u64{4} << M);
  std::vector<u64> words(bitmap_buddy<M>::words_for(pfn{start}, pfn{end}));
  auto b = bitmap_buddy<M>::create(pfn{start}, pfn{end}, words);
  RC_ASSERT(b.has_value());
  std::vector<bool> oracle(end - start, false);
  // Long runs with a few holes punched in: big blocks appear.
  b->free_range(pfn{start}, pfn{end});
  oracle.assign(end - start, true);
  const auto holes = *rc::gen::container<std::vector<u64>>(rc::gen::inRange<u64>(0, u64{7} << M));
  for (u64 h : holes) {
    b->take_range(pfn{start + h}, pfn{start + h + 1});
    if (h < oracle.size()) oracle[h] = false;
  }
  block_list got;
  buddy_model<M, record_blocks> model(record_blocks{&got});
  (void)model_blocks(start, oracle, model);
  expect_same_counts(*b, model);
}

}  // namespace
}  // namespace kho::test::bitmap_buddy_test
