// A whole stock-kernel handover encoded here byte by byte from shared/LINUX-FORMATS.md,
// without any of kho's writers (libfdt builds the two device trees, as in the
// kernel): x86 setup_data and kho_data, the "kho-v4" root FDT, the radix tree with an
// order-1 key beside the order-0 ones, LUO luo-v5 (a session, a memfd-v2 file, an
// FLB), the memfd's vmalloc chunk and folio records, kexec-metadata, memblock with a
// reserve_mem region. kho must read it exactly (model::inspect_kho_fdt, the CLI's
// report) and refuse each corrupted variant by name. 4 KiB pages, memory [B, B + 64 pages).
//
//   page  0  setup_data + kho_data          page 12  kho_vmalloc chunk
//         1  root FDT                            13  folio records (3)
//      2-7   radix: root, L4, L3, L2, L1, leaf   14-16  the memfd's folios
//         8  luo_ser                             17  FLB page
//         9  session block                       18  kexec-metadata
//        10  file block                          19  memblock FDT
//        11  memfd_luo_ser                    20-21  reserve_mem "trace" (one order-1 key)
//    22-26   radix path of the order-1 key    32-63  scratch (kho_scratch array at 32)
#include <kho/linux/kho_fdt_check.hpp>
#include <kho/linux/x86_boot.hpp>
#include <kho/model/inspect_linux.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>
#include <libfdt.h>

#include <cstring>
#include <string>

namespace kho::test::linux_stock_handover_test {
namespace {

constexpr u64 B = u64{1} << 32;
constexpr u64 P = 4096;
constexpr u64 pages = 64;
constexpr u64 pg(u64 n) { return B + n * P; }

// The root's LUO node: its name, and whether an empty LUO (luo_ser at page 27, no
// sessions) comes first as "LUO@0".
struct root_nodes {
  const char* luo = "LUO";
  bool empty_luo_first = false;
};

struct stock_image {
  std::unique_ptr<model::physical_memory> pm =
      std::make_unique<model::physical_memory>(model::physical_memory::create(B, pages * P));
  unsigned char* at(u64 pa) { return static_cast<unsigned char*>(pm->virt()) + (pa - B); }
  void put64(u64 pa, u64 v) {
    for (int i = 0; i < 8; ++i) at(pa)[i] = static_cast<unsigned char>(v >> (8 * i));
  }
  void put32(u64 pa, u32 v) {
    for (int i = 0; i < 4; ++i) at(pa)[i] = static_cast<unsigned char>(v >> (8 * i));
  }
  void put_str(u64 pa, const char* s) { std::memcpy(at(pa), s, std::strlen(s)); }

  // Radix key of a block (Linux kho-v4, 4 KiB pages): (1 << (52 - order)) | pa >> (12 + order).
  static u64 key(u64 pa, unsigned order) { return (u64{1} << (52 - order)) | (pa >> (12 + order)); }
  // Sets `key`'s bit along the path root -> L4 -> L3 -> L2 -> L1 -> leaf given as pages.
  void set_key(u64 k, const u64 (&path)[6]) {
    for (unsigned level = 5; level >= 1; --level) {
      const u64 index = (k >> (15 + 9 * (level - 1))) & 511;
      put64(pg(path[5 - level]) + index * 8, pg(path[6 - level]));
    }
    const u64 bit = k & 0x7fff;
    at(pg(path[5]))[bit / 8] |= static_cast<unsigned char>(1u << (bit % 8));
  }

