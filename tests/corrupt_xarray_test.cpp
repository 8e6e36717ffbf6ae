// Xarray against hostile bytes with valid checksums. Every tamper below is followed by a
// re-seal (tests/xarray_reseal.hpp: the root's counts, address sums and checksum made to
// agree with the nodes as they now are), so the structural validator is the only thing
// that refuses; each case asserts the exact errc and where (node address and depth), so
// removing any check of xarray_view::attach fails a test here. Also: pages reached twice
// (a DAG of 33.5 M claimed entries in a 1 TiB sparse image), page ownership across two
// xarrays, the two mutation survivors (touching compact records, a multi-order entry
// ending at a dense leaf's last slot), and random flips that must never crash.
#include <kho/page_owners.hpp>
#include <kho/xarray.hpp>

#include "test_arena.hpp"
#include "xarray_reseal.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>

#include <sys/stat.h>

namespace kho::test::corrupt_xarray_test {
namespace {

using geo = detail::xa_geometry<u64, 12>;
using xa = xarray<u64, 12, arena<12>::source_type>;
constexpr u64 page_mask = geo::page_mask;
constexpr u64 pa_of(u64 ref) { return ref & ~page_mask; }

// The map every case tampers with (4 KiB pages, u64; depths from the root block = 0):
//   top      level 7, depth 1: slot 0 a branch, slots 1-127 compact leaves (runs 0-6)
//   level6   depth 2 ... level3 depth 5 (slot 1 null), level2 depth 6 (slot 8: a compact
//            leaf with run 3)
//   level1   depth 7 over [0, 2^17): slots 0-3 dense leaves (depth 8) sharing one side
//            node (depth 8): mark1 at 1000, an order-4 entry at 2032..2047; slots 4-7 a
//            compact leaf (run 2) holding 2053 (mark2) and 2148; slots 8-255 null
struct built {
  arena<12> mem{u64{32} << 20};
  arena<12> scratch{u64{8} << 20};
  xa x = std::move(*xa::create(mem.pages()));
  u64 top = 0, level6 = 0, level3 = 0, level2 = 0, level1 = 0, side = 0;

  built() {
    for (u64 i = 0; i < 2000; ++i) EXPECT_TRUE(x.store(i, i + 1));
    for (u64 i = 0; i < 300; ++i) EXPECT_TRUE(x.store((i + 1) * 0x9e3779b97f4a7c15ULL, i + 1));
    EXPECT_TRUE(x.store_range(1 << 20, order{4}, 77));
    EXPECT_TRUE(x.set_mark(1000, xa_mark::mark1));
    EXPECT_TRUE(x.store_range(2032, order{4}, 99));
    EXPECT_TRUE(x.store(2053, 5));
    EXPECT_TRUE(x.store(2148, 6));
    EXPECT_TRUE(x.set_mark(2053, xa_mark::mark2));
    x.seal();
    top = root_block().root.get();
    u64 ref = top;
    while (hdr(ref).level > 1) {
      if (hdr(ref).level == 6) level6 = ref;
      if (hdr(ref).level == 3) level3 = ref;
      if (hdr(ref).level == 2) level2 = ref;
      ref = slot(ref, 0);
    }
    level1 = ref;
    side = get(level1, geo::side_off);
  }

  xarray_root& root_block() { return *reinterpret_cast<xarray_root*>(mem.bytes(x.root())); }
  unsigned char* node(u64 ref) { return mem.bytes(phys_addr{pa_of(ref)}); }
  detail::xa_node_header& hdr(u64 ref) { return detail::header(node(ref)); }
  u64 get(u64 ref, u64 off) { return detail::get64(node(ref) + off); }
  void put(u64 ref, u64 off, u64 v) { detail::put64(node(ref) + off, v); }
  u64 slot(u64 br, u64 j) { return get(br, geo::slots_off + 8 * j); }
  void set_slot(u64 br, u64 j, u64 ref) { put(br, geo::slots_off + 8 * j, ref); }
  void set_dense_count(u64 br, u64 j, u16 n) { detail::put16(node(br) + geo::dense_count_off + 2 * j, n); }
  void set_summary(u64 br, unsigned m, u64 j, bool on) {
    detail::assign_bit(node(br) + geo::summary_off + m * geo::fanout / 8, j, on);
  }
  /// Side bitmap `which` (marks 0-2, 3 = tail) of level1's slot j.
  unsigned char* side_bits(u64 j, unsigned which) {
    return node(side) + 64 + j * geo::side_leaf_bytes + which * geo::side_bitmap_bytes;
  }
  u64 dense(u64 j) { return slot(level1, j); }
  /// Moves the entry counts of every branch from the top down to level1 (all by slot 0).
  void add_entries_down_to_level1(u64 delta) {
    for (u64 ref = top;; ref = slot(ref, 0)) {
      hdr(ref).entries.set(hdr(ref).entries.get() + delta);
      if (ref == level1) break;
    }
  }
  void set_value(u64 leaf, u64 i, u64 v) { put(leaf, 8 * i, v); }

