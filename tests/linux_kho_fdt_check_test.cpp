// A whole Linux handover behind a "kho-v4" root FDT: the preserved-memory map, LUO
// (luo-v5) with a memfd file, kexec-metadata, memblock and one of kho's own formats,
// checked as a next kernel would (kho/linux/kho_fdt_check.hpp), at another address;
// then tampered with and re-sealed, so only the ownership and preservation checks
// stand between it and the reader.
#include <kho/linux/kho_fdt_check.hpp>
#include <kho/model/scratch_pages.hpp>
#include <kho/preserving_page_source.hpp>
#include <kho/xarray.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <utility>

namespace kho::test::linux_kho_fdt_check_test {
namespace {

using namespace kho::upstream;

template <unsigned PageShift>
struct linux_handover {
  using source = typename arena<PageShift>::source_type;
  using map_type = preserve_bitmap<source, PageShift>;
  using tracked_type = preserving_page_source<source, map_type>;

  arena<PageShift> a{u64{16} << 20, u64{1} << 32};
  map_type map = *map_type::create(a.pages());
  tracked_type tracked{a.pages(), map};
  kho_fdt_writer<tracked_type, PageShift> w = *kho_fdt_writer<tracked_type, PageShift>::create(tracked, map.root());
  phys_addr memfd{}, meta{}, luo{};

