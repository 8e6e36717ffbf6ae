// Hole finder: edges of every query, bad input, tree pages, early exit; page shifts
// 12, 14 and 16. Addresses are written in pages (P) so one test reads for all three.
#include <kho/hole_finder.hpp>
#include <kho/model/demo_holes.hpp>
#include <kho/model/inspect_holes.hpp>
#include <kho/preserve_bitmap.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <utility>
#include <vector>

namespace kho::test::hole_finder_test {
namespace {

using holes = std::vector<std::pair<u64, u64>>;  // (start, size)

template <unsigned S>
struct machine {
  static constexpr u64 P = page_geometry<S>::size;
  using source = typename arena<S>::source_type;
  using tree_type = preserve_bitmap<source, S>;

  arena<S> mem{64 * P, u64{1} << 44};  // the tree's pages: outside the RAM of most tests
  std::optional<tree_type> tree;
  std::vector<u64> scratch = std::vector<u64>(64);

  explicit machine(bool record_own_pages = true) {
    auto t = tree_type::create(mem.pages(), record_own_pages);
    EXPECT_TRUE(t.has_value());
    tree.emplace(std::move(*t));
  }
  void preserve(u64 page, unsigned o) { ASSERT_TRUE(tree->preserve(phys_addr{page * P}, order{o}).ok()); }
  auto view() {
    auto v = attach_tree<S>(mem.memory(), tree->root(), scratch);
    EXPECT_TRUE(v.has_value());
    return std::move(*v);
  }
};

phys_range pages(u64 first, u64 end, u64 P) { return {phys_addr{first * P}, phys_addr{end * P}}; }

template <class Finder>
holes all_holes(const Finder& f, phys_range window, u64 min_size = 0) {
  holes out;
  EXPECT_TRUE(f.for_each_hole(window, min_size, [&](phys_addr s, u64 n) { out.emplace_back(s.value, n); }).ok());
  return out;
}

template <class T>
class HoleFinder : public ::testing::Test {};
using shifts = ::testing::Types<std::integral_constant<unsigned, 12>, std::integral_constant<unsigned, 14>,
                                std::integral_constant<unsigned, 16>>;
TYPED_TEST_SUITE(HoleFinder, shifts);

TYPED_TEST(HoleFinder, HolesAtTheVeryStartAndEndOfRam) {
  constexpr unsigned S = TypeParam::value;
  constexpr u64 P = page_geometry<S>::size;
  machine<S> m;
  m.preserve(8, 3);   // pages 8..16
  m.preserve(40, 0);
  auto view = m.view();
  const phys_range ram[] = {pages(0, 64, P)};
  auto f = make_hole_finder(view, ram);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(all_holes(*f, f->ram_window()), (holes{{0, 8 * P}, {16 * P, 24 * P}, {41 * P, 23 * P}}));
  auto largest = f->largest_hole();
  ASSERT_TRUE(largest.has_value());
  EXPECT_EQ(*largest, pages(16, 40, P));
  auto first = f->first_fit(P, P);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, pages(0, 1, P));  // the very first page of RAM
  auto last = f->last_fit(P, P);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(*last, pages(63, 64, P));  // the very last page of RAM
  // 9 pages fit only in the middle hole from below, only in the top hole from above.
  EXPECT_EQ(*f->first_fit(9 * P, P), pages(16, 25, P));
  EXPECT_EQ(*f->last_fit(9 * P, P), pages(55, 64, P));
}

TYPED_TEST(HoleFinder, RamGapsSplitHolesAndTouchingRangesJoin) {
  constexpr unsigned S = TypeParam::value;
  constexpr u64 P = page_geometry<S>::size;
  machine<S> m;
  auto view = m.view();
  const phys_range ram[] = {pages(0, 16, P), pages(16, 20, P), pages(32, 48, P), pages(100, 101, P)};
  auto f = make_hole_finder(view, ram);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(all_holes(*f, f->ram_window()), (holes{{0, 20 * P}, {32 * P, 16 * P}, {100 * P, P}}));
  EXPECT_EQ(all_holes(*f, f->ram_window(), 2 * P), (holes{{0, 20 * P}, {32 * P, 16 * P}}));
  // A window starting in a gap begins at the next RAM range; one ending in a gap stops.
  EXPECT_EQ(all_holes(*f, pages(25, 60, P)), (holes{{32 * P, 16 * P}}));
  // 17 pages fit in no single RAM range of the window [20, 101).
  EXPECT_EQ(f->first_fit(17 * P, P, pages(20, 101, P)).code(), errc::no_hole);
  EXPECT_EQ(*f->last_fit(16 * P, P, pages(20, 101, P)), pages(32, 48, P));
  EXPECT_EQ(*f->last_fit(2 * P, P), pages(46, 48, P));  // the top range holds one page only
  // A window inside a gap holds no RAM.
  EXPECT_EQ(f->largest_hole(pages(20, 32, P)).code(), errc::out_of_bounds);
  EXPECT_EQ(f->largest_hole(pages(200, 300, P)).code(), errc::out_of_bounds);
}

TYPED_TEST(HoleFinder, FullyPreservedWindowHasNoHole) {
  constexpr unsigned S = TypeParam::value;
  constexpr u64 P = page_geometry<S>::size;
  machine<S> m;
  m.preserve(32, 5);  // pages 32..64
  auto view = m.view();
  const phys_range ram[] = {pages(0, 128, P)};
  auto f = make_hole_finder(view, ram);
  ASSERT_TRUE(f.has_value());
  const phys_range w = pages(32, 64, P);
  EXPECT_TRUE(all_holes(*f, w).empty());
  EXPECT_EQ(f->largest_hole(w).code(), errc::no_hole);
  EXPECT_EQ(f->first_fit(P, P, w).code(), errc::no_hole);
  EXPECT_EQ(f->last_fit(P, P, w).code(), errc::no_hole);
  phys_range out[4];
  EXPECT_EQ(f->grow_scratch(P, out, w).code(), errc::no_hole);
  // Widened by one page each side, the window holds exactly those pages.
  EXPECT_EQ(all_holes(*f, pages(31, 65, P)), (holes{{31 * P, P}, {64 * P, P}}));
}

TYPED_TEST(HoleFinder, AlignmentLargerThanTheHole) {
  constexpr unsigned S = TypeParam::value;
  constexpr u64 P = page_geometry<S>::size;
  machine<S> m;
  m.preserve(0, 6);   // pages 0..64
  m.preserve(72, 3);  // 72..80: leaves the hole 64..72
  m.preserve(80, 4);  // 80..96
  m.preserve(96, 5);  // 96..128
  auto view = m.view();
  const phys_range ram[] = {pages(0, 128, P)};
  auto f = make_hole_finder(view, ram);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(*f->first_fit(8 * P, 64 * P), pages(64, 72, P));  // the hole is 64-page aligned
  EXPECT_EQ(f->first_fit(P, 128 * P).code(), errc::no_hole);  // but not 128-page aligned
  EXPECT_EQ(f->last_fit(P, 128 * P).code(), errc::no_hole);
  EXPECT_EQ(f->first_fit(9 * P, P).code(), errc::no_hole);    // larger than the hole
  EXPECT_EQ(*f->last_fit(P, 4 * P), pages(68, 69, P));
  // Byte sizes: the top-down fit ends at the hole's end, aligned down.
  EXPECT_EQ(*f->last_fit(100, 1), (phys_range{phys_addr{72 * P - 100}, phys_addr{72 * P}}));
  EXPECT_EQ(*f->last_fit(100, 64), (phys_range{phys_addr{72 * P - 128}, phys_addr{72 * P - 28}}));
  // An alignment near 2^64 leaves no aligned start below the end of memory.
  EXPECT_EQ(f->first_fit(P, u64{1} << 63).code(), errc::no_hole);
}

TYPED_TEST(HoleFinder, BadInputIsAnErrorNeverUndefined) {
  constexpr unsigned S = TypeParam::value;
  constexpr u64 P = page_geometry<S>::size;
  machine<S> m;
  auto view = m.view();
  using finder = hole_finder<decltype(view)>;
  // The RAM list.
  EXPECT_EQ(finder::create(view, {}).code(), errc::invalid_argument);
  const phys_range unsorted[] = {pages(10, 20, P), pages(0, 5, P)};
  EXPECT_EQ(finder::create(view, unsorted).code(), errc::invalid_argument);
  const phys_range overlapping[] = {pages(0, 10, P), pages(9, 20, P)};
  auto bad = finder::create(view, overlapping);
  EXPECT_EQ(bad.code(), errc::invalid_argument);
  EXPECT_EQ(bad.err().loc.at, phys_addr{9 * P});
  const phys_range empty_range[] = {pages(5, 5, P)};
  EXPECT_EQ(finder::create(view, empty_range).code(), errc::invalid_argument);
  const phys_range inverted[] = {pages(6, 5, P)};
  EXPECT_EQ(finder::create(view, inverted).code(), errc::invalid_argument);
  const phys_range unaligned[] = {{phys_addr{P}, phys_addr{2 * P + 1}}};
  EXPECT_EQ(finder::create(view, unaligned).code(), errc::misaligned);
  const phys_range ram[] = {pages(0, 64, P)};
  const phys_range reserved_unsorted[] = {pages(8, 9, P), pages(2, 3, P)};
  EXPECT_EQ(finder::create(view, ram, reserved_unsorted).code(), errc::invalid_argument);
  const phys_range reserved_inverted[] = {pages(8, 7, P)};
  EXPECT_EQ(finder::create(view, ram, reserved_inverted).code(), errc::invalid_argument);

  auto f = finder::create(view, ram);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->ram_bytes(), 64 * P);
  // Sizes and alignments.
  EXPECT_EQ(f->first_fit(0, P).code(), errc::invalid_argument);
  EXPECT_EQ(f->last_fit(0, P).code(), errc::invalid_argument);
  EXPECT_EQ(f->first_fit(P, 3 * P).code(), errc::invalid_argument);
  EXPECT_EQ(f->last_fit(P, 0).code(), errc::invalid_argument);
  EXPECT_EQ(f->first_fit(64 * P + 1, P).code(), errc::out_of_range);
  EXPECT_EQ(f->last_fit(~u64{0}, P).code(), errc::out_of_range);
  EXPECT_TRUE(f->first_fit(64 * P, P).has_value());  // all of RAM, exactly
  // Windows.
  EXPECT_EQ(f->largest_hole(pages(9, 8, P)).code(), errc::invalid_argument);
  EXPECT_EQ(f->largest_hole({phys_addr{P + 1}, phys_addr{2 * P + 5}}).code(), errc::invalid_argument);
  EXPECT_EQ(f->largest_hole(pages(64, 100, P)).code(), errc::out_of_bounds);
  EXPECT_EQ(f->largest_hole({phys_addr{~u64{0} - 5}, phys_addr{~u64{0}}}).code(), errc::invalid_argument);
  EXPECT_EQ(*f->largest_hole({phys_addr{0}, phys_addr{~u64{0}}}), pages(0, 64, P));  // clipped to RAM
  EXPECT_EQ(*f->largest_hole({phys_addr{1}, phys_addr{3 * P - 1}}), pages(1, 2, P));  // rounded inward
  // grow_scratch.
  phys_range out[2];
  EXPECT_EQ(f->grow_scratch(0, out).code(), errc::invalid_argument);
  EXPECT_EQ(f->grow_scratch(P, std::span<phys_range>{}).code(), errc::invalid_argument);
  EXPECT_EQ(f->grow_scratch(65 * P, out).code(), errc::out_of_range);
  EXPECT_EQ(f->stats().walks, 0u);  // refused before any walk
  // Ranges from sizes.
  EXPECT_EQ(make_range(phys_addr{~u64{0} - 1}, 2).code(), errc::out_of_range);
  EXPECT_EQ(*make_range(phys_addr{P}, P), pages(1, 2, P));
}