  void reseal() { reseal_xarray<u64>(mem.memory(), x.root()); }
  void seal_only() { xarray_resealer<u64, 12, flat_memory>::seal(mem.memory(), x.root()); }
  error attach_as_is(phys_addr root) {
    auto v = attach_xarray<u64>(mem.memory(), root, scratch.pages());
    EXPECT_EQ(scratch.pages().pages_in_use(), 0u) << "attach returns its scratch";
    return v ? error{} : v.err();
  }
  error attach_as_is() { return attach_as_is(x.root()); }
  /// Re-seals, then attaches.
  error attach() {
    reseal();
    return attach_as_is();
  }
};

#define EXPECT_REFUSED(e, want, where_at, where_depth)                        \
  do {                                                                         \
    const ::kho::error e_ = (e);                                               \
    EXPECT_EQ(e_.code, (want)) << to_string(e_.code) << " vs " << to_string(want); \
    EXPECT_EQ(e_.loc.at.value, (where_at));                                    \
    EXPECT_EQ(e_.loc.depth, static_cast<u32>(where_depth));                    \
    EXPECT_STREQ(e_.loc.structure, "xarray");                                  \
  } while (0)

/// The cases every node header shares (branch, compact leaf, side node): another magic,
/// a position that is not its own, each reserved word, an unused mark bit.
template <class NodeOf>
void header_cases(NodeOf node_of, u32 depth, u32 other_magic) {
  const auto one = [&](auto tamper, errc want) {
    built b;
    const u64 ref = node_of(b);
    tamper(b.hdr(ref));
    EXPECT_REFUSED(b.attach(), want, pa_of(ref), depth);
  };
  using header = detail::xa_node_header;
  one([&](header& h) { h.magic.set(other_magic); }, errc::bad_magic);
  one([](header& h) { h.level ^= 3; }, errc::bad_level);
  one([](header& h) { h.base.set(h.base.get() + 1); }, errc::bad_level);
  one([](header& h) { h.shift ^= 1; }, errc::bad_level);
  one([](header& h) { h.reserved0 = 1; }, errc::reserved_nonzero);
  one([](header& h) { h.reserved1.set(1); }, errc::reserved_nonzero);
  for (unsigned k = 0; k < 4; ++k) one([k](header& h) { h.reserved[k].set(1); }, errc::reserved_nonzero);
  one([](header& h) { h.marks |= 8; }, errc::reserved_nonzero);
}

TEST(CorruptXarray, TheFixtureHasTheShapeTheCasesAssume) {
  built b;
  EXPECT_EQ(b.attach().code, errc::ok);
  EXPECT_EQ(b.root_block().height.get(), 7u);
  EXPECT_NE(b.level6, 0u);
  EXPECT_NE(b.level2, 0u);
  EXPECT_EQ(b.hdr(b.level1).level, 1u);
  for (u64 j = 0; j < 4; ++j) EXPECT_EQ(b.dense(j) & 3, u64{detail::xa_dense});
  EXPECT_EQ(b.slot(b.level1, 4) & 3, u64{detail::xa_compact});
  EXPECT_EQ((b.slot(b.level1, 4) >> 2) & 31, 2u);
  EXPECT_NE(b.side, 0u);
  EXPECT_EQ(b.slot(b.level2, 8) & 3, u64{detail::xa_compact});
  EXPECT_EQ(b.slot(b.level3, 1), 0u);
  EXPECT_EQ(b.slot(b.level1, 12), 0u);
  EXPECT_EQ((b.slot(b.top, 2) >> 2) & 31, 1u);
  EXPECT_EQ((b.slot(b.top, 16) >> 2) & 31, 4u);
  EXPECT_EQ((b.slot(b.top, 64) >> 2) & 31, 6u);
  auto v = attach_xarray<u64>(b.mem.memory(), b.x.root(), b.scratch.pages());
  ASSERT_TRUE(v);
  EXPECT_EQ(v->entry_at(2047)->index, 2032u);
  EXPECT_EQ(v->entry_at(2047)->span.value, 4u);
}

// ---- the root block (depth 0) ---------------------------------------------------------

TEST(CorruptXarray, RootBlockPlacement) {
  built b;
  EXPECT_REFUSED(b.attach_as_is(b.x.root() + 8), errc::misaligned, b.x.root().value + 8, 0);
  EXPECT_REFUSED(b.attach_as_is(phys_addr{0x1000}), errc::out_of_bounds, 0x1000u, 0);
  EXPECT_REFUSED(b.attach_as_is(b.mem.memory().end()), errc::out_of_bounds, b.mem.memory().end().value, 0);
}

TEST(CorruptXarray, RootBlockIdentity) {
  const auto refused = [](auto tamper, errc want) {
    built b;
    tamper(b.root_block());
    EXPECT_REFUSED(b.attach(), want, b.x.root().value, 0);
  };
  refused([](xarray_root& r) { r.magic.set(r.magic.get() ^ 1); }, errc::bad_magic);
  refused([](xarray_root& r) { r.compatible[4] = 'y'; }, errc::bad_compatible);
  refused([](xarray_root& r) { r.compatible[15] = 'x'; }, errc::bad_compatible);  // after the NUL
  refused([](xarray_root& r) { r.version_major.set(2); }, errc::bad_version);
  refused([](xarray_root& r) { r.page_shift.set(13); }, errc::page_size_mismatch);
  refused([](xarray_root& r) { r.value_size.set(4); }, errc::bad_compatible);
  refused([](xarray_root& r) { r.height.set(geo::max_height + 1); }, errc::too_deep);
  built b;  // the checksum itself: no re-seal
  b.root_block().checksum.set(b.root_block().checksum.get() + 1);
  EXPECT_REFUSED(b.attach_as_is(), errc::bad_checksum, b.x.root().value, 0);
}

TEST(CorruptXarray, RootBlockZeroFields) {
  for (unsigned k = 0; k < 5; ++k) {
    built b;
    b.root_block().reserved[k].set(u64{1} << (k * 13));
    EXPECT_REFUSED(b.attach(), errc::reserved_nonzero, b.x.root().value, 0);
  }
  {
    built b;  // marks: bits 3-31 unused
    b.reseal();
    b.root_block().marks.set(b.root_block().marks.get() | 8);
    b.seal_only();
    EXPECT_REFUSED(b.attach_as_is(), errc::reserved_nonzero, b.x.root().value, 0);
  }
  for (u64 off : {sizeof(xarray_root), geo::page - 1}) {
    built b;  // the root block lives alone in its page
    b.mem.bytes(b.x.root())[off] = 1;
    EXPECT_REFUSED(b.attach(), errc::reserved_nonzero, b.x.root().value, 0);
  }
}

TEST(CorruptXarray, RootRefAndHeight) {
  const auto refused = [](auto tamper, errc want) {
    built b;
    tamper(b);
    EXPECT_REFUSED(b.attach(), want, b.x.root().value, 0);
  };
  refused([](built& b) { b.root_block().root.set(pa_of(b.top) | detail::xa_dense); }, errc::bad_level);
  refused([](built& b) { b.root_block().root.set(pa_of(b.top)); }, errc::bad_level);  // kind null
  refused([](built& b) { b.root_block().root.set(b.slot(b.top, 2)); }, errc::bad_level);  // run 1
  refused([](built& b) { b.root_block().height.set(0); }, errc::bad_level);  // a branch at height 0
  refused([](built& b) { b.root_block().root.set(0); }, errc::bad_level);    // empty at height 7
}

TEST(CorruptXarray, RootTotalsMustEqualTheNodes) {
  const auto refused = [](auto tamper) {
    built b;
    b.reseal();
    tamper(b.root_block());
    b.seal_only();
    EXPECT_REFUSED(b.attach_as_is(), errc::bad_count, b.x.root().value, 0);
  };
  refused([](xarray_root& r) { r.count.set(r.count.get() + 1); });
  refused([](xarray_root& r) { r.marks.set(r.marks.get() ^ 1); });
  refused([](xarray_root& r) { r.nodes.set(r.nodes.get() + 1); });
  refused([](xarray_root& r) { r.address_sum.set(r.address_sum.get() + 4096); });
  refused([](xarray_root& r) { r.address_mix.set(r.address_mix.get() + 1); });
  built b;  // fewer nodes than reached: the walk stops at the first page over the count
  b.reseal();
  b.root_block().nodes.set(0);
  b.seal_only();
  EXPECT_REFUSED(b.attach_as_is(), errc::budget_exceeded, pa_of(b.top), 1);
}

// ---- any node: placement and the visited set -------------------------------------------

TEST(CorruptXarray, RefsOutsideMemoryOrWithStrayBits) {
  {
    built b;
    b.set_slot(b.level1, 0, b.dense(0) | 0x80);  // a bit between the run field and the page
    EXPECT_REFUSED(b.attach(), errc::misaligned, pa_of(b.dense(0)), 8);
  }
  {
    built b;
    b.set_slot(b.level1, 0, detail::xa_dense);  // address 0
    EXPECT_REFUSED(b.attach(), errc::out_of_bounds, 0u, 8);
  }
  {
    built b;
    b.set_slot(b.level1, 0, (u64{1} << 50) | detail::xa_dense);
    EXPECT_REFUSED(b.attach(), errc::out_of_bounds, u64{1} << 50, 8);
  }
  {
    built b;
    b.set_slot(b.level1, 0, b.mem.memory().end().value | detail::xa_dense);
    EXPECT_REFUSED(b.attach(), errc::out_of_bounds, b.mem.memory().end().value, 8);
  }
}

TEST(CorruptXarray, PageZeroIsNeverANodeEvenWhereMemoryHasIt) {
  // Memory starting at physical 0 (as a kernel's direct map does): a ref with kind bits
  // and address 0 is refused although page 0 is readable and holds a perfect copy.
  arena<12> mem{u64{4} << 20, 0};
  arena<12> scratch{u64{1} << 20};
  ASSERT_EQ(mem.pages().alloc(order{0})->value, 0u);  // page 0 is not the writer's
  auto x = make_xarray<u64, 12>(mem.pages());
  ASSERT_TRUE(x);
  for (u64 i = 0; i < 600; ++i) ASSERT_TRUE(x->store(i, i + 1));
  x->seal();
  const u64 top = x->root_ref();
  ASSERT_EQ(x->height(), 1u);
  unsigned char* br = mem.bytes(phys_addr{pa_of(top)});
  const u64 leaf = detail::get64(br + geo::slots_off);
  ASSERT_EQ(leaf & 3, u64{detail::xa_dense});
  std::memcpy(mem.bytes(phys_addr{0}), mem.bytes(phys_addr{pa_of(leaf)}), geo::page);
  detail::put64(br + geo::slots_off, detail::xa_dense);
  reseal_xarray<u64>(mem.memory(), x->root());
  auto v = attach_xarray<u64>(mem.memory(), x->root(), scratch.pages());
  ASSERT_FALSE(v);
  EXPECT_REFUSED(v.err(), errc::out_of_bounds, 0u, 2);
}

TEST(CorruptXarray, ADenseLeafReachedFromTwoSlotsIsACycle) {
  built b;  // slots 0 and 2 hold full unmarked leaves: every count agrees after the re-seal
  b.set_slot(b.level1, 2, b.dense(0));
  EXPECT_REFUSED(b.attach(), errc::cycle, pa_of(b.dense(0)), 8);
}

TEST(CorruptXarray, ADenseLeafThatIsAnotherPageIsACycle) {
  {
    built b;  // the xarray's own root block
    b.set_slot(b.level1, 0, b.x.root().value | detail::xa_dense);
    EXPECT_REFUSED(b.attach(), errc::cycle, b.x.root().value, 8);
  }
  {
    built b;  // an ancestor
    b.set_slot(b.level1, 0, pa_of(b.level2) | detail::xa_dense);
    EXPECT_REFUSED(b.attach(), errc::cycle, pa_of(b.level2), 8);
  }
  {
    built b;  // itself
    b.set_slot(b.level1, 0, pa_of(b.level1) | detail::xa_dense);
    EXPECT_REFUSED(b.attach(), errc::cycle, pa_of(b.level1), 8);
  }
  {
    built b;  // the side node of its own branch
    b.set_slot(b.level1, 0, b.side | detail::xa_dense);
    EXPECT_REFUSED(b.attach(), errc::cycle, b.side, 8);
  }
  {
    built b;  // a sibling compact leaf, read first as a dense leaf (its count made to agree)
    const u64 compact = b.slot(b.level1, 4);
    u16 present = 0;
    for (u64 i = 0; i < geo::leaf_slots; ++i) present += b.get(compact, 8 * i) != 0;
    b.set_slot(b.level1, 0, pa_of(compact) | detail::xa_dense);
    b.set_dense_count(b.level1, 0, present);
    EXPECT_REFUSED(b.attach(), errc::cycle, pa_of(compact), 8);
  }
}

TEST(CorruptXarray, HeaderNodesReachedTwiceAreCycles) {
  {
    built b;  // the level-2 branch again from level3's empty slot 1
    b.set_slot(b.level3, 1, b.level2);
    EXPECT_REFUSED(b.attach(), errc::cycle, pa_of(b.level2), 6);
  }
  {
    built b;  // the top's run of 64 slots pointed at level2's compact leaf (reached earlier)
    const u64 leaf = pa_of(b.slot(b.level2, 8)) | detail::xa_compact | (6u << detail::xa_run_shift);
    for (u64 j = 64; j < 128; ++j) b.set_slot(b.top, j, leaf);
    EXPECT_REFUSED(b.attach(), errc::cycle, pa_of(leaf), 2);
  }
  {
    built b;  // the one legitimate sharing, cut in two: slots 4-5 and 6-7 as two runs of 1
    const u64 leaf = b.slot(b.level1, 4);
    const u64 half = (leaf & ~(detail::xa_run_mask << detail::xa_run_shift)) | (1u << detail::xa_run_shift);
    for (u64 j = 4; j < 8; ++j) b.set_slot(b.level1, j, half);
    b.hdr(half).shift = static_cast<u8>(geo::slot_bits(1) + 1);
    EXPECT_REFUSED(b.attach(), errc::cycle, pa_of(leaf), 8);
  }
}

TEST(CorruptXarray, ScratchThatRunsOutIsNamed) {
  built b;
  arena<12> tiny{geo::page};
  ASSERT_TRUE(tiny.pages().alloc(order{0}));  // nothing left to lend
  auto v = attach_xarray<u64>(b.mem.memory(), b.x.root(), tiny.pages());
  ASSERT_FALSE(v);
  EXPECT_REFUSED(v.err(), errc::out_of_memory, b.x.root().value, 0);
}

// ---- compact leaves (the top's run of 16 at slot 16: depth 2) ------------------------

struct compact_case : built {
  u64 leaf = slot(top, 16);
  u64 base = hdr(leaf).base.get();
  u64 count = hdr(leaf).count.get();
  u64 key(u64 i) { return get(leaf, geo::keys_off + 8 * i); }
  void set_key(u64 i, u64 k) { put(leaf, geo::keys_off + 8 * i, k); }
  unsigned char& order_of(u64 i) { return node(leaf)[geo::orders_off + i]; }
  unsigned char& marks_of(u64 i) { return node(leaf)[geo::marks_off + i]; }
  void refused(errc want) { EXPECT_REFUSED(attach(), want, pa_of(leaf), 2); }
};

TEST(CorruptXarray, CompactLeafHeader) {
  header_cases([](built& b) { return b.slot(b.top, 16); }, 2, detail::xa_branch_magic);
  { compact_case c; c.hdr(c.leaf).count.set(0); c.refused(errc::bad_count); }
  {  // emptied whole: count and entries 0, every record zero; a writer never leaves one
    compact_case c;
    for (u64 i = 0; i < c.count; ++i) {
      c.set_key(i, 0);
      c.put(c.leaf, geo::values_off + geo::value_size * i, 0);
      c.order_of(i) = 0;
      c.marks_of(i) = 0;
    }
    c.hdr(c.leaf).count.set(0);
    c.hdr(c.leaf).entries.set(0);
    c.refused(errc::bad_count);
  }
  { compact_case c; c.hdr(c.leaf).count.set(geo::compact_capacity + 1); c.refused(errc::bad_count); }
  { compact_case c; c.hdr(c.leaf).entries.set(c.count + 1); c.refused(errc::bad_count); }
}

TEST(CorruptXarray, CompactLeafBytesPastTheLastRecordAreZero) {
  { compact_case c; c.set_key(c.count, c.base + (u64{1} << 60)); c.refused(errc::reserved_nonzero); }
  { compact_case c; c.put(c.leaf, geo::values_off + 8 * (geo::compact_capacity - 1), 1); c.refused(errc::reserved_nonzero); }
  { compact_case c; c.order_of(c.count) = 1; c.refused(errc::reserved_nonzero); }
  { compact_case c; c.marks_of(geo::compact_capacity - 1) = 1; c.refused(errc::reserved_nonzero); }
  static_assert(geo::compact_end == geo::page, "u64 with 4 KiB pages fills the page exactly");
  arena<12> mem;  // 16-byte values leave a tail after the arrays: it is zero too
  arena<12> scratch{u64{1} << 20};
  struct wide {
    u64 a, b;
  };
  using wgeo = detail::xa_geometry<wide, 12>;
  static_assert(wgeo::compact_end < wgeo::page);
  auto x = make_xarray<wide, 12>(mem.pages());
  ASSERT_TRUE(x && x->store(5, wide{1, 2}));
  x->seal();
  const u64 leaf = pa_of(x->root_ref());
  mem.bytes(phys_addr{leaf})[wgeo::page - 1] = 1;
  auto v = attach_xarray<wide>(mem.memory(), x->root(), scratch.pages());
  ASSERT_FALSE(v);
  EXPECT_REFUSED(v.err(), errc::reserved_nonzero, leaf, 1);
}

TEST(CorruptXarray, CompactRecords) {
  { compact_case c; c.order_of(0) = 64; c.refused(errc::out_of_range); }
  { compact_case c; c.order_of(0) = 40; c.refused(errc::misaligned); }  // random keys
  { compact_case c; c.set_key(0, c.base - 1); c.refused(errc::out_of_range); }
  { compact_case c; c.set_key(c.count - 1, c.base + (u64{1} << 61)); c.refused(errc::out_of_range); }
  { compact_case c; c.set_key(1, c.key(0)); c.refused(errc::duplicate); }
  { compact_case c; c.set_key(0, c.key(1) + 1); c.refused(errc::duplicate); }  // unsorted
  { compact_case c; c.marks_of(0) = 8; c.refused(errc::reserved_nonzero); }
  { compact_case c; c.put(c.leaf, geo::values_off, 0); c.refused(errc::bad_count); }
  { compact_case c; c.hdr(c.leaf).marks = 1; c.refused(errc::bad_count); }  // no record marked
}

// Mutation survivor: prev.first + 2^prev.order == next.first is two disjoint records.
TEST(CorruptXarray, CompactRecordsMayTouchButNotOverlap) {
  {
    compact_case c;
    c.set_key(0, c.base);
    c.order_of(0) = 4;
    c.set_key(1, c.base + 16);  // [base, base + 15] then base + 16
    ASSERT_EQ(c.attach().code, errc::ok);
    auto v = attach_xarray<u64>(c.mem.memory(), c.x.root(), c.scratch.pages());
    ASSERT_TRUE(v);
    EXPECT_EQ(*v->load(c.base + 15), c.get(c.leaf, geo::values_off));
    EXPECT_EQ(*v->load(c.base + 16), c.get(c.leaf, geo::values_off + 8));
    EXPECT_EQ(v->entry_at(c.base + 15)->span.value, 4u);
  }
  {
    compact_case c;
    c.set_key(0, c.base);
    c.order_of(0) = 4;
    c.set_key(1, c.base + 15);  // one less: the last index of the first record
    c.refused(errc::duplicate);
  }
}

// ---- dense leaves and side nodes (level1 at depth 7; leaves and side node at 8) -------

TEST(CorruptXarray, DenseLeafSideBits) {
  const auto refused = [](built& b, u64 j, errc want) { EXPECT_REFUSED(b.attach(), want, pa_of(b.dense(j)), 8); };
  {
    built b;  // a mark on an absent slot (2000..2031 are absent: slots 464..495 of leaf 3)
    detail::assign_bit(b.side_bits(3, 0), 470, true);
    refused(b, 3, errc::bad_count);
  }
  {
    built b;  // a tail after an absent slot
    b.set_value(b.dense(3), 470, 9);
    detail::assign_bit(b.side_bits(3, 3), 470, true);
    refused(b, 3, errc::bad_count);
  }
  {
    built b;  // a tail that does not repeat its head's value
    b.set_value(b.dense(3), 500, 98);
    refused(b, 3, errc::bad_count);
  }
  {
    built b;  // 15 slots: not a power of two
    detail::assign_bit(b.side_bits(3, 3), 511, false);
    refused(b, 3, errc::misaligned);
  }
  {
    built b;  // 4 slots at 498: a power of two, but not aligned to it
    for (u64 i = 496; i < 512; ++i) {
      b.set_value(b.dense(3), i, i >= 498 && i < 502 ? 99 : 0);
      detail::assign_bit(b.side_bits(3, 3), i, i > 498 && i < 502);
    }
    refused(b, 3, errc::misaligned);
  }
  {
    built b;  // a mark on a tail
    detail::assign_bit(b.side_bits(3, 0), 500, true);
    refused(b, 3, errc::bad_count);
  }
  {
    built b;  // the branch's count of a dense child
    b.set_dense_count(b.level1, 0, 511);
    refused(b, 0, errc::bad_count);
  }
  {
    built b;  // an empty dense leaf
    for (u64 i = 0; i < geo::leaf_slots; ++i) b.set_value(b.dense(2), i, 0);
    b.set_dense_count(b.level1, 2, 0);
    refused(b, 2, errc::bad_count);
  }
}

TEST(CorruptXarray, SideNodes) {
  const auto refused = [](built& b, errc want) { EXPECT_REFUSED(b.attach(), want, b.side, 8); };
  {
    built b;  // a side ref on a branch above level 1
    b.put(b.level2, geo::side_off, b.side);
    EXPECT_REFUSED(b.attach(), errc::bad_level, pa_of(b.level2), 6);
  }
  {
    built b;  // a side ref with kind bits
    b.put(b.level1, geo::side_off, b.side | detail::xa_dense);
    refused(b, errc::misaligned);
  }
  header_cases([](built& b) { return b.side; }, 8, detail::xa_compact_magic);
  { built b; b.hdr(b.side).marks = 1; refused(b, errc::reserved_nonzero); }
  { built b; b.hdr(b.side).count.set(1); refused(b, errc::reserved_nonzero); }
  { built b; b.hdr(b.side).entries.set(1); refused(b, errc::reserved_nonzero); }
  {
    built b;  // past the last section
    b.node(b.side)[64 + geo::side_group * geo::side_leaf_bytes] = 1;
    refused(b, errc::reserved_nonzero);
  }
}

// Mutation survivor: a multi-order entry whose tail is a dense leaf's last slot, next to
// a leaf whose first slot is marked (the bit right after the tail bitmap in the side node).
TEST(CorruptXarray, AMultiOrderEntryEndingAtTheLastSlotOfADenseLeaf) {
  arena<12> mem;
  arena<12> scratch{u64{1} << 20};
  auto x = make_xarray<u64, 12>(mem.pages());
  ASSERT_TRUE(x);
  for (u64 i = 0; i < 1000; ++i)
    if (i < 496 || i >= 512) {
      ASSERT_TRUE(x->store(i, i + 1));
    }
  ASSERT_TRUE(x->store_range(496, order{4}, 4242));  // slots 496..511 of the first leaf
  ASSERT_TRUE(x->set_mark(512, xa_mark::mark0));      // slot 0 of the next leaf
  x->seal();
  auto v = attach_xarray<u64>(mem.remap(), x->root(), scratch.pages());
  ASSERT_TRUE(v) << to_string(v.code());
  for (u64 i = 496; i < 512; ++i) EXPECT_EQ(*v->load(i), 4242u);
  const auto e = v->entry_at(511);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->index, 496u);
  EXPECT_EQ(e->span.value, 4u);
  EXPECT_EQ(e->marks, 0u);
  EXPECT_EQ(v->entry_at(512)->span.value, 0u);
  EXPECT_TRUE(v->get_mark(512, xa_mark::mark0));
  EXPECT_EQ(v->count(), 1000u - 16 + 1);
  auto w = xa::adopt(*v, mem.pages());
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->store(495, 7));  // the entry stays whole
  EXPECT_EQ(w->entry_at(511)->index, 496u);
}

