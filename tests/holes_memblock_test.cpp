// The side-stepped boot: memblock answered from the hole finder, free_all into the
// buddy model. Checked page by page: every page of RAM ends up exactly once in
// {preserved, tree page, reserved, early-allocated, handed to the buddy allocator},
// before and after the memory is mapped at another address; and the side-step hands
// over exactly what restoring memblock.reserved and freeing its gaps would.
#include <kho/bitmap_buddy.hpp>
#include <kho/buddy_model.hpp>
#include <kho/holes_memblock.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/restore.hpp>

#include "rc_commands.hpp"
#include "test_arena.hpp"

#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

namespace kho::test::holes_memblock_test {
namespace {

constexpr u64 P = 4096;
constexpr u64 base = u64{1} << 32;

/// Records each block the buddy model is handed.
struct record_blocks {
  std::vector<std::pair<u64, unsigned>>* out;
  void operator()(pfn f, order o) const { out->emplace_back(f.value, o.value); }
};

// The kernel's loop, word for word in spirit: the largest aligned order, then shrink.
std::vector<std::pair<u64, unsigned>> reference_chunks(u64 s, u64 e, unsigned max_order) {
  std::vector<std::pair<u64, unsigned>> out;
  while (s < e) {
    unsigned o = s ? std::min<unsigned>(max_order, static_cast<unsigned>(__builtin_ctzll(s))) : max_order;
    while (s + (u64{1} << o) > e) --o;
    out.emplace_back(s, o);
    s += u64{1} << o;
  }
  return out;
}

TEST(BuddyModel, FreeRangeInMaximalAlignedBlocks) {
  std::vector<std::pair<u64, unsigned>> got;
  buddy_model<10, record_blocks> b(record_blocks{&got});
  b.free_range(pfn{3}, pfn{21});
  EXPECT_EQ(got, (std::vector<std::pair<u64, unsigned>>{{3, 0}, {4, 2}, {8, 3}, {16, 2}, {20, 0}}));
  EXPECT_EQ(b.free_pages(), 18u);
  EXPECT_EQ(b.free_blocks(order{2}), 2u);
  EXPECT_EQ(b.free_blocks(order{11}), 0u);
  got.clear();
  b.free_range(pfn{0}, pfn{3000});  // start 0 counts as aligned; capped at order 10
  EXPECT_EQ(got, reference_chunks(0, 3000, 10));
  EXPECT_EQ(got.front(), (std::pair<u64, unsigned>{0, 10}));
  got.clear();
  b.free_range(pfn{5}, pfn{5});  // empty
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(b.blocks(), 5u + reference_chunks(0, 3000, 10).size());
}

RC_GTEST_PROP(BuddyModel, MatchesTheKernelLoop, ()) {
  const u64 s = *rc::gen::inRange<u64>(0, u64{1} << 40);
  const u64 n = *rc::gen::inRange<u64>(0, u64{1} << 14);
  std::vector<std::pair<u64, unsigned>> got;
  buddy_model<10, record_blocks> b(record_blocks{&got});
  b.free_range(pfn{s}, pfn{s + n});
  RC_ASSERT(got == reference_chunks(s, s + n, 10));
  RC_ASSERT(b.free_pages() == n);
}

TEST(FreeAllRegions, GapsBetweenRamAndReservedBytes) {
  const phys_range ram[] = {{phys_addr{0}, phys_addr{16 * P}}, {phys_addr{32 * P}, phys_addr{40 * P}}};
  // Byte ranges: every page they touch is busy; one spans the gap between RAM ranges.
  const memblock_region reserved[] = {{P + 1, 10}, {8 * P - 1, 2}, {14 * P, 20 * P}};
  std::vector<std::pair<u64, unsigned>> got;
  buddy_model<10, record_blocks> b(record_blocks{&got});
  free_all_regions(ram, std::span<const memblock_region>(reserved), b);
  std::vector<std::pair<u64, unsigned>> want = reference_chunks(0, 1, 10);
  for (auto c : reference_chunks(2, 7, 10)) want.push_back(c);
  for (auto c : reference_chunks(9, 14, 10)) want.push_back(c);
  for (auto c : reference_chunks(34, 40, 10)) want.push_back(c);
  EXPECT_EQ(got, want);
}

/// A small machine: 8 MiB of RAM in up to three ranges, the tree's pages in its top
/// 2 MiB (a source of their own, so preserved blocks never land on them).
struct boot_machine {
  static constexpr u64 size = u64{8} << 20;
  static constexpr u64 tree_at = base + (u64{6} << 20);
  arena<12> mem{size, base};
  bump_page_source<flat_memory> tree_pages{mem.memory(), phys_addr{tree_at}, phys_addr{base + size}};
  std::optional<preserve_bitmap<bump_page_source<flat_memory>>> tree;
  std::vector<u64> scratch = std::vector<u64>(512);
  std::vector<phys_range> ram, reserved;
  std::vector<std::pair<u64, unsigned>> blocks;
  using view_type = preserve_bitmap_view<flat_memory>;

