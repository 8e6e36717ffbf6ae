// Linux's LUO state ("luo-v5"): round trips at 4, 16 and 64 KiB pages, the writer's
// caps, retrieve-once, page claims, and every reader check refused with its errc and
// location after tampering (luo-v5 has no checksum, so tampering needs no re-seal).
#include <kho/linux/luo_v5.hpp>
#include <kho/page_owners.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace kho::test::linux_luo_v5_test {
namespace {

using namespace kho::upstream;

template <class Shift>
class LuoV5RoundTrip : public ::testing::Test {};
using shifts = ::testing::Types<std::integral_constant<unsigned, 12>, std::integral_constant<unsigned, 14>,
                                std::integral_constant<unsigned, 16>>;
TYPED_TEST_SUITE(LuoV5RoundTrip, shifts);

TYPED_TEST(LuoV5RoundTrip, SessionsFilesFlbs) {
  constexpr unsigned shift = TypeParam::value;
  using source = typename arena<shift>::source_type;
  arena<shift> a(u64{64} << 20);
  arena<shift> scratch(u64{16} << 20, u64{1} << 44);
  auto w = luo_v5_writer<source, shift>::create(a.pages(), 42);
  ASSERT_TRUE(w.has_value());
  // More sessions and files than one block holds at every page size.
  const u64 sessions = block_capacity<luo_session_ser, shift> + 3;
  const u64 files = block_capacity<luo_file_ser, shift> + 2;
  for (u64 s = 0; s < sessions; ++s) {
    const std::string name = "session-" + std::to_string(s);
    ASSERT_TRUE(w->create_session(name.c_str()));
    for (u64 f = 0; f < (s == 0 ? files : s % 3); ++f)
      ASSERT_TRUE(w->preserve_file(name.c_str(), "memfd-v2", 0x1000 * f, f * 10 + s));
  }
  ASSERT_TRUE(w->add_flb("liveupdate-test-flb-v1", 0xabc, 3));
  ASSERT_TRUE(w->add_flb("liveupdate-test-flb-v2", 0xdef, 0));

  auto v = attach_luo_v5<shift>(a.remap(), w->blob().phys, scratch.pages());
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  EXPECT_EQ(v->liveupdate_num(), 42u);
  EXPECT_EQ(v->session_count(), sessions);
  EXPECT_EQ(v->flb_count(), 2u);
  u64 s = 0, total = 0;
  for (const luo_session_ser& e : v->sessions()) {
    EXPECT_EQ(std::string(e.name), "session-" + std::to_string(s));
    u64 f = 0;
    for (const luo_file_ser& file : v->files(e)) {
      EXPECT_STREQ(file.compatible, "memfd-v2");
      EXPECT_EQ(file.token.get(), f * 10 + s);
      EXPECT_EQ(file.data.get(), 0x1000 * f);
      ++f;
    }
    EXPECT_EQ(f, s == 0 ? files : s % 3);
    total += f;
    ++s;
  }
  EXPECT_EQ(v->file_count(), total);
  EXPECT_EQ((*v->find_flb("liveupdate-test-flb-v1"))->data.get(), 0xabcu);
  EXPECT_EQ((*v->find_flb("liveupdate-test-flb-v2"))->count.get(), 0u);
  EXPECT_EQ(v->find_flb("nope").code(), errc::not_found);

  page_owners<source, shift> owners(scratch.pages());
  ASSERT_TRUE(v->claim_pages(owners));
  EXPECT_EQ(owners.size(), 2 + v->block_count());  // luo_ser, FLB page, every block
  v->release();
}

using source = arena<12>::source_type;
using view = luo_v5_view<flat_memory, source>;

TEST(LuoV5, RetrieveOnce) {
  arena<12> a(u64{8} << 20);
  arena<12> scratch(u64{8} << 20, u64{1} << 44);
  auto w = luo_v5_writer<source>::create(a.pages(), 1);
  ASSERT_TRUE(w->create_session("vm"));
  ASSERT_TRUE(w->create_session("empty"));
  ASSERT_TRUE(w->preserve_file("vm", "memfd-v2", 0x5000, 7));
  auto v = attach_luo_v5(a.remap(), w->blob().phys, scratch.pages());
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->retrieve_file("vm", 7).code(), errc::not_found);  // session not retrieved yet
  ASSERT_TRUE(v->retrieve_session("vm"));
  EXPECT_EQ(v->retrieve_session("vm").code(), errc::already_retrieved);
  EXPECT_EQ(v->retrieve_file("vm", 8).code(), errc::not_found);
  auto f = v->retrieve_file("vm", 7);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ((*f)->data.get(), 0x5000u);
  auto again = v->retrieve_file("vm", 7);
  EXPECT_EQ(again.code(), errc::already_retrieved);
  EXPECT_STREQ(again.err().loc.structure, "luo-v5-files");
  EXPECT_TRUE(*v->file_retrieved("vm", 7));
  EXPECT_FALSE(*v->session_retrieved("empty"));
  EXPECT_EQ(v->retrieve_session("nope").code(), errc::not_found);
  v->release();
}