// ---- branches ----------------------------------------------------------------------

TEST(CorruptXarray, BranchHeader) {
  const auto refused = [](built& b, errc want) { EXPECT_REFUSED(b.attach(), want, pa_of(b.level1), 7); };
  header_cases([](built& b) { return b.level1; }, 7, detail::xa_side_magic);
  { built b; b.node(b.level1)[geo::branch_end] = 1; refused(b, errc::reserved_nonzero); }
  { built b; b.node(b.level1)[geo::page - 1] = 1; refused(b, errc::reserved_nonzero); }
  { built b; b.hdr(b.level1).count.set(b.hdr(b.level1).count.get() + 1); refused(b, errc::bad_count); }
  { built b; b.hdr(b.level1).entries.set(b.hdr(b.level1).entries.get() + 1); refused(b, errc::bad_count); }
  { built b; b.hdr(b.level1).marks ^= 1; refused(b, errc::bad_count); }
  {
    built b;  // a branch with nothing below it
    for (u64 j = 0; j < geo::fanout; ++j) b.set_slot(b.level2, j, 0);
    for (unsigned m = 0; m < xa_mark_count; ++m)
      for (u64 j = 0; j < geo::fanout; ++j) b.set_summary(b.level2, m, j, false);
    b.hdr(b.level2).count.set(0);
    b.hdr(b.level2).entries.set(0);
    b.hdr(b.level2).marks = 0;
    EXPECT_REFUSED(b.attach(), errc::bad_count, pa_of(b.level2), 6);
  }
}