  linux_handover() {
    memfd_folio folios[4];
    for (u64 i = 0; i < 4; ++i) {
      auto pa = tracked.alloc(order{0});
      EXPECT_TRUE(pa.has_value());
      folios[i] = memfd_folio{pfn{pa->value >> PageShift}, i * 3, memfd_folio_dirty | memfd_folio_uptodate};
    }
    auto fd = write_memfd<PageShift>(tracked, memfd_file{0, u64{12} << PageShift, memfd_seal_seal, folios, 4});
    EXPECT_TRUE(fd.has_value());
    memfd = *fd;
    auto l = luo_v5_writer<tracked_type, PageShift>::create(tracked, 2);
    EXPECT_TRUE(l.has_value());
    EXPECT_TRUE(l->create_session("vm"));
    EXPECT_TRUE(l->preserve_file("vm", memfd_v2_compatible, memfd.value, 1));
    luo = l->blob().phys;
    auto m = write_kexec_metadata<PageShift>(tracked, "6.20.0-kho", 3);
    EXPECT_TRUE(m.has_value());
    meta = m->phys;
    const reserve_mem_region regions[] = {{"trace", *tracked.alloc(order{1}), u64{2} << PageShift}};
    auto mb = write_memblock<PageShift>(tracked, regions, 1);
    EXPECT_TRUE(mb.has_value());
    auto xa = xarray<u64, PageShift, tracked_type>::create(tracked);
    EXPECT_TRUE(xa.has_value());
    EXPECT_TRUE(xa->store(5, 55));
    xa->seal();
    EXPECT_TRUE(w.add(luo_v5_subtree, luo, l->blob().size, luo_v5_compatible));
    EXPECT_TRUE(w.add(kexec_metadata_subtree, meta, m->size));
    EXPECT_TRUE(w.add(memblock_subtree, mb->phys, mb->size));
    EXPECT_TRUE(w.add("kho-memfd-index", xa->root(), xa->root_size, xarray_compatible));
    EXPECT_TRUE(w.set_memory_map_checksum(map.deep_checksum()));
    EXPECT_TRUE(w.seal());
  }
  status check(const handover_check_options& opt = {}) {
    const flat_memory moved = a.remap();
    model::scratch_pages<PageShift> scratch(moved);
    auto v = attach_kho_handover<PageShift>(moved, w.root(), scratch.pages(), page_geometry<PageShift>::size, opt);
    return v ? status{} : status{v.err()};
  }
  // Points subtree `name`'s preserved-data at `to` and re-seals.
  void repoint(const char* name, phys_addr to) {
    void* f = a.bytes(w.root());
    ASSERT_EQ(fdt_open_into(f, f, int(page_geometry<PageShift>::size)), 0);
    unsigned char v[8];
    impl::fdt_put_le64(v, to.value);
    ASSERT_EQ(fdt_setprop(f, fdt_subnode_offset(f, 0, name), kho_fdt_data, v, 8), 0);
    ASSERT_EQ(fdt_pack(f), 0);
    ASSERT_TRUE(w.seal());
  }
};

template <class T>
class KhoFdtCheckPages : public ::testing::Test {};
using page_shifts = ::testing::Types<std::integral_constant<unsigned, 12>, std::integral_constant<unsigned, 14>,
                                     std::integral_constant<unsigned, 16>>;
TYPED_TEST_SUITE(KhoFdtCheckPages, page_shifts);

TYPED_TEST(KhoFdtCheckPages, WholeHandoverValidatesElsewhere) {
  linux_handover<TypeParam::value> h;
  const status s = h.check();
  EXPECT_TRUE(s) << to_string(s.code()) << " at " << std::hex << s.err().loc.at.value;
}

TEST(KhoFdtCheck, StockHandoverValidatesWithoutTheSeal) {
  arena<12> a(u64{4} << 20, u64{1} << 32);
  using source = arena<12>::source_type;
  auto map = preserve_bitmap<source>::create(a.pages());
  ASSERT_TRUE(map.has_value());
  preserving_page_source<source, preserve_bitmap<source>> tracked(a.pages(), *map);
  auto w = kho_fdt_writer<decltype(tracked)>::create(tracked, map->root(), kho_fdt_options{false});
  auto m = write_kexec_metadata(tracked, "6.20.0", 1);
  ASSERT_TRUE(w && m && w->add(kexec_metadata_subtree, m->phys, m->size));
  model::scratch_pages scratch(a.memory());
  auto v = attach_kho_handover(a.memory(), w->root(), scratch.pages());
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  EXPECT_FALSE(v->kho_sealed());
}

TEST(KhoFdtCheck, MemfdStateSharedWithKexecMetadata) {
  linux_handover<12> h;
  h.repoint(kexec_metadata_subtree, h.memfd);
  // The metadata blob is now the memfd's state page: version word is the memfd's pos
  // (0), refused by the metadata reader before ownership is even asked.
  const status s = h.check();
  EXPECT_EQ(s.code(), errc::bad_version);
  EXPECT_STREQ(s.err().loc.structure, "kexec-metadata");
}

TEST(KhoFdtCheck, TwoSubtreesOnOneLuo) {
  linux_handover<12> h;
  // A second name for LUO's luo_ser: bytes overlap, refused at the root.
  h.repoint("kho-memfd-index", h.luo);
  const status s = h.check();
  EXPECT_EQ(s.code(), errc::aliased);
  EXPECT_STREQ(s.err().loc.structure, "kho-fdt");
}

TEST(KhoFdtCheck, BlobOnAMemfdFolioArrayPage) {
  linux_handover<12> h;
  // An opaque blob inside the memfd's state page: the bytes overlap no other subtree,
  // so the root accepts it; ownership does not. The newest subtree comes first in the
  // tree, so the blob claims the page and memfd (reached through LUO) collides.
  void* f = h.a.bytes(h.w.root());
  ASSERT_EQ(fdt_open_into(f, f, 4096), 0);
  const int node = fdt_add_subnode(f, 0, "opaque");
  unsigned char d[8], n[8];
  impl::fdt_put_le64(d, h.memfd.value + 512);
  impl::fdt_put_le64(n, 16);
  ASSERT_GE(node, 0);
  ASSERT_EQ(fdt_setprop(f, node, kho_fdt_data, d, 8), 0);
  ASSERT_EQ(fdt_setprop(f, node, kho_fdt_size, n, 8), 0);
  ASSERT_EQ(fdt_setprop(f, node, kho_fdt_blob_checksum, n, 8), 0);
  ASSERT_EQ(fdt_pack(f), 0);
  ASSERT_TRUE(h.w.seal());
  const status s = h.check();
  ASSERT_EQ(s.code(), errc::aliased) << to_string(s.code());
  EXPECT_STREQ(s.err().loc.structure, "memfd");
  EXPECT_EQ(s.err().loc.at, h.memfd);
  EXPECT_STREQ(s.err().other.structure, "blob");
}

TEST(KhoFdtCheck, UpstreamNameWithAnotherFormat) {
  linux_handover<12> h;
  void* f = h.a.bytes(h.w.root());
  ASSERT_EQ(fdt_open_into(f, f, 4096), 0);
  ASSERT_EQ(fdt_setprop(f, fdt_subnode_offset(f, 0, luo_v5_subtree), kho_fdt_blob_compatible, "kho-luo-v1", 11), 0);
  ASSERT_EQ(fdt_pack(f), 0);
  ASSERT_TRUE(h.w.seal());
  const status s = h.check();
  EXPECT_EQ(s.code(), errc::bad_compatible);
  EXPECT_EQ(s.err().loc.at, h.luo);
}

// kexec-metadata and memblock are read by their names, as LUO is: a kho,compatible
// naming another format is refused at the blob; one naming their own is accepted.
TEST(KhoFdtCheck, UpstreamNamesBesideLuoWithAnotherFormat) {
  const std::pair<const char*, const char*> subtrees[] = {{kexec_metadata_subtree, kexec_metadata_format},
                                                          {memblock_subtree, memblock_compatible}};
  for (const auto& [name, own_format] : subtrees) {
    for (const char* compatible : {luo_v5_compatible, own_format}) {
      linux_handover<12> h;
      void* f = h.a.bytes(h.w.root());
      ASSERT_EQ(fdt_open_into(f, f, 4096), 0);
      ASSERT_EQ(fdt_setprop_string(f, fdt_subnode_offset(f, 0, name), kho_fdt_blob_compatible, compatible), 0);
      ASSERT_EQ(fdt_pack(f), 0);
      int len = 0;
      const void* data = fdt_getprop(f, fdt_subnode_offset(f, 0, name), kho_fdt_data, &len);
      ASSERT_EQ(len, 8);
      const phys_addr blob{impl::fdt_le64(data)};
      ASSERT_TRUE(h.w.seal());
      const status s = h.check();  // (maps the memory elsewhere: f is stale after it)
      if (compatible == own_format) {
        EXPECT_TRUE(s) << name << ": " << to_string(s.code());
        continue;
      }
      ASSERT_EQ(s.code(), errc::bad_compatible) << name;
      EXPECT_EQ(s.err().loc.at, blob) << name;
    }
  }
}

TEST(KhoFdtCheck, UnpreservedBlob) {
  linux_handover<12> h;
  auto loose = h.a.pages().alloc(order{0});  // not through the preserving source
  ASSERT_TRUE(loose.has_value());
  std::memcpy(h.a.bytes(*loose), h.a.bytes(h.meta), 73);
  h.repoint(kexec_metadata_subtree, *loose);
  const status s = h.check();
  EXPECT_EQ(s.code(), errc::not_preserved);
  EXPECT_EQ(s.err().loc.at, *loose);
  handover_check_options lax;
  lax.require_preserved = false;
  EXPECT_TRUE(h.check(lax));
}

TEST(KhoFdtCheck, MapChangedAfterSealing) {
  linux_handover<12> h;
  auto extra = h.a.pages().alloc(order{0});
  ASSERT_TRUE(extra && h.map.preserve(*extra, order{0}));
  ASSERT_TRUE(h.w.seal());  // the root's checksums hold; the map's recorded one does not
  const status s = h.check();
  EXPECT_EQ(s.code(), errc::bad_checksum);
  EXPECT_STREQ(s.err().loc.structure, "radix");
  EXPECT_EQ(s.err().loc.at, h.map.root());
}

TEST(KhoFdtCheck, XarraySubtreeShorterThanItsRootBlock) {
  linux_handover<12> h;
  void* f = h.a.bytes(h.w.root());
  unsigned char v[8];
  impl::fdt_put_le64(v, 64);  // the seal would vouch for half of the root block
  ASSERT_EQ(fdt_setprop_inplace(f, fdt_subnode_offset(f, 0, "kho-memfd-index"), kho_fdt_size, v, 8), 0);
  ASSERT_TRUE(h.w.seal());
  const status s = h.check();
  EXPECT_EQ(s.code(), errc::bad_count);
  EXPECT_STREQ(s.err().loc.structure, "xarray");
}

TEST(KhoFdtCheck, KhoLuoSubtreeShorterThanItsRootBlock) {
  linux_handover<12> h;
  void* f = h.a.bytes(h.w.root());
  ASSERT_EQ(fdt_open_into(f, f, 4096), 0);
  const int node = fdt_subnode_offset(f, 0, "kho-memfd-index");
  ASSERT_EQ(fdt_setprop(f, node, kho_fdt_blob_compatible, "kho-luo-v1", 11), 0);
  unsigned char v[8];
  impl::fdt_put_le64(v, 64);  // under luo_root's 112 bytes
  ASSERT_EQ(fdt_setprop(f, node, kho_fdt_size, v, 8), 0);
  ASSERT_EQ(fdt_pack(f), 0);
  ASSERT_TRUE(h.w.seal());
  const status s = h.check();
  EXPECT_EQ(s.code(), errc::bad_count);
  EXPECT_STREQ(s.err().loc.structure, "luo");
}

TEST(KhoFdtCheck, MemoryMapIsNotARadixTree) {
  linux_handover<12> h;
  void* f = h.a.bytes(h.w.root());
  unsigned char v[8];
  impl::fdt_put_le64(v, h.meta.value);  // the metadata page as the radix root
  ASSERT_EQ(fdt_setprop_inplace(f, 0, kho_fdt_memory_map, v, 8), 0);
  ASSERT_TRUE(h.w.seal());
  const status s = h.check();
  EXPECT_FALSE(s);
  EXPECT_STREQ(s.err().loc.structure, "radix") << to_string(s.code());
}

}  // namespace
}  // namespace kho::test::linux_kho_fdt_check_test