TEST(LuoV5, WriterRefuses) {
  arena<12> a(u64{8} << 20);
  auto w = luo_v5_writer<source>::create(a.pages(), 1);
  EXPECT_EQ(w->create_session("").code(), errc::bad_string);
  EXPECT_EQ(w->create_session(std::string(64, 'x').c_str()).code(), errc::bad_string);
  ASSERT_TRUE(w->create_session(std::string(63, 'x').c_str()));
  ASSERT_TRUE(w->create_session("vm"));
  EXPECT_EQ(w->create_session("vm").code(), errc::already_exists);
  EXPECT_EQ(w->preserve_file("db", "memfd-v2", 0, 1).code(), errc::not_found);
  ASSERT_TRUE(w->preserve_file("vm", "memfd-v2", 0, 1));
  EXPECT_EQ(w->preserve_file("vm", "memfd-v2", 0, 1).code(), errc::already_exists);
  EXPECT_EQ(w->preserve_file("vm", std::string(48, 'c').c_str(), 0, 2).code(), errc::bad_string);
  for (u64 i = 0; i < 63; ++i) ASSERT_TRUE(w->add_flb(("flb-" + std::to_string(i)).c_str(), i, 1));
  EXPECT_EQ(w->add_flb("flb-0", 0, 1).code(), errc::already_exists);
  EXPECT_EQ(w->add_flb("flb-63", 0, 1).code(), errc::table_full);
}

TEST(LuoV5, WriterHonoursTheBlockCap) {
  arena<12> a(u64{8} << 20);
  auto w = luo_v5_writer<source>::create(a.pages(), 1, luo_v5_limits{2});
  for (u64 i = 0; i < 102; ++i) ASSERT_TRUE(w->create_session(("s" + std::to_string(i)).c_str()));
  EXPECT_EQ(w->create_session("one-too-many").code(), errc::table_full);  // 2 blocks of 51
  for (u64 t = 0; t < 126; ++t) ASSERT_TRUE(w->preserve_file("s0", "memfd-v2", 0, t));
  EXPECT_EQ(w->preserve_file("s0", "memfd-v2", 0, 126).code(), errc::table_full);  // 2 blocks of 63
}

// A sealed-looking image: three sessions, "vm" with 70 files (two blocks), one FLB.
struct luo_image {
  arena<12> mem{u64{16} << 20};
  arena<12> scratch{u64{16} << 20, u64{1} << 44};
  phys_addr root{};

  luo_image() {
    auto w = luo_v5_writer<source>::create(mem.pages(), 9);
    EXPECT_TRUE(w->create_session("vm"));
    EXPECT_TRUE(w->create_session("db"));
    EXPECT_TRUE(w->create_session("web"));
    for (u64 t = 0; t < 70; ++t) EXPECT_TRUE(w->preserve_file("vm", "memfd-v2", 0x1000, t));
    EXPECT_TRUE(w->preserve_file("db", "memfd-v2", 0x1000, 1));
    EXPECT_TRUE(w->add_flb("iommufd", 0x9000, 1));
    root = w->blob().phys;
  }
  luo_ser& r() { return *reinterpret_cast<luo_ser*>(mem.bytes(root)); }
  phys_addr sessions_block() { return phys_addr{r().sessions_pa.get()}; }
  block_header& header(phys_addr block) { return *reinterpret_cast<block_header*>(mem.bytes(block)); }
  luo_session_ser& session(u64 i) {
    return reinterpret_cast<luo_session_ser*>(mem.bytes(sessions_block()) + 16)[i];
  }
  phys_addr session_pa(u64 i) { return sessions_block() + 16 + i * 80; }
  phys_addr files_block(u64 s) { return phys_addr{session(s).file_set_ser.files.get()}; }
  luo_file_ser& file(u64 s, u64 i) { return reinterpret_cast<luo_file_ser*>(mem.bytes(files_block(s)) + 16)[i]; }
  phys_addr file_pa(u64 s, u64 i) { return files_block(s) + 16 + i * 64; }
  phys_addr flb_page() { return phys_addr{r().flbs_pa.get()}; }
  luo_flb_header_ser& flb_header() { return *reinterpret_cast<luo_flb_header_ser*>(mem.bytes(flb_page())); }
  luo_flb_ser& flb(u64 i) { return reinterpret_cast<luo_flb_ser*>(mem.bytes(flb_page()) + 16)[i]; }