TEST(CorruptXarray, BranchNullAndUnusableSlots) {
  const auto at_top = [](built& b, errc want) { EXPECT_REFUSED(b.attach(), want, pa_of(b.top), 1); };
  { built b; b.set_slot(b.top, 200, b.slot(b.top, 0)); at_top(b, errc::bad_count); }  // past 128 slots
  { built b; b.set_dense_count(b.top, 200, 1); at_top(b, errc::bad_count); }
  { built b; b.set_summary(b.top, 2, 200, true); at_top(b, errc::bad_count); }
  const auto at_level1 = [](built& b, errc want) { EXPECT_REFUSED(b.attach(), want, pa_of(b.level1), 7); };
  { built b; b.set_dense_count(b.level1, 12, 1); at_level1(b, errc::bad_count); }  // null slot
  { built b; b.set_summary(b.level1, 0, 12, true); at_level1(b, errc::bad_count); }
  {
    built b;  // a kind-0 ref with an address
    b.set_slot(b.level1, 10, pa_of(b.dense(0)));
    EXPECT_REFUSED(b.attach(), errc::bad_level, pa_of(b.level1), 7);
  }
  {
    built b;  // side bits behind a null slot: first make slots 6-7 null (leaf run 2 -> 1)
    const u64 leaf = b.slot(b.level1, 4);
    const u64 half = (leaf & ~(detail::xa_run_mask << detail::xa_run_shift)) | (1u << detail::xa_run_shift);
    b.set_slot(b.level1, 4, half);
    b.set_slot(b.level1, 5, half);
    b.set_slot(b.level1, 6, 0);
    b.set_slot(b.level1, 7, 0);
    b.set_summary(b.level1, 2, 6, false);
    b.set_summary(b.level1, 2, 7, false);
    b.hdr(half).shift = static_cast<u8>(geo::slot_bits(1) + 1);
    b.hdr(b.level1).count.set(b.hdr(b.level1).count.get() - 2);
    ASSERT_EQ(b.attach().code, errc::ok);
    detail::assign_bit(b.side_bits(6, 1), 3, true);
    EXPECT_REFUSED(b.attach(), errc::bad_count, pa_of(b.level1), 7);
  }
}

