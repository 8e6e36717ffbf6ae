// Linux's kexec-metadata blob and memblock reserve_mem sub-FDT: round trips at 4, 16
// and 64 KiB pages, page claims, and every reader check refused with its errc and
// location after tampering.
#include <kho/linux/kexec_metadata.hpp>
#include <kho/linux/memblock.hpp>
#include <kho/page_owners.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <libfdt.h>

#include <cstring>
#include <string>
#include <vector>

namespace kho::test::linux_meta_test {
namespace {

using namespace kho::upstream;

template <class Shift>
class MetaRoundTrip : public ::testing::Test {};
using shifts = ::testing::Types<std::integral_constant<unsigned, 12>, std::integral_constant<unsigned, 14>,
                                std::integral_constant<unsigned, 16>>;
TYPED_TEST_SUITE(MetaRoundTrip, shifts);

TYPED_TEST(MetaRoundTrip, KexecMetadata) {
  constexpr unsigned shift = TypeParam::value;
  using source = typename arena<shift>::source_type;
  arena<shift> a(u64{4} << 20);
  auto blob = write_kexec_metadata<shift>(a.pages(), "7.2.0-rc3+", 12);
  ASSERT_TRUE(blob.has_value());
  auto v = kexec_metadata_view<shift>::attach(a.remap(), blob->phys, blob->size);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->version(), 1u);
  EXPECT_STREQ(v->previous_release(), "7.2.0-rc3+");
  EXPECT_EQ(v->kexec_count(), 12u);
  page_owners<source, shift> owners(a.pages());
  ASSERT_TRUE(v->claim_pages(owners));
  EXPECT_EQ(owners.size(), 1u);
}

TYPED_TEST(MetaRoundTrip, Memblock) {
  constexpr unsigned shift = TypeParam::value;
  using source = typename arena<shift>::source_type;
  constexpr u64 page = u64{1} << shift;
  arena<shift> a(u64{4} << 20);
  std::vector<std::string> names;
  std::vector<reserve_mem_region> regions;
  for (u64 i = 0; i < 20; ++i) names.push_back("region" + std::to_string(i));
  for (u64 i = 0; i < 20; ++i) regions.push_back({names[i].c_str(), phys_addr{(i + 1) << 30}, (i + 1) * page});
  auto blob = write_memblock<shift>(a.pages(), regions.data(), regions.size());
  ASSERT_TRUE(blob.has_value());
  auto v = attach_memblock<shift>(a.remap(), blob->phys, blob->size);
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  EXPECT_EQ(v->count(), 20u);
  u64 i = 0;
  v->for_each_region([&](const reserve_mem_region& r) {
    EXPECT_STREQ(r.name, names[i].c_str());
    EXPECT_EQ(r.start, regions[i].start);
    EXPECT_EQ(r.size, regions[i].size);
    ++i;
  });
  EXPECT_EQ(i, 20u);
  auto r = v->find("region7");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->start.value, u64{8} << 30);
  EXPECT_EQ(v->find("nope").code(), errc::not_found);
  page_owners<source, shift> owners(a.pages());
  ASSERT_TRUE(v->claim_pages(owners));
  EXPECT_EQ(owners.size(), 1u);
}

// find matches names exactly: libfdt's lookup would give "crash" the region
// "crash@1" that precedes it (found by fuzz_linux_meta's find-after-walk check).
TEST(MemblockFind, ExactNameNotUnitAddress) {
  arena<12> a(u64{1} << 20);
  const reserve_mem_region regions[] = {{"crash@1", phys_addr{u64{1} << 30}, 4096},
                                        {"crash", phys_addr{u64{2} << 30}, 8192}};
  auto blob = write_memblock(a.pages(), regions, 2);
  ASSERT_TRUE(blob.has_value());
  auto v = attach_memblock(a.remap(), blob->phys, blob->size);
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  auto r = v->find("crash");
  ASSERT_TRUE(r.has_value());
  EXPECT_STREQ(r->name, "crash");
  EXPECT_EQ(r->start.value, u64{2} << 30);
  r = v->find("crash@1");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->start.value, u64{1} << 30);
  EXPECT_EQ(v->find("cras").code(), errc::not_found);
  EXPECT_EQ(v->find("crash@").code(), errc::not_found);
}

using source = arena<12>::source_type;