TYPED_TEST(HoleFinder, TreePagesAreBusyWhenTheTreeDoesNotRecordThem) {
  constexpr unsigned S = TypeParam::value;
  constexpr u64 P = page_geometry<S>::size;
  machine<S> m(/*record_own_pages=*/false);  // as Linux writes it
  m.preserve(0, 0);
  m.preserve(u64{1} << 20, 2);  // far from the arena
  auto view = m.view();
  ASSERT_GT(view.node_count(), 2u);
  // RAM is the arena, where the tree's pages are (bump-allocated from its start).
  const phys_range ram[] = {{m.mem.memory().base(), m.mem.memory().end()}};
  auto f = make_hole_finder(view, ram);
  ASSERT_TRUE(f.has_value());
  const holes h = all_holes(*f, f->ram_window());
  u64 free_bytes = 0;
  for (auto [s, n] : h) {
    free_bytes += n;
    for (u64 node : view.nodes()) EXPECT_FALSE(node >= s && node < s + n) << std::hex << node;
  }
  EXPECT_EQ(free_bytes, m.mem.memory().size() - view.node_count() * P);
  // The writer knows nothing of its pages when it does not record them: the caller
  // names them as reserved ranges instead, and gets the same holes.
  std::vector<phys_range> reserved;
  for (u64 node : view.nodes()) reserved.push_back({phys_addr{node}, phys_addr{node + P}});
  auto from_writer = make_hole_finder(*m.tree, ram, reserved);
  ASSERT_TRUE(from_writer.has_value());
  EXPECT_EQ(all_holes(*from_writer, from_writer->ram_window()), h);
  auto blind = make_hole_finder(*m.tree, ram);
  EXPECT_EQ(all_holes(*blind, blind->ram_window()), (holes{{ram[0].start.value, ram[0].size()}}));
}