TEST(CorruptXarray, BranchChildren) {
  const auto at_level1 = [](built& b, errc want) { EXPECT_REFUSED(b.attach(), want, pa_of(b.level1), 7); };
  { built b; b.set_slot(b.level1, 0, b.dense(0) | (1u << detail::xa_run_shift)); at_level1(b, errc::bad_level); }
  { built b; b.set_dense_count(b.level1, 4, 1); at_level1(b, errc::bad_count); }  // on a compact child
  { built b; b.set_dense_count(b.level1, 5, 1); at_level1(b, errc::bad_level); }  // inside its run
  { built b; b.set_slot(b.level1, 9, pa_of(b.level2) | detail::xa_branch); at_level1(b, errc::bad_level); }
  { built b; detail::assign_bit(b.side_bits(5, 0), 0, true); at_level1(b, errc::bad_count); }  // compact's section
  { built b; b.set_summary(b.level1, 1, 1, false); at_level1(b, errc::bad_count); }  // dense child's marks
  { built b; b.set_summary(b.level1, 0, 2, true); at_level1(b, errc::bad_count); }
  { built b; b.set_summary(b.level1, 2, 6, false); at_level1(b, errc::bad_count); }  // compact child's marks
  {
    built b;  // a dense leaf above level 1
    b.set_slot(b.level2, 20, pa_of(b.dense(0)) | detail::xa_dense);
    EXPECT_REFUSED(b.attach(), errc::bad_level, pa_of(b.level2), 6);
  }
  {
    built b;  // a branch child's marks
    b.set_summary(b.level2, 1, 0, false);
    EXPECT_REFUSED(b.attach(), errc::bad_count, pa_of(b.level2), 6);
  }
  const auto at_top = [](built& b, errc want) { EXPECT_REFUSED(b.attach(), want, pa_of(b.top), 1); };
  {
    built b;  // a run wider than the top's 128 slots
    const u64 leaf = b.slot(b.top, 64);
    const u64 wide = (leaf & ~(detail::xa_run_mask << detail::xa_run_shift)) | (u64{8} << detail::xa_run_shift);
    for (u64 j = 64; j < 128; ++j) b.set_slot(b.top, j, wide);
    at_top(b, errc::bad_level);
  }
  { built b; b.set_slot(b.top, 2, 0); at_top(b, errc::bad_level); }  // a run of 2 starting at slot 3
  { built b; b.set_slot(b.top, 17, b.slot(b.top, 2)); at_top(b, errc::bad_level); }  // a run of two refs
  { built b; b.set_summary(b.top, 0, 17, true); at_top(b, errc::bad_count); }
}