  boot_machine() { tree.emplace(std::move(*preserve_bitmap<bump_page_source<flat_memory>>::create(tree_pages, false))); }

  view_type attach() {
    const flat_memory m = mem.remap();
    tree_pages.rebind(m);
    tree->rebind();
    auto v = attach_tree(m, tree->root(), scratch);
    RC_ASSERT(v.has_value());
    return *v;
  }
};

/// Random RAM (gaps), blocks below the tree's pages, byte-granular reserved ranges.
void populate(boot_machine& m) {
  const u64 cut1 = *rc::gen::inRange<u64>(0, 512), gap1 = *rc::gen::inRange<u64>(0, 64);
  const u64 cut2 = *rc::gen::inRange<u64>(cut1 + gap1, 1024);
  const u64 gap2 = *rc::gen::inRange<u64>(0, 64);
  const u64 pages = boot_machine::size / P;
  auto add_ram = [&](u64 a, u64 b) {
    if (a < b) m.ram.push_back({phys_addr{base + a * P}, phys_addr{base + b * P}});
  };
  add_ram(0, cut1);
  add_ram(cut1 + gap1, cut2);
  add_ram(std::min(cut2 + gap2, pages - 512), pages);  // the tree's pages are RAM
  const auto picks = *rc::gen::container<std::vector<std::pair<u64, unsigned>>>(
      rc::gen::pair(rc::gen::inRange<u64>(0, 1536), rc::gen::element(0u, 0u, 0u, 1u, 4u, 9u)));
  for (auto [p, o] : picks) {
    const u64 pa = base + (p * P & ~((P << o) - 1));
    if (pa + (P << o) > boot_machine::tree_at) continue;
    if (m.tree->preserve(phys_addr{pa}, order{o}).ok()) m.blocks.emplace_back(pa, o);
  }
  auto res = *rc::gen::container<std::vector<std::pair<u64, u64>>>(
      rc::gen::pair(rc::gen::inRange<u64>(0, boot_machine::size + (u64{1} << 20)),  // some above RAM
                    rc::gen::inRange<u64>(0, 5 * P)));
  std::sort(res.begin(), res.end());
  for (auto [s, n] : res) m.reserved.push_back({phys_addr{base + s}, phys_addr{base + s + n}});
}

/// The oracle: one entry per page of the arena.
struct page_map {
  std::vector<char> ram = std::vector<char>(boot_machine::size / P, 0);
  std::vector<char> busy = std::vector<char>(boot_machine::size / P, 0);  // preserved, tree, reserved, allocated

