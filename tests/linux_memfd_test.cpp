// Linux's memfd state (memfd-v2, memfd-v1): round trips at 4, 16 and 64 KiB pages,
// page claims (the structure and its folio array, not the folios), and every reader
// check refused with its errc and location after tampering.
#include <kho/linux/memfd.hpp>
#include <kho/page_owners.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace kho::test::linux_memfd_test {
namespace {

using namespace kho::upstream;

template <class Shift>
class MemfdRoundTrip : public ::testing::Test {};
using shifts = ::testing::Types<std::integral_constant<unsigned, 12>, std::integral_constant<unsigned, 14>,
                                std::integral_constant<unsigned, 16>>;
TYPED_TEST_SUITE(MemfdRoundTrip, shifts);

bool same(const memfd_folio& a, const memfd_folio& b) {
  return a.frame == b.frame && a.index == b.index && a.flags == b.flags;
}

TYPED_TEST(MemfdRoundTrip, FoliosComeBack) {
  constexpr unsigned shift = TypeParam::value;
  using geometry = page_geometry<shift>;
  using source = typename arena<shift>::source_type;
  constexpr u64 per_page = geometry::size / 16;
  for (memfd_version ver : {memfd_version::v1, memfd_version::v2}) {
    for (u64 n : {u64{0}, u64{1}, per_page, per_page + 1, 3 * per_page + 7}) {
      arena<shift> a(u64{64} << 20);
      std::vector<memfd_folio> folios;
      for (u64 i = 0; i < n; ++i)
        folios.push_back({pfn{((u64{1} << 40) >> shift) + i * 4}, i * 4 + 1, static_cast<u16>(i % 4)});  // outside the arena
      const memfd_file file{123, (n * 4 + 1) * geometry::size,
                            ver == memfd_version::v2 ? memfd_seal_grow | memfd_seal_exec : 0u,
                            folios.data(), n, 0, /*clean_folios_may_be_dropped=*/true};  // every flag value
      auto ser = write_memfd<shift>(a.pages(), file, ver);
      ASSERT_TRUE(ser.has_value());
      auto v = attach_memfd<shift>(a.remap(), *ser, ver);
      ASSERT_TRUE(v.has_value()) << n << " " << to_string(v.code());
      EXPECT_EQ(v->pos(), 123u);
      EXPECT_EQ(v->size(), file.size);
      EXPECT_EQ(v->seals(), file.seals);
      EXPECT_EQ(v->nr_folios(), n);
      std::vector<memfd_folio> got;
      v->for_each_folio([&](const memfd_folio& f) { got.push_back(f); });
      ASSERT_EQ(got.size(), n);
      for (u64 i = 0; i < n; ++i) EXPECT_TRUE(same(got[i], folios[i])) << i;
      page_owners<source, shift> owners(a.pages());
      ASSERT_TRUE(v->claim_pages(owners));
      // The structure's page, the chunk and the array pages; never a folio.
      const u64 array = memfd_array_pages<shift>(n);
      EXPECT_EQ(owners.size(), 1 + (n ? 1 + array : 0));
      for (const memfd_folio& f : folios) EXPECT_EQ(owners.find(geometry::to_phys(f.frame)), nullptr);
    }
  }
}

using source = arena<12>::source_type;

struct memfd_image {
  arena<12> mem{u64{16} << 20};
  phys_addr ser{}, chunk{}, array{};
  std::vector<memfd_folio> folios;

