// Linux's kho_vmalloc: writer -> reader round trips at 4, 16 and 64 KiB pages (empty,
// one unit, a chunk exactly full, several chunks, order > 0), page claims, and every
// reader check refused with its errc and location after tampering.
#include <kho/linux/kho_vmalloc.hpp>
#include <kho/page_owners.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace kho::test::linux_vmalloc_test {
namespace {

using namespace kho::upstream;

template <class Shift>
class VmallocRoundTrip : public ::testing::Test {};
using shifts = ::testing::Types<std::integral_constant<unsigned, 12>, std::integral_constant<unsigned, 14>,
                                std::integral_constant<unsigned, 16>>;
TYPED_TEST_SUITE(VmallocRoundTrip, shifts);

TYPED_TEST(VmallocRoundTrip, UnitsComeBackInOrder) {
  constexpr unsigned shift = TypeParam::value;
  using geometry = page_geometry<shift>;
  using source = typename arena<shift>::source_type;
  constexpr u64 per_chunk = kho_vmalloc_chunk<shift>::entries;
  for (unsigned unit_order : {0u, 2u}) {
    for (u64 n : {u64{0}, u64{1}, per_chunk - 1, per_chunk, per_chunk + 1, 2 * per_chunk + 3}) {
      if (unit_order == 2 && n > per_chunk + 1) continue;
      // Units lie past the first 32 MiB; the arena is a sparse file, so only the
      // chunks and the claim table are ever touched.
      arena<shift> a((u64{33} << 20) + n * (geometry::size << unit_order));
      auto w = vmalloc_writer<source, shift>::create(a.pages(), unit_order);
      ASSERT_TRUE(w.has_value());
      std::vector<phys_addr> units;
      // Units are not allocated here (the view only checks they are in memory).
      for (u64 i = 0; i < n; ++i) {
        units.push_back(phys_addr{a.memory().base().value + (u64{32} << 20) + i * (geometry::size << unit_order)});
        ASSERT_TRUE(w->push(units.back()));
      }
      // A full chunk always links a new one: n / per_chunk + 1 chunks.
      EXPECT_EQ(w->chunks(), n / per_chunk + 1);
      auto v = attach_vmalloc<shift>(a.remap(), w->descriptor());
      ASSERT_TRUE(v.has_value()) << n << " " << to_string(v.code());
      EXPECT_EQ(v->total_pages(), n << unit_order);
      EXPECT_EQ(v->chunks(), n / per_chunk + 1);
      std::vector<phys_addr> got;
      v->for_each_unit([&](phys_addr u, u64 idx) {
        EXPECT_EQ(idx, got.size() << unit_order);
        got.push_back(u);
      });
      EXPECT_EQ(got, units);
      page_owners<source, shift> owners(a.pages());
      ASSERT_TRUE(v->claim_pages(owners));
      EXPECT_EQ(owners.size(), v->chunks() + (n << unit_order));
    }
  }
}

using source = arena<12>::source_type;
constexpr u64 per_chunk = kho_vmalloc_chunk<12>::entries;

struct area {
  arena<12> mem{u64{16} << 20};
  kho_vmalloc d{};
  phys_addr first{}, second{};  // chunks 0 and 1