  result<view> attach(u64 blob = 32, const luo_v5_limits& limits = {}) {
    return attach_luo_v5(mem.memory(), root, scratch.pages(), blob, limits);
  }
  void expect(errc code, const char* structure, phys_addr where, u32 depth, u64 blob = 32,
              const luo_v5_limits& limits = {}) {
    auto v = attach(blob, limits);
    ASSERT_EQ(v.code(), code) << to_string(v.code());
    EXPECT_STREQ(v.err().loc.structure, structure);
    EXPECT_EQ(v.err().loc.at, where);
    EXPECT_EQ(v.err().loc.depth, depth);
  }
};

TEST(LuoV5Corrupt, Clean) {
  luo_image m;
  auto v = m.attach();
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->file_count(), 71u);
  v->release();
}

TEST(LuoV5Corrupt, BlobTooSmall) {
  luo_image m;
  m.expect(errc::bad_count, "luo-v5", m.root, 0, 31);
}

TEST(LuoV5Corrupt, MisalignedAndOutside) {
  luo_image m;
  m.root = m.root + 8;
  m.expect(errc::misaligned, "luo-v5", m.root, 0);
  m.root = phys_addr{u64{1} << 50};
  m.expect(errc::out_of_bounds, "luo-v5", m.root, 0);
}

TEST(LuoV5Corrupt, Compatible) {
  luo_image m;
  m.r().compatible[5] = '4';  // "luo-v4"
  m.expect(errc::bad_compatible, "luo-v5", m.root, 0);
  m.r().compatible[5] = '5';
  m.r().compatible[7] = 'x';  // the kernel's strncmp stops at the NUL; kho wants zeros
  m.expect(errc::reserved_nonzero, "luo-v5", m.root, 0);
  std::memcpy(m.r().compatible, "luo-v5;b", 8);  // no NUL
  m.expect(errc::bad_compatible, "luo-v5", m.root, 0);
}

TEST(LuoV5Corrupt, BlockCountZeroAndOverCapacity) {
  luo_image m;
  m.header(m.sessions_block()).count.set(0);
  m.expect(errc::bad_count, "luo-v5-sessions", m.sessions_block(), 1);
  m.header(m.sessions_block()).count.set(52);
  m.expect(errc::bad_count, "luo-v5-sessions", m.sessions_block(), 1);
  m.header(m.sessions_block()).count.set(3);
  m.header(m.files_block(0)).count.set(64);
  m.expect(errc::bad_count, "luo-v5-files", m.files_block(0), 2);
}

TEST(LuoV5Corrupt, MisalignedOrOutsideBlock) {
  luo_image m;
  m.r().sessions_pa.set(m.sessions_block().value + 16);
  m.expect(errc::misaligned, "luo-v5-sessions", phys_addr{m.r().sessions_pa.get()}, 1);
  m.r().sessions_pa.set(u64{1} << 50);
  m.expect(errc::out_of_bounds, "luo-v5-sessions", phys_addr{u64{1} << 50}, 1);
}

TEST(LuoV5Corrupt, FileCountDisagrees) {
  luo_image m;
  m.session(0).file_set_ser.count.set(69);
  m.expect(errc::bad_count, "luo-v5-sessions", m.session_pa(0), 1);
  // files == 0 with a count: the kernel only warns; kho refuses.
  m.session(0).file_set_ser.count.set(70);
  m.session(2).file_set_ser.count.set(1);
  m.expect(errc::bad_count, "luo-v5-sessions", m.session_pa(2), 1);
}

TEST(LuoV5Corrupt, BlockCapPerSet) {
  luo_image m;
  const phys_addr second{m.header(m.files_block(0)).next.get()};
  m.expect(errc::budget_exceeded, "luo-v5-files", second, 2, 32, luo_v5_limits{1});
}

TEST(LuoV5Corrupt, CycleInOneSet) {
  luo_image m;
  const phys_addr second{m.header(m.files_block(0)).next.get()};
  m.header(second).next.set(m.files_block(0).value);
  m.session(0).file_set_ser.count.set(~u64{0});
  m.expect(errc::cycle, "luo-v5-files", m.files_block(0), 2);
}

TEST(LuoV5Corrupt, BlockSharedBetweenSets) {
  luo_image m;
  // db's files point at vm's first file block.
  m.session(1).file_set_ser.files.set(m.files_block(0).value);
  m.expect(errc::cycle, "luo-v5-files", m.files_block(0), 2);
}

TEST(LuoV5Corrupt, SessionBlockIsTheRootOrTheFlbPage) {
  luo_image m;
  m.session(2).file_set_ser.files.set(m.root.value);  // luo_ser: count field is liveupdate_num = 9
  m.session(2).file_set_ser.count.set(9);
  m.expect(errc::cycle, "luo-v5-files", m.root, 2);
  luo_image n;
  n.r().flbs_pa.set(n.sessions_block().value);
  n.expect(errc::cycle, "luo-v5-flbs", n.sessions_block(), 1);
}

