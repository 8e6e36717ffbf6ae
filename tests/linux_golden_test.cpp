// Linux's formats byte for byte: every expected byte below was written by hand from
// shared/LINUX-FORMATS.md (sections 2, 4, 6, 7, 8), not produced by the writers. The
// arena starts at physical 0x1_0000_0000 and the bump source hands out pages in order,
// so every address is known in advance; the comments say which page is which.
#include <kho/linux/kexec_metadata.hpp>
#include <kho/linux/kho_vmalloc.hpp>
#include <kho/linux/luo_v5.hpp>
#include <kho/linux/memblock.hpp>
#include <kho/linux/memfd.hpp>
#include <kho/linux/x86_boot.hpp>

#include "golden_bytes.hpp"
#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace kho::test::linux_golden_test {
namespace {

using namespace kho::upstream;
using source = arena<12>::source_type;

constexpr u64 base = u64{1} << 32;

bytes at(arena<12>& a, u64 pa, u64 n) {
  const unsigned char* p = a.bytes(phys_addr{pa});
  return bytes(p, p + n);
}
template <class T>
bytes of(const T& v) {
  const auto* p = reinterpret_cast<const unsigned char*>(&v);
  return bytes(p, p + sizeof v);
}
bool all_zero(arena<12>& a, u64 pa, u64 n) {
  const bytes b = at(a, pa, n);
  for (unsigned char c : b)
    if (c != 0) return false;
  return true;
}

TEST(LinuxGolden, X86KhoDataAndScratch) {
  kho_data d{};
  d.fdt_addr.set(0x12345000);
  d.fdt_size.set(0x1000);
  d.scratch_addr.set(0x1'0020'0000);
  d.scratch_size.set(0x30);
  EXPECT_EQ(of(d), (bytes{0x00, 0x50, 0x34, 0x12, 0, 0, 0, 0,  //
                          0x00, 0x10, 0, 0, 0, 0, 0, 0,        //
                          0x00, 0x00, 0x20, 0x00, 0x01, 0, 0, 0,  //
                          0x30, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(kho_scratch_count(d), 3u);
  kho_scratch s{};
  s.addr.set(0x8000'0000);
  s.size.set(0x400'0000);
  EXPECT_EQ(of(s), (bytes{0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0}));
  EXPECT_EQ(setup_kexec_kho, 10u);
}

TEST(LinuxGolden, VmallocDescriptorAndChunk) {
  arena<12> a(u64{1} << 20, base);
  // Page 0: the first chunk. Units at pages 5 and 6.
  auto w = vmalloc_writer<source>::create(a.pages(), 0);
  ASSERT_TRUE(w.has_value());
  ASSERT_TRUE(w->push(phys_addr{base + 0x5000}));
  ASSERT_TRUE(w->push(phys_addr{base + 0x6000}));
  EXPECT_EQ(of(w->descriptor()), (bytes{0, 0, 0, 0, 0x01, 0, 0, 0,  // first = 0x1_0000_0000
                                        0x02, 0, 0, 0,               // total_pages = 2
                                        0x01, 0x00,                  // flags = VM_ALLOC
                                        0x00, 0x00}));               // order = 0
  EXPECT_EQ(at(a, base, 24), (bytes{0, 0, 0, 0, 0, 0, 0, 0,             // next = 0
                                    0x00, 0x50, 0, 0, 0x01, 0, 0, 0,    // phys[0]
                                    0x00, 0x60, 0, 0, 0x01, 0, 0, 0})); // phys[1]
  EXPECT_TRUE(all_zero(a, base + 24, 4096 - 24));
}

TEST(LinuxGolden, VmallocFullChunkLinksAnEmptyOne) {
  arena<12> a(u64{8} << 20, base);
  auto w = vmalloc_writer<source>::create(a.pages(), 1, vmalloc_flag_alloc | vmalloc_flag_huge_vmap);
  ASSERT_TRUE(w.has_value());
  // Page 0: chunk 0. The 511th push allocates page 1, chunk 1, before it is needed.
  for (u64 i = 0; i < 511; ++i) ASSERT_TRUE(w->push(phys_addr{base + 0x100000 + i * 0x2000}));
  EXPECT_EQ(at(a, base, 8), (bytes{0x00, 0x10, 0, 0, 0x01, 0, 0, 0}));  // next = page 1
  // phys[510] = 0x1_0000_0000 + 0x10_0000 + 510 * 0x2000 = 0x1_004f_c000.
  EXPECT_EQ(at(a, base + 8 + 510 * 8, 8), (bytes{0x00, 0xc0, 0x4f, 0x00, 0x01, 0, 0, 0}));
  EXPECT_TRUE(all_zero(a, base + 0x1000, 4096));  // the empty last chunk
  EXPECT_EQ(of(w->descriptor()), (bytes{0, 0, 0, 0, 0x01, 0, 0, 0,
                                        0xfe, 0x03, 0, 0,  // total_pages = 511 * 2 = 1022
                                        0x03, 0x00, 0x01, 0x00}));
}

TEST(LinuxGolden, MemfdV2) {
  arena<12> a(u64{1} << 20, base);
  // Page 0: memfd_luo_ser; page 1: the vmalloc chunk; page 2: the folio array.
  const memfd_folio folios[] = {{pfn{0x100010}, 0}, {pfn{0x100011}, 2}};
  auto ser = write_memfd(a.pages(), memfd_file{0x10, 0x3000, memfd_seal_shrink | memfd_seal_write, folios, 2});
  ASSERT_TRUE(ser.has_value());
  EXPECT_EQ(ser->value, base);
  EXPECT_EQ(at(a, base, 48), (bytes{0x10, 0, 0, 0, 0, 0, 0, 0,              // pos
                                    0x00, 0x30, 0, 0, 0, 0, 0, 0,           // size
                                    0x0a, 0, 0, 0,                          // seals
                                    0, 0, 0, 0,                             // flags
                                    0x02, 0, 0, 0, 0, 0, 0, 0,              // nr_folios
                                    0x00, 0x10, 0, 0, 0x01, 0, 0, 0,        // folios.first
                                    0x01, 0, 0, 0, 0x01, 0x00, 0x00, 0x00}));  // total 1, VM_ALLOC, order 0
  EXPECT_EQ(at(a, base + 0x1000, 16), (bytes{0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x20, 0, 0, 0x01, 0, 0, 0}));
  // pfn | (DIRTY|UPTODATE) << 52, then the index.
  EXPECT_EQ(at(a, base + 0x2000, 32), (bytes{0x10, 0x00, 0x10, 0, 0, 0, 0x30, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
                                             0x11, 0x00, 0x10, 0, 0, 0, 0x30, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_TRUE(all_zero(a, base + 0x2000 + 32, 4096 - 32));
}

TEST(LinuxGolden, MemfdV1AndEmpty) {
  arena<12> a(u64{1} << 20, base);
  // UPTODATE alone (a clean folio): the encoding of one flag bit, which the writer
  // takes only when told the page's contents may be lost.
  const memfd_folio folios[] = {{pfn{0x2a}, 5, memfd_folio_uptodate}};
  memfd_file file{0, 0x6000, 0, folios, 1};
  EXPECT_EQ(write_memfd(a.pages(), file, memfd_version::v1).code(), errc::invalid_argument);
  file.clean_folios_may_be_dropped = true;
  auto ser = write_memfd(a.pages(), file, memfd_version::v1);
  ASSERT_TRUE(ser.has_value());
  EXPECT_EQ(at(a, base, 40), (bytes{0, 0, 0, 0, 0, 0, 0, 0,                  // pos
                                    0x00, 0x60, 0, 0, 0, 0, 0, 0,            // size
                                    0x01, 0, 0, 0, 0, 0, 0, 0,               // nr_folios @16
                                    0x00, 0x10, 0, 0, 0x01, 0, 0, 0,         // folios @24
                                    0x01, 0, 0, 0, 0x01, 0, 0, 0}));
  EXPECT_EQ(at(a, base + 0x2000, 16), (bytes{0x2a, 0, 0, 0, 0, 0, 0x20, 0x00, 0x05, 0, 0, 0, 0, 0, 0, 0}));
  // Size 0: no area, the descriptor stays zero.
  auto empty = write_memfd(a.pages(), memfd_file{}, memfd_version::v2);
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(all_zero(a, empty->value, 4096));
}

TEST(LinuxGolden, LuoV5) {
  arena<12> a(u64{1} << 20, base);
  // Page 0: luo_ser; 1: the FLB page; 2: the writer's session index (not on the wire);
  // 3: the session block; 4: vm's file block.
  auto w = luo_v5_writer<source>::create(a.pages(), 7);
  ASSERT_TRUE(w.has_value());
  ASSERT_TRUE(w->create_session("vm"));
  ASSERT_TRUE(w->preserve_file("vm", "memfd-v2", 0xdead000, 0x2a));
  ASSERT_TRUE(w->add_flb("iommufd", 0x5000, 2));
  EXPECT_EQ(w->blob().phys.value, base);
  EXPECT_EQ(w->blob().size, 32u);
  EXPECT_EQ(at(a, base, 32), (bytes{0x6c, 0x75, 0x6f, 0x2d, 0x76, 0x35, 0x00, 0x00,  // "luo-v5"
                                    0x07, 0, 0, 0, 0, 0, 0, 0,                       // liveupdate_num
                                    0x00, 0x30, 0, 0, 0x01, 0, 0, 0,                 // sessions_pa
                                    0x00, 0x10, 0, 0, 0x01, 0, 0, 0}));              // flbs_pa
  EXPECT_EQ(at(a, base + 0x3000, 16 + 80),
            cat({bytes{0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0},  // next 0, count 1
                 field("vm", 64),
                 bytes{0x00, 0x40, 0, 0, 0x01, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0}}));  // files, count
  EXPECT_EQ(at(a, base + 0x4000, 16 + 64),
            cat({bytes{0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0},
                 field("memfd-v2", 48),
                 bytes{0x00, 0xd0, 0xea, 0x0d, 0, 0, 0, 0, 0x2a, 0, 0, 0, 0, 0, 0, 0}}));  // data, token
  EXPECT_EQ(at(a, base + 0x1000, 16 + 64),
            cat({bytes{0x01, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0},  // pgcnt 1, count 1
                 field("iommufd", 48),
                 bytes{0x00, 0x50, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0}}));
  EXPECT_TRUE(all_zero(a, base + 0x3000 + 96, 4096 - 96));
}

TEST(LinuxGolden, LuoV5NoSessions) {
  arena<12> a(u64{1} << 20, base);
  auto w = luo_v5_writer<source>::create(a.pages(), 1);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(at(a, base, 32), (bytes{0x6c, 0x75, 0x6f, 0x2d, 0x76, 0x35, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0,
                                    0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x10, 0, 0, 0x01, 0, 0, 0}));
  EXPECT_EQ(at(a, base + 0x1000, 16), (bytes{0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
}

TEST(LinuxGolden, KexecMetadata) {
  arena<12> a(u64{1} << 20, base);
  auto blob = write_kexec_metadata(a.pages(), "6.20.0-kho", 5);
  ASSERT_TRUE(blob.has_value());
  EXPECT_EQ(blob->size, 73u);
  EXPECT_EQ(at(a, base, 73), cat({bytes{0x01, 0, 0, 0},
                                  bytes{0x36, 0x2e, 0x32, 0x30, 0x2e, 0x30, 0x2d, 0x6b, 0x68, 0x6f},
                                  bytes(55, 0),
                                  bytes{0x05, 0, 0, 0}}));
}

// The FDT: header (40 bytes, big-endian), reserve map at 48 (libfdt aligns it to its
// 16-byte entries) ending with one zero entry, structure block at 64, strings after
// it. libfdt's sequential writer puts each new property name in front of the earlier
// ones, so the strings read "size", "start", "compatible".
TEST(LinuxGolden, MemblockFdt) {
  arena<12> a(u64{1} << 20, base);
  const reserve_mem_region regions[] = {{"trace", phys_addr{0x1'0020'0000}, 0x4000}};
  auto blob = write_memblock(a.pages(), regions, 1);
  ASSERT_TRUE(blob.has_value());
  const bytes header{0xd0, 0x0d, 0xfe, 0xed,  // magic
                     0, 0, 0, 0xd2,           // totalsize 210
                     0, 0, 0, 0x40,           // off_dt_struct 64
                     0, 0, 0, 0xbc,           // off_dt_strings 188
                     0, 0, 0, 0x30,           // off_mem_rsvmap 48
                     0, 0, 0, 0x11,           // version 17
                     0, 0, 0, 0x10,           // last_comp_version 16
                     0, 0, 0, 0,              // boot_cpuid_phys
                     0, 0, 0, 0x16,           // size_dt_strings 22
                     0, 0, 0, 0x7c};          // size_dt_struct 124
  const bytes structure = cat({
      bytes{0, 0, 0, 1, 0, 0, 0, 0},                                  // BEGIN_NODE ""
      bytes{0, 0, 0, 3, 0, 0, 0, 0x0c, 0, 0, 0, 0x0b}, field("memblock-v1", 12),
      bytes{0, 0, 0, 1, 't', 'r', 'a', 'c', 'e', 0, 0, 0},            // BEGIN_NODE "trace"
      bytes{0, 0, 0, 3, 0, 0, 0, 0x0f, 0, 0, 0, 0x0b}, field("reserve-mem-v1", 16),
      bytes{0, 0, 0, 3, 0, 0, 0, 0x08, 0, 0, 0, 0x05, 0x00, 0x00, 0x20, 0x00, 0x01, 0, 0, 0},  // start (LE)
      bytes{0, 0, 0, 3, 0, 0, 0, 0x08, 0, 0, 0, 0x00, 0x00, 0x40, 0, 0, 0, 0, 0, 0},           // size (LE)
      bytes{0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 9}});                    // END_NODE x2, END
  ASSERT_EQ(structure.size(), 124u);
  const bytes strings = cat({field("size", 5), field("start", 6), field("compatible", 11)});
  EXPECT_EQ(blob->size, 210u);
  EXPECT_EQ(at(a, base, 210), cat({header, bytes(8 + 16, 0), structure, strings}));
}

}  // namespace
}  // namespace kho::test::linux_golden_test
