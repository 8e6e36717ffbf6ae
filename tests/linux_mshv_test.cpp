// MSHV's "mshv_prsv_pt" subtree (LINUX-FORMATS-NEXT.md section 6): an independent
// encoder of the one-page FDT and the raw-pfn radix tree read by kho's reader, writer
// round trips at 4, 16 and 64 KiB pages with a std::set oracle, the key encoding told
// apart from the main map's, every reader check refused with its errc, and the subtree
// through the whole-handover check (check_kho_fdt) with its main-map rule.
#include <kho/linux/kho_fdt_check.hpp>
#include <kho/linux/mshv.hpp>
#include <kho/model/inspect_linux.hpp>
#include <kho/model/scratch_pages.hpp>
#include <kho/page_owners.hpp>
#include <kho/preserving_page_source.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cstring>
#include <set>
#include <vector>

#include <libfdt.h>

namespace kho::test::linux_mshv_test {
namespace {

using namespace kho::upstream;

using source = arena<12>::source_type;
using map_type = preserve_bitmap<source, 12>;

// ---- independent encoder: the spec's table, raw bytes --------------------------------

void put_le64(unsigned char* p, u64 v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

// Builds a depth-6 raw-pfn tree at 4 KiB pages by hand: level L (5 = root .. 1) index
// (pfn >> (15 + 9 (L - 1))) & 511, leaf bit pfn & 0x7fff, bit n of LE word n / 64.
struct hand_tree {
  arena<12>& a;
  std::vector<phys_addr> nodes;  // before root: the constructor's fresh() appends to it
  phys_addr root;

  explicit hand_tree(arena<12>& ar) : a(ar), root(fresh()) {}
  phys_addr fresh() {
    const phys_addr pa = *a.pages().alloc(order{0});
    std::memset(a.bytes(pa), 0, 4096);
    nodes.push_back(pa);
    return pa;
  }
  void add(u64 pfn) {
    phys_addr t = root;
    for (unsigned level = 5; level >= 1; --level) {
      unsigned char* slot = a.bytes(t) + 8 * ((pfn >> (15 + 9 * (level - 1))) & 511);
      u64 child = 0;
      std::memcpy(&child, slot, 8);  // host is little-endian in this test's CI
      if (child == 0) {
        child = fresh().value;
        put_le64(slot, child);
      }
      t = phys_addr{child};
    }
    const u64 bit = pfn & 0x7fff;
    a.bytes(t)[bit / 8] |= static_cast<unsigned char>(1u << (bit % 8));
  }
};

// The FDT page: "/" with compatible and an 8-byte LE root_table, in a zeroed page.
phys_addr hand_fdt(arena<12>& a, u64 root, const char* compatible = "mshv_kho-v1", int root_len = 8) {
  const phys_addr pa = *a.pages().alloc(order{0});
  void* f = a.bytes(pa);
  std::memset(f, 0, 4096);
  unsigned char v[16]{};
  put_le64(v, root);
  EXPECT_EQ(fdt_create(f, 4096), 0);
  EXPECT_EQ(fdt_finish_reservemap(f), 0);
  EXPECT_EQ(fdt_begin_node(f, ""), 0);
  EXPECT_EQ(fdt_property(f, "compatible", compatible, int(std::strlen(compatible) + 1)), 0);
  if (root_len >= 0) {
    EXPECT_EQ(fdt_property(f, "root_table", v, root_len), 0);
  }
  EXPECT_EQ(fdt_end_node(f), 0);
  EXPECT_EQ(fdt_finish(f), 0);
  return pa;
}

template <class M>
std::vector<u64> pfns_of(const mshv_view<M, arena<12>::source_type, 12>& v) {
  std::vector<u64> out;
  v.for_each_page([&](phys_addr pa) { out.push_back(pa.value >> 12); });
  return out;
}

TEST(LinuxMshv, HandEncodedTreeReads) {
  arena<12> a(u64{8} << 20);
  scratch_arena<12> scratch;
  hand_tree t(a);
  // pfn 0 is key 0 (no order bit), a page far up, and a run across a word.
  const std::set<u64> pfns = {0, 1, 63, 64, 65, u64{1} << 30, (u64{1} << 40) + 7, (u64{1} << 52) - 1};
  for (u64 p : pfns) t.add(p);
  const phys_addr fdt = hand_fdt(a, t.root.value);
  auto v = attach_mshv(a.remap(), fdt, 4096, scratch.pages());
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  EXPECT_EQ(v->root_table(), t.root);
  EXPECT_EQ(v->page_count(), pfns.size());
  EXPECT_EQ(v->node_count(), t.nodes.size());
  const auto got = pfns_of(*v);
  EXPECT_EQ(std::set<u64>(got.begin(), got.end()), pfns);
  EXPECT_TRUE(std::is_sorted(got.begin(), got.end()));
}

TEST(LinuxMshv, KeysAreNotTheMainMapsEncoding) {
  // One page at pfn p: the main map's key is (1 << 52) | p, MSHV's is p. The same
  // bytes read with the other encoding name other pages.
  arena<12> a(u64{8} << 20);
  scratch_arena<12> scratch;
  hand_tree t(a);
  t.add(0x1234);
  std::vector<u64> nodes(64);
  auto as_map = attach_preserve_bitmap<12>(a.memory(), t.root, scratch.pages(), std::span<u64>(nodes));
  ASSERT_TRUE(as_map.has_value());
  EXPECT_FALSE(as_map->contains(phys_addr{u64{0x1234} << 12}, order{0}));  // decoded as order 52
  auto as_raw = preserve_bitmap_view<flat_memory, 12, raw_pfn_keys<12>>::attach(a.memory(), t.root, scratch.pages(),
                                                                               std::span<u64>(nodes));
  ASSERT_TRUE(as_raw.has_value());
  EXPECT_TRUE(as_raw->contains(phys_addr{u64{0x1234} << 12}, order{0}));
  EXPECT_EQ(as_raw->total(), 1u);
}

template <class Shift>
class MshvRoundTrip : public ::testing::Test {};
using shifts = ::testing::Types<std::integral_constant<unsigned, 12>, std::integral_constant<unsigned, 14>,
                                std::integral_constant<unsigned, 16>>;
TYPED_TEST_SUITE(MshvRoundTrip, shifts);

TYPED_TEST(MshvRoundTrip, PagesComeBackAndAreInTheMainMap) {
  constexpr unsigned shift = TypeParam::value;
  using src = typename arena<shift>::source_type;
  arena<shift> a(u64{32} << 20);
  scratch_arena<shift> scratch;
  auto map = preserve_bitmap<src, shift>::create(a.pages());
  ASSERT_TRUE(map.has_value());
  std::vector<phys_addr> pages;
  for (u64 i = 0; i < 40; ++i) pages.push_back(*a.pages().alloc(order{0}));
  pages.push_back(phys_addr{u64{1} << 44});  // outside the arena: the hypervisor's page
  auto blob = write_mshv<shift>(a.pages(), std::span<const phys_addr>(pages), *map);
  ASSERT_TRUE(blob.has_value()) << to_string(blob.code());
  EXPECT_EQ(blob->size, page_geometry<shift>::size);
  const flat_memory moved = a.remap();
  auto v = attach_mshv<shift>(moved, blob->phys, blob->size, scratch.pages());
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  std::set<u64> got;
  v->for_each_page([&](phys_addr pa) { got.insert(pa.value); });
  std::set<u64> want;
  for (phys_addr p : pages) want.insert(p.value);
  EXPECT_EQ(got, want);
  EXPECT_TRUE(v->check_main_map(*map));
  // Every MSHV page is one order-0 key: pages, tree nodes and the FDT.
  EXPECT_EQ(map->count(order{0}), pages.size() + v->node_count() + 1 + map->node_count());
  page_owners<src, shift> owners(a.pages());
  ASSERT_TRUE(v->claim_pages(owners));
  EXPECT_STREQ(owners.find(pages[0])->structure, mshv_hypervisor_owner);
  EXPECT_STREQ(owners.find(blob->phys)->structure, "mshv");
  EXPECT_STREQ(owners.find(blob->root_table)->structure, "mshv");
}

RC_GTEST_PROP(LinuxMshv, ReadsBackTheSetWritten, ()) {
  const auto raw = *rc::gen::container<std::vector<u64>>(rc::gen::inRange<u64>(0, u64{1} << 52));
  const std::set<u64> oracle(raw.begin(), raw.end());
  arena<12> a(u64{16} << 20);
  scratch_arena<12> scratch;
  auto map = map_type::create(a.pages());
  RC_ASSERT(map.has_value());
  std::vector<phys_addr> pages;
  for (u64 p : oracle) pages.push_back(phys_addr{p << 12});
  auto blob = write_mshv(a.pages(), std::span<const phys_addr>(pages), *map);
  RC_ASSERT(blob.has_value());
  auto v = attach_mshv(a.memory(), blob->phys, blob->size, scratch.pages());
  RC_ASSERT(v.has_value());
  std::set<u64> got;
  v->for_each_page([&](phys_addr pa) { got.insert(pa.value >> 12); });
  RC_ASSERT(got == oracle);
  RC_ASSERT(v->page_count() == oracle.size());
  for (u64 p : oracle) RC_ASSERT(v->tree().contains(phys_addr{p << 12}, order{0}));
  RC_ASSERT(bool(v->check_main_map(*map)));
}

TEST(LinuxMshv, WriterRefusesAPageTwice) {
  arena<12> a(u64{8} << 20);
  auto map = map_type::create(a.pages());
  const phys_addr p{u64{1} << 36};
  const phys_addr twice[] = {p, p};
  EXPECT_EQ(write_mshv(a.pages(), std::span<const phys_addr>(twice), *map).code(), errc::already_exists);
  const phys_addr odd[] = {phys_addr{p.value + 8}};
  EXPECT_EQ(write_mshv(a.pages(), std::span<const phys_addr>(odd), *map).code(), errc::misaligned);
}

// ---- reader checks -----------------------------------------------------------------

struct bad_case {
  const char* compatible;
  int root_len;
  errc code;
};

TEST(LinuxMshv, FdtChecks) {
  for (const bad_case& c : {bad_case{"mshv_kho-v2", 8, errc::bad_compatible}, bad_case{"mshv_kho-v1", 4, errc::bad_count},
                            bad_case{"mshv_kho-v1", 16, errc::bad_count}, bad_case{"mshv_kho-v1", -1, errc::not_found}}) {
    arena<12> a(u64{8} << 20);
    scratch_arena<12> scratch;
    hand_tree t(a);
    t.add(5);
    const phys_addr fdt = hand_fdt(a, t.root.value, c.compatible, c.root_len);
    auto v = attach_mshv(a.memory(), fdt, 4096, scratch.pages());
    ASSERT_FALSE(v.has_value()) << c.compatible << " " << c.root_len;
    EXPECT_EQ(v.code(), c.code);
    EXPECT_STREQ(v.err().loc.structure, "mshv");
    EXPECT_EQ(v.err().loc.at, fdt);
  }
}

TEST(LinuxMshv, BlobChecks) {
  arena<12> a(u64{8} << 20);
  scratch_arena<12> scratch;
  hand_tree t(a);
  t.add(5);
  const phys_addr fdt = hand_fdt(a, t.root.value);
  // blob-size is a page, not fdt_totalsize.
  EXPECT_EQ(attach_mshv(a.memory(), fdt, fdt_totalsize(a.bytes(fdt)), scratch.pages()).code(), errc::bad_count);
  EXPECT_EQ(attach_mshv(a.memory(), phys_addr{fdt.value + 8}, 4096, scratch.pages()).code(), errc::misaligned);
  EXPECT_EQ(attach_mshv(a.memory(), phys_addr{u64{1} << 40}, 4096, scratch.pages()).code(), errc::out_of_bounds);
  a.bytes(fdt)[0] ^= 0xff;  // the FDT magic
  EXPECT_EQ(attach_mshv(a.memory(), fdt, 4096, scratch.pages()).code(), errc::bad_fdt);
}

TEST(LinuxMshv, TreeChecks) {
  arena<12> a(u64{8} << 20);
  scratch_arena<12> scratch;
  hand_tree t(a);
  t.add(5);
  // A table entry naming the root again: a cycle, at the root, caught by the tree's reader.
  put_le64(a.bytes(t.nodes[1]) + 8 * 3, t.root.value);
  const phys_addr fdt = hand_fdt(a, t.root.value);
  auto v = attach_mshv(a.memory(), fdt, 4096, scratch.pages());
  EXPECT_EQ(v.code(), errc::cycle);
  EXPECT_STREQ(v.err().loc.structure, "radix");
  EXPECT_EQ(v.err().loc.at, t.root);
  put_le64(a.bytes(t.nodes[1]) + 8 * 3, 0);
  // A root-table slot for keys at or above 2^52 (no pfn has them).
  put_le64(a.bytes(t.root) + 8 * 200, t.nodes[2].value);
  v = attach_mshv(a.memory(), fdt, 4096, scratch.pages());
  EXPECT_EQ(v.code(), errc::out_of_range);
  EXPECT_EQ(v.err().loc.at, t.root);
  put_le64(a.bytes(t.root) + 8 * 200, 0);
  // root_table misaligned.
  const phys_addr bad = hand_fdt(a, t.root.value + 16);
  EXPECT_EQ(attach_mshv(a.memory(), bad, 4096, scratch.pages()).code(), errc::misaligned);
  EXPECT_TRUE(attach_mshv(a.memory(), fdt, 4096, scratch.pages()).has_value());
}

TEST(LinuxMshv, EveryPageMustBeAnOrderZeroKeyOfTheMainMap) {
  arena<12> a(u64{8} << 20);
  scratch_arena<12> scratch;
  auto map = map_type::create(a.pages());
  const phys_addr pages[] = {phys_addr{u64{1} << 36}, phys_addr{(u64{1} << 36) + 4096}};
  auto blob = write_mshv(a.pages(), std::span<const phys_addr>(pages), *map);
  ASSERT_TRUE(blob.has_value());
  auto v = attach_mshv(a.memory(), blob->phys, blob->size, scratch.pages());
  ASSERT_TRUE(v.has_value());
  ASSERT_TRUE(v->check_main_map(*map));
  // A key page covered only by a higher-order block is not what the kernel restores.
  ASSERT_TRUE(map->unpreserve(pages[0], order{0}));
  ASSERT_TRUE(map->unpreserve(pages[1], order{0}));
  ASSERT_TRUE(map->preserve(pages[0], order{1}));
  status s = v->check_main_map(*map);
  EXPECT_EQ(s.code(), errc::not_preserved);
  EXPECT_EQ(s.err().loc.at, pages[0]);
  ASSERT_TRUE(map->unpreserve(pages[0], order{1}));
  ASSERT_TRUE(map->preserve(pages[0], order{0}));
  ASSERT_TRUE(map->preserve(pages[1], order{0}));
  // A tree page missing.
  ASSERT_TRUE(map->unpreserve(blob->root_table, order{0}));
  s = v->check_main_map(*map);
  EXPECT_EQ(s.code(), errc::not_preserved);
  EXPECT_EQ(s.err().loc.at, blob->root_table);
  ASSERT_TRUE(map->preserve(blob->root_table, order{0}));
  ASSERT_TRUE(map->unpreserve(blob->phys, order{0}));
  EXPECT_EQ(v->check_main_map(*map).err().loc.at, blob->phys);
}

// ---- the whole handover ------------------------------------------------------------

struct mshv_handover {
  using tracked_type = preserving_page_source<source, map_type>;
  arena<12> a{u64{16} << 20, u64{1} << 32};
  map_type map = *map_type::create(a.pages());
  tracked_type tracked{a.pages(), map};
  kho_fdt_writer<tracked_type, 12> w = *kho_fdt_writer<tracked_type, 12>::create(tracked, map.root());
  std::vector<phys_addr> pages;
  mshv_blob blob{};
  phys_addr meta{};

  mshv_handover() {
    for (int i = 0; i < 6; ++i) pages.push_back(*a.pages().alloc(order{0}));
    blob = *write_mshv(a.pages(), std::span<const phys_addr>(pages), map);
    auto m = write_kexec_metadata(tracked, "6.20.0-kho", 3);
    meta = m->phys;
    EXPECT_TRUE(w.add(mshv_subtree, blob.phys, blob.size));
    EXPECT_TRUE(w.add(kexec_metadata_subtree, meta, m->size));
    reseal();
  }
  void reseal() {
    EXPECT_TRUE(w.set_memory_map_checksum(map.deep_checksum()));
    EXPECT_TRUE(w.seal());
  }
  status check() {
    const flat_memory moved = a.remap();
    model::scratch_pages<12> scratch(moved);
    auto v = attach_kho_handover<12>(moved, w.root(), scratch.pages());
    return v ? status{} : status{v.err()};
  }
};

TEST(LinuxMshvHandover, Validates) {
  mshv_handover h;
  const status s = h.check();
  EXPECT_TRUE(s) << to_string(s.code()) << " at " << std::hex << s.err().loc.at.value;
}

TEST(LinuxMshvHandover, Dumped) {
  mshv_handover h;
  const nlohmann::json j = model::inspect_kho_fdt<12>(h.a.memory(), h.w.root());
  ASSERT_EQ(j["status"], "ok") << j.dump(1);
  const nlohmann::json* m = nullptr;
  for (const auto& t : j["subtrees"])
    if (t["name"] == mshv_subtree) m = &t;
  ASSERT_NE(m, nullptr);
  EXPECT_EQ((*m)["format"], mshv_compatible);
  EXPECT_EQ((*m)["hypervisor_pages"], h.pages.size());
  EXPECT_EQ((*m)["root_table"], model::hex(h.blob.root_table.value));
  EXPECT_EQ((*m)["range_count"], 1u);  // six pages allocated in a row
  const std::string text = model::format_kho_fdt_report(j);
  EXPECT_NE(text.find("MSHV (RFC format): 6 hypervisor pages"), std::string::npos) << text;
  EXPECT_NE(text.find("hypervisor pages ["), std::string::npos) << text;
}

TEST(LinuxMshvHandover, KeyPageNotInTheMainMap) {
  mshv_handover h;
  ASSERT_TRUE(h.map.unpreserve(h.pages[2], order{0}));
  h.reseal();
  const status s = h.check();
  EXPECT_EQ(s.code(), errc::not_preserved);
  EXPECT_STREQ(s.err().loc.structure, "mshv");
  EXPECT_EQ(s.err().loc.at, h.pages[2]);
}

TEST(LinuxMshvHandover, KeyPageAlsoAnotherStructuresIsAliased) {
  mshv_handover h;
  // The kexec-metadata blob's page named as a hypervisor page too (it is an order-0
  // key of the main map already, so only the one-owner rule refuses it).
  // Hand-edit: set the metadata page's pfn in the existing MSHV tree (its leaf exists:
  // every page here lies in one 128 MiB leaf span).
  std::vector<u64> nodes(64);
  scratch_arena<12> scratch;
  auto tree = preserve_bitmap_view<flat_memory, 12, raw_pfn_keys<12>>::attach(h.a.memory(), h.blob.root_table,
                                                                             scratch.pages(), std::span<u64>(nodes));
  ASSERT_TRUE(tree.has_value());
  const u64 leaf = nodes[tree->node_count() - 1];  // sorted: the leaf was allocated last
  const u64 pfn = h.meta.value >> 12;
  h.a.bytes(phys_addr{leaf})[(pfn & 0x7fff) / 8] |= static_cast<unsigned char>(1u << (pfn % 8));
  h.reseal();
  const status s = h.check();
  EXPECT_EQ(s.code(), errc::aliased);
  EXPECT_EQ(s.err().loc.at, h.meta);
}

TEST(LinuxMshvHandover, WrongCompatibleUnderTheName) {
  mshv_handover h;
  void* f = h.a.bytes(h.blob.phys);
  ASSERT_EQ(fdt_setprop_string(f, 0, "compatible", "mshv_kho-v9"), 0);
  h.reseal();
  const status s = h.check();
  EXPECT_EQ(s.code(), errc::bad_compatible);
  EXPECT_STREQ(s.err().loc.structure, "mshv");
}

TEST(LinuxMshvHandover, KernelVerdictOnAWrongCompatible) {
  mshv_handover h;
  void* f = h.a.bytes(h.blob.phys);
  ASSERT_EQ(fdt_setprop_string(f, 0, "compatible", "mshv_kho-v9"), 0);
  h.reseal();
  const nlohmann::json j = model::inspect_kho_fdt<12>(h.a.memory(), h.w.root());
  EXPECT_EQ(j["status"], "incompatible format");
  const std::string kernel = j["kernel"].dump();
  EXPECT_NE(kernel.find("MSHV RFC panics"), std::string::npos) << kernel;
}

}  // namespace
}  // namespace kho::test::linux_mshv_test