TYPED_TEST(HoleFinder, WriterRecordingItsPagesAgreesWithItsView) {
  constexpr unsigned S = TypeParam::value;
  constexpr u64 P = page_geometry<S>::size;
  machine<S> m;
  for (u64 i = 0; i < 16; ++i) m.preserve(m.mem.memory().base().value / P + 3 * i + 20, 0);
  auto view = m.view();
  const phys_range ram[] = {{m.mem.memory().base(), m.mem.memory().end()}};
  auto a = make_hole_finder(view, ram);
  auto b = make_hole_finder(*m.tree, ram);
  ASSERT_TRUE(a.has_value() && b.has_value());
  EXPECT_EQ(all_holes(*a, ram[0]), all_holes(*b, ram[0]));
  EXPECT_EQ(*a->last_fit(2 * P, P), *b->last_fit(2 * P, P));
}

TYPED_TEST(HoleFinder, ReservedRangesRoundOutwardAndMayOverlap) {
  constexpr unsigned S = TypeParam::value;
  constexpr u64 P = page_geometry<S>::size;
  machine<S> m;
  m.preserve(20, 0);
  auto view = m.view();
  const phys_range ram[] = {pages(0, 32, P)};
  const phys_range reserved[] = {
      {phys_addr{2 * P + 7}, phys_addr{3 * P + 1}},  // touches pages 2 and 3
      {phys_addr{2 * P + 9}, phys_addr{2 * P + 9}},  // empty: reserves nothing
      {phys_addr{3 * P}, phys_addr{5 * P}},          // overlaps the first
      {phys_addr{10 * P}, phys_addr{10 * P}},        // empty
      {phys_addr{19 * P}, phys_addr{21 * P}},        // overlaps the preserved page
      {phys_addr{31 * P + 1}, phys_addr{~u64{0}}},   // to the end of memory
  };
  auto f = make_hole_finder(view, ram, reserved);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(all_holes(*f, f->ram_window()), (holes{{0, 2 * P}, {5 * P, 14 * P}, {21 * P, 10 * P}}));
}