TEST(CorruptXarray, ARunAlignedToItsSlotsButNotToTheBranch) {
  built b;  // level1's compact leaf moved to slots 5-8 (run 2 starting at 5), its header
            // and records moved with it, so only the run's alignment is wrong
  const u64 leaf = b.slot(b.level1, 4);
  b.set_slot(b.level1, 4, 0);
  b.set_slot(b.level1, 8, leaf);
  b.set_summary(b.level1, 2, 4, false);
  b.set_summary(b.level1, 2, 8, true);
  const u64 shift = 5 * geo::leaf_slots - 4 * geo::leaf_slots;
  b.hdr(leaf).base.set(b.hdr(leaf).base.get() + shift);
  for (u64 i = 0; i < 2; ++i)
    b.put(leaf, geo::keys_off + 8 * i, b.get(leaf, geo::keys_off + 8 * i) + shift);
  EXPECT_REFUSED(b.attach(), errc::bad_level, pa_of(b.level1), 7);
}

TEST(CorruptXarray, ARunWiderThanTheTopLevelsSlots) {
  // The top of a height-7 map has 128 usable slots; a compact leaf with run 8 filling all
  // 256 (header shift 65 to match) is refused for its width alone.
  arena<12> mem{u64{4} << 20};
  arena<12> scratch{u64{1} << 20};
  auto x = make_xarray<u64, 12>(mem.pages());
  ASSERT_TRUE(x && x->store(1, 1) && x->store(u64{1} << 63, 2));
  ASSERT_EQ(x->height(), 7u);
  const u64 leaf = x->root_ref();
  ASSERT_EQ(leaf & 3, u64{detail::xa_compact});
  auto page = alloc_zeroed(mem.pages(), order{0}, geo::page);
  ASSERT_TRUE(page);
  unsigned char* br = mem.bytes(*page);
  detail::xa_node_header& h = detail::header(br);
  h.magic.set(detail::xa_branch_magic);
  h.level = 7;
  h.shift = static_cast<u8>(geo::cover(7));
  h.count.set(static_cast<u32>(geo::fanout));
  h.entries.set(2);
  for (u64 j = 0; j < geo::fanout; ++j)
    detail::put64(br + geo::slots_off + 8 * j, pa_of(leaf) | detail::xa_compact | (8u << detail::xa_run_shift));
  detail::header(mem.bytes(phys_addr{pa_of(leaf)})).shift = static_cast<u8>(geo::slot_bits(7) + 8);
  reinterpret_cast<xarray_root*>(mem.bytes(x->root()))->root.set(page->value | detail::xa_branch);
  reseal_xarray<u64>(mem.memory(), x->root());
  auto v = attach_xarray<u64>(mem.memory(), x->root(), scratch.pages());
  ASSERT_FALSE(v);
  EXPECT_REFUSED(v.err(), errc::bad_level, page->value, 1);
}