  // 600 order-0 units: a full chunk and one with 89 entries.
  area() {
    auto w = vmalloc_writer<source>::create(mem.pages(), 0);
    for (u64 i = 0; i < 600; ++i) EXPECT_TRUE(w->push(unit(i)));
    d = w->descriptor();
    first = phys_addr{d.first.get()};
    second = phys_addr{chunk(first).next.get()};
  }
  phys_addr unit(u64 i) const { return mem.memory().base() + (u64{8} << 20) + i * 4096; }
  kho_vmalloc_chunk<12>& chunk(phys_addr pa) { return *reinterpret_cast<kho_vmalloc_chunk<12>*>(mem.bytes(pa)); }
  result<vmalloc_view<flat_memory>> attach() { return attach_vmalloc(mem.memory(), d); }
  void expect(errc code, phys_addr where, u32 depth) {
    auto v = attach();
    ASSERT_EQ(v.code(), code) << to_string(v.code());
    EXPECT_STREQ(v.err().loc.structure, "kho_vmalloc");
    EXPECT_EQ(v.err().loc.at, where);
    EXPECT_EQ(v.err().loc.depth, depth);
  }
};

TEST(VmallocCorrupt, Clean) {
  area a;
  ASSERT_TRUE(a.attach().has_value());
}

TEST(VmallocCorrupt, UnknownFlags) {
  area a;
  a.d.flags.set(0x4 | vmalloc_flag_alloc);
  a.expect(errc::reserved_nonzero, a.first, 0);
}

TEST(VmallocCorrupt, OrderTooLarge) {
  area a;
  a.d.order.set(32);
  a.expect(errc::out_of_range, a.first, 0);
}

TEST(VmallocCorrupt, MoreUnitsThanTotalPages) {
  area a;
  a.d.total_pages.set(599);
  // The 600th unit (entry 88 of chunk 1) does not fit.
  a.expect(errc::out_of_range, a.second + 8 + 88 * 8, 1);
}

TEST(VmallocCorrupt, FewerUnitsThanTotalPages) {
  area a;
  a.d.total_pages.set(601);
  a.expect(errc::bad_count, a.first, 0);
}

TEST(VmallocCorrupt, UnitOrderTooLargeForTotal) {
  area a;
  a.d.order.set(1);  // 600 units of 2 pages do not fit 600 pages, and unit 1 is misaligned
  a.expect(errc::misaligned, a.first + 8 + 8, 0);
}

TEST(VmallocCorrupt, MisalignedChunk) {
  area a;
  a.chunk(a.first).next.set(a.second.value + 8);
  a.expect(errc::misaligned, a.second + 8, 1);
}

TEST(VmallocCorrupt, ChunkOutsideMemory) {
  area a;
  a.chunk(a.first).next.set(u64{1} << 50);
  a.expect(errc::out_of_bounds, phys_addr{u64{1} << 50}, 1);
}

TEST(VmallocCorrupt, SelfLoop) {
  area a;
  a.chunk(a.first).next.set(a.first.value);
  a.expect(errc::cycle, a.first, 1);
}

TEST(VmallocCorrupt, TwoChunkCycleOfFullChunks) {
  area a;
  // Fill chunk 1 and point it back at chunk 0: both full, a loop the count alone
  // would only stop at total_pages.
  for (u64 i = 89; i < per_chunk; ++i) a.chunk(a.second).phys[i].set(a.unit(600 + i).value);
  a.chunk(a.second).next.set(a.first.value);
  a.d.total_pages.set(0xffffffff);
  auto v = a.attach();
  ASSERT_EQ(v.code(), errc::cycle);
  // Brent's tortoise sits on chunk 1 when the walk comes round to it again.
  EXPECT_EQ(v.err().loc.at, a.second);
}

TEST(VmallocCorrupt, MisalignedUnit) {
  area a;
  a.chunk(a.first).phys[3].set(a.unit(3).value + 0x10);
  a.expect(errc::misaligned, a.first + 8 + 3 * 8, 0);
}

TEST(VmallocCorrupt, UnitOutsideMemory) {
  area a;
  a.chunk(a.second).phys[0].set(u64{1} << 45);
  a.expect(errc::out_of_bounds, a.second + 8, 1);
}

TEST(VmallocCorrupt, StaleEntryAfterTerminator) {
  area a;
  a.chunk(a.second).phys[200].set(a.unit(0).value);
  a.expect(errc::reserved_nonzero, a.second + 8 + 200 * 8, 1);
}

TEST(VmallocCorrupt, PartialChunkFollowedByAnother) {
  area a;
  a.chunk(a.first).phys[510].set(0);  // chunk 0 now ends early but still links chunk 1
  a.d.total_pages.set(599);
  a.expect(errc::bad_count, a.second, 1);
}

TEST(VmallocCorrupt, EmptyDescriptorIsFine) {
  area a;
  const kho_vmalloc none{};
  EXPECT_TRUE(attach_vmalloc(a.mem.memory(), none).has_value());
}

TEST(VmallocCorrupt, ChunkSharedWithAnotherStructureIsAliased) {
  area a;
  auto v = a.attach();
  ASSERT_TRUE(v.has_value());
  page_owners<source, 12> owners(a.mem.pages());
  ASSERT_TRUE(owners.claim(a.second, 1, page_owner{"luo-v5", a.second}));
  status s = v->claim_pages(owners);
  ASSERT_EQ(s.code(), errc::aliased);
  EXPECT_STREQ(s.err().loc.structure, "kho_vmalloc");
  EXPECT_EQ(s.err().loc.at, a.second);
  EXPECT_STREQ(s.err().other.structure, "luo-v5");
}

TEST(VmallocCorrupt, UnitThatIsAChunkIsAliased) {
  area a;
  a.chunk(a.first).phys[0].set(a.second.value);
  auto v = a.attach();
  ASSERT_TRUE(v.has_value());
  page_owners<source, 12> owners(a.mem.pages());
  status s = v->claim_pages(owners);
  ASSERT_EQ(s.code(), errc::aliased);
  EXPECT_EQ(s.err().loc.at, a.second);
}

TEST(VmallocWriter, RefusesBadInput) {
  arena<12> mem(u64{1} << 20);
  EXPECT_EQ(vmalloc_writer<source>::create(mem.pages(), 0, 0x8).code(), errc::invalid_argument);
  EXPECT_EQ(vmalloc_writer<source>::create(mem.pages(), 32).code(), errc::invalid_argument);
  auto w = vmalloc_writer<source>::create(mem.pages(), 1);
  EXPECT_EQ(w->push(phys_addr{}).code(), errc::invalid_argument);
  EXPECT_EQ(w->push(phys_addr{0x1000}).code(), errc::invalid_argument);
  EXPECT_TRUE(w->push(phys_addr{0x2000}));
}

}  // namespace
}  // namespace kho::test::linux_vmalloc_test
