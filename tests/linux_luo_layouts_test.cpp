// The LUO layouts between luo-v1 and luo-v5 (LINUX-FORMATS-NEXT.md 1.1-1.8,
// kho/linux/luo_layouts.hpp): luo-v1 with the luo-flb node, luo-v2, luo-v3 / luo-v4
// in FDT form (LUO blocks), luo-v3 / luo-v4 raw, luo-v3- / luo-v4-kho-block-v1.
// Bytes from an encoder written here from the spec's tables (FDTs through libfdt's
// sequential writer, raw structures as bytes at offsets) are detected and read
// exactly; kho's writer reads back at every layout (a rapidcheck property against a
// std::map model); one layout's bytes read as another are refused; the LUO block
// chain's rules (cycle, 10,001 blocks, count over a block, count 0 skipped) give
// their errors; and the whole kho-v4 handover is checked for every layout, then
// tampered, re-sealed and refused with the reader's error.
#include <kho/linux/kho_fdt_check.hpp>
#include <kho/linux/luo_versions.hpp>
#include <kho/manifest.hpp>
#include <kho/model/inspect_linux.hpp>
#include <kho/model/scratch_pages.hpp>
#include <kho/preserving_page_source.hpp>
#include <kho/readers.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <libfdt.h>

namespace kho::test::linux_luo_layouts_test {
namespace {

using namespace kho::upstream;

constexpr luo_version new_layouts[] = {luo_version::v1_flb, luo_version::v2,     luo_version::v3_fdt,
                                       luo_version::v4_fdt, luo_version::v3,     luo_version::v3_kho_block_v1,
                                       luo_version::v4,     luo_version::v4_kho_block_v1};

// Every name kho gives a layout is the manifest's for its number; 1..7 kept theirs.
constexpr bool same_as_manifest() {
  for (luo_version v : luo_all_versions)
    if (!detail::same_string(wire_name_of("luo", static_cast<u8>(v)), luo_version_name(v))) return false;
  return static_cast<u8>(luo_version::v1) == 1 && static_cast<u8>(luo_version::v5) == 5 &&
         static_cast<u8>(luo_version::v5_block_v1) == 6 && static_cast<u8>(luo_version::feature) == 7 &&
         detail::same_string(wire_name_of("luo", 3), "luo-v3") && detail::same_string(wire_name_of("luo", 4), "luo-v4");
}
static_assert(same_as_manifest());
static_assert(((luo_versions >> 1) & 0xfff) == 0xfff);  // readers.hpp declares 1..12

void put64(unsigned char* p, u64 v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
u64 get64(const unsigned char* p) {
  u64 v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

// ---- independent encoder -----------------------------------------------------------

struct enc_file {
  std::string handler;
  u64 data, token;
};
struct enc_session {
  std::string name;
  std::vector<enc_file> files;
};
struct enc_flb {
  std::string name;
  u64 data, count;
};
struct enc_content {
  u64 number = 0;
  std::vector<enc_session> sessions;
  std::vector<enc_flb> flbs;
};

enum class store { array, luo_blocks, kho_blocks };

// What each layout is, from the spec's table in 1.1, written out again here.
struct enc_layout {
  bool fdt;
  const char* compatible;
  unsigned field;  // raw compatible field bytes
  bool v1_nodes;
  store sessions, files;
};
enc_layout layout_for(luo_version v) {
  switch (v) {
    case luo_version::v1_flb: return {true, "luo-v1", 0, true, store::array, store::array};
    case luo_version::v2: return {true, "luo-v2", 0, false, store::array, store::array};
    case luo_version::v3_fdt: return {true, "luo-v3", 0, false, store::luo_blocks, store::array};
    case luo_version::v4_fdt: return {true, "luo-v4", 0, false, store::luo_blocks, store::luo_blocks};
    case luo_version::v3: return {false, "luo-v3", 8, false, store::array, store::array};
    case luo_version::v3_kho_block_v1: return {false, "luo-v3-kho-block-v1", 24, false, store::kho_blocks, store::array};
    case luo_version::v4: return {false, "luo-v4", 8, false, store::kho_blocks, store::array};
    default: return {false, "luo-v4-kho-block-v1", 24, false, store::kho_blocks, store::kho_blocks};
  }
}

struct encoded {
  arena<12> a{u64{48} << 20, u64{1} << 32};
  phys_addr root{}, ser{}, sessions{}, flbs{};
  u64 size = 0;
  std::vector<phys_addr> session_blocks;  // chains: every block in order
  std::vector<phys_addr> session_entries;
  std::vector<std::vector<phys_addr>> file_blocks;

  phys_addr alloc(unsigned o) { return *alloc_zeroed(a.pages(), order{o}, u64{4096} << o); }
  unsigned char* at(phys_addr pa) { return a.bytes(pa); }

  // Options: the FLB node left out (luo-v1), an empty LUO block first in each chain.
  bool flb_node = true, empty_first = false;

  // Lays out `n` entries of `entry` bytes; returns the head and where each entry went.
  phys_addr lay(store s, bool sess, u64 n, u64 entry, std::vector<phys_addr>& where, std::vector<phys_addr>* blocks) {
    if (s == store::array) {
      if (n == 0 && !sess) return {};
      const phys_addr area = alloc(sess ? 4 : 1);
      if (sess) put64(at(area), n);
      for (u64 i = 0; i < n; ++i) where.push_back(area + (sess ? 8 : 0) + i * entry);
      return area;
    }
    const unsigned o = s == store::luo_blocks ? 1 : 0;
    const u64 per = ((u64{4096} << o) - 16) / entry;
    phys_addr head{}, prev{};
    auto link = [&](phys_addr b) {
      if (!head) head = b;
      else put64(at(prev), b.value);
      prev = b;
      if (blocks) blocks->push_back(b);
    };
    if (empty_first && s == store::luo_blocks && n != 0) link(alloc(o));  // count stays 0
    for (u64 i = 0; i < n; ++i) {
      if (i % per == 0) link(alloc(o));
      const u64 c = get64(at(prev) + 8);
      where.push_back(prev + 16 + c * entry);
      put64(at(prev) + 8, c + 1);
    }
    return head;
  }

  encoded(luo_version v, const enc_content& c, bool with_flb_node = true, bool empty_first_block = false) {
    flb_node = with_flb_node;
    empty_first = empty_first_block;
    const enc_layout l = layout_for(v);
    if (l.fdt) root = alloc(0);
    if (!l.fdt || !l.v1_nodes) ser = alloc(0);
    if (!l.fdt) root = ser;
    flbs = alloc(0);
    put64(at(flbs), 1);
    put64(at(flbs) + 8, c.flbs.size());
    for (u64 i = 0; i < c.flbs.size(); ++i) {
      unsigned char* e = at(flbs) + 16 + i * 64;
      std::memcpy(e, c.flbs[i].name.data(), c.flbs[i].name.size());
      put64(e + 48, c.flbs[i].data);
      put64(e + 56, c.flbs[i].count);
    }
    sessions = lay(l.sessions, true, c.sessions.size(), 80, session_entries, &session_blocks);
    for (u64 i = 0; i < c.sessions.size(); ++i) {
      unsigned char* e = at(session_entries[i]);
      std::memcpy(e, c.sessions[i].name.data(), c.sessions[i].name.size());
      std::vector<phys_addr> where;
      file_blocks.emplace_back();
      const phys_addr head = lay(l.files, false, c.sessions[i].files.size(), 64, where, &file_blocks.back());
      put64(e + 64, head.value);
      put64(e + 72, c.sessions[i].files.size());
      for (u64 j = 0; j < where.size(); ++j) {
        const enc_file& f = c.sessions[i].files[j];
        std::memcpy(at(where[j]), f.handler.data(), f.handler.size());
        put64(at(where[j]) + 48, f.data);
        put64(at(where[j]) + 56, f.token);
      }
    }
    if (ser) {
      const u64 off = l.fdt ? 0 : l.field;
      if (!l.fdt) std::memcpy(at(ser), l.compatible, std::strlen(l.compatible));
      put64(at(ser) + off, c.number);
      put64(at(ser) + off + 8, sessions.value);
      put64(at(ser) + off + 16, flbs.value);
      size = off + 24;
    }
    if (l.fdt) fdt(l, c.number);
  }

  void fdt(const enc_layout& l, u64 number) {
    void* f = at(root);
    unsigned char v[8];
    auto prop64 = [&](const char* name, u64 x) {
      put64(v, x);
      ASSERT_EQ(fdt_property(f, name, v, 8), 0);
    };
    ASSERT_EQ(fdt_create(f, 4096), 0);
    ASSERT_EQ(fdt_finish_reservemap(f), 0);
    ASSERT_EQ(fdt_begin_node(f, ""), 0);
    ASSERT_EQ(fdt_property_string(f, "compatible", l.compatible), 0);
    if (l.v1_nodes) {
      prop64("liveupdate-number", number);
      ASSERT_EQ(fdt_begin_node(f, "luo-session"), 0);
      ASSERT_EQ(fdt_property_string(f, "compatible", "luo-session-v2"), 0);
      prop64("luo-session-header", sessions.value);
      ASSERT_EQ(fdt_end_node(f), 0);
      if (flb_node) {
        ASSERT_EQ(fdt_begin_node(f, "luo-flb"), 0);
        ASSERT_EQ(fdt_property_string(f, "compatible", "luo-flb-v1"), 0);
        prop64("luo-flb-header", flbs.value);
        ASSERT_EQ(fdt_end_node(f), 0);
      }
    } else {
      prop64("luo-abi-header", ser.value);
    }
    ASSERT_EQ(fdt_end_node(f), 0);
    ASSERT_EQ(fdt_finish(f), 0);
    size = fdt_totalsize(f);
  }
};

enc_content sample(u64 sessions = 2, u64 files = 3) {
  enc_content c;
  c.number = 42;
  for (u64 i = 0; i < sessions; ++i) {
    enc_session s{"session-" + std::to_string(i), {}};
    for (u64 j = 0; j < files; ++j) s.files.push_back({j % 2 ? "memfd-v2" : "opaque-thing", 0x1000 * (j + 1), 100 + j});
    c.sessions.push_back(s);
  }
  c.flbs = {{"iommu-liveupdate-v1", 0x5000, 2}, {"pci-v1", 0x6000, 1}};
  return c;
}

// ---- what a reader saw -------------------------------------------------------------

struct seen {
  u64 number = 0;
  std::map<std::string, std::map<u64, std::pair<std::string, u64>>> sessions;
  std::map<std::string, std::pair<u64, u64>> flbs;
  bool operator==(const seen&) const = default;
};
seen model_of(const enc_content& c) {
  seen m;
  m.number = c.number;
  for (const auto& s : c.sessions) {
    auto& files = m.sessions[s.name];
    for (const auto& f : s.files) files[f.token] = {f.handler, f.data};
  }
  for (const auto& b : c.flbs) m.flbs[b.name] = {b.data, b.count};
  return m;
}

struct seen_visitor {
  seen& out;
  template <class View>
  status view(const View&) {
    return {};
  }
  status flbs(const luo_flb_ser* items, u64 n) {
    for (u64 i = 0; i < n; ++i) out.flbs[items[i].name] = {items[i].data.get(), items[i].count.get()};
    return {};
  }
  template <class Files>
  status session(const luo_session_ser& s, const Files& files) {
    auto& m = out.sessions[s.name];
    for (const luo_file_ser& f : files) m[f.token.get()] = {std::string(f.compatible), f.data.get()};
    return {};
  }
};

template <class M>
result<luo_walk_info> read(const M& mem, phys_addr pa, u64 size, seen& out) {
  scratch_arena<> scratch;
  auto r = walk_luo(mem, pa, size, scratch.pages(), seen_visitor{out});
  if (r) out.number = r->liveupdate_num;
  return r;
}

// ---- bytes from the spec read exactly ----------------------------------------------

TEST(LuoLayoutsBytes, EveryLayoutDetectedAndReadExactly) {
  for (luo_version v : new_layouts) {
    const enc_content c = sample(3, 4);
    encoded e(v, c);
    auto d = detect_luo_version(e.a.memory(), e.root, e.size);
    ASSERT_TRUE(d.has_value()) << luo_version_name(v);
    EXPECT_EQ(*d, v) << luo_version_name(v);
    seen s;
    auto r = read(e.a.memory(), e.root, e.size, s);
    ASSERT_TRUE(r.has_value()) << luo_version_name(v) << ": " << to_string(r.code()) << " " << r.err().loc.structure;
    EXPECT_EQ(s, model_of(c)) << luo_version_name(v);
    EXPECT_EQ(r->sessions, 3u);
    EXPECT_EQ(r->files, 12u);
    EXPECT_EQ(r->flbs, 2u);
  }
}

TEST(LuoLayoutsBytes, ChainsOverSeveralBlocks) {
  // 110 sessions: three KHO blocks (51 each) or two LUO blocks (102 each); 130 files:
  // three KHO blocks (63) or two LUO blocks (127); an array would refuse 130.
  for (luo_version v : {luo_version::v3_fdt, luo_version::v4_fdt, luo_version::v4, luo_version::v4_kho_block_v1}) {
    const bool array_files = layout_for(v).files == store::array;
    const enc_content c = sample(110, array_files ? 2 : 130);
    encoded e(v, c);
    seen s;
    auto r = read(e.a.memory(), e.root, e.size, s);
    ASSERT_TRUE(r.has_value()) << luo_version_name(v) << ": " << to_string(r.code());
    EXPECT_EQ(s, model_of(c)) << luo_version_name(v);
    const u64 sblocks = layout_for(v).sessions == store::luo_blocks ? 2 : 3;
    const u64 fblocks = array_files ? 0 : (layout_for(v).files == store::luo_blocks ? 2 : 3) * 110;
    EXPECT_EQ(r->blocks, sblocks + fblocks) << luo_version_name(v);
  }
}

// Records what claim_pages claims, page by page.
struct recorder {
  std::set<u64> pages;
  bool twice = false;
  status claim(phys_addr first, u64 n, page_owner) {
    for (u64 i = 0; i < n; ++i) twice |= !pages.insert(first.value + i * 4096).second;
    return {};
  }
};

template <class M>
std::set<u64> claimed(const M& mem, phys_addr pa, u64 size, luo_version v) {
  scratch_arena<> scratch;
  auto view = attach_luo_layout(mem, pa, scratch.pages(), size, v);
  EXPECT_TRUE(view.has_value()) << luo_version_name(v) << ": " << (view ? "" : to_string(view.code()));
  if (!view) return {};
  recorder r;
  EXPECT_TRUE(view->claim_pages(r));
  EXPECT_FALSE(r.twice);
  view->release();
  return r.pages;
}

std::set<u64> pages_of(phys_addr pa, u64 n) {
  std::set<u64> s;
  for (u64 i = 0; i < n; ++i) s.insert(pa.value + i * 4096);
  return s;
}

TEST(LuoLayoutsBytes, EmptyLuoBlocksAreSkippedAndClaimed) {
  for (luo_version v : {luo_version::v3_fdt, luo_version::v4_fdt}) {
    const enc_content c = sample(2, 2);
    encoded e(v, c, true, true);
    ASSERT_EQ(get64(e.at(e.session_blocks[0]) + 8), 0u);  // the empty block leads
    seen s;
    auto r = read(e.a.memory(), e.root, e.size, s);
    ASSERT_TRUE(r.has_value()) << luo_version_name(v) << ": " << to_string(r.code());
    EXPECT_EQ(s, model_of(c));
    // Each layout claims exactly what the kernel preserves for it: the FDT page,
    // luo_ser's page, every LUO block (two pages, the empty one too), the file
    // arrays (two pages) or blocks, the FLB page.
    std::set<u64> want = pages_of(e.root, 1);
    want.merge(pages_of(e.ser, 1));
    want.merge(pages_of(e.flbs, 1));
    for (phys_addr b : e.session_blocks) want.merge(pages_of(b, 2));
    for (u64 i = 0; i < 2; ++i) {
      if (v == luo_version::v4_fdt)
        for (phys_addr b : e.file_blocks[i]) want.merge(pages_of(b, 2));
      else
        want.merge(pages_of(phys_addr{get64(e.at(e.session_entries[i]) + 64)}, 2));
    }
    EXPECT_EQ(claimed(e.a.memory(), e.root, e.size, v), want) << luo_version_name(v);
  }
}

TEST(LuoLayoutsBytes, ClaimsArraysAndKhoBlocks) {
  {
    encoded e(luo_version::v1_flb, sample(2, 1));
    std::set<u64> want = pages_of(e.root, 1);
    want.merge(pages_of(e.flbs, 1));
    want.merge(pages_of(e.sessions, 16));  // the 16-page session array
    for (u64 i = 0; i < 2; ++i) want.merge(pages_of(phys_addr{get64(e.at(e.session_entries[i]) + 64)}, 2));
    EXPECT_EQ(claimed(e.a.memory(), e.root, e.size, luo_version::v1_flb), want);
  }
  {
    encoded e(luo_version::v4_kho_block_v1, sample(60, 2));  // two session blocks
    std::set<u64> want = pages_of(e.root, 1);
    want.merge(pages_of(e.flbs, 1));
    for (phys_addr b : e.session_blocks) want.merge(pages_of(b, 1));
    for (const auto& fb : e.file_blocks)
      for (phys_addr b : fb) want.merge(pages_of(b, 1));
    EXPECT_EQ(e.session_blocks.size(), 2u);
    EXPECT_EQ(claimed(e.a.memory(), e.root, e.size, luo_version::v4_kho_block_v1), want);
  }
}

// ---- kho's writer ------------------------------------------------------------------

struct content_holder {
  std::vector<std::vector<luo_file_content>> files;
  std::vector<luo_session_content> sessions;
  std::vector<luo_flb_content> flbs;
  luo_content c;
  explicit content_holder(const enc_content& e) {
    for (const auto& s : e.sessions) {
      files.emplace_back();
      for (const auto& f : s.files) files.back().push_back({f.handler.c_str(), f.data, f.token});
    }
    for (u64 i = 0; i < e.sessions.size(); ++i)
      sessions.push_back({e.sessions[i].name.c_str(), files[i].data(), files[i].size()});
    for (const auto& b : e.flbs) flbs.push_back({b.name.c_str(), b.data, b.count});
    c = {e.number, sessions.data(), sessions.size(), flbs.data(), flbs.size()};
  }
};

TEST(LuoLayoutsWriter, RoundTripEveryLayout) {
  for (luo_version v : new_layouts) {
    arena<12> a{u64{8} << 20, u64{1} << 32};
    const enc_content e = sample(3, 5);
    content_holder h(e);
    auto blob = write_luo(a.pages(), v, h.c);
    ASSERT_TRUE(blob.has_value()) << luo_version_name(v) << ": " << to_string(blob.code());
    auto d = detect_luo_version(a.memory(), blob->phys, blob->size);
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(*d, v) << luo_version_name(v);
    seen s;
    auto r = read(a.memory(), blob->phys, blob->size, s);
    ASSERT_TRUE(r.has_value()) << luo_version_name(v) << ": " << to_string(r.code()) << " " << r.err().loc.structure;
    EXPECT_EQ(s, model_of(e)) << luo_version_name(v);
  }
}

TEST(LuoLayoutsWriter, WriterMatchesTheEncodersFields) {
  // The writer's FDT and raw luo_ser carry what the encoder's do: same compatible
  // bytes, same number, and (FDT) the same properties.
  for (luo_version v : new_layouts) {
    arena<12> a{u64{8} << 20, u64{1} << 32};
    const enc_content e = sample(1, 1);
    content_holder h(e);
    auto blob = write_luo(a.pages(), v, h.c);
    ASSERT_TRUE(blob.has_value());
    encoded enc(v, e);
    const enc_layout l = layout_for(v);
    EXPECT_EQ(blob->size, enc.size) << luo_version_name(v);
    if (l.fdt) {
      const void* w = a.bytes(blob->phys);
      const void* x = enc.at(enc.root);
      EXPECT_EQ(fdt_totalsize(w), fdt_totalsize(x));
      EXPECT_EQ(fdt_node_check_compatible(w, 0, l.compatible), 0);
      for (const char* node : {"luo-session", "luo-flb"})
        EXPECT_EQ(fdt_subnode_offset(w, 0, node) >= 0, l.v1_nodes) << node;
    } else {
      EXPECT_EQ(std::memcmp(a.bytes(blob->phys), enc.at(enc.root), l.field), 0) << luo_version_name(v);
      EXPECT_EQ(get64(a.bytes(blob->phys) + l.field), 42u);
    }
  }
}

TEST(LuoLayoutsWriter, RefusesWhatAnArrayCannotHold) {
  arena<12> a{u64{8} << 20, u64{1} << 32};
  std::vector<luo_file_content> many(129);
  for (u64 i = 0; i < many.size(); ++i) many[i] = {"memfd-v2", 0, i};
  const luo_session_content s[] = {{"big", many.data(), many.size()}};
  for (luo_version v : {luo_version::v1_flb, luo_version::v2, luo_version::v3_fdt, luo_version::v3,
                        luo_version::v3_kho_block_v1, luo_version::v4}) {
    downgrade_refusal r;
    const u64 before = a.pages().pages_in_use();
    EXPECT_EQ(write_luo(a.pages(), v, luo_content{1, s, 1}, &r).code(), errc::out_of_range) << luo_version_name(v);
    EXPECT_STREQ(r.field, "files");
    EXPECT_STREQ(r.session, "big");
    EXPECT_EQ(a.pages().pages_in_use(), before);
  }
  // Chains of files hold it.
  for (luo_version v : {luo_version::v4_fdt, luo_version::v4_kho_block_v1})
    EXPECT_TRUE(write_luo(a.pages(), v, luo_content{1, s, 1}).has_value()) << luo_version_name(v);
  // Duplicates and bad strings, before anything is allocated.
  const luo_file_content dup[] = {{"memfd-v2", 0, 1}, {"memfd-v2", 0, 1}};
  const luo_session_content ds[] = {{"d", dup, 2}};
  EXPECT_EQ(write_luo(a.pages(), luo_version::v2, luo_content{1, ds, 1}).code(), errc::already_exists);
  const luo_session_content twice[] = {{"x", nullptr, 0}, {"x", nullptr, 0}};
  EXPECT_EQ(write_luo(a.pages(), luo_version::v4, luo_content{1, twice, 2}).code(), errc::already_exists);
}

RC_GTEST_PROP(LuoLayoutsProperty, WriteThenReadEveryLayout, ()) {
  const auto sessions = *rc::gen::inRange<u64>(0, 120);
  const auto files = *rc::gen::inRange<u64>(0, 140);
  const auto every = *rc::gen::inRange<u64>(1, 40);  // every `every`th session has `files` files
  const auto flbs = *rc::gen::inRange<u64>(0, 64);
  enc_content e;
  e.number = *rc::gen::arbitrary<u64>();
  for (u64 i = 0; i < sessions; ++i) {
    enc_session s{"s" + std::to_string(i), {}};
    const u64 n = i % every == 0 ? files : i % 3;
    for (u64 j = 0; j < n; ++j) s.files.push_back({"h" + std::to_string(j % 5), j * 7, j * 3 + i});
    e.sessions.push_back(s);
  }
  for (u64 i = 0; i < flbs; ++i) e.flbs.push_back({"flb" + std::to_string(i), i, i + 1});
  content_holder h(e);
  for (luo_version v : new_layouts) {
    arena<12> a{u64{24} << 20, u64{1} << 32};
    downgrade_refusal r;
    auto blob = write_luo(a.pages(), v, h.c, &r);
    const luo_layout& l = *luo_layout_of(v);
    u64 most = 0;
    for (const auto& s : e.sessions) most = std::max<u64>(most, s.files.size());
    if (flbs > 63) {
      RC_ASSERT(blob.code() == errc::table_full);
      continue;
    }
    if (l.files == luo_storage::array && most > 128) {
      RC_ASSERT(blob.code() == errc::out_of_range);
      RC_ASSERT(std::string(r.field) == "files");
      continue;
    }
    RC_ASSERT(blob.has_value());
    seen s;
    auto got = read(a.memory(), blob->phys, blob->size, s);
    RC_ASSERT(got.has_value());
    RC_ASSERT(got->version == v);
    RC_ASSERT(s == model_of(e));
  }
}

// ---- one layout read as another ----------------------------------------------------

template <class R>
void expect_error(const R& r, errc code, const char* structure) {
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.code(), code) << to_string(r.code());
  EXPECT_STREQ(r.err().loc.structure, structure);
}

TEST(LuoLayoutsCross, EachReaderRefusesTheOthers) {
  scratch_arena<> scratch;
  for (luo_version written : new_layouts) {
    encoded e(written, sample(1, 1));
    for (luo_version reader : new_layouts) {
      auto v = attach_luo_layout(e.a.memory(), e.root, scratch.pages(), e.size, reader);
      if (reader == written) {
        EXPECT_TRUE(v.has_value()) << luo_version_name(reader);
        if (v) v->release();
        continue;
      }
      ASSERT_FALSE(v.has_value()) << luo_version_name(written) << " read as " << luo_version_name(reader);
      const luo_layout& w = *luo_layout_of(written);
      const luo_layout& r = *luo_layout_of(reader);
      // Raw bytes under an FDT reader: too small for an FDT header (32 bytes) or not
      // an FDT; an FDT under a raw reader, or another string: the compatible.
      errc want = errc::bad_compatible;
      if (r.form == luo_form::fdt && w.form == luo_form::raw) want = e.size < 40 ? errc::bad_count : errc::bad_fdt;
      if (r.form == luo_form::raw && e.size < luo_raw_ser_size(r)) want = errc::bad_count;  // blob-size first
      EXPECT_EQ(v.code(), want) << luo_version_name(written) << " read as " << luo_version_name(reader) << ": "
                                << to_string(v.code());
      EXPECT_STREQ(v.err().loc.structure, luo_version_name(reader));
    }
  }
}

TEST(LuoLayoutsCross, OneStringTwoForms) {
  for (auto [fdt, raw] : {std::pair{luo_version::v3_fdt, luo_version::v3}, std::pair{luo_version::v4_fdt, luo_version::v4}}) {
    encoded f(fdt, sample(1, 1)), r(raw, sample(1, 1));
    EXPECT_EQ(*detect_luo_version(f.a.memory(), f.root, f.size), fdt);
    EXPECT_EQ(*detect_luo_version(r.a.memory(), r.root, r.size), raw);
  }
  // luo-v5's reader meets every one of them with bad_compatible (the kernel panics).
  scratch_arena<> scratch;
  for (luo_version v : new_layouts) {
    encoded e(v, sample(1, 1));
    auto r = attach_luo_v5(e.a.memory(), e.root, scratch.pages(), 4096);
    expect_error(r, errc::bad_compatible, "luo-v5");
    EXPECT_EQ(luo_stock_reading(luo_version::v5, v), luo_stock_result::panics);
  }
}

TEST(LuoLayoutsCross, StockVerdicts) {
  EXPECT_EQ(luo_stock_reading(luo_version::v1_flb, luo_version::v1), luo_stock_result::enoent);
  EXPECT_EQ(luo_stock_reading(luo_version::v1, luo_version::v1_flb), luo_stock_result::drops_flbs);
  EXPECT_EQ(luo_stock_reading(luo_version::v2, luo_version::v3), luo_stock_result::einval);
  EXPECT_EQ(luo_stock_reading(luo_version::v3_fdt, luo_version::v3), luo_stock_result::einval);
  EXPECT_EQ(luo_stock_reading(luo_version::v3, luo_version::v3_fdt), luo_stock_result::panics);
  EXPECT_EQ(luo_stock_reading(luo_version::v4, luo_version::v4_kho_block_v1), luo_stock_result::panics);
  EXPECT_EQ(luo_stock_reading(luo_version::v4, luo_version::v4), luo_stock_result::reads);
}

TEST(LuoLayoutsCross, FlbAwareKernelWithoutTheNode) {
  encoded e(luo_version::v1_flb, sample(1, 1), false);
  // kho reads it as plain luo-v1 (what it is); an FLB-aware reader wants the node.
  EXPECT_EQ(*detect_luo_version(e.a.memory(), e.root, e.size), luo_version::v1);
  scratch_arena<> scratch;
  expect_error(attach_luo_layout(e.a.memory(), e.root, scratch.pages(), e.size, luo_version::v1_flb), errc::not_found,
               "luo-v1 (luo-flb)");
  // A node with another compatible.
  encoded g(luo_version::v1_flb, sample(1, 1));
  void* f = g.at(g.root);
  const int n = fdt_subnode_offset(f, 0, "luo-flb");
  ASSERT_GE(n, 0);
  ASSERT_EQ(fdt_setprop_inplace(f, n, "compatible", "luo-flb-v2", 11), 0);
  expect_error(attach_luo_layout(g.a.memory(), g.root, scratch.pages(), g.size, luo_version::v1_flb),
               errc::bad_compatible, "luo-v1 (luo-flb)");
}

// ---- LUO block chains --------------------------------------------------------------

TEST(LuoLayoutsChain, CycleIsRefused) {
  encoded e(luo_version::v3_fdt, sample(210, 0));  // three session blocks
  ASSERT_EQ(e.session_blocks.size(), 3u);
  put64(e.at(e.session_blocks[2]), e.session_blocks[0].value);
  scratch_arena<> scratch;
  expect_error(attach_luo_layout(e.a.memory(), e.root, scratch.pages(), e.size, luo_version::v3_fdt), errc::cycle,
               "luo-sessions");
  // A one-block loop too.
  put64(e.at(e.session_blocks[0]), e.session_blocks[0].value);
  expect_error(attach_luo_layout(e.a.memory(), e.root, scratch.pages(), e.size, luo_version::v3_fdt), errc::cycle,
               "luo-sessions");
}

TEST(LuoLayoutsChain, CountOverABlockIsRefusedZeroIsNot) {
  encoded e(luo_version::v4_fdt, sample(2, 2));
  const phys_addr fb = e.file_blocks[1][0];
  put64(e.at(fb) + 8, 128);  // 127 files fit a LUO block
  scratch_arena<> scratch;
  auto r = attach_luo_layout(e.a.memory(), e.root, scratch.pages(), e.size, luo_version::v4_fdt);
  expect_error(r, errc::bad_count, "luo-files");
  EXPECT_EQ(r.err().loc.at, fb);
  EXPECT_EQ(r.err().loc.depth, 2u);
  put64(e.at(e.session_blocks[0]) + 8, 103);  // 102 sessions fit
  expect_error(attach_luo_layout(e.a.memory(), e.root, scratch.pages(), e.size, luo_version::v4_fdt), errc::bad_count,
               "luo-sessions");
  // Count 0 is accepted by the block rules; the session then lists 2 files that the
  // chain no longer holds, which kho refuses at the session.
  encoded z(luo_version::v4_fdt, sample(2, 2));
  put64(z.at(z.file_blocks[0][0]) + 8, 0);
  auto rz = attach_luo_layout(z.a.memory(), z.root, scratch.pages(), z.size, luo_version::v4_fdt);
  expect_error(rz, errc::bad_count, "luo-sessions");
  EXPECT_EQ(rz.err().loc.at, z.session_entries[0]);
  put64(z.at(z.session_entries[0]) + 72, 0);
  EXPECT_TRUE(attach_luo_layout(z.a.memory(), z.root, scratch.pages(), z.size, luo_version::v4_fdt).has_value());
  // A KHO block with count 0 is refused (LF section 5).
  encoded k(luo_version::v4, sample(2, 1));
  put64(k.at(k.session_blocks[0]) + 8, 0);
  expect_error(attach_luo_layout(k.a.memory(), k.root, scratch.pages(), k.size, luo_version::v4), errc::bad_count,
               "luo-sessions");
}

TEST(LuoLayoutsChain, TenThousandAndOneBlocks) {
  // 10,001 LUO blocks, each one page after the last (overlapping 8 KiB blocks: the
  // length check runs before any block is read for entries or claimed).
  encoded e(luo_version::v3_fdt, enc_content{});
  arena<12>& a = e.a;
  const phys_addr first = *alloc_zeroed(a.pages(), order{0}, 4096);
  for (u64 i = 0; i < 10001; ++i) {
    const phys_addr b = *alloc_zeroed(a.pages(), order{0}, 4096);
    ASSERT_EQ(b.value, first.value + (i + 1) * 4096);
  }
  for (u64 i = 0; i < 10001; ++i) put64(e.at(first + i * 4096), i + 1 < 10001 ? first.value + (i + 1) * 4096 : 0);
  put64(e.at(e.ser) + 8, first.value);
  scratch_arena<> scratch;
  expect_error(attach_luo_layout(e.a.memory(), e.root, scratch.pages(), e.size, luo_version::v3_fdt),
               errc::budget_exceeded, "luo-sessions");
  // 10,000 of them pass the length check (then overlap: a page reached twice).
  put64(e.at(first + 9999 * 4096), 0);
  expect_error(attach_luo_layout(e.a.memory(), e.root, scratch.pages(), e.size, luo_version::v3_fdt), errc::cycle,
               "luo-sessions");
}

// ---- other reader checks -----------------------------------------------------------

TEST(LuoLayoutsCorrupt, RootChecks) {
  scratch_arena<> scratch;
  {
    encoded e(luo_version::v3_kho_block_v1, sample(1, 1));
    e.at(e.root)[22] = 'x';  // after the NUL: the kernel's strncmp stops, kho wants zeros
    expect_error(attach_luo_layout(e.a.memory(), e.root, scratch.pages(), e.size, luo_version::v3_kho_block_v1),
                 errc::reserved_nonzero, "luo-v3-kho-block-v1");
    expect_error(attach_luo_layout(e.a.memory(), e.root, scratch.pages(), 40, luo_version::v3_kho_block_v1),
                 errc::bad_count, "luo-v3-kho-block-v1");
  }
  {
    encoded e(luo_version::v2, sample(1, 1));
    put64(e.at(e.ser) + 8, 0);  // sessions_pa 0: no sessions
    put64(e.at(e.ser) + 16, 0);  // flbs_pa 0: no FLBs
    seen s;
    auto r = read(e.a.memory(), e.root, e.size, s);
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(s.sessions.empty());
    EXPECT_TRUE(s.flbs.empty());
    // luo-abi-header of the wrong width.
    void* f = e.at(e.root);
    ASSERT_EQ(fdt_setprop_inplace(f, 0, "luo-abi-header", "\0\0\0", 4), -FDT_ERR_NOSPACE);
  }
  {
    encoded e(luo_version::v1_flb, sample(2, 1));
    put64(e.at(e.sessions), 820);  // over the 16-page array
    expect_error(attach_luo_layout(e.a.memory(), e.root, scratch.pages(), e.size, luo_version::v1_flb), errc::bad_count,
                 "luo-sessions");
  }
  {
    encoded e(luo_version::v3, sample(2, 1));
    std::memcpy(e.at(e.session_entries[1]), "session-0", 10);
    expect_error(attach_luo_layout(e.a.memory(), e.root, scratch.pages(), e.size, luo_version::v3), errc::duplicate,
                 "luo-sessions");
  }
  {
    encoded e(luo_version::v4_kho_block_v1, sample(1, 1));
    put64(e.at(e.flbs), 2);  // FLB pgcnt
    expect_error(attach_luo_layout(e.a.memory(), e.root, scratch.pages(), e.size, luo_version::v4_kho_block_v1),
                 errc::bad_count, "luo-flbs");
  }
}

// ---- the whole handover ------------------------------------------------------------

struct layout_handover {
  using source = arena<12>::source_type;
  using map_type = preserve_bitmap<source>;
  using tracked_type = preserving_page_source<source, map_type>;
  arena<12> a{u64{16} << 20, u64{1} << 32};
  map_type map = *map_type::create(a.pages());
  tracked_type tracked{a.pages(), map};
  kho_fdt_writer<tracked_type> w = *kho_fdt_writer<tracked_type>::create(tracked, map.root());
  phys_addr memfd{};
  luo_v5_blob blob{};

  explicit layout_handover(luo_version lv, u64 sessions = 2, const char* kho_compatible = nullptr) {
    memfd_folio folios[2];
    for (u64 i = 0; i < 2; ++i) folios[i] = memfd_folio{pfn{tracked.alloc(order{0})->value >> 12}, i};
    memfd = *write_memfd(tracked, memfd_file{0, 0x2000, 0, folios, 2}, memfd_version::v2);
    const luo_file_content files[] = {{memfd_v2_compatible, memfd.value, 1}};
    std::vector<std::string> names;
    for (u64 i = 0; i < sessions; ++i) names.push_back("vm" + std::to_string(i));
    std::vector<luo_session_content> ss;
    for (u64 i = 0; i < sessions; ++i) ss.push_back({names[i].c_str(), i == 0 ? files : nullptr, i == 0 ? 1u : 0u});
    const luo_flb_content flbs[] = {{"opaque-flb", 0, 1}};
    auto b = write_luo(tracked, lv, luo_content{2, ss.data(), ss.size(), flbs, 1});
    EXPECT_TRUE(b.has_value());
    blob = *b;
    EXPECT_TRUE(w.add(luo_v5_subtree, blob.phys, blob.size, kho_compatible));
    EXPECT_TRUE(w.set_memory_map_checksum(map.deep_checksum()));
    EXPECT_TRUE(w.seal());
  }
  status check() {
    const flat_memory moved = a.remap();
    model::scratch_pages<12> scratch(moved);
    auto v = attach_kho_handover(moved, w.root(), scratch.pages());
    return v ? status{} : status{v.err()};
  }
  // luo_ser's three u64s (every layout here but luo-v1 (luo-flb) has one).
  unsigned char* ser() {
    const luo_layout& l = *luo_layout_of(*detect_luo_version(a.memory(), blob.phys, blob.size));
    if (l.form == luo_form::raw) return a.bytes(blob.phys) + l.compatible_len;
    const void* f = a.bytes(blob.phys);
    int len = 0;
    const void* p = fdt_getprop(f, 0, "luo-abi-header", &len);
    return a.bytes(phys_addr{get64(static_cast<const unsigned char*>(p))});
  }
};

TEST(LuoLayoutsHandover, EveryLayoutChecksWhole) {
  for (luo_version v : new_layouts) {
    for (const char* compat : {static_cast<const char*>(nullptr), luo_version_name(v)}) {
      layout_handover h(v, 2, compat);
      const status s = h.check();
      EXPECT_TRUE(s) << luo_version_name(v) << ": " << to_string(s.code()) << " " << s.err().loc.structure;
    }
  }
  // kho,compatible naming the other form of the same string: refused at the blob.
  layout_handover h(luo_version::v3, 2, "luo-v3 (FDT)");
  EXPECT_EQ(h.check().code(), errc::bad_compatible);
}

TEST(LuoLayoutsHandover, TamperThenReseal) {
  {
    // luo-v4 (FDT): a session block's count over 102, the root re-sealed.
    layout_handover h(luo_version::v4_fdt);
    const phys_addr head{get64(h.ser() + 8)};
    put64(h.a.bytes(head) + 8, 103);
    ASSERT_TRUE(h.w.seal());
    const status s = h.check();
    EXPECT_EQ(s.code(), errc::bad_count) << to_string(s.code());
    EXPECT_STREQ(s.err().loc.structure, "luo-sessions");
    EXPECT_EQ(s.err().loc.at, head);
  }
  {
    // luo-v3-kho-block-v1: the session chain looped onto itself.
    layout_handover h(luo_version::v3_kho_block_v1);
    const phys_addr head{get64(h.ser() + 8)};
    put64(h.a.bytes(head), head.value);
    ASSERT_TRUE(h.w.seal());
    const status s = h.check();
    EXPECT_EQ(s.code(), errc::cycle) << to_string(s.code());
    EXPECT_STREQ(s.err().loc.structure, "luo-sessions");
  }
  {
    // luo-v2: the FLB page pointed at the memfd's page: two owners.
    layout_handover h(luo_version::v2);
    std::memcpy(h.a.bytes(h.memfd), h.a.bytes(phys_addr{get64(h.ser() + 16)}), 16 + 64);
    put64(h.ser() + 16, h.memfd.value);
    ASSERT_TRUE(h.w.seal());
    const status s = h.check();
    EXPECT_FALSE(s);
  }
  {
    // An empty LUO block spliced in front of luo-v3 (FDT)'s sessions: accepted, but
    // only if its pages are preserved (it is claimed like any block).
    layout_handover h(luo_version::v3_fdt);
    const phys_addr empty = *h.a.pages().alloc(order{1});  // not preserved
    std::memset(h.a.bytes(empty), 0, 8192);
    put64(h.a.bytes(empty), get64(h.ser() + 8));
    put64(h.ser() + 8, empty.value);
    ASSERT_TRUE(h.w.seal());
    const status s = h.check();
    EXPECT_EQ(s.code(), errc::not_preserved) << to_string(s.code());
    EXPECT_EQ(s.err().loc.at, empty);
  }
}

TEST(LuoLayoutsHandover, DumpAndVerdict) {
  for (luo_version v : new_layouts) {
    layout_handover h(v);
    kho_subtree t;
    t.name = "LUO";
    t.phys = h.blob.phys;
    t.size = h.blob.size;
    const auto j = model::linux_inspect::luo_v5_json<12>(h.a.memory(), t, 4);
    EXPECT_EQ(j["format"], luo_version_name(v)) << j.dump();
    EXPECT_EQ(j["sessions"].size(), 2u);
    EXPECT_EQ(j["flbs"].size(), 1u);
  }
}

}  // namespace
}  // namespace kho::test::linux_luo_layouts_test