// ---- many arrivals at one page, in a 1 TiB sparse image -----------------------------

TEST(CorruptXarray, ADagClaimingMillionsOfEntriesIsRefusedAtTheFirstRepeat) {
  // 256 level-1 branches, every slot of each pointing at one full dense leaf: 258 pages
  // (about 1 MiB) that re-seal as 33.5 M entries. The pages are spread over a 1 TiB
  // sparse image; attach must stop at the second arrival, touching a handful of pages.
  constexpr u64 base = u64{4} << 30, size = u64{1} << 40;
  auto pm = model::physical_memory::create(base, size);
  const flat_memory mem = pm.memory();
  bump_page_source<flat_memory> pages(mem, phys_addr{base}, phys_addr{base} + size);
  arena<12> scratch{u64{1} << 20};
  auto x = make_xarray<u64, 12>(pages);
  ASSERT_TRUE(x);
  auto bytes = [&](u64 pa) { return static_cast<unsigned char*>(mem.to_virt(phys_addr{pa}, geo::page)); };
  const u64 leaf = base + size - geo::page;
  for (u64 i = 0; i < geo::leaf_slots; ++i) detail::put64(bytes(leaf) + 8 * i, i + 1);
  const u64 top = base + (u64{1} << 20);
  auto header = [&](u64 pa, unsigned level, u64 first, u64 entries) {
    detail::xa_node_header& h = detail::header(bytes(pa));
    h.magic.set(detail::xa_branch_magic);
    h.level = static_cast<u8>(level);
    h.shift = static_cast<u8>(geo::cover(level));
    h.base.set(first);
    h.count.set(static_cast<u32>(geo::fanout));
    h.entries.set(entries);
  };
  const u64 per_branch = geo::fanout * geo::leaf_slots;
  header(top, 2, 0, geo::fanout * per_branch);
  for (u64 j = 0; j < geo::fanout; ++j) {
    const u64 br = base + j * (u64{1} << 32) + (u64{1} << 30);  // one every 4 GiB
    header(br, 1, j << geo::slot_bits(2), per_branch);
    for (u64 s = 0; s < geo::fanout; ++s) {
      detail::put64(bytes(br) + geo::slots_off + 8 * s, leaf | detail::xa_dense);
      detail::put16(bytes(br) + geo::dense_count_off + 2 * s, static_cast<u16>(geo::leaf_slots));
    }
    detail::put64(bytes(top) + geo::slots_off + 8 * j, br | detail::xa_branch);
  }
  auto& r = *static_cast<xarray_root*>(mem.to_virt(x->root(), sizeof(xarray_root)));
  r.root.set(top | detail::xa_branch);
  r.height.set(2);
  reseal_xarray<u64>(mem, x->root());
  EXPECT_EQ(r.count.get(), u64{1} << 25);  // what the root now claims: 33.5 M entries
  EXPECT_EQ(r.nodes.get(), 1 + geo::fanout + geo::fanout * geo::fanout);
  auto v = attach_xarray<u64>(mem, x->root(), scratch.pages());
  ASSERT_FALSE(v);
  EXPECT_REFUSED(v.err(), errc::cycle, leaf, 3);
  // Scratch: one table page for the five pages reached, already returned.
  EXPECT_EQ(scratch.pages().pages_in_use(), 0u);
  EXPECT_LE(scratch.pages().high_water() - scratch.pages().start(), geo::page);
  // The image stays sparse: about the 258 pages written are backed, not 1 TiB.
  struct stat st {};
  ASSERT_EQ(::fstat(pm.fd(), &st), 0);
  EXPECT_LT(static_cast<u64>(st.st_blocks) * 512, u64{4} << 20);
}