TYPED_TEST(HoleFinder, FirstFitReadsOnlyTheFirstRanges) {
  constexpr unsigned S = TypeParam::value;
  constexpr u64 P = page_geometry<S>::size;
  machine<S> m;
  const u64 n = 2000;
  for (u64 i = 0; i < n; ++i) m.preserve(4 * i, i % 2 == 0 ? 1 : 0);  // 2 or 1 busy pages of each 4
  auto view = m.view();
  const phys_range ram[] = {pages(0, 4 * n, P)};
  auto f = make_hole_finder(view, ram);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(*f->first_fit(3 * P, P), pages(5, 8, P));  // holes [2, 4), [5, 8), [10, 12), ...
  EXPECT_LE(f->stats().ranges, 4u);
  EXPECT_EQ(f->stats().walks, 1u);
  ASSERT_TRUE(f->largest_hole().has_value());
  EXPECT_EQ(f->stats().ranges, n);  // a full sweep reads every range
  EXPECT_EQ(f->stats().holes, n);
  // for_each_hole stops when told.
  int calls = 0;
  ASSERT_TRUE(f->for_each_hole([&](phys_addr, u64) { return ++calls < 3; }).ok());
  EXPECT_EQ(calls, 3);
  EXPECT_LE(f->stats().ranges, 5u);
  // last_fit reads the top chunk only.
  EXPECT_EQ(*f->last_fit(2 * P, P), pages(4 * n - 2, 4 * n, P));
  EXPECT_LE(f->stats().ranges, n);
}

