// attach_handover as a whole: every structure validates, every page has one owner,
// every page reached is preserved. The hostile cases share bytes between structures
// that each validate alone, with every checksum valid.
#include <kho/handover_check.hpp>
#include <kho/model/demo_luo.hpp>
#include <kho/model/demo_xarray.hpp>
#include <kho/preserving_page_source.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <vector>

namespace kho::test::handover_check_test {
namespace {

using source_type = arena<12>::source_type;
using map_type = preserve_bitmap<source_type>;
using tracked_source = preserving_page_source<source_type, map_type>;
using root_writer = handover_writer<tracked_source>;

// A handover as the demo writes one: a blob, LUO, a memfd xarray and the map, every
// page preserved as it is handed out. Scratch comes from a second arena.
struct handover {
  arena<12> mem{u64{64} << 20};
  arena<12> scratch{u64{64} << 20, u64{1} << 44};
  std::optional<map_type> map;
  std::optional<tracked_source> tracked;
  std::optional<root_writer> root;
  phys_addr blob{};

  explicit handover(bool with_map = true) {
    map.emplace(*map_type::create(mem.pages()));
    tracked.emplace(mem.pages(), *map);
    root.emplace(*root_writer::create(*tracked));
    blob = *alloc_zeroed(*tracked, order{0}, 4096);
    std::memcpy(mem.bytes(blob), "state", 5);
    EXPECT_TRUE(root->add("demo-blob", "kho-blob-v1", blob, 5));
    EXPECT_TRUE(model::build_demo_luo(*tracked, *root));
    EXPECT_TRUE(model::build_demo_memfd(*tracked, *root));
    if (with_map) {
      EXPECT_TRUE(root->add("preserved-memory-map", radix_compatible, map->root(), 4096));
      EXPECT_TRUE(root->set_deep_checksum("preserved-memory-map", map->deep_checksum()));
    }
  }
  error attach(const handover_check_options& o = {}) {
    EXPECT_TRUE(root->seal());
    auto v = attach_handover(mem.remap(), root->root(), scratch.pages(), o);
    return v ? error{} : v.err();
  }
  phys_addr luo_root() {
    EXPECT_TRUE(root->seal());  // to read the entry back; a later add reopens the root
    auto v = attach_handover_root(mem.memory(), root->root());
    return phys_addr{(*v->find(luo_entry_name))->phys.get()};
  }
};

TEST(HandoverCheck, DemoHandoverAttachesAndReturnsItsScratch) {
  handover h;
  EXPECT_EQ(h.attach().code, errc::ok);
  EXPECT_EQ(h.scratch.pages().pages_in_use(), 0u);
}

TEST(HandoverCheck, BlobOnAnotherStructuresPageIsAliased) {
  handover h;
  const phys_addr luo = h.luo_root();
  // The LUO root block is an entry of its own; a blob inside the LUO root's page but
  // past its block shares no byte with any entry, so only ownership can catch it.
  ASSERT_TRUE(h.root->add("smuggled", "kho-blob-v1", luo + 2048, 16));
  const error e = h.attach();
  EXPECT_EQ(e.code, errc::aliased);
  EXPECT_EQ(e.loc.at, luo);
  EXPECT_STREQ(e.loc.structure, "blob");
  EXPECT_STREQ(e.other.structure, "luo");
  EXPECT_EQ(e.other.at, luo);
}

TEST(HandoverCheck, BlobOnARadixLeafIsAliased) {
  handover h;
  std::vector<u64> nodes(64);
  auto tree = attach_tree(h.mem.memory(), h.map->root(), nodes);
  ASSERT_TRUE(tree);
  ASSERT_GT(tree->node_count(), 1u);
  const phys_addr leaf{tree->nodes()[0] == h.map->root().value ? tree->nodes()[1] : tree->nodes()[0]};
  // A page of the tree below its root: no entry's bytes, so only ownership sees it.
  ASSERT_TRUE(h.root->add("smuggled", "kho-blob-v1", leaf + 8, 8));
  const error e = h.attach();
  // The map's entry comes first: the blob claims a page its tree already holds.
  EXPECT_EQ(e.code, errc::aliased);
  EXPECT_EQ(e.loc.at, leaf);
  EXPECT_STREQ(e.loc.structure, "blob");
  EXPECT_STREQ(e.other.structure, "radix");
  EXPECT_EQ(e.other.at, h.map->root());
}

TEST(HandoverCheck, UnpreservedBlobIsRefused) {
  handover h;
  const phys_addr loose = *alloc_zeroed(h.mem.pages(), order{0}, 4096);  // not tracked
  ASSERT_TRUE(h.root->add("loose", "kho-blob-v1", loose, 100));
  const error e = h.attach();
  EXPECT_EQ(e.code, errc::not_preserved);
  EXPECT_EQ(e.loc.at, loose);
  EXPECT_STREQ(e.loc.structure, "blob");
}

TEST(HandoverCheck, UnpreservedRootIsRefused) {
  arena<12> mem{u64{8} << 20};
  arena<12> scratch{u64{8} << 20, u64{1} << 44};
  auto map = map_type::create(mem.pages());
  auto w = handover_writer<source_type>::create(mem.pages());  // root page not preserved
  ASSERT_TRUE(w->add("preserved-memory-map", radix_compatible, map->root(), 4096));
  ASSERT_TRUE(w->seal());
  auto v = attach_handover(mem.memory(), w->root(), scratch.pages());
  ASSERT_EQ(v.code(), errc::not_preserved);
  EXPECT_EQ(v.err().loc.at, w->root());
}

TEST(HandoverCheck, NoMapPreservesNothing) {
  handover h(false);
  const error e = h.attach();
  EXPECT_EQ(e.code, errc::not_preserved);
  EXPECT_EQ(e.loc.at, h.root->root());
  EXPECT_EQ(h.attach({.require_preserved = false}).code, errc::ok);
}

TEST(HandoverCheck, TwoMapsAreRefused) {
  handover h;
  auto second = map_type::create(h.mem.pages());
  ASSERT_TRUE(second);
  ASSERT_TRUE(h.root->add("second-map", radix_compatible, second->root(), 4096));
  const error e = h.attach();
  EXPECT_EQ(e.code, errc::duplicate);
  EXPECT_EQ(e.loc.at, second->root());
}

TEST(HandoverCheck, StructureErrorsPassThroughWithTheirLocation) {
  handover h;
  const phys_addr luo = h.luo_root();
  auto* magic = h.mem.bytes(luo);
  magic[0] ^= 1;  // the LUO root's magic; the entry checksum is recomputed by seal()
  const error e = h.attach();
  EXPECT_EQ(e.code, errc::bad_magic);
  EXPECT_EQ(e.loc.at, luo);
}

}  // namespace
}  // namespace kho::test::handover_check_test