TEST(KexecMetadataCorrupt, Checks) {
  arena<12> a(u64{1} << 20);
  auto blob = write_kexec_metadata(a.pages(), "6.20.0", 3);
  ASSERT_TRUE(blob.has_value());
  const phys_addr pa = blob->phys;
  auto expect = [&](errc code, u64 size = 73, phys_addr at = phys_addr{}) {
    if (!at) at = pa;
    auto v = kexec_metadata_view<12>::attach(a.memory(), at, size);
    ASSERT_EQ(v.code(), code) << to_string(v.code());
    EXPECT_STREQ(v.err().loc.structure, "kexec-metadata");
    EXPECT_EQ(v.err().loc.at, at);
  };
  expect(errc::bad_count, 3);
  expect(errc::bad_count, 72);
  expect(errc::misaligned, 73, pa + 4);
  expect(errc::out_of_bounds, 73, phys_addr{u64{1} << 50});
  unsigned char* p = a.bytes(pa);
  p[0] = 2;
  expect(errc::bad_version);
  expect(errc::bad_version, 40);  // the version is checked before the full size
  p[0] = 1;
  std::memset(p + 4, 'x', 65);
  expect(errc::bad_string);
  EXPECT_EQ(write_kexec_metadata(a.pages(), std::string(65, 'r').c_str(), 0).code(), errc::bad_string);
}

struct memblock_image {
  arena<12> mem{u64{1} << 20};
  memblock_blob blob{};
  memblock_image() {
    const reserve_mem_region regions[] = {{"trace", phys_addr{0x1'0020'0000}, 0x4000},
                                          {"oops", phys_addr{0x1'0040'0000}, 0x1000}};
    blob = *write_memblock(mem.pages(), regions, 2);
  }
  void* fdt() { return mem.bytes(blob.phys); }
  int node(const char* name) { return fdt_subnode_offset(fdt(), 0, name); }
  // Rewrites a property in place (same length) or resizes it (the FDT is repacked
  // into the page).
  void set(const char* node_name, const char* prop, const void* value, int len) {
    fdt_open_into(fdt(), fdt(), 4096);
    ASSERT_EQ(fdt_setprop(fdt(), node(node_name), prop, value, len), 0);
    fdt_pack(fdt());
    blob.size = fdt_totalsize(fdt());
  }
  void expect(errc code, phys_addr at, u32 depth) {
    auto v = attach_memblock(mem.memory(), blob.phys, blob.size);
    ASSERT_EQ(v.code(), code) << to_string(v.code());
    EXPECT_STREQ(v.err().loc.structure, "memblock");
    EXPECT_EQ(v.err().loc.at, at);
    EXPECT_EQ(v.err().loc.depth, depth);
  }
  phys_addr node_pa(const char* name) { return blob.phys + static_cast<u64>(node(name)); }
};

TEST(MemblockCorrupt, Clean) {
  memblock_image m;
  EXPECT_TRUE(attach_memblock(m.mem.memory(), m.blob.phys, m.blob.size).has_value());
}

TEST(MemblockCorrupt, BlobPlacement) {
  memblock_image m;
  auto v = attach_memblock(m.mem.memory(), m.blob.phys + 8, m.blob.size);
  EXPECT_EQ(v.code(), errc::misaligned);
  v = attach_memblock(m.mem.memory(), m.blob.phys, 4097);
  EXPECT_EQ(v.code(), errc::out_of_range);
  v = attach_memblock(m.mem.memory(), phys_addr{u64{1} << 50}, 100);
  EXPECT_EQ(v.code(), errc::out_of_bounds);
}

TEST(MemblockCorrupt, NotAnFdt) {
  memblock_image m;
  static_cast<unsigned char*>(m.fdt())[0] ^= 0xff;
  m.expect(errc::bad_fdt, m.blob.phys, 0);
}

TEST(MemblockCorrupt, TruncatedBlob) {
  memblock_image m;
  m.blob.size -= 1;  // totalsize now exceeds blob-size
  m.expect(errc::bad_fdt, m.blob.phys, 0);
}

TEST(MemblockCorrupt, StructureDamage) {
  memblock_image m;
  // The FDT_END token becomes FDT_NOP: the structure block no longer terminates.
  auto* p = static_cast<unsigned char*>(m.fdt());
  const u64 end = fdt_off_dt_struct(m.fdt()) + fdt_size_dt_struct(m.fdt()) - 1;
  ASSERT_EQ(p[end], 9);
  p[end] = 4;
  m.expect(errc::bad_fdt, m.blob.phys, 0);
}