TYPED_TEST(HoleFinder, LastFitJoinsAHoleAcrossChunks) {
  constexpr unsigned S = TypeParam::value;
  constexpr u64 P = page_geometry<S>::size;
  // last_fit's first chunk is max(size, one leaf's order-0 span of c pages), and each
  // next chunk is twice the last, so the chunks depend on the size asked for.
  constexpr u64 c = u64{1} << (S + 3);
  machine<S> m;
  m.preserve(8 * c - 1, 0);
  m.preserve(5 * c - 1, 0);
  m.preserve(c, 0);
  const phys_range ram[] = {pages(0, 8 * c, P)};
  {
    auto view = m.view();
    auto f = make_hole_finder(view, ram);
    ASSERT_TRUE(f.has_value());
    // Holes [0, c), [c+1, 5c-1) and [5c, 8c-1): the top one spans two chunks.
    EXPECT_EQ(*f->last_fit(5 * c / 2 * P, P), pages(8 * c - 1 - 5 * c / 2, 8 * c - 1, P));
    EXPECT_EQ(f->stats().walks, 2u);
    auto below = f->last_fit(3 * c * P, P);  // too big for the top hole
    ASSERT_TRUE(below.has_value()) << to_string(below.code());
    EXPECT_EQ(*below, pages(2 * c - 1, 5 * c - 1, P));
    EXPECT_EQ(f->stats().walks, 2u);  // chunks [5c, 8c), [0, 5c)
    EXPECT_EQ(*f->first_fit(3 * c * P, P), pages(c + 1, 4 * c + 1, P));
    EXPECT_EQ(f->last_fit((4 * c - 1) * P, P).code(), errc::no_hole);
  }
  ASSERT_TRUE(m.tree->unpreserve(phys_addr{(5 * c - 1) * P}, order{0}).ok());
  auto view = m.view();
  auto f = make_hole_finder(view, ram);
  ASSERT_TRUE(f.has_value());
  // Now one hole [c+1, 8c-1). Aligned to 4c, c pages fit only at 4c: chunks [7c, 8c),
  // [5c, 7c) and [c, 5c) each see a part of the hole, joined twice on the way down.
  EXPECT_EQ(*f->last_fit(c * P, 4 * c * P), pages(4 * c, 5 * c, P));
  EXPECT_EQ(f->stats().walks, 3u);
  EXPECT_EQ(*f->last_fit(6 * c * P, P), pages(2 * c - 1, 8 * c - 1, P));
  EXPECT_EQ(f->stats().walks, 2u);  // [2c, 8c), then [0, 2c)
  EXPECT_EQ(*f->last_fit((7 * c - 2) * P, P), pages(c + 1, 8 * c - 1, P));
  EXPECT_EQ(f->last_fit((7 * c - 1) * P, P).code(), errc::no_hole);
  EXPECT_EQ(f->stats().walks, 2u);  // down to the bottom of RAM
}