  void mark(std::vector<char>& v, u64 s, u64 e) {
    for (u64 p = (s - base) / P; p < ram.size() && base + p * P < e; ++p) v[p] = 1;
  }
  explicit page_map(const boot_machine& m, std::span<const u64> nodes) {
    for (const phys_range& r : m.ram) mark(ram, r.start.value, r.end.value);
    for (auto [pa, o] : m.blocks) mark(busy, pa, pa + (P << o));
    for (u64 n : nodes) mark(busy, n, n + P);
    for (const phys_range& r : m.reserved)
      if (r.end > r.start) mark(busy, r.start.value, r.end.value);
  }
  bool free(u64 p) const { return ram[p] && !busy[p]; }
  /// memblock's top-down placement, by trying every page-aligned end from the top.
  std::optional<u64> last_fit(u64 size, u64 align) const {
    for (u64 end = ram.size(); end * P >= size; --end) {
      const u64 a = (base + end * P - size) & ~(align - 1);
      if (a < base) return std::nullopt;
      bool ok = true;
      for (u64 p = (a - base) / P; ok && p < (a - base + size + P - 1) / P; ++p) ok = free(p);
      if (ok) return a;
      if (end == 0) break;
    }
    return std::nullopt;
  }
};

/// free_all's blocks against the oracle: each RAM page exactly once, nothing else.
void check_free_all(const page_map& o, const std::vector<std::pair<u64, unsigned>>& got) {
  std::vector<int> handed(o.ram.size(), 0);
  for (auto [f, ord] : got) {
    RC_ASSERT(ord <= 10u);
    RC_ASSERT(f % (u64{1} << ord) == 0);  // naturally aligned
    for (u64 p = f; p < f + (u64{1} << ord); ++p) {
      RC_ASSERT(p * P >= base);
      RC_ASSERT(p - base / P < handed.size());
      ++handed[p - base / P];
    }
  }
  for (u64 p = 0; p < handed.size(); ++p) {
    const int owners = (o.ram[p] && o.busy[p]) + handed[p];
    RC_ASSERT(owners == (o.ram[p] ? 1 : 0));
  }
}

TEST(HolesMemblock, EdgesAndErrors) {
  boot_machine m;
  ASSERT_TRUE(m.tree->preserve(phys_addr{base}, order{9}));
  m.ram.push_back({phys_addr{base}, phys_addr{base + boot_machine::size}});
  auto view = m.attach();
  std::vector<phys_range> storage(2);
  const phys_range too_many[] = {{phys_addr{base}, phys_addr{base + 1}},
                                 {phys_addr{base + P}, phys_addr{base + P + 1}},
                                 {phys_addr{base + 2 * P}, phys_addr{base + 2 * P + 1}}};
  EXPECT_EQ(make_holes_memblock(view, m.ram, too_many, storage).code(), errc::table_full);
  const phys_range unsorted[] = {{phys_addr{base + P}, phys_addr{base + 2 * P}}, {phys_addr{base}, phys_addr{base + P}}};
  EXPECT_EQ(make_holes_memblock(view, m.ram, unsorted, storage).code(), errc::invalid_argument);
  auto mb = make_holes_memblock(view, m.ram, {}, storage);
  ASSERT_TRUE(mb);
  auto a = mb->alloc(P, P);  // the top page below the tree's own pages' top
  ASSERT_TRUE(a);
  EXPECT_EQ(a->end.value, base + boot_machine::size);
  EXPECT_EQ(mb->alloc(u64{1} << 40, P).code(), errc::out_of_range);
  EXPECT_EQ(mb->alloc(P, 3).code(), errc::invalid_argument);
  auto b = mb->alloc(100, 8);  // sub-page sizes take a whole page from the buddy
  ASSERT_TRUE(b);
  EXPECT_EQ(b->start.value, (a->start.value - 100) & ~u64{7});  // top-down, aligned down
  EXPECT_EQ(mb->alloc(P, P).code(), errc::table_full);  // storage holds two
  EXPECT_EQ(mb->allocations(), 2u);
  buddy_model<10> buddy;
  ASSERT_TRUE(mb->free_all(buddy));
  // 8 MiB less the 2 MiB block, the tree's pages, and the two allocations' pages.
  EXPECT_EQ(buddy.free_pages(), (boot_machine::size >> 12) - 512 - view.node_count() - 2);
}

// The side-step hands the buddy allocator exactly the blocks that restoring
// memblock.reserved and freeing its gaps would.
RC_GTEST_PROP(HolesMemblock, SameBlocksAsRestoreThenFreeAll, ()) {
  boot_machine m;
  populate(m);
  RC_PRE(!m.ram.empty());
  auto view = m.attach();
  std::vector<phys_range> storage(m.reserved.size());
  auto mb = make_holes_memblock(view, m.ram, m.reserved, storage);
  RC_ASSERT(mb.has_value());
  std::vector<std::pair<u64, unsigned>> side, restored;
  buddy_model<10, record_blocks> b1(record_blocks{&side}), b2(record_blocks{&restored});
  RC_ASSERT(mb->free_all(b1).ok());
  arena<12> boot;
  auto memblock = memblock_model<arena<12>::source_type>::create(boot.pages());
  RC_ASSERT(memblock.has_value());
  for (const phys_range& r : m.reserved) RC_ASSERT(memblock->reserve(r.start, r.size()).ok());
  RC_ASSERT(restore_at_bound(view, *memblock).ok());
  free_all_regions(m.ram, *memblock, b2);
  RC_ASSERT(side == restored);
  check_free_all(page_map(m, view.nodes()), side);
}

// ---- rc::state: early allocations, reattach, free_all --------------------------------

struct boot_sut {
  boot_machine m;
  std::optional<boot_machine::view_type> view;
  std::vector<phys_range> carried;  // what the last memblock held, handed to the next
  std::vector<phys_range> storage = std::vector<phys_range>(4096);
  std::optional<holes_memblock<boot_machine::view_type>> mb;