  // 300 folios: two array pages (256 + 44 records).
  explicit memfd_image(memfd_version v = memfd_version::v2) {
    for (u64 i = 0; i < 300; ++i) folios.push_back({pfn{0x100 + i}, 2 * i});
    const u32 seals = v == memfd_version::v2 ? memfd_seal_seal : 0;
    ser = *write_memfd(mem.pages(), memfd_file{0, 600 * 4096, seals, folios.data(), folios.size()}, v);
    const kho_vmalloc& d = v == memfd_version::v2 ? s2().folios : s1().folios;
    chunk = phys_addr{d.first.get()};
    array = phys_addr{reinterpret_cast<kho_vmalloc_chunk<12>*>(mem.bytes(chunk))->phys[0].get()};
  }
  memfd_luo_ser_v2& s2() { return *reinterpret_cast<memfd_luo_ser_v2*>(mem.bytes(ser)); }
  memfd_luo_ser_v1& s1() { return *reinterpret_cast<memfd_luo_ser_v1*>(mem.bytes(ser)); }
  memfd_luo_folio_ser& record(u64 i) { return reinterpret_cast<memfd_luo_folio_ser*>(mem.bytes(array))[i]; }
  phys_addr record_pa(u64 i) { return array + i * 16; }
  void expect(errc code, const char* structure, phys_addr where, u32 depth,
              memfd_version v = memfd_version::v2) {
    auto r = attach_memfd(mem.memory(), ser, v);
    ASSERT_EQ(r.code(), code) << to_string(r.code());
    EXPECT_STREQ(r.err().loc.structure, structure);
    EXPECT_EQ(r.err().loc.at, where);
    EXPECT_EQ(r.err().loc.depth, depth);
  }
};

TEST(MemfdCorrupt, Clean) {
  memfd_image m;
  EXPECT_TRUE(attach_memfd(m.mem.memory(), m.ser).has_value());
  memfd_image m1(memfd_version::v1);
  EXPECT_TRUE(attach_memfd(m1.mem.memory(), m1.ser, memfd_version::v1).has_value());
}

TEST(MemfdCorrupt, Misaligned) {
  memfd_image m;
  auto r = attach_memfd(m.mem.memory(), m.ser + 8);
  ASSERT_EQ(r.code(), errc::misaligned);
  EXPECT_EQ(r.err().loc.at, m.ser + 8);
}

TEST(MemfdCorrupt, OutsideMemory) {
  memfd_image m;
  auto r = attach_memfd(m.mem.memory(), phys_addr{u64{1} << 44});
  ASSERT_EQ(r.code(), errc::out_of_bounds);
  EXPECT_EQ(r.err().loc.at, phys_addr{u64{1} << 44});
}

TEST(MemfdCorrupt, UnknownSeal) {
  memfd_image m;
  m.s2().seals.set(0x40 | memfd_seal_seal);
  m.expect(errc::out_of_range, "memfd", m.ser, 0);
}

TEST(MemfdCorrupt, FlagsNotZero) {
  memfd_image m;
  m.s2().flags.set(1);
  m.expect(errc::reserved_nonzero, "memfd", m.ser, 0);
}

TEST(MemfdCorrupt, NoFoliosButADescriptor) {
  memfd_image m;
  m.s2().nr_folios.set(0);
  m.expect(errc::reserved_nonzero, "memfd", m.ser, 0);
}

TEST(MemfdCorrupt, NrFoliosDisagreesWithArea) {
  memfd_image m;
  m.s2().nr_folios.set(600);  // would need 3 array pages; the area has 2
  m.expect(errc::bad_count, "memfd", m.ser, 0);
  m.s2().nr_folios.set(~u64{0});
  m.expect(errc::bad_count, "memfd", m.ser, 0);
}

// An area with a page more than its records need (a stock kernel reads nr_folios
// records and frees the rest with the area: kho is stricter, as its writer never
// leaves a spare page).
TEST(MemfdCorrupt, AreaLargerThanItsFoliosNeed) {
  memfd_image m;
  m.s2().nr_folios.set(256);  // exactly one array page; the area has 2
  m.expect(errc::bad_count, "memfd", m.ser, 0);
  m.s2().nr_folios.set(1);
  m.expect(errc::bad_count, "memfd", m.ser, 0);
}

TEST(MemfdCorrupt, FewerFoliosInTheSamePagesIsFine) {
  memfd_image m;
  m.s2().nr_folios.set(257);  // still two pages: the records past 257 are ignored
  auto r = attach_memfd(m.mem.memory(), m.ser);
  ASSERT_TRUE(r.has_value());
  u64 n = 0;
  r->for_each_folio([&](const memfd_folio&) { ++n; });
  EXPECT_EQ(n, 257u);
}

TEST(MemfdCorrupt, AreaErrorsComeFromTheVmallocReader) {
  memfd_image m;
  reinterpret_cast<kho_vmalloc_chunk<12>*>(m.mem.bytes(m.chunk))->next.set(m.chunk.value);
  m.expect(errc::cycle, "kho_vmalloc", m.chunk, 1);
}

TEST(MemfdCorrupt, UnknownFolioFlag) {
  memfd_image m;
  m.record(7).pfn_flags.set(m.record(7).pfn_flags.get() | u64{0x4} << 52);
  m.expect(errc::reserved_nonzero, "memfd", m.record_pa(7), 1);
}

TEST(MemfdCorrupt, PfnZero) {
  memfd_image m;
  m.record(9).pfn_flags.set(u64{3} << 52);
  m.expect(errc::out_of_range, "memfd", m.record_pa(9), 1);
}

TEST(MemfdCorrupt, DuplicateIndex) {
  memfd_image m;
  m.record(11).index.set(m.record(10).index.get());
  m.expect(errc::duplicate, "memfd", m.record_pa(11), 1);
}

TEST(MemfdCorrupt, DecreasingIndex) {
  memfd_image m;
  m.record(12).index.set(1);
  m.expect(errc::out_of_range, "memfd", m.record_pa(12), 1);
}

TEST(MemfdCorrupt, SecondArrayPageChecked) {
  memfd_image m;
  const phys_addr page2{reinterpret_cast<kho_vmalloc_chunk<12>*>(m.mem.bytes(m.chunk))->phys[1].get()};
  auto* r = reinterpret_cast<memfd_luo_folio_ser*>(m.mem.bytes(page2));
  r[0].index.set(0);  // record 256 goes back to index 0
  m.expect(errc::out_of_range, "memfd", page2, 1);
}

TEST(MemfdCorrupt, V1ReadsItsOwnOffsets) {
  memfd_image m(memfd_version::v1);
  // Read as v2, the v1 nr_folios lands in seals/flags: 300 = 0x12c has bits outside 0x3F.
  m.expect(errc::out_of_range, "memfd", m.ser, 0);
  m.s1().nr_folios.set(0);
  m.expect(errc::reserved_nonzero, "memfd", m.ser, 0, memfd_version::v1);
}

TEST(MemfdCorrupt, ArrayPageSharedWithAFolioIsAliased) {
  memfd_image m;
  auto v = attach_memfd(m.mem.memory(), m.ser);
  ASSERT_TRUE(v.has_value());
  page_owners<source, 12> owners(m.mem.pages());
  ASSERT_TRUE(owners.claim(m.array, 1, page_owner{"xarray", m.array}));
  status s = v->claim_pages(owners);
  ASSERT_EQ(s.code(), errc::aliased);
  EXPECT_STREQ(s.err().loc.structure, "memfd");
  EXPECT_EQ(s.err().loc.at, m.array);
}

TEST(MemfdWriter, RefusesBadInput) {
  arena<12> mem(u64{1} << 20);
  const memfd_folio zero[] = {{pfn{0}, 0}};
  const memfd_folio wide[] = {{pfn{u64{1} << 52}, 0}};
  const memfd_folio flags[] = {{pfn{1}, 0, 0x8}};
  const memfd_folio order[] = {{pfn{1}, 3}, {pfn{2}, 3}};
  EXPECT_EQ(write_memfd(mem.pages(), memfd_file{0, 0, 0x40, nullptr, 0}).code(), errc::invalid_argument);
  EXPECT_EQ(write_memfd(mem.pages(), memfd_file{0, 0, 1, nullptr, 0}, memfd_version::v1).code(),
            errc::out_of_range);
  EXPECT_EQ(write_memfd(mem.pages(), memfd_file{0, 0, 0, zero, 1}).code(), errc::invalid_argument);
  EXPECT_EQ(write_memfd(mem.pages(), memfd_file{0, 0, 0, wide, 1}).code(), errc::invalid_argument);
  EXPECT_EQ(write_memfd(mem.pages(), memfd_file{0, 0, 0, flags, 1}).code(), errc::invalid_argument);
  EXPECT_EQ(write_memfd(mem.pages(), memfd_file{0, 0, 0, order, 2}).code(), errc::invalid_argument);
}

}  // namespace
}  // namespace kho::test::linux_memfd_test