// ---- one owner per page ------------------------------------------------------------

TEST(CorruptXarray, ClaimPagesOfTwoXarraysInOneArena) {
  arena<12> mem;
  arena<12> scratch{u64{4} << 20};
  auto a = make_xarray<u64, 12>(mem.pages());
  auto b = make_xarray<u64, 12>(mem.pages());
  ASSERT_TRUE(a && b);
  for (u64 i = 0; i < 3000; ++i) ASSERT_TRUE(a->store(i, i + 1));
  ASSERT_TRUE(a->set_mark(7, xa_mark::mark2));
  ASSERT_TRUE(a->store_range(4096, order{3}, 9));
  for (u64 i = 0; i < 500; ++i) ASSERT_TRUE(b->store(i * 0x9e3779b97f4a7c15ULL, i + 1));
  a->seal();
  b->seal();
  auto va = attach_xarray<u64>(mem.memory(), a->root(), scratch.pages());
  auto vb = attach_xarray<u64>(mem.memory(), b->root(), scratch.pages());
  ASSERT_TRUE(va && vb);
  page_owners<arena<12>::source_type> owners(scratch.pages());
  ASSERT_TRUE(va->claim_pages(owners));
  ASSERT_TRUE(vb->claim_pages(owners));
  EXPECT_EQ(owners.size(), va->nodes() + 1 + vb->nodes() + 1);
  EXPECT_EQ(owners.size(), mem.pages().pages_in_use());
  const auto* o = owners.find(phys_addr{pa_of(vb->root_ref())});
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->root, vb->root().value);
  EXPECT_STREQ(o->structure, "xarray");
}

TEST(CorruptXarray, AHostileLeafThatIsAnotherStructuresPageIsAliased) {
  built b;
  auto other = make_xarray<u64, 12>(b.mem.pages());
  ASSERT_TRUE(other && other->store(3, 3));
  other->seal();
  // level1's dense leaf 2 replaced by the other xarray's compact root leaf, its count made
  // to agree: alone, each xarray validates.
  const u64 foreign = pa_of(other->root_ref());
  u16 present = 0;
  for (u64 i = 0; i < geo::leaf_slots; ++i) present += b.get(foreign, 8 * i) != 0;
  b.set_slot(b.level1, 2, foreign | detail::xa_dense);
  b.set_dense_count(b.level1, 2, present);
  b.add_entries_down_to_level1(u64{present} - geo::leaf_slots);
  ASSERT_EQ(b.attach().code, errc::ok);
  auto hostile = attach_xarray<u64>(b.mem.memory(), b.x.root(), b.scratch.pages());
  auto victim = attach_xarray<u64>(b.mem.memory(), other->root(), b.scratch.pages());
  ASSERT_TRUE(hostile && victim);
  page_owners<arena<12>::source_type> owners(b.scratch.pages());
  ASSERT_TRUE(victim->claim_pages(owners));
  const status s = hostile->claim_pages(owners);
  EXPECT_EQ(s.code(), errc::aliased);
  EXPECT_EQ(s.err().loc.at.value, foreign);
  EXPECT_EQ(s.err().loc.structure, std::string("xarray"));
  EXPECT_EQ(s.err().other.at.value, other->root().value);
}

// ---- random flips ------------------------------------------------------------------

TEST(CorruptXarray, RandomFlipsInNodesNeverCrash) {
  built b;
  std::vector<u64> pages;
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
    auto v = attach_xarray<u64>(b.mem.memory(), b.x.root(), b.scratch.pages());
    if (v) {
      ++accepted;  // a flip in a value: the view must still answer
      v->for_each(0, ~u64{0}, [](const xarray_entry<u64>&) {});
    } else {
      ++refused;
      EXPECT_STREQ(v.err().loc.structure, "xarray");
    }
    b.mem.bytes(phys_addr{pa})[off] ^= flip;
  }
  EXPECT_GT(refused, 300u);
  EXPECT_EQ(b.attach_as_is().code, errc::ok);
}

TEST(CorruptXarray, EveryBitFlipOfTheRootBlockIsRefused) {
  built b;
  std::set<errc> seen;
  for (u64 byte = 0; byte < sizeof(xarray_root); ++byte) {
    for (unsigned bit = 0; bit < 8; ++bit) {
      b.mem.bytes(b.x.root())[byte] ^= static_cast<unsigned char>(1u << bit);
      const errc e = b.attach_as_is().code;
      b.mem.bytes(b.x.root())[byte] ^= static_cast<unsigned char>(1u << bit);
      EXPECT_NE(e, errc::ok) << byte << ":" << bit;
      seen.insert(e);
    }
  }
  EXPECT_TRUE(seen.count(errc::bad_magic));
  EXPECT_TRUE(seen.count(errc::bad_checksum));
  EXPECT_TRUE(seen.count(errc::bad_compatible));
  EXPECT_EQ(b.attach_as_is().code, errc::ok);
}

#undef EXPECT_REFUSED  // the test files may share a translation unit (unity build)

}  // namespace
}  // namespace kho::test::corrupt_xarray_test