  void boot() {
    view.emplace(m.attach());
    if (mb) carried.assign(mb->reserved().begin(), mb->reserved().end());
    mb.reset();
    auto f = make_holes_memblock(*view, m.ram, carried, storage);
    RC_ASSERT(f.has_value());
    mb.emplace(*f);
  }
};

struct alloc_cmd : rc::state::Command<page_map, boot_sut> {
  u64 size = *rc::gen::inRange<u64>(1, 40 * P);
  u64 align = u64{1} << *rc::gen::inRange<unsigned>(0, 20);

  void apply(page_map& o) const override {
    if (auto a = o.last_fit(size, align)) o.mark(o.busy, *a, *a + size);
  }
  void run(const page_map& o, boot_sut& s) const override {
    const auto want = o.last_fit(size, align);
    auto got = s.mb->alloc(size, align);
    if (!want) {
      RC_ASSERT(got.code() == errc::no_hole);
      return;
    }
    RC_ASSERT(got.has_value());
    RC_ASSERT(got->start.value == *want);
    RC_ASSERT(got->size() == size);
  }
  void show(std::ostream& os) const override { os << "alloc(" << size << ", " << align << ")"; }
};

struct reattach_cmd : rc::state::Command<page_map, boot_sut> {
  void run(const page_map&, boot_sut& s) const override { s.boot(); }
  void show(std::ostream& os) const override { os << "reattach"; }
};

struct free_all_cmd : rc::state::Command<page_map, boot_sut> {
  void run(const page_map& o, boot_sut& s) const override {
    std::vector<std::pair<u64, unsigned>> got;
    buddy_model<10, record_blocks> b(record_blocks{&got});
    RC_ASSERT(s.mb->free_all(b).ok());
    check_free_all(o, got);
  }
  void show(std::ostream& os) const override { os << "free_all"; }
};

RC_GTEST_PROP(HolesMemblock, ModelAllocReattachFreeAll, ()) {
  boot_sut sut;
  populate(sut.m);
  RC_PRE(!sut.m.ram.empty());
  sut.carried = sut.m.reserved;
  sut.boot();
  page_map oracle(sut.m, sut.view->nodes());
  rc::state::check(oracle, sut,
                   one_of_commands<alloc_cmd, alloc_cmd, alloc_cmd, reattach_cmd, free_all_cmd>());
}

// ---- free_all_words: the hand-over word by word into bitmap_buddy -------------------

/// 4 GiB of RAM from `base` in up to three ranges (cuts at any page), the tree's pages
/// in its top 2 MiB; room for order-18 (1 GiB) blocks beside order 0 and 9.
struct wide_machine {
  static constexpr u64 size = u64{4} << 30;
  static constexpr u64 frames = size / P;
  static constexpr u64 first = base / P;  // frame of `base`
  static constexpr u64 tree_at = base + size - (u64{2} << 20);
  arena<12> mem{u64{2} << 20, tree_at};
  bump_page_source<flat_memory> tree_pages{mem.memory(), phys_addr{tree_at}, phys_addr{base + size}};
  std::optional<preserve_bitmap<bump_page_source<flat_memory>>> tree;
  std::vector<u64> scratch = std::vector<u64>(1024);
  std::vector<phys_range> ram, reserved;
  std::vector<char> busy = std::vector<char>(frames, 0), in_ram = std::vector<char>(frames, 0);