  explicit stock_image(root_nodes nodes = {}) {
    // The radix tree: order-0 keys for every preserved page, one order-1 key.
    const u64 path0[6] = {2, 3, 4, 5, 6, 7}, path1[6] = {2, 22, 23, 24, 25, 26};
    for (u64 p : {1, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}) set_key(key(pg(p), 0), path0);
    if (nodes.empty_luo_first) {
      set_key(key(pg(27), 0), path0);
      put_str(pg(27), "luo-v5");
      put64(pg(27) + 8, 3);  // liveupdate_num; no sessions, no FLBs
    }
    set_key(key(pg(20), 1), path1);

    // LUO: luo_ser, one session "vm" with one memfd-v2 file (token 42), the FLB page.
    put_str(pg(8), "luo-v5");
    put64(pg(8) + 8, 3);           // liveupdate_num
    put64(pg(8) + 16, pg(9));      // sessions_pa
    put64(pg(8) + 24, pg(17));     // flbs_pa
    put64(pg(9), 0);               // session block: next
    put64(pg(9) + 8, 1);           //                count
    put_str(pg(9) + 16, "vm");     // name[64]
    put64(pg(9) + 16 + 64, pg(10));  // file_set_ser.files
    put64(pg(9) + 16 + 72, 1);       // file_set_ser.count
    put64(pg(10), 0);
    put64(pg(10) + 8, 1);
    put_str(pg(10) + 16, "memfd-v2");  // compatible[48]
    put64(pg(10) + 16 + 48, pg(11));   // data
    put64(pg(10) + 16 + 56, 42);       // token
    put64(pg(17), 1);                  // FLB header: pgcnt
    put64(pg(17) + 8, 1);              //             count
    put_str(pg(17) + 16, "iommufd-v1");
    put64(pg(17) + 16 + 48, 0x5a5a);   // data: opaque
    put64(pg(17) + 16 + 56, 1);        // count of files using it

    // memfd-v2: 6 pages, folios at indices 0, 1 and 5; seals SEAL | GROW.
    put64(pg(11), 0);           // pos
    put64(pg(11) + 8, 6 * P);   // size
    put32(pg(11) + 16, 0x5);    // seals
    put32(pg(11) + 20, 0);      // flags
    put64(pg(11) + 24, 3);      // nr_folios
    put64(pg(11) + 32, pg(12)); // folios.first
    put32(pg(11) + 40, 1);      // folios.total_pages
    at(pg(11) + 44)[0] = 1;     // folios.flags = VM_ALLOC (u16), order 0 (u16)
    put64(pg(12), 0);           // chunk: next
    put64(pg(12) + 8, pg(13));  //        phys[0]
    const u64 index[3] = {0, 1, 5};
    for (u64 i = 0; i < 3; ++i) {
      put64(pg(13) + 16 * i, (pg(14 + i) >> 12) | (u64{3} << 52));  // pfn | DIRTY|UPTODATE << 52
      put64(pg(13) + 16 * i + 8, index[i]);
    }
    for (u64 i = 0; i < 3; ++i) put_str(pg(14 + i), "folio contents");

    // kexec-metadata version 1.
    put32(pg(18), 1);
    put_str(pg(18) + 4, "6.20.0-stock");
    put32(pg(18) + 69, 2);

    // memblock sub-FDT and the root FDT, with libfdt's sequential writer.
    unsigned char le[8];
    auto le64 = [&](u64 v) {
      for (int i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>(v >> (8 * i));
      return le;
    };
    void* mb = at(pg(19));
    EXPECT_EQ(fdt_create(mb, P), 0);
    EXPECT_EQ(fdt_finish_reservemap(mb), 0);
    EXPECT_EQ(fdt_begin_node(mb, ""), 0);
    EXPECT_EQ(fdt_property_string(mb, "compatible", "memblock-v1"), 0);
    EXPECT_EQ(fdt_begin_node(mb, "trace"), 0);
    EXPECT_EQ(fdt_property_string(mb, "compatible", "reserve-mem-v1"), 0);
    EXPECT_EQ(fdt_property(mb, "start", le64(pg(20)), 8), 0);
    EXPECT_EQ(fdt_property(mb, "size", le64(2 * P), 8), 0);
    EXPECT_EQ(fdt_end_node(mb), 0);
    EXPECT_EQ(fdt_end_node(mb), 0);
    EXPECT_EQ(fdt_finish(mb), 0);
    memblock_size = fdt_totalsize(mb);

    void* root = at(pg(1));
    EXPECT_EQ(fdt_create(root, P), 0);
    EXPECT_EQ(fdt_finish_reservemap(root), 0);
    EXPECT_EQ(fdt_begin_node(root, ""), 0);
    EXPECT_EQ(fdt_property_string(root, "compatible", "kho-v4"), 0);
    EXPECT_EQ(fdt_property(root, "preserved-memory-map", le64(pg(2)), 8), 0);
    auto subtree = [&](const char* name, u64 data, u64 size) {
      EXPECT_EQ(fdt_begin_node(root, name), 0);
      EXPECT_EQ(fdt_property(root, "preserved-data", le64(data), 8), 0);
      EXPECT_EQ(fdt_property(root, "blob-size", le64(size), 8), 0);
      EXPECT_EQ(fdt_end_node(root), 0);
    };
    if (nodes.empty_luo_first) subtree("LUO@0", pg(27), 32);
    subtree(nodes.luo, pg(8), 32);
    subtree("kexec-metadata", pg(18), 73);
    subtree("memblock", pg(19), memblock_size);
    EXPECT_EQ(fdt_end_node(root), 0);
    EXPECT_EQ(fdt_finish(root), 0);

    // The boot hand-off: setup_data at B, kho_scratch array at the start of scratch.
    put64(pg(0), 0);
    put32(pg(0) + 8, 10);      // SETUP_KEXEC_KHO
    put32(pg(0) + 12, 32);
    put64(pg(0) + 16, pg(1));  // fdt_addr
    put64(pg(0) + 24, P);      // fdt_size
    put64(pg(0) + 32, pg(32)); // scratch_addr
    put64(pg(0) + 40, 16);     // scratch_size
    put64(pg(32), pg(32));
    put64(pg(32) + 8, 32 * P);
  }

  nlohmann::json report() { return model::inspect_kho_fdt<12>(pm->memory(), phys_addr{pg(1)}, P, 100); }

  u64 memblock_size = 0;
};

std::string hex(u64 v) { return model::hex(v); }

TEST(LinuxStockHandover, ReadExactly) {
  stock_image img;
  const flat_memory mem = img.pm->memory();
  auto boot = upstream::find_kho_data(mem, phys_addr{B});
  ASSERT_TRUE(boot.has_value());
  EXPECT_TRUE(upstream::check_kho_boot(mem, *boot));

  const nlohmann::json j = img.report();
  ASSERT_EQ(j["status"], "ok") << j.dump(2);
  EXPECT_EQ(j["kernel"]["verdict"], "accepts") << j["kernel"].dump(2);
  // Every preserved block is reached: the trace region's through memblock's payload.
  EXPECT_EQ(j["orphans"]["count"], 0) << j["orphans"].dump();
  EXPECT_EQ(j["root"]["kho_sealed"], false);
  EXPECT_EQ(j["root"]["preserved_memory_map"], hex(pg(2)));
  const auto& ranges = j["preserved"]["ranges"];
  ASSERT_EQ(ranges.size(), 2u) << j["preserved"].dump();
  EXPECT_EQ(ranges[0], (nlohmann::json{hex(pg(1)), hex(P)}));
  EXPECT_EQ(ranges[1], (nlohmann::json{hex(pg(8)), hex(14 * P)}));
  ASSERT_EQ(j["subtrees"].size(), 3u);

  auto subtree = [&](const char* name) -> const nlohmann::json& {
    for (const auto& t : j["subtrees"])
      if (t["name"] == name) return t;
    ADD_FAILURE() << "no subtree " << name;
    return j;
  };
  const auto& luo = subtree("LUO");
  EXPECT_EQ(luo["format"], "luo-v5");
  EXPECT_EQ(luo["phys"], hex(pg(8)));
  const std::string luo_text = luo.dump();
  for (const std::string& want : {std::string("\"liveupdate_num\":3"), std::string("\"name\":\"vm\""),
                                  std::string("\"token\":42"), std::string("\"name\":\"iommufd-v1\""),
                                  std::string("\"nr_folios\":3"), std::string("\"seals\":5")})
    EXPECT_NE(luo_text.find(want), std::string::npos) << want << " in " << luo_text;
  for (u64 i : {u64{0}, u64{1}, u64{2}})
    EXPECT_NE(luo_text.find(hex(pg(14 + i) >> 12)), std::string::npos) << "folio " << i << " in " << luo_text;
  const std::string meta = subtree("kexec-metadata").dump();
  EXPECT_NE(meta.find("6.20.0-stock"), std::string::npos) << meta;
  EXPECT_NE(meta.find("\"kexec_count\":2"), std::string::npos) << meta;
  const std::string memblock = subtree("memblock").dump();
  EXPECT_NE(memblock.find("\"name\":\"trace\""), std::string::npos) << memblock;
  EXPECT_NE(memblock.find(hex(pg(20))), std::string::npos) << memblock;
}

// The kernel asks for "LUO" through libfdt's fdt_subnode_offset, which also takes
// "LUO@unit": a LUO written under a unit address is the LUO.
TEST(LinuxStockHandover, LuoUnderAUnitAddressIsReadAsLuo) {
  stock_image img({.luo = "LUO@0"});
  const nlohmann::json j = img.report();
  ASSERT_EQ(j["status"], "ok") << j.dump(2);
  ASSERT_EQ(j["subtrees"].size(), 3u);
  EXPECT_EQ(j["subtrees"][0]["name"], "LUO@0");
  EXPECT_EQ(j["subtrees"][0]["format"], "luo-v5");
  EXPECT_NE(j["subtrees"][0].dump().find("\"token\":42"), std::string::npos) << j["subtrees"][0].dump();
}

// An empty LUO as "LUO@0" before the real "LUO": the kernel's lookup takes the first,
// reads no session and loses every one. kho refuses the root (two names alike before
// their unit addresses) rather than read another LUO than the kernel would.
TEST(LinuxStockHandover, AnotherLuoBeforeTheRealOneIsRefused) {
  stock_image img({.empty_luo_first = true});
  const nlohmann::json j = img.report();
  EXPECT_EQ(j["status"], to_string(errc::duplicate)) << j.dump(2);
}

struct Corrupted : ::testing::Test {
  stock_image img;
  void expect(errc code, const char* structure) {
    const nlohmann::json j = img.report();
    EXPECT_EQ(j["status"], to_string(code)) << j.dump(2);
    if (j.contains("error")) {
      EXPECT_EQ(j["error"]["structure"], structure) << j["error"].dump();
    }
  }
  // Both verdicts: kho's status and a stock kernel's outcome.
  void expect_verdicts(const std::string& kho, model::kernel_outcome kernel) {
    const nlohmann::json j = img.report();
    EXPECT_EQ(j["status"], kho) << j.dump(2);
    EXPECT_EQ(j["kernel"]["verdict"], model::to_string(kernel)) << j["kernel"].dump(2);
  }
};

TEST_F(Corrupted, LuoCompatible) {
  img.at(pg(8))[5] = '4';  // "luo-v4" (raw, LINUX-FORMATS-NEXT.md 1.7): kho reads that
  // layout now; its files are 2-page arrays, so luo-v5's first file block reads as a
  // file record whose compatible is the block's header (empty): refused there.
  expect(errc::bad_string, "luo-files");
  img.at(pg(8))[5] = '6';  // no layout's string
  expect(errc::bad_compatible, "luo-v5");
}

TEST_F(Corrupted, SessionBlockCountZero) {
  img.put64(pg(9) + 8, 0);
  expect(errc::bad_count, "luo-v5-sessions");
}

TEST_F(Corrupted, FileCountDisagrees) {
  img.put64(pg(9) + 16 + 72, 2);
  expect(errc::bad_count, "luo-v5-sessions");
}

TEST_F(Corrupted, MemfdUnknownSeal) {
  img.put32(pg(11) + 16, 0x45);
  expect(errc::out_of_range, "memfd");
}

TEST_F(Corrupted, FolioNotPreserved) {
  // The third folio's bit (key & 0x7fff = page 16) cleared: the kernel's
  // kho_restore_folio would find no key there.
  img.at(pg(7))[16 / 8] &= static_cast<unsigned char>(~(1u << (16 % 8)));
  expect(errc::not_preserved, "memfd");
  EXPECT_EQ(img.report()["error"]["at"], hex(pg(16)));
}

TEST_F(Corrupted, FolioInsideALargerBlock) {
  // The folio record names the second page of the order-1 block: preserved, but no
  // key starts there.
  img.put64(pg(13) + 32, (pg(21) >> 12) | (u64{3} << 52));
  expect(errc::not_preserved, "memfd");
}

// A two-page folio: an order-1 block at pages 28-29 (free in the layout above).
struct OrderOneFolio : Corrupted {
  void SetUp() override { img.set_key(stock_image::key(pg(28), 1), {2, 22, 23, 24, 25, 26}); }
  void record(u64 i, u64 page, u64 index) {
    img.put64(pg(13) + 16 * i, (pg(page) >> 12) | (u64{3} << 52));
    img.put64(pg(13) + 16 * i + 8, index);
  }
};

TEST_F(OrderOneFolio, AtAnEvenIndexIsAccepted) {
  record(2, 28, 4);  // file pages 4 and 5
  const nlohmann::json j = img.report();
  EXPECT_EQ(j["status"], "ok") << j.dump(2);
}

TEST_F(OrderOneFolio, AtAnOddIndexIsMisaligned) {
  // The kernel adds it to the page cache at index 5 with two pages: shmem's
  // VM_BUG_ON on a misaligned large folio.
  record(2, 28, 5);
  expect(errc::misaligned, "memfd");
  EXPECT_EQ(img.report()["error"]["at"], hex(pg(28)));
  expect_verdicts(to_string(errc::misaligned), model::kernel_outcome::refuses);
}

TEST_F(OrderOneFolio, OverlappingTheNextRecordIsRefused) {
  // [0, 2) and then index 1: the kernel's second shmem_add_to_page_cache finds the
  // slot taken (-EEXIST), and memfd_luo_retrieve fails.
  record(0, 28, 0);
  expect(errc::already_exists, "memfd");
  EXPECT_EQ(img.report()["error"]["at"], hex(pg(15)));
  expect_verdicts(to_string(errc::already_exists), model::kernel_outcome::refuses);
  record(1, 15, 2);  // the next record moved past the folio: accepted
  const nlohmann::json j = img.report();
  EXPECT_EQ(j["status"], "ok") << j.dump(2);
}

TEST_F(Corrupted, FolioIsAStructurePage) {
  img.put64(pg(13) + 32, (pg(18) >> 12) | (u64{3} << 52));  // the kexec-metadata page
  const nlohmann::json j = img.report();
  EXPECT_EQ(j["status"], to_string(errc::aliased)) << j.dump(2);
}

TEST_F(Corrupted, TwoFilesShareTheMemfdState) {
  // A second session whose file names the same memfd_luo_ser: two owners of one page.
  img.put64(pg(9) + 8, 2);
  img.put_str(pg(9) + 16 + 80, "vm2");
  img.put64(pg(9) + 16 + 80 + 64, pg(10) + 0);  // the same file block, reached twice
  img.put64(pg(9) + 16 + 80 + 72, 1);
  const nlohmann::json j = img.report();
  EXPECT_NE(j["status"], "ok") << j.dump(2);
}

TEST_F(Corrupted, VmallocTotalPagesDisagree) {
  img.put32(pg(11) + 40, 2);
  expect(errc::bad_count, "memfd");
}

TEST_F(Corrupted, MetadataVersion) {
  img.put32(pg(18), 2);
  expect(errc::bad_version, "kexec-metadata");
  // The kernel boots on without it: kho is stricter.
  expect_verdicts(to_string(errc::bad_version), model::kernel_outcome::ignores);
}

TEST_F(Corrupted, RootCompatible) {
  ASSERT_EQ(fdt_setprop_inplace(img.at(pg(1)), 0, "compatible", "kho-v5", 7), 0);
  expect(errc::bad_version, "kho-fdt");
  expect_verdicts(to_string(errc::bad_version), model::kernel_outcome::refuses);
}

// Rows of issue 19's table, each with kho's verdict and a stock kernel's.

TEST_F(Corrupted, OlderRootVersionReadByKhoRefusedByTheKernel) {
  // kho-v3 has kho-v4's properties: kho reads it, a kho-v4 kernel does a cold boot.
  ASSERT_EQ(fdt_setprop_inplace(img.at(pg(1)), 0, "compatible", "kho-v3", 7), 0);
  expect_verdicts("ok", model::kernel_outcome::refuses);
  EXPECT_NE(img.report()["kernel"]["findings"][0]["what"].get<std::string>().find("kho-v3"), std::string::npos);
}

TEST_F(Corrupted, FileHandlerTheKernelLacks) {
  img.put_str(pg(10) + 16, "memfd-v9");  // kho carries it opaque; the kernel: -ENOENT
  expect_verdicts("ok", model::kernel_outcome::refuses);
  const nlohmann::json k = img.report()["kernel"];
  EXPECT_EQ(k["findings"][0]["structure"], "luo-v5-file") << k.dump(2);
}

TEST_F(Corrupted, CleanFolioLosesItsData) {
  img.put64(pg(13) + 16, (pg(15) >> 12) | (u64{2} << 52));  // the second folio: UPTODATE only
  expect_verdicts("ok", model::kernel_outcome::loses_data);
  const nlohmann::json k = img.report()["kernel"];
  EXPECT_EQ(k["findings"][0]["structure"], "memfd") << k.dump(2);
  EXPECT_NE(k["findings"][0]["what"].get<std::string>().find("index 1"), std::string::npos) << k.dump(2);
}

TEST_F(Corrupted, VmallocFlagsTheKernelMasks) {
  img.at(pg(11) + 44)[0] = 4;  // kho_vmalloc.flags: an undefined bit
  expect_verdicts(to_string(errc::reserved_nonzero), model::kernel_outcome::accepts);
}

// A preserved page no structure reaches: kho's check has nothing to refuse, a stock
// kernel keeps it reserved for good (row 6 of issue 19).
TEST_F(Corrupted, PreservedPageNothingReaches) {
  img.set_key(stock_image::key(pg(27), 0), {2, 3, 4, 5, 6, 7});
  expect_verdicts("ok", model::kernel_outcome::loses_data);
  const nlohmann::json j = img.report();
  EXPECT_EQ(j["orphans"]["count"], 1) << j["orphans"].dump();
  EXPECT_EQ(j["orphans"]["pages"], 1) << j["orphans"].dump();
  EXPECT_EQ(j["orphans"]["first"][0], (nlohmann::json{hex(pg(27)), 0})) << j["orphans"].dump();
}

// Where kho is stricter than the kernel, both verdicts: kho refuses, the kernel
// accepts (LINUX-FORMATS.md's reader rules).
TEST_F(Corrupted, FolioRecordWithPfnZero) {
  img.put64(pg(13) + 16, u64{3} << 52);  // the kernel skips it
  expect_verdicts(to_string(errc::out_of_range), model::kernel_outcome::accepts);
}

TEST_F(Corrupted, FolioFlagBitsBeyondDirtyAndUptodate) {
  img.put64(pg(13) + 16, (pg(15) >> 12) | (u64{0x7} << 52));
  expect_verdicts(to_string(errc::reserved_nonzero), model::kernel_outcome::accepts);
}

TEST_F(Corrupted, SessionNameWithoutItsNul) {
  std::memset(img.at(pg(9) + 16), 'v', 64);
  expect_verdicts(to_string(errc::bad_string), model::kernel_outcome::accepts);
}

TEST_F(Corrupted, FileTokenTwiceInASession) {
  // A second file with token 42 (memfd-v2, no state: nothing to claim): the kernel
  // does not check tokens again on the incoming side.
  img.put64(pg(9) + 16 + 72, 2);   // file_set_ser.count
  img.put64(pg(10) + 8, 2);        // the file block's count
  img.put_str(pg(10) + 16 + 64, "memfd-v2");
  img.put64(pg(10) + 16 + 64 + 56, 42);
  expect_verdicts(to_string(errc::duplicate), model::kernel_outcome::accepts);
  EXPECT_EQ(img.report()["error"]["structure"], "luo-v5-files");
}

// The session block moved to a page the map does not preserve (page 28, outside
// scratch): kho_block_set_restore reads blocks without asking whether they were
// preserved, so the kernel reads a page it freed at boot.
TEST_F(Corrupted, SessionBlockOnAPageNotPreserved) {
  std::memcpy(img.at(pg(28)), img.at(pg(9)), P);
  img.put64(pg(8) + 16, pg(28));  // sessions_pa
  expect_verdicts(to_string(errc::not_preserved), model::kernel_outcome::loses_data);
  EXPECT_EQ(img.report()["error"]["structure"], "luo-v5");
  EXPECT_EQ(img.report()["error"]["at"], hex(pg(28)));
}

TEST_F(Corrupted, SessionNameTwice) {
  // A second, empty session called "vm": the kernel's insert at first open is -EEXIST.
  img.put64(pg(9) + 8, 2);
  img.put_str(pg(9) + 16 + 80, "vm");
  expect_verdicts(to_string(errc::duplicate), model::kernel_outcome::refuses);
}

// One structure failing: the root and the map hold, so each subtree stands or falls on
// its own (check_kho_fdt_each), and the report says which.
TEST_F(Corrupted, OneStructureFallsTheOthersStand) {
  img.put32(pg(18), 2);  // kexec-metadata version 2
  const flat_memory mem = img.pm->memory();
  model::scratch_pages<> scratch(mem);
  auto view = upstream::kho_fdt_view<flat_memory>::attach(mem, phys_addr{pg(1)});
  ASSERT_TRUE(view.has_value());
  std::vector<std::pair<std::string, errc>> seen;
  const status fatal = upstream::check_kho_fdt_each(
      *view, scratch.pages(), [&](const upstream::kho_subtree& t, const error& e) { seen.emplace_back(t.name, e.code); });
  ASSERT_TRUE(fatal) << to_string(fatal.code());
  const std::vector<std::pair<std::string, errc>> want = {
      {"kexec-metadata", errc::bad_version}, {"LUO", errc::ok}, {"memblock", errc::ok}};
  EXPECT_EQ(seen, want);

  const nlohmann::json j = img.report();
  EXPECT_EQ(j["status"], to_string(errc::bad_version));
  for (const auto& t : j["subtrees"]) {
    EXPECT_EQ(t["stands"], t["name"] != "kexec-metadata") << t.dump();
    if (t["name"] == "kexec-metadata") {
      EXPECT_EQ(t["check_error"]["error"], to_string(errc::bad_version)) << t.dump();
    }
  }
  EXPECT_NE(model::format_kho_fdt_report(j).find("falls on its own"), std::string::npos);
}

// What a next kernel built on kho gets: the subtrees that stand, and for a fallen one
// the error it fell with; the caller decides (here it boots on without kexec-metadata).
TEST_F(Corrupted, AttachEachSaysWhatStands) {
  img.put32(pg(18), 2);  // kexec-metadata version 2
  const flat_memory mem = img.pm->memory();
  model::scratch_pages<> scratch(mem);
  ASSERT_EQ(upstream::attach_kho_handover(mem, phys_addr{pg(1)}, scratch.pages()).code(), errc::bad_version);
  auto h = upstream::attach_kho_handover_each(mem, phys_addr{pg(1)}, scratch.pages());
  ASSERT_TRUE(h.has_value()) << to_string(h.code());
  EXPECT_EQ(h->fallen_count(), 1u);
  EXPECT_EQ(h->find("kexec-metadata").code(), errc::bad_version);
  EXPECT_EQ(h->find("kexec-metadata").err().loc.at, phys_addr{pg(18)});
  ASSERT_TRUE(h->find("LUO").has_value());
  EXPECT_EQ(h->find("LUO")->phys, phys_addr{pg(8)});
  EXPECT_TRUE(h->find("memblock").has_value());
  EXPECT_EQ(h->find("hugetlb").code(), errc::not_found);
  EXPECT_EQ(std::string(h->begin_fallen()->name), "kexec-metadata");
}

// A root of many subtrees that all fail: up to max_failed_subtrees the others stand
// (here none is left), one more and the handover is refused whole, so the per-structure
// check runs a bounded number of passes.
TEST_F(Corrupted, AttachEachRefusesPastItsFailureBudget) {
  const flat_memory mem = img.pm->memory();
  model::scratch_pages<> scratch(mem);
  for (unsigned bad : {upstream::max_failed_subtrees, upstream::max_failed_subtrees + 1}) {
    void* root = img.at(pg(1));
    std::memset(root, 0, P);
    ASSERT_EQ(fdt_create(root, P), 0);
    ASSERT_EQ(fdt_finish_reservemap(root), 0);
    ASSERT_EQ(fdt_begin_node(root, ""), 0);
    ASSERT_EQ(fdt_property_string(root, "compatible", "kho-v4"), 0);
    unsigned char le[8];
    for (int i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>(pg(2) >> (8 * i));
    ASSERT_EQ(fdt_property(root, "preserved-memory-map", le, 8), 0);
    for (unsigned i = 0; i < bad; ++i) {
      const std::string name = "blob" + std::to_string(i);
      ASSERT_EQ(fdt_begin_node(root, name.c_str()), 0);
      for (int b = 0; b < 8; ++b) le[b] = static_cast<unsigned char>((pg(28) + 64 * i) >> (8 * b));  // not preserved
      ASSERT_EQ(fdt_property(root, "preserved-data", le, 8), 0);
      for (int b = 0; b < 8; ++b) le[b] = static_cast<unsigned char>(u64{64} >> (8 * b));
      ASSERT_EQ(fdt_property(root, "blob-size", le, 8), 0);
      ASSERT_EQ(fdt_end_node(root), 0);
    }
    ASSERT_EQ(fdt_end_node(root), 0);
    ASSERT_EQ(fdt_finish(root), 0);
    auto h = upstream::attach_kho_handover_each(mem, phys_addr{pg(1)}, scratch.pages());
    if (bad == upstream::max_failed_subtrees) {
      ASSERT_TRUE(h.has_value()) << to_string(h.code());
      EXPECT_EQ(h->fallen_count(), bad);
      EXPECT_EQ(h->find("blob3").code(), errc::not_preserved);
    } else {
      EXPECT_EQ(h.code(), errc::budget_exceeded);
    }
  }
}

TEST_F(OrderOneFolio, AMisalignedFolioSinksLuoAlone) {
  record(2, 28, 5);
  const nlohmann::json j = img.report();
  for (const auto& t : j["subtrees"]) EXPECT_EQ(t["stands"], t["name"] != "LUO") << t.dump();
}

TEST_F(Corrupted, ABrokenMapSinksEverything) {
  unsigned char le[8];
  for (int i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>((pg(2) + 8) >> (8 * i));
  ASSERT_EQ(fdt_setprop_inplace(img.at(pg(1)), 0, "preserved-memory-map", le, 8), 0);  // misaligned
  const flat_memory mem = img.pm->memory();
  model::scratch_pages<> scratch(mem);
  auto view = upstream::kho_fdt_view<flat_memory>::attach(mem, phys_addr{pg(1)});
  ASSERT_TRUE(view.has_value());
  u64 reported = 0;
  const status fatal =
      upstream::check_kho_fdt_each(*view, scratch.pages(), [&](const upstream::kho_subtree&, const error&) { ++reported; });
  EXPECT_FALSE(fatal);
  EXPECT_EQ(reported, 0u);
  const nlohmann::json j = img.report();  // held: a range-for over a temporary's member dangles
  for (const auto& t : j["subtrees"]) EXPECT_FALSE(t.contains("stands")) << t.dump();
}

TEST(KernelVerdict, SetupDataLongerThanKhoData) {
  stock_image img;
  img.put32(pg(0) + 12, 40);  // len 40: the kernel reads the first 32 bytes
  auto boot = upstream::find_kho_data(img.pm->memory(), phys_addr{B});
  ASSERT_EQ(boot.code(), errc::bad_count);
  model::kernel_verdict v;
  model::kernel_on_refusal(v, boot.err(), img.pm->memory());
  EXPECT_EQ(v.outcome(), model::kernel_outcome::accepts);
  img.put32(pg(0) + 12, 24);  // shorter: the kernel reads past the node, not derived
  boot = upstream::find_kho_data(img.pm->memory(), phys_addr{B});
  model::kernel_verdict shorter;
  model::kernel_on_refusal(shorter, boot.err(), img.pm->memory());
  EXPECT_EQ(shorter.outcome(), model::kernel_outcome::not_modelled);
}

TEST(KernelVerdict, SetupDataCycleHangsTheKernel) {
  stock_image img;
  img.put64(pg(0), pg(0));  // the KHO node's next: itself
  auto boot = upstream::find_kho_data(img.pm->memory(), phys_addr{B});
  ASSERT_EQ(boot.code(), errc::cycle);
  model::kernel_verdict v;
  model::kernel_on_refusal(v, boot.err());
  EXPECT_EQ(v.outcome(), model::kernel_outcome::hangs);
}

TEST_F(Corrupted, LuoBlobSizeShort) {
  unsigned char le[8] = {16};
  ASSERT_EQ(fdt_setprop_inplace(img.at(pg(1)), fdt_subnode_offset(img.at(pg(1)), 0, "LUO"), "blob-size", le, 8), 0);
  expect(errc::bad_count, "luo-v5");
}

// kho_data and the map as the next kernel takes them (both valid in these tests), then
// the scratch check.
status check_scratch(stock_image& img) {
  const flat_memory mem = img.pm->memory();
  auto boot = upstream::find_kho_data(mem, phys_addr{B});
  if (!boot) return boot.err();
  KHO_TRY(upstream::check_kho_boot(mem, *boot));
  model::scratch_pages<> scratch(mem);
  auto root = upstream::attach_kho_handover(mem, phys_addr{pg(1)}, scratch.pages());
  if (!root) return root.err();
  std::vector<u64> nodes(64);
  auto map = attach_preserve_bitmap(mem, root->memory_map(), scratch.pages(), std::span<u64>(nodes));
  if (!map) return map.err();
  return upstream::check_scratch_unpreserved(mem, boot->data, *map);
}

TEST_F(Corrupted, ScratchOverPreservedMemory) {
  img.put64(pg(32), pg(8));  // scratch now starts on luo_ser
  const status s = check_scratch(img);
  ASSERT_EQ(s.code(), errc::aliased);
  EXPECT_STREQ(s.err().loc.structure, "kho_scratch");
  EXPECT_EQ(s.err().other.at, phys_addr{pg(8)});
  // The kernel allocates from scratch at once: the preserved page is overwritten.
  model::kernel_verdict v;
  model::kernel_on_refusal(v, s.err(), img.pm->memory());
  EXPECT_EQ(v.outcome(), model::kernel_outcome::loses_data) << v.json().dump(2);
}

// The map's own pages (the upstream tree does not preserve them) inside scratch: the
// next kernel allocates from scratch before it walks the tree, so it could hand out
// a page the walk still needs. Scratch over pages 22-26 (the order-1 key's path).
TEST_F(Corrupted, ScratchOverTheMapsOwnPages) {
  img.put64(pg(32), pg(22));
  img.put64(pg(32) + 8, 5 * P);
  const status s = check_scratch(img);
  EXPECT_EQ(s.code(), errc::aliased);
  EXPECT_STREQ(s.err().loc.structure, "kho_scratch");
  EXPECT_STREQ(s.err().other.structure, "radix");
  EXPECT_EQ(s.err().other.at, phys_addr{pg(22)});
  img.put64(pg(32), pg(27));  // one page past the path: clear
  img.put64(pg(32) + 8, P);
  EXPECT_TRUE(check_scratch(img));
}

}  // namespace
}  // namespace kho::test::linux_stock_handover_test