// A version below 17 is refused before libfdt reads the tree (libfdt 1.6.1 crashes
// on some), even one fdt_check_full alone accepts.
TEST(MemblockCorrupt, OlderFdtVersion) {
  memblock_image m;
  auto* p = static_cast<unsigned char*>(m.fdt());
  p[23] = 16;  // fdt_header.version, big-endian
  ASSERT_EQ(fdt_check_full(p, m.blob.size), 0);
  m.expect(errc::bad_fdt, m.blob.phys, 0);
}

TEST(MemblockCorrupt, RootCompatible) {
  memblock_image m;
  fdt_open_into(m.fdt(), m.fdt(), 4096);
  ASSERT_EQ(fdt_setprop_string(m.fdt(), 0, "compatible", "memblock-v2"), 0);
  fdt_pack(m.fdt());
  m.blob.size = fdt_totalsize(m.fdt());
  m.expect(errc::bad_compatible, m.blob.phys, 0);
}

TEST(MemblockCorrupt, RegionCompatible) {
  memblock_image m;
  m.set("oops", "compatible", "reserve-mem-v2", 15);
  m.expect(errc::bad_compatible, m.node_pa("oops"), 1);
}

TEST(MemblockCorrupt, RegionPropertyMissingOrWrongSize) {
  memblock_image m;
  const u32 cell = 0x1000;
  m.set("trace", "size", &cell, 4);
  m.expect(errc::bad_count, m.node_pa("trace"), 1);
  memblock_image n;
  fdt_open_into(n.fdt(), n.fdt(), 4096);
  ASSERT_EQ(fdt_delprop(n.fdt(), n.node("oops"), "start"), 0);
  fdt_pack(n.fdt());
  n.blob.size = fdt_totalsize(n.fdt());
  n.expect(errc::not_found, n.node_pa("oops"), 1);
}

TEST(MemblockCorrupt, RegionGeometry) {
  memblock_image m;
  const u64 odd = 0x1'0020'0800, zero = 0, huge = ~u64{0} & ~u64{0xfff};
  m.set("trace", "start", &odd, 8);
  m.expect(errc::misaligned, m.node_pa("trace"), 1);
  const u64 good = 0x1'0020'0000, part_page = 0x4800;
  m.set("trace", "start", &good, 8);
  m.set("trace", "size", &part_page, 8);  // an aligned start, a size that is not whole pages
  m.expect(errc::misaligned, m.node_pa("trace"), 1);
  m.set("trace", "size", &zero, 8);
  m.expect(errc::out_of_range, m.node_pa("trace"), 1);
  const u64 page = 0x1000;
  m.set("trace", "size", &page, 8);
  m.set("trace", "start", &huge, 8);
  m.set("trace", "size", &huge, 8);
  m.expect(errc::out_of_range, m.node_pa("trace"), 1);
}

TEST(MemblockCorrupt, DuplicateName) {
  memblock_image m;
  fdt_open_into(m.fdt(), m.fdt(), 4096);
  ASSERT_EQ(fdt_set_name(m.fdt(), m.node("oops"), "trace"), 0);
  fdt_pack(m.fdt());
  m.blob.size = fdt_totalsize(m.fdt());
  // The second node named "trace": find the last subnode.
  int last = -1, node;
  fdt_for_each_subnode(node, m.fdt(), 0) last = node;
  m.expect(errc::duplicate, m.blob.phys + static_cast<u64>(last), 1);
}

TEST(MemblockWriter, RefusesWhatDoesNotFit) {
  arena<12> a(u64{1} << 20);
  std::vector<std::string> names;
  std::vector<reserve_mem_region> regions;
  for (u64 i = 0; i < 100; ++i) names.push_back("a-rather-long-region-name-" + std::to_string(i));
  for (u64 i = 0; i < 100; ++i) regions.push_back({names[i].c_str(), phys_addr{0x1000 * (i + 1)}, 0x1000});
  EXPECT_EQ(write_memblock(a.pages(), regions.data(), regions.size()).code(), errc::table_full);
  const reserve_mem_region unnamed[] = {{"", phys_addr{0x1000}, 0x1000}};
  EXPECT_EQ(write_memblock(a.pages(), unnamed, 1).code(), errc::invalid_argument);
}

}  // namespace
}  // namespace kho::test::linux_meta_test