  wide_machine() { tree.emplace(std::move(*preserve_bitmap<bump_page_source<flat_memory>>::create(tree_pages, false))); }
  void mark(std::vector<char>& v, u64 s, u64 e) {  // bytes; every page touched
    for (u64 p = s / P; p * P < e && p < first + frames; ++p)
      if (p >= first) v[p - first] = 1;
  }
  bool free(u64 frame) const {
    return frame >= first && frame < first + frames && in_ram[frame - first] && !busy[frame - first];
  }
  void add_ram(u64 a, u64 b) {
    if (a >= b) return;
    ram.push_back({phys_addr{base + a * P}, phys_addr{base + b * P}});
    mark(in_ram, base + a * P, base + b * P);
  }
  void preserve(u64 pa, unsigned o) {
    if (pa + (P << o) > tree_at) return;
    if (tree->preserve(phys_addr{pa}, order{o}).ok()) mark(busy, pa, pa + (P << o));
  }
};

void populate_wide(wide_machine& m) {
  constexpr u64 n = wide_machine::frames;
  const u64 s0 = *rc::gen::inRange<u64>(0, 100);
  const u64 c1 = *rc::gen::inRange<u64>(s0, n / 2), g1 = *rc::gen::inRange<u64>(0, 5000);
  const u64 c2 = *rc::gen::inRange<u64>(c1 + g1, n - 1024), g2 = *rc::gen::inRange<u64>(0, 5000);
  m.add_ram(s0, c1);
  m.add_ram(c1 + g1, c2);
  m.add_ram(std::min(c2 + g2, n - 512), n);  // the tree's pages are RAM
  // Order-0 pages dense in one 256 MiB stretch (mixed leaf words, whole preserved
  // words from runs), some anywhere; order-9 and order-18 blocks among them.
  const u64 cluster = *rc::gen::inRange<u64>(0, n - (u64{1} << 16));
  const auto picks = *rc::gen::container<std::vector<std::tuple<u64, unsigned, unsigned>>>(
      rc::gen::tuple(rc::gen::inRange<u64>(0, n), rc::gen::element(0u, 0u, 0u, 1u, 1u, 9u, 9u, 18u),
                     rc::gen::inRange<unsigned>(1, 200)));
  for (auto [p, kind, run] : picks) {
    if (kind == 1) {  // a run of order-0 pages in the cluster
      const u64 at = cluster + p % (u64{1} << 16);
      for (u64 i = 0; i < run; ++i) m.preserve(base + (at + i) * P, 0);
    } else {
      m.preserve(base + ((p * P) & ~((P << kind) - 1)), kind);
    }
  }
  for (u64 i = 0; i < 300; ++i) m.preserve(base + (cluster + *rc::gen::inRange<u64>(0, u64{1} << 16)) * P, 0);
  auto res = *rc::gen::container<std::vector<std::pair<u64, u64>>>(
      rc::gen::pair(rc::gen::inRange<u64>(0, wide_machine::size + (u64{1} << 20)),  // some above RAM
                    rc::gen::inRange<u64>(0, 300 * P)));
  std::sort(res.begin(), res.end());
  for (auto [s, len] : res) {
    m.reserved.push_back({phys_addr{base + s}, phys_addr{base + s + len}});
    if (len != 0) m.mark(m.busy, base + s, base + s + len);
  }
}

using zone10 = bitmap_buddy<10>;

/// Zones over the given frame windows, with their words.
struct zone_set {
  std::vector<std::vector<u64>> words;
  std::vector<zone10> zones;
  explicit zone_set(const std::vector<std::pair<u64, u64>>& bounds) {
    for (auto [a, b] : bounds) {
      words.emplace_back(zone10::words_for(pfn{a}, pfn{b}));
      zones.push_back(*zone10::create(pfn{a}, pfn{b}, words.back()));
    }
  }
};

/// The zones' per-order counts summed, against buddy_model's.
void check_counts(std::span<const zone10> zones, const buddy_model<10>& want) {
  u64 pages = 0, blocks = 0;
  for (unsigned k = 0; k <= 10; ++k) {
    u64 got = 0;
    for (const zone10& z : zones) got += z.free_blocks(order{k});
    RC_ASSERT(got == want.free_blocks(order{k}));
  }
  for (const zone10& z : zones) pages += z.free_pages(), blocks += z.blocks();
  RC_ASSERT(pages == want.free_pages());
  RC_ASSERT(blocks == want.blocks());
}

// The word-by-word hand-over frees exactly the oracle's free pages and fills the free
// lists as free_all fills buddy_model's, in one zone or in two split at a RAM gap, with
// early allocations, reserved ranges and frames below RAM in the zone.
RC_GTEST_PROP(HolesMemblock, FreeAllWordsMatchesOracleAndBuddyModel, ()) {
  wide_machine m;
  populate_wide(m);
  auto view = attach_tree(m.mem.memory(), m.tree->root(), m.scratch);
  RC_ASSERT(view.has_value());
  for (u64 node : view->nodes()) m.mark(m.busy, node, node + P);
  std::vector<phys_range> storage(m.reserved.size() + 8);
  auto mb = make_holes_memblock(*view, m.ram, m.reserved, storage);
  RC_ASSERT(mb.has_value());
  const unsigned allocs = *rc::gen::inRange<unsigned>(0, 8);
  for (unsigned i = 0; i < allocs; ++i) {  // early allocations: memblock_alloc before free_all
    const u64 size = *rc::gen::inRange<u64>(1, 64 * P);
    auto a = mb->alloc(size, u64{1} << *rc::gen::inRange<unsigned>(0, 22));
    if (a) m.mark(m.busy, a->start.value, a->end.value);
  }
  // Zones: one over the window and some frames below it, or two split at a gap.
  const u64 lo = wide_machine::first - *rc::gen::inRange<u64>(0, 100), hi = wide_machine::first + wide_machine::frames;
  std::vector<std::pair<u64, u64>> bounds{{lo, hi}};
  if (m.ram.size() > 1 && m.ram[0].end < m.ram[1].start && *rc::gen::arbitrary<bool>()) {
    const u64 cut = m.ram[0].end.value / P;  // a gap's first frame
    bounds = {{lo, cut}, {cut, hi}};
  }
  zone_set zones(bounds);
  RC_ASSERT(mb->free_all_words(std::span<zone10>(zones.zones)).ok());
  // One assertion for the whole range: rapidcheck builds strings for each RC_ASSERT, and
  // a million of them were most of this test's time under ASan.
  u64 first_wrong = hi;
  for (u64 f = lo; f < hi && first_wrong == hi; ++f) {
    bool got = false;
    for (const zone10& z : zones.zones) got = got || z.is_free(pfn{f});
    if (got != m.free(f)) first_wrong = f;
  }
  RC_ASSERT(first_wrong == hi);
  buddy_model<10> want;
  RC_ASSERT(mb->free_all(want).ok());
  check_counts(zones.zones, want);

  // Over the writer (which does not list its own pages): the finder's holes, the same
  // counts as its free_all.
  std::vector<phys_range> storage_w(storage.size());
  auto mw = make_holes_memblock(*m.tree, m.ram, mb->reserved(), storage_w);
  RC_ASSERT(mw.has_value());
  zone_set zones_w(bounds);
  RC_ASSERT(mw->free_all_words(std::span<zone10>(zones_w.zones)).ok());
  buddy_model<10> want_w;
  RC_ASSERT(mw->free_all(want_w).ok());
  check_counts(zones_w.zones, want_w);
}

TEST(HolesMemblock, FreeAllWordsEdges) {
  wide_machine m;
  m.preserve(base + 5 * P, 0);
  auto view = attach_tree(m.mem.memory(), m.tree->root(), m.scratch);
  ASSERT_TRUE(view);
  std::vector<phys_range> storage(4);
  // Empty RAM: no memblock at all.
  EXPECT_EQ(make_holes_memblock(*view, {}, {}, storage).code(), errc::invalid_argument);

  // RAM smaller than a word, not aligned to one: frames 3..12 of base, page 5 preserved.
  const phys_range tiny[] = {{phys_addr{base + 3 * P}, phys_addr{base + 13 * P}}};
  auto mb = make_holes_memblock(*view, tiny, {}, storage);
  ASSERT_TRUE(mb);
  std::vector<u64> words(zone10::words_for(pfn{base / P}, pfn{base / P + 64}));
  auto z = zone10::create(pfn{base / P}, pfn{base / P + 64}, words);
  ASSERT_TRUE(z);
  ASSERT_TRUE(mb->free_all_words(*z));
  EXPECT_EQ(z->words()[0], u64{0x1fd8});  // 3, 4, 6..12
  EXPECT_EQ(z->free_pages(), 9u);
  buddy_model<10> want;
  ASSERT_TRUE(mb->free_all(want));
  for (unsigned k = 0; k <= 10; ++k) EXPECT_EQ(z->free_blocks(order{k}), want.free_blocks(order{k})) << k;

  // A zone that misses a RAM frame, and zones out of order: refused, nothing freed.
  auto short_zone = zone10::create(pfn{base / P + 4}, pfn{base / P + 64}, words);
  ASSERT_TRUE(short_zone);
  EXPECT_EQ(mb->free_all_words(*short_zone).code(), errc::out_of_range);
  EXPECT_EQ(short_zone->free_pages(), 0u);
  std::vector<u64> w1(16), w2(16);
  zone10 two[] = {*zone10::create(pfn{base / P + 8}, pfn{base / P + 64}, w1),
                  *zone10::create(pfn{base / P}, pfn{base / P + 8}, w2)};
  EXPECT_EQ(mb->free_all_words(std::span<zone10>(two)).code(), errc::invalid_argument);
  EXPECT_EQ(mb->free_all_words(std::span<zone10>()).code(), errc::out_of_range);
}

TEST(HolesMemblock, FreeAllWordsHoleAtFrameZero) {
  // RAM from physical 0; the tree lives in its own range above it.
  wide_machine m;
  m.preserve(base, 0);
  auto view = attach_tree(m.mem.memory(), m.tree->root(), m.scratch);
  ASSERT_TRUE(view);
  const phys_range ram[] = {{phys_addr{0}, phys_addr{u64{8} << 20}},
                            {phys_addr{wide_machine::tree_at}, phys_addr{wide_machine::tree_at + (u64{2} << 20)}}};
  std::vector<phys_range> storage(1);
  auto mb = make_holes_memblock(*view, ram, {}, storage);
  ASSERT_TRUE(mb);
  std::vector<u64> w1(zone10::words_for(pfn{0}, pfn{2048})), w2(zone10::words_for(pfn{wide_machine::tree_at / P}, pfn{wide_machine::tree_at / P + 512}));
  zone10 zones[] = {*zone10::create(pfn{0}, pfn{2048}, w1),
                    *zone10::create(pfn{wide_machine::tree_at / P}, pfn{wide_machine::tree_at / P + 512}, w2)};
  ASSERT_TRUE(mb->free_all_words(std::span<zone10>(zones)));
  EXPECT_TRUE(zones[0].is_free(pfn{0}));
  EXPECT_EQ(zones[0].free_blocks(order{10}), 2u);  // [0, 8 MiB): two 4 MiB blocks
  EXPECT_EQ(zones[0].blocks(), 2u);
  EXPECT_EQ(zones[1].free_pages(), 512u - view->node_count());
  buddy_model<10> want;
  ASSERT_TRUE(mb->free_all(want));
  for (unsigned k = 0; k <= 10; ++k)
    EXPECT_EQ(zones[0].free_blocks(order{k}) + zones[1].free_blocks(order{k}), want.free_blocks(order{k})) << k;
}

}  // namespace
}  // namespace kho::test::holes_memblock_test