TEST(LuoV5Corrupt, SessionNames) {
  luo_image m;
  std::memset(m.session(1).name, 'a', 64);
  m.expect(errc::bad_string, "luo-v5-sessions", m.session_pa(1), 1);
  std::memset(m.session(1).name, 0, 64);
  m.expect(errc::bad_string, "luo-v5-sessions", m.session_pa(1), 1);
}

TEST(LuoV5Corrupt, DuplicateSessionName) {
  luo_image m;
  std::memcpy(m.session(2).name, "vm\0stale", 8);  // equal up to the NUL, as strncmp sees it
  m.expect(errc::duplicate, "luo-v5-sessions", m.session_pa(2), 1);
}

TEST(LuoV5Corrupt, StaleBytesAfterANameAreIgnored) {
  luo_image m;
  std::memcpy(m.session(1).name, "db\0stale", 8);
  auto v = m.attach();
  ASSERT_TRUE(v.has_value());
  EXPECT_TRUE(v->retrieve_session("db"));
  v->release();
}

TEST(LuoV5Corrupt, FileCompatible) {
  luo_image m;
  std::memset(m.file(0, 5).compatible, 'm', 48);
  m.expect(errc::bad_string, "luo-v5-files", m.file_pa(0, 5), 2);
}

TEST(LuoV5Corrupt, DuplicateToken) {
  luo_image m;
  m.file(0, 9).token.set(3);
  m.expect(errc::duplicate, "luo-v5-files", m.file_pa(0, 9), 2);
}

TEST(LuoV5Corrupt, SameTokenInTwoSessionsIsFine) {
  luo_image m;
  m.file(0, 1).token.set(1);  // vm/1 and db/1
  m.file(0, 0).token.set(100);
  auto v = m.attach();
  ASSERT_TRUE(v.has_value());
  v->release();
}

TEST(LuoV5Corrupt, FlbPage) {
  luo_image m;
  m.r().flbs_pa.set(m.flb_page().value + 64);
  m.expect(errc::misaligned, "luo-v5-flbs", phys_addr{m.r().flbs_pa.get()}, 1);
  m.r().flbs_pa.set(u64{1} << 50);
  m.expect(errc::out_of_bounds, "luo-v5-flbs", phys_addr{u64{1} << 50}, 1);
}

TEST(LuoV5Corrupt, FlbHeader) {
  luo_image m;
  m.flb_header().pgcnt.set(2);
  m.expect(errc::bad_count, "luo-v5-flbs", m.flb_page(), 1);
  m.flb_header().pgcnt.set(1);
  m.flb_header().count.set(64);
  m.expect(errc::bad_count, "luo-v5-flbs", m.flb_page(), 1);
}

TEST(LuoV5Corrupt, FlbNames) {
  luo_image m;
  m.flb_header().count.set(2);
  m.expect(errc::bad_string, "luo-v5-flbs", m.flb_page() + 16 + 64, 1);  // entry 1 is all zero
  std::memcpy(m.flb(1).name, "iommufd", 8);
  m.expect(errc::duplicate, "luo-v5-flbs", m.flb_page() + 16 + 64, 1);
}

TEST(LuoV5Corrupt, NoFlbPageIsFine) {
  luo_image m;
  m.r().flbs_pa.set(0);
  auto v = m.attach();
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->flb_count(), 0u);
  v->release();
}

TEST(LuoV5Corrupt, ScratchExhausted) {
  luo_image m;
  arena<12> tiny(u64{1} << 12, u64{1} << 45);  // one page: the first table, no growth
  auto v = attach_luo_v5(m.mem.memory(), m.root, tiny.pages());
  ASSERT_EQ(v.code(), errc::out_of_memory);
}

TEST(LuoV5Corrupt, BlockSharedWithAnotherStructureIsAliased) {
  luo_image m;
  auto v = m.attach();
  ASSERT_TRUE(v.has_value());
  page_owners<source, 12> owners(m.scratch.pages());
  ASSERT_TRUE(owners.claim(m.files_block(1), 1, page_owner{"memfd", m.files_block(1)}));
  status s = v->claim_pages(owners);
  ASSERT_EQ(s.code(), errc::aliased);
  EXPECT_STREQ(s.err().loc.structure, "luo-v5");
  EXPECT_EQ(s.err().loc.at, m.files_block(1));
  EXPECT_STREQ(s.err().other.structure, "memfd");
  v->release();
}

}  // namespace
}  // namespace kho::test::linux_luo_v5_test