TYPED_TEST(HoleFinder, GrowScratchTakesTheLargestHolesFirst) {
  constexpr unsigned S = TypeParam::value;
  constexpr u64 P = page_geometry<S>::size;
  machine<S> m;
  // Holes of 3, 10, 5 and 7 pages between single preserved pages.
  for (u64 page : {3u, 14u, 20u, 28u}) m.preserve(page, 0);
  auto view = m.view();
  const phys_range ram[] = {pages(0, 28, P)};
  auto f = make_hole_finder(view, ram);
  ASSERT_TRUE(f.has_value());
  phys_range out[3];
  auto plan = f->grow_scratch(12 * P, out);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->pieces, 2u);
  EXPECT_EQ(plan->bytes, 12 * P);
  EXPECT_EQ(out[0], pages(4, 14, P));
  EXPECT_EQ(out[1], pages(21, 23, P));  // the 7-page hole, trimmed from its bottom
  plan = f->grow_scratch(P + 1, out);   // rounded up to whole pages of one hole
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->pieces, 1u);
  EXPECT_EQ(plan->bytes, 2 * P);
  EXPECT_EQ(out[0], pages(4, 6, P));
  plan = f->grow_scratch(22 * P, out);  // 10 + 7 + 5: all three pieces, whole
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->pieces, 3u);
  EXPECT_EQ(out[2], pages(15, 20, P));
  EXPECT_EQ(f->grow_scratch(23 * P, out).code(), errc::no_hole);  // needs a fourth piece
  phys_range four[4];
  EXPECT_EQ(f->grow_scratch(25 * P, four)->pieces, 4u);
  EXPECT_EQ(f->grow_scratch(26 * P, four).code(), errc::no_hole);  // more than all holes
}

// The hosted reports: `kho dump --holes` and the kexec demo's grow_scratch step.
TEST(HoleFinderReports, DumpSummaryAndGrowScratchStep) {
  constexpr u64 KiB = 1024, MiB = 1024 * KiB;
  arena<12> mem(16 * MiB, u64{4} << 30);
  const u64 base = mem.memory().base().value;
  auto tree = preserve_bitmap<arena<12>::source_type>::create(mem.pages(), false);  // as Linux
  ASSERT_TRUE(tree.has_value());
  ASSERT_TRUE(tree->preserve(phys_addr{base + 4 * MiB}, order{9}).ok());
  ASSERT_TRUE(tree->preserve(phys_addr{base + 10 * MiB}, order{0}).ok());
  // The tree's pages sit at the arena's start: holes [nodes, 4M), [6M, 10M), [10M+4K, 16M).
  const u64 nodes = tree->node_count();

  const nlohmann::json dump = model::holes_report(mem.memory(), tree->root());
  ASSERT_TRUE(dump["ok"].get<bool>()) << dump.dump();
  EXPECT_EQ(dump["largest_hole"], nlohmann::json::array({model::hex(base + 10 * MiB + 4 * KiB), model::hex(6 * MiB - 4 * KiB)}));
  EXPECT_EQ(dump["holes_over_2mib"].get<u64>(), 3u);
  EXPECT_EQ(dump["holes"].get<u64>(), 3u);
  EXPECT_EQ(dump["free_bytes"].get<u64>(), 16 * MiB - nodes * 4 * KiB - 2 * MiB - 4 * KiB);
  const nlohmann::json bad = model::holes_report(mem.memory(), phys_addr{base + 123});
  EXPECT_FALSE(bad["ok"].get<bool>());
  EXPECT_EQ(bad["error"]["error"], to_string(errc::misaligned));

  std::vector<u64> scratch(64);
  auto view = attach_tree(mem.memory(), tree->root(), scratch);
  ASSERT_TRUE(view.has_value());
  const phys_range ram[] = {{mem.memory().base(), mem.memory().end()}};
  const nlohmann::json grown = model::grow_scratch_report(*view, ram, 8 * MiB);
  ASSERT_TRUE(grown["ok"].get<bool>()) << grown.dump();
  EXPECT_EQ(grown["piece_count"].get<u64>(), 2u);
  EXPECT_EQ(grown["bytes"].get<u64>(), 8 * MiB);
  EXPECT_EQ(grown["pieces"][0], nlohmann::json::array({model::hex(base + 10 * MiB + 4 * KiB), model::hex(6 * MiB - 4 * KiB)}));
  EXPECT_EQ(grown["pieces"][1], nlohmann::json::array({model::hex(base + 6 * MiB), model::hex(2 * MiB + 4 * KiB)}));
  const nlohmann::json short_of = model::grow_scratch_report(*view, ram, 8 * MiB, {}, 1);
  EXPECT_FALSE(short_of["ok"].get<bool>());
  EXPECT_EQ(short_of["error"]["error"], to_string(errc::no_hole));
}

}  // namespace
}  // namespace kho::test::hole_finder_test
