// The other upstream LUO and memfd versions (issue 13): luo-v1 (FDT, fixed arrays),
// luo-v5;block-v1, the LUO and memfd feature-header layouts. Bytes from encoders
// written here from the documented layout (not kho's writers) are read exactly; kho's
// writers read back at every version; each reader check is refused with its errc and
// location after tampering (these layouts carry no checksum, so nothing needs
// re-sealing except the kho-v4 root in the whole-handover cases, which is re-sealed);
// downgrades that would lose information are refused, naming file and field; and a
// rapidcheck property writes random content at every version that can carry it and
// reads the same sessions, files and folios back as a std::map model.
#include <kho/linux/kho_fdt_check.hpp>
#include <kho/linux/luo_versions.hpp>
#include <kho/manifest.hpp>
#include <kho/model/scratch_pages.hpp>
#include <kho/preserving_page_source.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <libfdt.h>

namespace kho::test::linux_luo_versions_test {
namespace {

using namespace kho::upstream;

void put64(unsigned char* p, u64 v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
void put32(unsigned char* p, u32 v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
u64 get64(const unsigned char* p) {
  u64 v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

// The version numbers and names are manifest.hpp's, so a negotiated "luo 6" or
// "memfd 1" is what write_luo / write_memfd_for write.
constexpr bool same_as_manifest() {
  for (luo_version v : {luo_version::v1, luo_version::v5, luo_version::v5_block_v1, luo_version::feature})
    if (!detail::same_string(wire_name_of("luo", static_cast<u8>(v)), luo_version_name(v)) ||
        is_feature_version("luo", static_cast<u8>(v)) != (v == luo_version::feature))
      return false;
  for (memfd_version v : {memfd_version::v1, memfd_version::v2})
    if (!detail::same_string(wire_name_of("memfd", static_cast<u8>(v)), memfd_file_name(v))) return false;
  return is_feature_version("memfd", static_cast<u8>(memfd_version::feature));
}
static_assert(same_as_manifest());

// ---- independent encoders ----------------------------------------------------------

struct enc_file {
  std::string handler;
  u64 data, token;
};
struct enc_session {
  std::string name;
  std::vector<enc_file> files;
};

// Bytes of a block-based LUO (luo-v5;block-v1 or the feature header) written by hand:
// root page, one session block, one file block per session, the FLB page.
struct block_luo_image {
  arena<12> a{u64{8} << 20, u64{1} << 32};
  phys_addr root{}, flbs{};
  std::vector<phys_addr> session_entries, file_blocks;
  u64 size = 0;

  phys_addr page() { return *alloc_zeroed(a.pages(), order{0}, 4096); }

  block_luo_image(luo_version v, u64 number, const std::vector<enc_session>& sessions) {
    root = page();
    flbs = page();
    unsigned char* r = a.bytes(root);
    u64 tail = 0;
    if (v == luo_version::v5_block_v1) {
      std::memcpy(r, "luo-v5;block-v1", 16);  // 15 characters and the NUL
      tail = 16;
    } else {
      put64(r + 0, 7);   // supp: number, sessions, FLBs
      put64(r + 8, 7);   // req
      put64(r + 16, 7);  // active
      tail = 128;
    }
    size = tail + 24;
    put64(r + tail, number);
    const phys_addr sblock = page();
    put64(r + tail + 8, sessions.empty() ? 0 : sblock.value);
    put64(r + tail + 16, flbs.value);
    unsigned char* fl = a.bytes(flbs);
    put64(fl, 1);  // pgcnt
    put64(fl + 8, 1);
    std::memcpy(fl + 16, "iommufd", 7);
    put64(fl + 16 + 48, 0xf1b);
    put64(fl + 16 + 56, 2);
    unsigned char* sb = a.bytes(sblock);
    put64(sb, 0);
    put64(sb + 8, sessions.size());
    for (u64 i = 0; i < sessions.size(); ++i) {
      unsigned char* e = sb + 16 + 80 * i;
      session_entries.push_back(sblock + 16 + 80 * i);
      std::memcpy(e, sessions[i].name.data(), sessions[i].name.size());
      if (sessions[i].files.empty()) continue;
      const phys_addr fblock = page();
      file_blocks.push_back(fblock);
      put64(e + 64, fblock.value);
      put64(e + 72, sessions[i].files.size());
      unsigned char* fb = a.bytes(fblock);
      put64(fb + 8, sessions[i].files.size());
      for (u64 j = 0; j < sessions[i].files.size(); ++j) {
        unsigned char* f = fb + 16 + 64 * j;
        std::memcpy(f, sessions[i].files[j].handler.data(), sessions[i].files[j].handler.size());
        put64(f + 48, sessions[i].files[j].data);
        put64(f + 56, sessions[i].files[j].token);
      }
    }
  }
};

// luo-v1 written by hand: the FDT through libfdt's sequential writer, the 16-page
// session area and 2-page file areas filled byte by byte.
struct v1_image {
  arena<12> a{u64{8} << 20, u64{1} << 32};
  phys_addr fdt_pa{}, area{};
  std::vector<phys_addr> file_areas;
  u64 size = 0;

  v1_image(u64 number, const std::vector<enc_session>& sessions) {
    fdt_pa = *alloc_zeroed(a.pages(), order{0}, 4096);
    area = *alloc_zeroed(a.pages(), order{4}, 16 * 4096);
    void* f = a.bytes(fdt_pa);
    unsigned char num[8], head[8];
    put64(num, number);
    put64(head, area.value);
    EXPECT_EQ(fdt_create(f, 4096), 0);
    EXPECT_EQ(fdt_finish_reservemap(f), 0);
    EXPECT_EQ(fdt_begin_node(f, ""), 0);
    EXPECT_EQ(fdt_property_string(f, "compatible", "luo-v1"), 0);
    EXPECT_EQ(fdt_property(f, "liveupdate-number", num, 8), 0);
    EXPECT_EQ(fdt_begin_node(f, "luo-session"), 0);
    EXPECT_EQ(fdt_property_string(f, "compatible", "luo-session-v2"), 0);
    EXPECT_EQ(fdt_property(f, "luo-session-header", head, 8), 0);
    EXPECT_EQ(fdt_end_node(f), 0);
    EXPECT_EQ(fdt_end_node(f), 0);
    EXPECT_EQ(fdt_finish(f), 0);
    size = fdt_totalsize(f);
    unsigned char* h = a.bytes(area);
    put64(h, sessions.size());
    for (u64 i = 0; i < sessions.size(); ++i) {
      unsigned char* e = h + 8 + 80 * i;
      std::memcpy(e, sessions[i].name.data(), sessions[i].name.size());
      if (sessions[i].files.empty()) continue;
      const phys_addr fa = *alloc_zeroed(a.pages(), order{1}, 2 * 4096);
      file_areas.push_back(fa);
      put64(e + 64, fa.value);
      put64(e + 72, sessions[i].files.size());
      for (u64 j = 0; j < sessions[i].files.size(); ++j) {
        unsigned char* fr = a.bytes(fa) + 64 * j;
        std::memcpy(fr, sessions[i].files[j].handler.data(), sessions[i].files[j].handler.size());
        put64(fr + 48, sessions[i].files[j].data);
        put64(fr + 56, sessions[i].files[j].token);
      }
    }
  }
  phys_addr session_pa(u64 i) const { return area + 8 + 80 * i; }
  unsigned char* session(u64 i) { return a.bytes(session_pa(i)); }
};

const std::vector<enc_session> sample = {
    {"vm-a", {{"memfd-v2", 0x5000, 1}, {"memfd-v2", 0x6000, 2}}}, {"empty", {}}, {"vm-b", {{"memfd", 0x7000, 9}}}};

using model_t = std::map<std::string, std::map<u64, std::pair<std::string, u64>>>;

model_t model_of(const std::vector<enc_session>& sessions) {
  model_t m;
  for (const auto& s : sessions) {
    auto& files = m[s.name];
    for (const auto& f : s.files) files[f.token] = {f.handler, f.data};
  }
  return m;
}

template <class M, class Scratch>
result<luo_version> read_model(const M& mem, phys_addr pa, u64 size, Scratch& scratch, model_t& out) {
  return for_each_luo_file(
      mem, pa, size, scratch, [&](const luo_session_ser& s) { out[s.name]; },
      [&](const luo_session_ser& s, const luo_file_ser& f) {
        out[s.name][f.token.get()] = {std::string(f.compatible), f.data.get()};
      });
}

template <class R>
void expect_error_at(const R& r, errc code, const char* structure, phys_addr at, u32 depth) {
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.code(), code) << to_string(r.code());
  EXPECT_STREQ(r.err().loc.structure, structure);
  EXPECT_EQ(r.err().loc.at, at);
  EXPECT_EQ(r.err().loc.depth, depth);
}

TEST(LuoVersionsBytes, BlockV1ReadExactly) {
  block_luo_image img(luo_version::v5_block_v1, 41, sample);
  scratch_arena<> scratch;
  const flat_memory mem = img.a.remap();
  EXPECT_EQ(*detect_luo_version(mem, img.root, img.size), luo_version::v5_block_v1);
  auto v = attach_luo_v5(mem, img.root, scratch.pages(), img.size, {}, luo_version::v5_block_v1);
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  EXPECT_EQ(v->liveupdate_num(), 41u);
  EXPECT_EQ(v->session_count(), 3u);
  EXPECT_EQ(v->file_count(), 3u);
  EXPECT_EQ(v->flb_count(), 1u);
  EXPECT_EQ((*v->find_flb("iommufd"))->data.get(), 0xf1bu);
  v->release();
  model_t got;
  EXPECT_EQ(*read_model(mem, img.root, img.size, scratch.pages(), got), luo_version::v5_block_v1);
  EXPECT_EQ(got, model_of(sample));
}

TEST(LuoVersionsBytes, FeatureHeaderReadExactly) {
  block_luo_image img(luo_version::feature, 5, sample);
  scratch_arena<> scratch;
  const flat_memory mem = img.a.remap();
  EXPECT_EQ(*detect_luo_version(mem, img.root, img.size), luo_version::feature);
  model_t got;
  auto r = read_model(mem, img.root, img.size, scratch.pages(), got);
  ASSERT_TRUE(r.has_value()) << to_string(r.code());
  EXPECT_EQ(*r, luo_version::feature);
  EXPECT_EQ(got, model_of(sample));
}

TEST(LuoVersionsBytes, LuoV1ReadExactly) {
  v1_image img(77, sample);
  scratch_arena<> scratch;
  const flat_memory mem = img.a.remap();
  EXPECT_EQ(*detect_luo_version(mem, img.fdt_pa, img.size), luo_version::v1);
  auto v = attach_luo_v1(mem, img.fdt_pa, scratch.pages(), img.size);
  ASSERT_TRUE(v.has_value()) << to_string(v.code()) << " " << v.err().loc.structure;
  EXPECT_EQ(v->liveupdate_num(), 77u);
  EXPECT_EQ(v->session_count(), 3u);
  EXPECT_EQ(v->file_count(), 3u);
  EXPECT_EQ(*v->find_session("vm-b"), v->sessions() + 2);
  EXPECT_EQ(v->find_session("nope").code(), errc::not_found);
  // Retrieval as the kernel allows it: each session, then each of its files, once.
  EXPECT_EQ(v->retrieve_file("vm-a", 1).code(), errc::not_found);  // session not retrieved yet
  ASSERT_TRUE(v->retrieve_session("vm-a").has_value());
  expect_error_at(v->retrieve_session("vm-a"), errc::already_retrieved, "luo-v1-sessions", img.session_pa(0), 1);
  EXPECT_EQ((*v->retrieve_file("vm-a", 2))->data.get(), 0x6000u);
  expect_error_at(v->retrieve_file("vm-a", 2), errc::already_retrieved, "luo-v1-files", img.file_areas[0] + 64, 2);
  EXPECT_EQ(v->retrieve_file("vm-a", 9).code(), errc::not_found);  // vm-b's token
  v->release();
  model_t got;
  EXPECT_EQ(*read_model(mem, img.fdt_pa, img.size, scratch.pages(), got), luo_version::v1);
  EXPECT_EQ(got, model_of(sample));
}

// memfd with the feature header, one folio, written by hand (structure page, a vmalloc
// chunk, the record page).
struct memfd_feature_image {
  arena<12> a{u64{4} << 20, u64{1} << 32};
  phys_addr ser{}, chunk{}, records{};
  memfd_feature_image() {
    ser = *alloc_zeroed(a.pages(), order{0}, 4096);
    chunk = *alloc_zeroed(a.pages(), order{0}, 4096);
    records = *alloc_zeroed(a.pages(), order{0}, 4096);
    unsigned char* s = a.bytes(ser);
    put64(s + 0, 3);  // supp: seals, folios
    put64(s + 8, 3);  // req
    put64(s + 16, 3); // active
    put64(s + 128, 0x10);            // pos
    put64(s + 136, 0x4000);          // size
    put32(s + 144, memfd_seal_grow); // seals
    put64(s + 152, 1);               // nr_folios
    put64(s + 160, chunk.value);     // folios.first
    put32(s + 168, 1);               // total_pages
    s[172] = 1;                      // VM_ALLOC
    put64(a.bytes(chunk) + 8, records.value);
    put64(a.bytes(records), 0x12345 | u64{3} << 52);
    put64(a.bytes(records) + 8, 2);
  }
};

TEST(LuoVersionsBytes, MemfdFeatureReadExactly) {
  memfd_feature_image img;
  const flat_memory mem = img.a.remap();
  auto v = attach_memfd(mem, img.ser, memfd_version::feature);
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  EXPECT_EQ(v->pos(), 0x10u);
  EXPECT_EQ(v->size(), 0x4000u);
  EXPECT_EQ(v->seals(), memfd_seal_grow);
  std::vector<memfd_folio> got;
  v->for_each_folio([&](const memfd_folio& f) { got.push_back(f); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].frame.value, 0x12345u);
  EXPECT_EQ(got[0].index, 2u);
  EXPECT_EQ(got[0].flags, 3);
}

TEST(LuoVersionsBytes, KhoWritersMatchTheEncoders) {
  // kho's writers put the same header bytes where the encoders do.
  for (luo_version v : {luo_version::v5_block_v1, luo_version::feature}) {
    block_luo_image img(v, 41, {});
    auto blob = write_luo(img.a.pages(), v, luo_content{41});
    ASSERT_TRUE(blob.has_value());
    EXPECT_EQ(blob->size, img.size);
    const u64 tail = v == luo_version::feature ? 128 : 16;
    EXPECT_EQ(std::memcmp(img.a.bytes(blob->phys), img.a.bytes(img.root), tail + 16), 0);  // header, number, 0 sessions
  }
  memfd_feature_image img;
  const memfd_folio folio{pfn{0x12345}, 2, 3};
  auto ser = write_memfd(img.a.pages(), memfd_file{0x10, 0x4000, memfd_seal_grow, &folio, 1}, memfd_version::feature);
  ASSERT_TRUE(ser.has_value());
  EXPECT_EQ(std::memcmp(img.a.bytes(*ser), img.a.bytes(img.ser), 160), 0);  // all but the vmalloc addresses
}

TEST(LuoVersionsBytes, KhoLuoV1WriterEqualsTheEncoderByteForByte) {
  // Same arena layout, same allocation order: every byte of the FDT page, the session
  // area and the file areas agrees, addresses included.
  v1_image img(77, sample);
  arena<12> b(u64{8} << 20, u64{1} << 32);
  std::vector<std::vector<luo_file_content>> files(sample.size());
  std::vector<luo_session_content> sessions;
  for (u64 i = 0; i < sample.size(); ++i) {
    for (const auto& f : sample[i].files) files[i].push_back({f.handler.c_str(), f.data, f.token});
    sessions.push_back({sample[i].name.c_str(), files[i].data(), files[i].size()});
  }
  auto blob = write_luo(b.pages(), luo_version::v1, luo_content{77, sessions.data(), sessions.size()});
  ASSERT_TRUE(blob.has_value());
  EXPECT_EQ(blob->phys, img.fdt_pa);
  EXPECT_EQ(blob->size, img.size);
  EXPECT_EQ(std::memcmp(b.bytes(img.fdt_pa), img.a.bytes(img.fdt_pa), 4096), 0);
  EXPECT_EQ(std::memcmp(b.bytes(img.area), img.a.bytes(img.area), 16 * 4096), 0);
  for (phys_addr fa : img.file_areas) EXPECT_EQ(std::memcmp(b.bytes(fa), img.a.bytes(fa), 2 * 4096), 0);
}

template <class Shift>
class LuoVersionsPages : public ::testing::Test {};
using shifts = ::testing::Types<std::integral_constant<unsigned, 12>, std::integral_constant<unsigned, 14>,
                                std::integral_constant<unsigned, 16>>;
TYPED_TEST_SUITE(LuoVersionsPages, shifts);

TYPED_TEST(LuoVersionsPages, EveryVersionAtEveryPageSize) {
  constexpr unsigned shift = TypeParam::value;
  arena<shift> a(u64{64} << 20, u64{1} << 32);
  scratch_arena<shift> scratch;
  // luo-v1's caps follow the page size: 16 pages of sessions, 2 of files.
  const u64 file_cap = luo_v1_file_capacity<shift>;
  EXPECT_EQ(file_cap, (u64{2} << shift) / 64);
  EXPECT_EQ(luo_v1_session_capacity<shift>, ((u64{16} << shift) - 8) / 80);
  std::vector<luo_file_content> full(file_cap);
  for (u64 i = 0; i < file_cap; ++i) full[i] = {"memfd-v2", i << shift, i};
  const luo_session_content sessions[] = {{"full", full.data(), full.size()}, {"none", nullptr, 0}};
  for (luo_version v : {luo_version::v1, luo_version::v5, luo_version::v5_block_v1, luo_version::feature}) {
    auto blob = write_luo<shift>(a.pages(), v, luo_content{9, sessions, 2});
    ASSERT_TRUE(blob.has_value()) << luo_version_name(v);
    u64 files = 0, nsessions = 0;
    auto r = for_each_luo_file<shift>(
        a.memory(), blob->phys, blob->size, scratch.pages(), [&](const luo_session_ser&) { ++nsessions; },
        [&](const luo_session_ser&, const luo_file_ser& f) { files += f.token.get() == files; });
    ASSERT_TRUE(r.has_value()) << luo_version_name(v) << " " << to_string(r.code());
    EXPECT_EQ(*r, v);
    EXPECT_EQ(nsessions, 2u);
    EXPECT_EQ(files, file_cap);
  }
  std::vector<luo_file_content> over(full);
  over.push_back({"memfd-v2", 0, file_cap});
  const luo_session_content too_many[] = {{"full", over.data(), over.size()}};
  downgrade_refusal r;
  EXPECT_EQ(write_luo<shift>(a.pages(), luo_version::v1, luo_content{9, too_many, 1}, &r).code(), errc::out_of_range);
  EXPECT_STREQ(r.field, "files");
  EXPECT_STREQ(r.session, "full");
}

// ---- tampering ---------------------------------------------------------------------


TEST(LuoVersionsCorrupt, BlockV1) {
  scratch_arena<> scratch;
  {
    block_luo_image img(luo_version::v5_block_v1, 1, sample);
    img.a.bytes(img.root)[6] = ':';
    expect_error_at(attach_luo_v5(img.a.memory(), img.root, scratch.pages(), img.size, {}, luo_version::v5_block_v1),
                 errc::bad_compatible, "luo-v5", img.root, 0);
    EXPECT_EQ(detect_luo_version(img.a.memory(), img.root, img.size).code(), errc::bad_compatible);
  }
  {
    block_luo_image img(luo_version::v5_block_v1, 1, sample);
    expect_error_at(attach_luo_v5(img.a.memory(), img.root, scratch.pages(), 39, {}, luo_version::v5_block_v1),
                 errc::bad_count, "luo-v5", img.root, 0);
    // Read as plain luo-v5 the block-v1 string is not "luo-v5" padded with zeros.
    expect_error_at(attach_luo_v5(img.a.memory(), img.root, scratch.pages(), img.size, {}, luo_version::v5),
                 errc::bad_compatible, "luo-v5", img.root, 0);
  }
}

TEST(LuoVersionsCorrupt, LuoFeatureHeader) {
  scratch_arena<> scratch;
  struct tamper {
    u64 offset, value;
    errc code;
  };
  const tamper cases[] = {
      {8, 7 | u64{1} << 9, errc::bad_version},      // a required bit this reader does not know
      {16, 7 | u64{1} << 3, errc::bad_compatible},  // active outside supp
      {24 + 8 * 5, 1, errc::reserved_nonzero},       // reserved[5]
      {16, 3, errc::reserved_nonzero},               // FLBs inactive, flbs_pa set
      {16, 5, errc::reserved_nonzero},               // sessions inactive, sessions_pa set
      {16, 6, errc::reserved_nonzero},               // number inactive, liveupdate_num set
  };
  for (const tamper& t : cases) {
    block_luo_image img(luo_version::feature, 5, sample);
    put64(img.a.bytes(img.root) + t.offset, t.value);
    expect_error_at(attach_luo_v5(img.a.memory(), img.root, scratch.pages(), img.size, {}, luo_version::feature), t.code,
                 "luo-v5", img.root, 0);
  }
  // An optional bit it does not know, supported and active but not required, is read.
  block_luo_image img(luo_version::feature, 5, sample);
  put64(img.a.bytes(img.root), 7 | u64{1} << 40);
  put64(img.a.bytes(img.root) + 16, 7 | u64{1} << 40);
  auto v = attach_luo_v5(img.a.memory(), img.root, scratch.pages(), img.size, {}, luo_version::feature);
  EXPECT_TRUE(v.has_value());
  if (v) v->release();
  // The sessions below the header are checked as luo-v5's are.
  put64(img.a.bytes(img.session_entries[0]) + 72, 5);
  expect_error_at(attach_luo_v5(img.a.memory(), img.root, scratch.pages(), img.size, {}, luo_version::feature),
               errc::bad_count, "luo-v5-sessions", img.session_entries[0], 1);
}

TEST(LuoVersionsCorrupt, MemfdFeatureHeader) {
  struct tamper {
    u64 offset, value;
    errc code;
  };
  const tamper cases[] = {
      {8, 3 | u64{1} << 2, errc::bad_version},
      {16, 3 | u64{1} << 4, errc::bad_compatible},
      {24, 1, errc::reserved_nonzero},
      {16, 2, errc::reserved_nonzero},  // seals inactive, seals set
      {16, 1, errc::reserved_nonzero},  // folios inactive, folios present
  };
  for (const tamper& t : cases) {
    memfd_feature_image img;
    put64(img.a.bytes(img.ser) + t.offset, t.value);
    expect_error_at(attach_memfd(img.a.memory(), img.ser, memfd_version::feature), t.code, "memfd", img.ser, 0);
  }
  memfd_feature_image img;
  put32(img.a.bytes(img.ser) + 148, 1);  // flags: none defined
  expect_error_at(attach_memfd(img.a.memory(), img.ser, memfd_version::feature), errc::reserved_nonzero, "memfd",
               img.ser, 0);
}

TEST(LuoVersionsCorrupt, LuoV1) {
  scratch_arena<> scratch;
  auto attach = [&](v1_image& img) { return attach_luo_v1(img.a.memory(), img.fdt_pa, scratch.pages(), img.size); };
  {
    v1_image img(1, sample);
    put64(img.a.bytes(img.area), 820);  // over the area's 819
    expect_error_at(attach(img), errc::bad_count, "luo-v1-sessions", img.area, 1);
  }
  {
    v1_image img(1, sample);
    std::memcpy(img.session(1), "vm-a", 5);
    expect_error_at(attach(img), errc::duplicate, "luo-v1-sessions", img.session_pa(1), 1);
  }
  {
    v1_image img(1, sample);
    img.session(1)[0] = 0;
    expect_error_at(attach(img), errc::bad_string, "luo-v1-sessions", img.session_pa(1), 1);
  }
  {
    v1_image img(1, sample);
    put64(img.session(1) + 72, 1);  // files 0 with a count: the kernel only warns
    expect_error_at(attach(img), errc::bad_count, "luo-v1-sessions", img.session_pa(1), 1);
  }
  {
    v1_image img(1, sample);
    put64(img.session(0) + 72, 129);  // over the area's 128
    expect_error_at(attach(img), errc::bad_count, "luo-v1-sessions", img.session_pa(0), 1);
  }
  {
    v1_image img(1, sample);
    put64(img.session(2) + 64, get64(img.session(0) + 64));  // two sessions, one file area
    expect_error_at(attach(img), errc::cycle, "luo-v1-sessions", img.session_pa(2), 1);
  }
  {
    v1_image img(1, sample);
    put64(img.session(2) + 64, img.area.value + 4096);  // a file area inside the session area
    expect_error_at(attach(img), errc::cycle, "luo-v1-sessions", img.session_pa(2), 1);
  }
  {
    v1_image img(1, sample);
    put64(img.session(2) + 64, img.file_areas[1].value + 8);
    expect_error_at(attach(img), errc::misaligned, "luo-v1-sessions", img.session_pa(2), 1);
  }
  {
    v1_image img(1, sample);
    put64(img.a.bytes(img.file_areas[0]) + 64 + 56, 1);  // token 1 twice in vm-a
    expect_error_at(attach(img), errc::duplicate, "luo-v1-files", img.file_areas[0] + 64, 2);
  }
  {
    v1_image img(1, sample);
    void* f = img.a.bytes(img.fdt_pa);
    ASSERT_EQ(fdt_setprop_inplace(f, 0, "compatible", "luo-v9", 7), 0);
    expect_error_at(attach(img), errc::bad_compatible, "luo-v1", img.fdt_pa, 0);
  }
  {
    v1_image img(1, sample);
    void* f = img.a.bytes(img.fdt_pa);
    const int node = fdt_subnode_offset(f, 0, "luo-session");
    ASSERT_EQ(fdt_setprop_inplace(f, node, "compatible", "luo-session-v1", 15), 0);
    expect_error_at(attach(img), errc::bad_compatible, "luo-v1", img.fdt_pa, 0);
  }
  {
    v1_image img(1, sample);
    void* f = img.a.bytes(img.fdt_pa);
    ASSERT_EQ(fdt_set_name(f, fdt_subnode_offset(f, 0, "luo-session"), "luo-sessiox"), 0);
    expect_error_at(attach(img), errc::not_found, "luo-v1", img.fdt_pa, 0);
  }
  {
    v1_image img(1, sample);
    img.a.bytes(img.fdt_pa)[0] = 0;  // not an FDT
    expect_error_at(attach(img), errc::bad_fdt, "luo-v1", img.fdt_pa, 0);
  }
}

// ---- downgrades --------------------------------------------------------------------

TEST(LuoVersionsDowngrade, MemfdV2ToV1RefusesSealsAndFlags) {
  arena<12> a(u64{4} << 20, u64{1} << 32);
  downgrade_refusal r;
  auto w = write_memfd_for(a.pages(), "vm", 42, memfd_file{0, 0, memfd_seal_write, nullptr, 0}, memfd_version::v1, &r);
  EXPECT_EQ(w.code(), errc::out_of_range);
  EXPECT_STREQ(r.structure, "memfd-v1");
  EXPECT_STREQ(r.field, "seals");
  EXPECT_STREQ(r.session, "vm");
  EXPECT_EQ(r.token, 42u);
  EXPECT_TRUE(r.has_file);
  EXPECT_STREQ(w.err().loc.structure, "memfd-v1");
  downgrade_refusal r2;
  memfd_file flagged{};
  flagged.flags = 1;
  EXPECT_EQ(write_memfd_for(a.pages(), "db", 7, flagged, memfd_version::v1, &r2).code(), errc::out_of_range);
  EXPECT_STREQ(r2.field, "flags");
  EXPECT_STREQ(r2.session, "db");
  EXPECT_EQ(r2.token, 7u);
  // Without seals or flags the same file goes to v1.
  EXPECT_TRUE(write_memfd_for(a.pages(), "vm", 42, memfd_file{}, memfd_version::v1, &r).has_value());
}

TEST(LuoVersionsDowngrade, MemfdFeatureWithoutTheBit) {
  arena<12> a(u64{4} << 20, u64{1} << 32);
  downgrade_refusal r;
  const feature_masks folios_only{memfd_feature_folios, memfd_feature_folios, memfd_feature_folios,
                                  memfd_features_supported};
  EXPECT_EQ(write_memfd_for(a.pages(), "vm", 3, memfd_file{0, 0, memfd_seal_seal, nullptr, 0}, memfd_version::feature,
                            &r, folios_only)
                .code(),
            errc::out_of_range);
  EXPECT_STREQ(r.field, "seals");
  EXPECT_EQ(r.token, 3u);
  // A peer that does not read folios cannot be told they are active.
  const feature_masks beyond_peer{3, 3, 3, memfd_feature_seals};
  EXPECT_EQ(write_memfd(a.pages(), memfd_file{}, memfd_version::feature, nullptr, beyond_peer).code(),
            errc::invalid_argument);
}

TEST(LuoVersionsDowngrade, LuoV5ToV1) {
  arena<12> a(u64{16} << 20, u64{1} << 32);
  const luo_file_content files[] = {{"memfd-v2", 0, 1}};
  const luo_session_content sessions[] = {{"vm", files, 1}};
  const luo_flb_content flbs[] = {{"iommufd", 1, 1}};
  downgrade_refusal r;
  auto w = write_luo(a.pages(), luo_version::v1, luo_content{1, sessions, 1, flbs, 1}, &r);
  EXPECT_EQ(w.code(), errc::out_of_range);
  EXPECT_STREQ(r.structure, "luo-v1");
  EXPECT_STREQ(r.field, "flbs");

  std::vector<luo_file_content> many(129);
  for (u64 i = 0; i < many.size(); ++i) many[i] = {"memfd-v2", 0, i};
  const luo_session_content big[] = {{"vm", many.data(), many.size()}};
  downgrade_refusal r2;
  EXPECT_EQ(write_luo(a.pages(), luo_version::v1, luo_content{1, big, 1}, &r2).code(), errc::out_of_range);
  EXPECT_STREQ(r2.field, "files");
  EXPECT_STREQ(r2.session, "vm");
  // luo-v5 carries it.
  EXPECT_TRUE(write_luo(a.pages(), luo_version::v5, luo_content{1, big, 1}).has_value());

  std::vector<std::string> names(820);
  std::vector<luo_session_content> lots(820);
  for (u64 i = 0; i < lots.size(); ++i) {
    names[i] = "s" + std::to_string(i);
    lots[i] = {names[i].c_str(), nullptr, 0};
  }
  downgrade_refusal r3;
  EXPECT_EQ(write_luo(a.pages(), luo_version::v1, luo_content{1, lots.data(), lots.size()}, &r3).code(),
            errc::out_of_range);
  EXPECT_STREQ(r3.field, "sessions");
  EXPECT_TRUE(write_luo(a.pages(), luo_version::v1, luo_content{1, lots.data(), 819}).has_value());
}

TEST(LuoVersionsDowngrade, FeatureHeaderWithoutTheBit) {
  arena<12> a(u64{4} << 20, u64{1} << 32);
  const luo_session_content sessions[] = {{"vm", nullptr, 0}};
  const luo_flb_content flbs[] = {{"iommufd", 1, 1}};
  const u64 no_flbs = luo_feature_number | luo_feature_sessions;
  downgrade_refusal r;
  EXPECT_EQ(write_luo(a.pages(), luo_version::feature, luo_content{1, sessions, 1, flbs, 1}, &r,
                      feature_masks{no_flbs, no_flbs, no_flbs, luo_features_supported})
                .code(),
            errc::out_of_range);
  EXPECT_STREQ(r.field, "flbs");
  const u64 no_sessions = luo_feature_number | luo_feature_flbs;
  EXPECT_EQ(write_luo(a.pages(), luo_version::feature, luo_content{1, sessions, 1}, &r,
                      feature_masks{no_sessions, no_sessions, no_sessions, luo_features_supported})
                .code(),
            errc::out_of_range);
  EXPECT_STREQ(r.field, "sessions");
  // Required bits the peer does not read are refused by the writer.
  EXPECT_EQ(write_luo(a.pages(), luo_version::feature, luo_content{1}, &r, feature_masks{7, 7, 7, 3}).code(),
            errc::invalid_argument);
}

// ---- the whole handover with each LUO and memfd layout -----------------------------

struct versioned_handover {
  using source = arena<12>::source_type;
  using map_type = preserve_bitmap<source>;
  using tracked_type = preserving_page_source<source, map_type>;
  arena<12> a{u64{16} << 20, u64{1} << 32};
  map_type map = *map_type::create(a.pages());
  tracked_type tracked{a.pages(), map};
  kho_fdt_writer<tracked_type> w = *kho_fdt_writer<tracked_type>::create(tracked, map.root());
  phys_addr memfd{};

  versioned_handover(luo_version lv, memfd_version mv, const char* kho_compatible = nullptr) {
    memfd_folio folios[2];
    for (u64 i = 0; i < 2; ++i) folios[i] = memfd_folio{pfn{tracked.alloc(order{0})->value >> 12}, i};
    memfd = *write_memfd(tracked, memfd_file{0, 0x2000, 0, folios, 2}, mv);
    const luo_file_content files[] = {{memfd_file_name(mv), memfd.value, 1}};
    const luo_session_content sessions[] = {{"vm", files, 1}};
    auto blob = write_luo(tracked, lv, luo_content{2, sessions, 1});
    EXPECT_TRUE(blob.has_value());
    EXPECT_TRUE(w.add(luo_v5_subtree, blob->phys, blob->size, kho_compatible));
    EXPECT_TRUE(w.set_memory_map_checksum(map.deep_checksum()));
    EXPECT_TRUE(w.seal());
  }
  status check() {
    const flat_memory moved = a.remap();
    model::scratch_pages<12> scratch(moved);
    auto v = attach_kho_handover(moved, w.root(), scratch.pages());
    return v ? status{} : status{v.err()};
  }
};

TEST(LuoVersionsHandover, EveryLayoutChecksWhole) {
  for (luo_version lv : {luo_version::v1, luo_version::v5, luo_version::v5_block_v1, luo_version::feature})
    for (memfd_version mv : {memfd_version::v1, memfd_version::v2, memfd_version::feature}) {
      versioned_handover h(lv, mv);
      const status s = h.check();
      EXPECT_TRUE(s) << luo_version_name(lv) << " " << memfd_file_name(mv) << ": " << to_string(s.code()) << " "
                     << s.err().loc.structure;
    }
}

TEST(LuoVersionsHandover, KhoCompatibleNamesTheLayout) {
  for (luo_version lv : {luo_version::v1, luo_version::v5, luo_version::v5_block_v1, luo_version::feature}) {
    versioned_handover h(lv, memfd_version::v2, luo_version_name(lv));
    const status s = h.check();
    EXPECT_TRUE(s) << luo_version_name(lv) << ": " << to_string(s.code());
  }
  // kho,compatible says luo-v1, the bytes are luo-v5: refused at the blob.
  versioned_handover h(luo_version::v5, memfd_version::v2, "luo-v1");
  const status s = h.check();
  EXPECT_EQ(s.code(), errc::bad_compatible);
  EXPECT_STREQ(s.err().loc.structure, "luo-v5");
  EXPECT_EQ(s.err().loc.depth, 0u);
}

TEST(LuoVersionsHandover, MemfdFeatureRequiredBitRefusedInTheWholeCheck) {
  versioned_handover h(luo_version::v1, memfd_version::feature);
  put64(h.a.bytes(h.memfd) + 8, 3 | u64{1} << 7);
  ASSERT_TRUE(h.w.seal());  // the root is re-sealed: only the memfd reader stands in the way
  const status s = h.check();
  EXPECT_EQ(s.code(), errc::bad_version);
  EXPECT_STREQ(s.err().loc.structure, "memfd");
  EXPECT_EQ(s.err().loc.at, h.memfd);
}

TEST(LuoVersionsHandover, LuoV1FileAreaOverTheMemfdIsAliased) {
  versioned_handover h(luo_version::v1, memfd_version::v2);
  const auto root = kho_fdt_view<flat_memory, 12>::attach(h.a.memory(), h.w.root(), 4096);
  ASSERT_TRUE(root.has_value());
  const phys_addr fdt = root->find(luo_v5_subtree)->phys;
  scratch_arena<> scratch;
  auto v = attach_luo_v1(h.a.memory(), fdt, scratch.pages(), 4096);
  ASSERT_TRUE(v.has_value());
  const phys_addr files{v->sessions()[0].file_set_ser.files.get()};
  // The view reads in place: its pointer is the field in the arena's mapping.
  auto* field = const_cast<unsigned char*>(reinterpret_cast<const unsigned char*>(&v->sessions()[0].file_set_ser.files));
  v->release();
  // vm's file area moved onto the memfd's own page, its record copied along: the
  // record's zero tail reads as a memfd-v2 without folios, so both readers accept their
  // bytes and only the ownership check sees one page under two structures.
  std::memcpy(h.a.bytes(h.memfd), h.a.bytes(files), 64);
  put64(field, h.memfd.value);
  ASSERT_TRUE(h.w.seal());
  const status s = h.check();
  EXPECT_EQ(s.code(), errc::aliased) << to_string(s.code());
  EXPECT_STREQ(s.err().loc.structure, "memfd");
  EXPECT_EQ(s.err().loc.at, h.memfd);
  EXPECT_STREQ(s.err().other.structure, "luo-v1");
}

// ---- property: write at every version, read the same content -----------------------

RC_GTEST_PROP(LuoVersionsProperty, WriteThenReadEveryVersion, ()) {
  const auto nsessions = *rc::gen::inRange<u64>(0, 5);
  std::vector<enc_session> sessions;
  for (u64 i = 0; i < nsessions; ++i) {
    enc_session s{"s" + std::to_string(i) + std::string(*rc::gen::inRange<size_t>(0, 20), 'x'), {}};
    const auto tokens = *rc::gen::container<std::set<u64>>(rc::gen::inRange<u64>(0, 1000));
    for (u64 t : tokens)
      if (s.files.size() < 70) s.files.push_back({*rc::gen::element<std::string>("memfd-v2", "memfd", "memfd-v1"),
                                                  *rc::gen::arbitrary<u64>(), t});
    sessions.push_back(s);
  }
  const bool with_flb = *rc::gen::arbitrary<bool>();
  const u64 number = *rc::gen::arbitrary<u64>();

  std::vector<std::vector<luo_file_content>> files(sessions.size());
  std::vector<luo_session_content> sc;
  for (u64 i = 0; i < sessions.size(); ++i) {
    for (const auto& f : sessions[i].files) files[i].push_back({f.handler.c_str(), f.data, f.token});
    sc.push_back({sessions[i].name.c_str(), files[i].data(), files[i].size()});
  }
  const luo_flb_content flb{"liveupdate-test-flb-v1", 3, 1};
  const luo_content content{number, sc.data(), sc.size(), with_flb ? &flb : nullptr, with_flb ? 1u : 0u};

  arena<12> a(u64{16} << 20, u64{1} << 32);
  scratch_arena<> scratch;
  for (luo_version v : {luo_version::v1, luo_version::v5, luo_version::v5_block_v1, luo_version::feature}) {
    downgrade_refusal r;
    auto blob = write_luo(a.pages(), v, content, &r);
    if (v == luo_version::v1 && with_flb) {
      RC_ASSERT(blob.code() == errc::out_of_range);
      RC_ASSERT(std::string(r.field) == "flbs");
      continue;
    }
    RC_ASSERT(blob.has_value());
    model_t got;
    auto read = read_model(a.memory(), blob->phys, blob->size, scratch.pages(), got);
    RC_ASSERT(read.has_value());
    RC_ASSERT(*read == v);
    RC_ASSERT(got == model_of(sessions));
  }

  // memfd: the folios and fields at every version that carries them.
  const auto nfolios = *rc::gen::inRange<u64>(0, 600);
  std::vector<memfd_folio> folios;
  u64 index = 0;
  for (u64 i = 0; i < nfolios; ++i) {
    index += *rc::gen::inRange<u64>(1, 50);
    folios.push_back({pfn{*rc::gen::inRange<u64>(1, u64{1} << 40)}, index, static_cast<u16>(*rc::gen::inRange(0, 4))});
  }
  const u32 seals = *rc::gen::inRange<u32>(0, 0x40);
  const memfd_file file{*rc::gen::arbitrary<u64>(), *rc::gen::arbitrary<u64>(), seals, folios.data(), folios.size(), 0,
                        /*clean_folios_may_be_dropped=*/true};  // every flag value round-trips
  for (memfd_version v : {memfd_version::v1, memfd_version::v2, memfd_version::feature}) {
    downgrade_refusal r;
    auto ser = write_memfd_for(a.pages(), "vm", 9, file, v, &r);
    if (v == memfd_version::v1 && seals != 0) {
      RC_ASSERT(ser.code() == errc::out_of_range);
      RC_ASSERT(std::string(r.field) == "seals" && r.token == 9u);
      continue;
    }
    RC_ASSERT(ser.has_value());
    auto view = attach_memfd(a.memory(), *ser, v);
    RC_ASSERT(view.has_value());
    RC_ASSERT(view->seals() == (v == memfd_version::v1 ? 0u : seals));
    RC_ASSERT(view->pos() == file.pos && view->size() == file.size);
    std::map<u64, std::pair<u64, u16>> want, have;
    for (const memfd_folio& f : folios) want[f.index] = {f.frame.value, f.flags};
    view->for_each_folio([&](const memfd_folio& f) { have[f.index] = {f.frame.value, f.flags}; });
    RC_ASSERT(have == want);
  }
}

}  // namespace
}  // namespace kho::test::linux_luo_versions_test
