// The older KHO roots (kho-v1, kho-v2, kho-v3, the granular kho-v4 string): the
// version table and its parser; handovers encoded here independently of kho's writers
// (libfdt calls in the order each kernel makes them, chunk and radix bytes by hand)
// read exactly; kho's writer at each version read back; downgrades that would lose a
// field refused by name; tampered and re-sealed variants refused where they break;
// and the one place the radix depth formulas differ (16 KiB pages).
#include <kho/linux/kho_fdt_check.hpp>
#include <kho/linux/kho_mem_chunks.hpp>
#include <kho/linux/kho_root_version.hpp>
#include <kho/model/scratch_pages.hpp>
#include <kho/preserving_page_source.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>
#include <libfdt.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cstring>
#include <set>
#include <string>
#include <utility>

namespace kho::test::linux_kho_old_roots_test {
namespace {

using namespace kho::upstream;

// ---- the version table -------------------------------------------------------------

TEST(KhoRootVersion, StringsAndProperties) {
  EXPECT_STREQ(kho_root_compatible(kho_root_version::v1), "kho-v1");
  EXPECT_STREQ(kho_root_compatible(kho_root_version::v4), "kho-v4");
  EXPECT_STREQ(kho_root_data_property(kho_root_version::v1), "fdt");
  EXPECT_STREQ(kho_root_data_property(kho_root_version::v2), "preserved-data");
  EXPECT_FALSE(kho_root_has_blob_size(kho_root_version::v2));
  EXPECT_TRUE(kho_root_has_blob_size(kho_root_version::v3));
  EXPECT_FALSE(kho_root_has_radix(kho_root_version::v1));
  // Depth: v2's formula lacks the +1; only 16 KiB pages tell them apart.
  EXPECT_EQ(kho_root_radix_depth(kho_root_version::v2, 12), 6u);
  EXPECT_EQ(kho_root_radix_depth(kho_root_version::v2, 14), 4u);
  EXPECT_EQ(kho_root_radix_depth(kho_root_version::v3, 14), 5u);
  EXPECT_EQ(kho_root_radix_depth(kho_root_version::v4, 14), radix_geometry<14>::depth);
  EXPECT_EQ(kho_root_radix_depth(kho_root_version::v2, 16), 4u);
}

TEST(KhoRootVersion, ParsesEveryVersionAndTheGranularForm) {
  for (unsigned v = 1; v <= 4; ++v) {
    const std::string s = "kho-v" + std::to_string(v);
    auto c = parse_kho_root_compatible(s.c_str(), s.size() + 1);
    ASSERT_TRUE(c) << s;
    EXPECT_EQ(static_cast<unsigned>(c->version), v);
    EXPECT_FALSE(c->granular);
  }
  auto g = parse_kho_root_compatible("kho-v4;radix-v1;vmalloc-v1", 27);
  ASSERT_TRUE(g);
  EXPECT_TRUE(g->granular);
  EXPECT_EQ(g->radix, 1);
  EXPECT_EQ(g->vmalloc, 1);
  auto r = parse_kho_root_compatible("kho-v4;radix-v1", 16);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->vmalloc, 0);
}

void expect_parse_error(const char* s, errc code, u64 offset, u32 token) {
  auto c = parse_kho_root_compatible(s, std::strlen(s) + 1);
  ASSERT_FALSE(c) << s;
  EXPECT_EQ(c.code(), code) << s;
  EXPECT_STREQ(c.err().loc.structure, "kho-compatible");
  EXPECT_EQ(c.err().loc.at.value, offset) << s;
  EXPECT_EQ(c.err().loc.depth, token) << s;
}

TEST(KhoRootVersion, RefusesWithTheTokenThatFailed) {
  expect_parse_error("kho-v4;vmalloc-v1;radix-v1", errc::bad_string, 18, 2);  // unsorted
  expect_parse_error("kho-v4;radix-v1;radix-v1", errc::duplicate, 16, 2);
  expect_parse_error("kho-v4;radix-v1;radix-v2", errc::duplicate, 16, 2);
  expect_parse_error("kho-v4;block-v1;radix-v1", errc::bad_compatible, 7, 1);  // unknown component
  expect_parse_error("kho-v4;radix-v2", errc::bad_version, 7, 1);
  expect_parse_error("kho-v3;radix-v1", errc::bad_compatible, 7, 1);  // granular only on v4
  expect_parse_error("kho-v5", errc::bad_version, 0, 0);
  expect_parse_error("luo-v1", errc::bad_compatible, 0, 0);
  expect_parse_error("kho-v04", errc::bad_string, 0, 0);
  expect_parse_error("kho-v4;", errc::bad_string, 7, 1);
  expect_parse_error("kho-v4;;radix-v1", errc::bad_string, 7, 1);
  expect_parse_error("", errc::bad_string, 0, 0);
  // No NUL within the property's length.
  EXPECT_EQ(parse_kho_root_compatible("kho-v4", 6).code(), errc::bad_string);
}

constexpr u64 B = u64{1} << 32;

// ---- the chunk chain against a set oracle ------------------------------------------

// Random blocks of orders 0..3 spread over 2^20 blocks of their order (several
// bitmaps per order: a 4 KiB order-0 bitmap spans 128 MiB), at 4 KiB and 16 KiB pages,
// written as a chain and read back: the same blocks, in the kernel's order, every
// lookup agreeing. The blocks need not be memory: only chunks and bitmaps are read.
template <unsigned PageShift>
void check_chunks_model() {
  const auto picks = *rc::gen::container<std::vector<std::pair<u64, unsigned>>>(
      rc::gen::pair(rc::gen::inRange<u64>(0, u64{1} << 20), rc::gen::inRange<unsigned>(0, 4)));
  arena<PageShift> a{u64{64} << 20, B};
  auto map = preserve_bitmap<typename arena<PageShift>::source_type, PageShift>::create(a.pages(), false);
  RC_ASSERT(map.has_value());
  std::set<std::pair<unsigned, u64>> want;  // (order, address): the chain's order
  for (auto [n, o] : picks) {
    const u64 pa = B + (n << (PageShift + o));
    if (want.insert({o, pa}).second) RC_ASSERT(static_cast<bool>(map->preserve(phys_addr{pa}, order{o})));
  }
  auto chain = write_kho_mem_chunks<PageShift>(a.pages(), *map);
  RC_ASSERT(chain.has_value());
  scratch_arena<PageShift> scratch;
  auto v = attach_kho_mem_chunks<PageShift>(a.memory(), chain->first, scratch.pages());
  RC_ASSERT(v.has_value());
  RC_ASSERT(scratch.pages().pages_in_use() == 0u);
  std::vector<std::pair<unsigned, u64>> got;
  v->for_each_block([&](phys_addr pa, order o) { got.emplace_back(o.value, pa.value); });
  const std::vector<std::pair<unsigned, u64>> expected(want.begin(), want.end());
  RC_ASSERT(got == expected);
  for (auto [o, pa] : want) RC_ASSERT(v->contains(phys_addr{pa}, order{o}));
  const u64 probe = B + (*rc::gen::inRange<u64>(0, u64{1} << 23) << PageShift);
  bool covered = false;
  for (auto [o, pa] : want) covered |= probe >= pa && probe < pa + (u64{1} << (PageShift + o));
  RC_ASSERT(v->is_preserved(phys_addr{probe}) == covered);
}

RC_GTEST_PROP(KhoMemChunksModel, MatchesSetOracle4K, ()) { check_chunks_model<12>(); }
RC_GTEST_PROP(KhoMemChunksModel, MatchesSetOracle16K, ()) { check_chunks_model<14>(); }

TEST(KhoMemChunks, FullChunkContinuesInANewChunkOfTheSameOrder) {
  // 300 order-0 blocks 128 MiB apart: 300 bitmaps, 255 in the first chunk.
  arena<> a{u64{4} << 20, B};
  auto map = preserve_bitmap<arena<>::source_type>::create(a.pages(), false);
  ASSERT_TRUE(map);
  for (u64 i = 0; i < 300; ++i) ASSERT_TRUE(map->preserve(phys_addr{B + (i << 27)}, order{0}));
  auto chain = write_kho_mem_chunks(a.pages(), *map);
  ASSERT_TRUE(chain);
  EXPECT_EQ(chain->chunks, 2u);
  EXPECT_EQ(chain->bitmaps, 300u);
  u32 first_count = 0, second_count = 0, second_order = 9;
  u64 next = 0;
  std::memcpy(&first_count, a.bytes(chain->first) + 12, 4);
  std::memcpy(&next, a.bytes(chain->first), 8);
  std::memcpy(&second_order, a.bytes(phys_addr{next}) + 8, 4);
  std::memcpy(&second_count, a.bytes(phys_addr{next}) + 12, 4);
  EXPECT_EQ(first_count, 255u);
  EXPECT_EQ(second_order, 0u);
  EXPECT_EQ(second_count, 45u);
  scratch_arena<> scratch;
  auto v = attach_kho_mem_chunks(a.memory(), chain->first, scratch.pages());
  ASSERT_TRUE(v);
  EXPECT_EQ(v->count(order{0}), 300u);
  EXPECT_TRUE(v->contains(phys_addr{B + (u64{299} << 27)}, order{0}));
  EXPECT_FALSE(v->contains(phys_addr{B + (u64{299} << 27) + 4096}, order{0}));
}

// ---- independent encoders: what each kernel writes --------------------------------

// Memory [B, B + 64 pages) written byte by byte, as the stock kernels would leave it.
template <unsigned PageShift = 12>
struct image {
  static constexpr u64 P = u64{1} << PageShift;
  std::unique_ptr<model::physical_memory> pm =
      std::make_unique<model::physical_memory>(model::physical_memory::create(B, 64 * P));
  static constexpr u64 pg(u64 n) { return B + n * P; }
  unsigned char* at(u64 pa) { return static_cast<unsigned char*>(pm->virt()) + (pa - B); }
  void put64(u64 pa, u64 v) {
    for (int i = 0; i < 8; ++i) at(pa)[i] = static_cast<unsigned char>(v >> (8 * i));
  }
  void put32(u64 pa, u32 v) {
    for (int i = 0; i < 4; ++i) at(pa)[i] = static_cast<unsigned char>(v >> (8 * i));
  }
  void set_bit(u64 pa, u64 bit) { at(pa)[bit / 8] |= static_cast<unsigned char>(1u << (bit % 8)); }
  flat_memory memory() const { return pm->memory(); }

  static void le(unsigned char (&b)[8], u64 v) {
    for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
  }

  // The root page as kho_out_fdt_setup makes it (every version): compatible, then the
  // map (kho-v1: 0 until kexec time); subtrees come later through fdt_open_into.
  void root(u64 page, const char* compatible, u64 map) {
    void* f = at(pg(page));
    unsigned char v[8];
    le(v, map);
    ASSERT_EQ(fdt_create(f, int(P)), 0);
    ASSERT_EQ(fdt_finish_reservemap(f), 0);
    ASSERT_EQ(fdt_begin_node(f, ""), 0);
    ASSERT_EQ(fdt_property_string(f, "compatible", compatible), 0);
    ASSERT_EQ(fdt_property(f, "preserved-memory-map", v, 8), 0);
    ASSERT_EQ(fdt_end_node(f), 0);
    ASSERT_EQ(fdt_finish(f), 0);
  }
  // kho_add_subtree: open, add the node, its properties (data first, then blob-size
  // where the version has it), pack.
  void subtree(u64 page, const char* name, const char* data_prop, u64 phys, const u64* size) {
    void* f = at(pg(page));
    unsigned char v[8];
    ASSERT_EQ(fdt_open_into(f, f, int(P)), 0);
    const int node = fdt_add_subnode(f, 0, name);
    ASSERT_GE(node, 0);
    le(v, phys);
    ASSERT_EQ(fdt_setprop(f, node, data_prop, v, 8), 0);
    if (size) {
      le(v, *size);
      ASSERT_EQ(fdt_setprop(f, node, "blob-size", v, 8), 0);
    }
    ASSERT_EQ(fdt_pack(f), 0);
  }
  void set_map(u64 page, u64 map) {
    unsigned char v[8];
    le(v, map);
    ASSERT_EQ(fdt_setprop_inplace(at(pg(page)), 0, "preserved-memory-map", v, 8), 0);
  }
  // A memblock sub-FDT with one region, as mm/memblock.c writes it.
  u64 memblock_fdt(u64 page, u64 start, u64 size) {
    void* f = at(pg(page));
    unsigned char v[8];
    EXPECT_EQ(fdt_create(f, int(P)), 0);
    EXPECT_EQ(fdt_finish_reservemap(f), 0);
    EXPECT_EQ(fdt_begin_node(f, ""), 0);
    EXPECT_EQ(fdt_property_string(f, "compatible", "memblock-v1"), 0);
    EXPECT_EQ(fdt_begin_node(f, "trace"), 0);
    EXPECT_EQ(fdt_property_string(f, "compatible", "reserve-mem-v1"), 0);
    le(v, start);
    EXPECT_EQ(fdt_property(f, "start", v, 8), 0);
    le(v, size);
    EXPECT_EQ(fdt_property(f, "size", v, 8), 0);
    EXPECT_EQ(fdt_end_node(f), 0);
    EXPECT_EQ(fdt_end_node(f), 0);
    EXPECT_EQ(fdt_finish(f), 0);
    return fdt_totalsize(f);
  }
  // A radix key's bit set along `path` (pages, root first), `depth` levels, leaf last.
  void radix_set(u64 key, const u64* path, unsigned depth) {
    const unsigned leaf_bits = PageShift + 3, table_bits = PageShift - 3;
    for (unsigned level = depth - 1; level >= 1; --level) {
      const u64 index = (key >> (leaf_bits + table_bits * (level - 1))) & ((u64{1} << table_bits) - 1);
      put64(pg(path[depth - 1 - level]) + index * 8, pg(path[depth - level]));
    }
    set_bit(pg(path[depth - 1]), key & ((u64{1} << leaf_bits) - 1));
  }
  static u64 key(u64 pa, unsigned o) { return (u64{1} << (64 - PageShift - o)) | (pa >> (PageShift + o)); }
};

template <unsigned PageShift = 12, Memory M>
result<kho_fdt_view<M, PageShift>> check(const M& mem, phys_addr root, const handover_check_options& opt = {}) {
  model::scratch_pages<PageShift> scratch(mem);
  return attach_kho_handover<PageShift>(mem, root, scratch.pages(), page_geometry<PageShift>::size, opt);
}

//   kho-v1 image: page 1 root FDT, 3 memblock FDT, 5-6 chunks (order 0, order 1),
//   7-8 their bitmaps, 20-21 the reserve_mem region (one order-1 block).
struct v1_image : image<> {
  u64 memblock_size = 0;
  v1_image() {
    root(1, "kho-v1", 0);
    memblock_size = memblock_fdt(3, pg(20), 2 * P);
    subtree(1, "memblock", "fdt", pg(3), nullptr);
    // kho_mem_serialize at kexec: order 0 first, then order 1; one bitmap each.
    const u64 pfn0 = B >> 12;                    // 2^20: bitmap number 32 of order 0
    put64(pg(5), pg(6));                         // next
    put32(pg(5) + 8, 0);                         // order
    put32(pg(5) + 12, 1);                        // count
    put64(pg(5) + 16, (pfn0 / 32768 * 32768) << 12);  // start = B
    put64(pg(5) + 24, pg(7));                    // bitmap
    set_bit(pg(7), 1);                           // the root FDT's page
    set_bit(pg(7), 3);                           // the memblock FDT's page
    const u64 high1 = pg(20) >> 13;              // order-1 block number
    put64(pg(6), 0);
    put32(pg(6) + 8, 1);
    put32(pg(6) + 12, 1);
    put64(pg(6) + 16, (high1 / 32768 * 32768) << 13);
    put64(pg(6) + 24, pg(8));
    set_bit(pg(8), high1 % 32768);
    set_map(1, pg(5));
  }
};

TEST(KhoV1Stock, ReadExactly) {
  v1_image img;
  auto v = check(img.memory(), phys_addr{img.pg(1)});
  ASSERT_TRUE(v) << to_string(v.code()) << " " << v.err().loc.structure;
  EXPECT_EQ(v->version(), kho_root_version::v1);
  EXPECT_EQ(v->memory_map().value, img.pg(5));
  EXPECT_FALSE(v->kho_sealed());
  auto t = v->find("memblock");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->phys.value, img.pg(3));
  EXPECT_EQ(t->size, img.memblock_size);  // no blob-size: the sub-FDT's totalsize
  EXPECT_TRUE(t->size_known);

  scratch_arena<> scratch;
  auto chunks = attach_kho_mem_chunks(img.memory(), phys_addr{img.pg(5)}, scratch.pages());
  ASSERT_TRUE(chunks);
  EXPECT_EQ(chunks->chunk_count(), 2u);
  EXPECT_EQ(chunks->bitmap_count(), 2u);
  EXPECT_EQ(chunks->count(order{0}), 2u);
  EXPECT_EQ(chunks->count(order{1}), 1u);
  EXPECT_TRUE(chunks->contains(phys_addr{img.pg(20)}, order{1}));
  EXPECT_FALSE(chunks->contains(phys_addr{img.pg(20)}, order{0}));
  EXPECT_TRUE(chunks->is_preserved(phys_addr{img.pg(21)}));
  EXPECT_FALSE(chunks->is_preserved(phys_addr{img.pg(2)}));
  std::vector<std::pair<u64, unsigned>> blocks;
  chunks->for_each_block([&](phys_addr pa, order o) { blocks.emplace_back(pa.value, o.value); });
  const std::vector<std::pair<u64, unsigned>> want = {{img.pg(1), 0}, {img.pg(3), 0}, {img.pg(20), 1}};
  EXPECT_EQ(blocks, want);
}

TEST(KhoV1Stock, EmptyMapIsNoChunk) {
  // The kernel reads 0 as "nothing preserved"; then the root page itself is not.
  v1_image img;
  img.set_map(1, 0);
  auto v = check(img.memory(), phys_addr{img.pg(1)});
  ASSERT_FALSE(v);
  EXPECT_EQ(v.code(), errc::not_preserved);
  EXPECT_TRUE(check(img.memory(), phys_addr{img.pg(1)}, {.require_preserved = false}));
}

TEST(KhoV1Stock, ScratchAllReturned) {
  v1_image img;
  scratch_arena<> scratch;
  auto v = attach_kho_handover(img.memory(), phys_addr{img.pg(1)}, scratch.pages());
  ASSERT_TRUE(v);
  EXPECT_EQ(scratch.pages().pages_in_use(), 0u);
}

void expect_chunks_error(v1_image& img, errc code, u64 at, u32 depth) {
  auto v = check(img.memory(), phys_addr{img.pg(1)});
  ASSERT_FALSE(v);
  EXPECT_EQ(v.code(), code);
  EXPECT_STREQ(v.err().loc.structure, "kho-mem-chunks");
  EXPECT_EQ(v.err().loc.at.value, at);
  EXPECT_EQ(v.err().loc.depth, depth);
}

TEST(KhoV1Stock, ChunkCountOverCapacity) {
  v1_image img;
  img.put32(img.pg(6) + 12, 256);  // 255 entries fit a 4 KiB chunk
  expect_chunks_error(img, errc::bad_count, img.pg(6), 1);
}

TEST(KhoV1Stock, ChunkCycle) {
  v1_image img;
  img.put64(img.pg(6), img.pg(5));
  expect_chunks_error(img, errc::cycle, img.pg(5), 2);
}

TEST(KhoV1Stock, BitmapThatIsAChunk) {
  v1_image img;
  img.put64(img.pg(6) + 24, img.pg(5));
  expect_chunks_error(img, errc::cycle, img.pg(5), 1);
}

TEST(KhoV1Stock, StartNotOnItsBitmapsSpan) {
  v1_image img;
  img.put64(img.pg(5) + 16, B + 4096);
  expect_chunks_error(img, errc::misaligned, img.pg(5), 0);
}

TEST(KhoV1Stock, OrdersOutOfSequence) {
  // The kernel writes orders ascending; a chain that goes back could describe a range twice.
  v1_image img;
  img.put32(img.pg(6) + 8, 0);
  img.put64(img.pg(6) + 16, B);
  expect_chunks_error(img, errc::bad_level, img.pg(6), 1);
}

TEST(KhoV1Stock, OrderBeyondTheFormat) {
  v1_image img;
  img.put32(img.pg(6) + 8, 38);
  expect_chunks_error(img, errc::out_of_range, img.pg(6), 1);
}

TEST(KhoV1Stock, MisalignedChunk) {
  v1_image img;
  img.put64(img.pg(5), img.pg(6) + 8);
  expect_chunks_error(img, errc::misaligned, img.pg(6) + 8, 1);
}

TEST(KhoV1Stock, SubFdtThatIsNoFdt) {
  v1_image img;
  std::memset(img.at(img.pg(3)), 0, 4096);
  auto v = check(img.memory(), phys_addr{img.pg(1)});
  ASSERT_FALSE(v);
  EXPECT_EQ(v.code(), errc::bad_fdt);
  EXPECT_STREQ(v.err().loc.structure, "kho-fdt");
  EXPECT_EQ(v.err().loc.depth, 1u);
  EXPECT_EQ(v.err().loc.at.value, img.pg(1) + u64(fdt_subnode_offset(img.at(img.pg(1)), 0, "memblock")));
}

TEST(KhoV1Stock, UnpreservedSubFdt) {
  v1_image img;
  img.at(img.pg(7))[0] &= static_cast<unsigned char>(~(1u << 3));
  auto v = check(img.memory(), phys_addr{img.pg(1)});
  ASSERT_FALSE(v);
  EXPECT_EQ(v.code(), errc::not_preserved);
  EXPECT_STREQ(v.err().loc.structure, "memblock");
  EXPECT_EQ(v.err().loc.at.value, img.pg(3));
}

//   radix image (kho-v2 / kho-v3 / granular, 4 KiB pages): page 1 root FDT, 2-7 the
//   radix path of the order-0 keys, 12-16 that of the order-1 key (root shared),
//   10 memblock FDT, 11 a raw blob, 20-21 the region.
struct radix_image : image<> {
  u64 memblock_size = 0;
  radix_image(const char* compatible, bool blob_size, bool raw_blob) {
    root(1, compatible, pg(2));
    const char* data = "preserved-data";
    memblock_size = memblock_fdt(10, pg(20), 2 * P);
    const u64 raw_size = 100;
    subtree(1, "memblock", data, pg(10), blob_size ? &memblock_size : nullptr);
    if (raw_blob) {
      std::memset(at(pg(11)), 0xab, raw_size);
      subtree(1, "opaque", data, pg(11), blob_size ? &raw_size : nullptr);
    }
    const u64 path[6] = {2, 3, 4, 5, 6, 7};
    for (u64 p : {1, 10, 11}) radix_set(key(pg(p), 0), path, 6);
    const u64 path1[6] = {2, 12, 13, 14, 15, 16};  // order 1's keys part at the root
    radix_set(key(pg(20), 1), path1, 6);
  }
};

TEST(KhoV2Stock, ReadExactlyWithARawBlobOfUnknownSize) {
  radix_image img("kho-v2", false, true);
  auto v = check(img.memory(), phys_addr{img.pg(1)});
  ASSERT_TRUE(v) << to_string(v.code()) << " " << v.err().loc.structure;
  EXPECT_EQ(v->version(), kho_root_version::v2);
  auto m = v->find("memblock");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->size, img.memblock_size);
  EXPECT_TRUE(m->size_known);
  auto o = v->find("opaque");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->phys.value, img.pg(11));
  EXPECT_FALSE(o->size_known);
  EXPECT_EQ(o->size, 0u);
}

TEST(KhoV2Stock, MissingPreservedData) {
  radix_image img("kho-v2", false, false);
  void* f = img.at(img.pg(1));
  ASSERT_EQ(fdt_open_into(f, f, 4096), 0);
  const int node = fdt_subnode_offset(f, 0, "memblock");
  ASSERT_EQ(fdt_delprop(f, node, "preserved-data"), 0);
  ASSERT_EQ(fdt_pack(f), 0);
  auto v = check(img.memory(), phys_addr{img.pg(1)});
  ASSERT_FALSE(v);
  EXPECT_EQ(v.code(), errc::not_found);
  EXPECT_EQ(v.err().loc.at.value, img.pg(1) + u64(node));
  EXPECT_EQ(v.err().loc.depth, 1u);
}

TEST(KhoV3Stock, ReadExactly) {
  radix_image img("kho-v3", true, true);
  auto v = check(img.memory(), phys_addr{img.pg(1)});
  ASSERT_TRUE(v) << to_string(v.code()) << " " << v.err().loc.structure;
  EXPECT_EQ(v->version(), kho_root_version::v3);
  auto o = v->find("opaque");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->size, 100u);
  EXPECT_TRUE(o->size_known);
}

TEST(KhoV3Stock, BlobSizeIsMandatory) {
  // The same bytes as kho-v2 writes, claimed as kho-v3.
  radix_image img("kho-v3", false, false);
  auto v = check(img.memory(), phys_addr{img.pg(1)});
  ASSERT_FALSE(v);
  EXPECT_EQ(v.code(), errc::not_found);
  EXPECT_EQ(v.err().loc.depth, 1u);
}

TEST(KhoGranularStock, ReadExactly) {
  radix_image img("kho-v4;radix-v1;vmalloc-v1", true, true);
  auto v = check(img.memory(), phys_addr{img.pg(1)});
  ASSERT_TRUE(v) << to_string(v.code());
  EXPECT_EQ(v->version(), kho_root_version::v4);
  EXPECT_TRUE(v->compat().granular);
  EXPECT_EQ(v->compat().radix, 1);
  EXPECT_EQ(v->compat().vmalloc, 1);
}

TEST(KhoGranularStock, UnsortedComponentsRefusedAtTheRoot) {
  radix_image img("kho-v4;vmalloc-v1;radix-v1", true, false);
  auto v = check(img.memory(), phys_addr{img.pg(1)});
  ASSERT_FALSE(v);
  EXPECT_EQ(v.code(), errc::bad_string);
  EXPECT_STREQ(v.err().loc.structure, "kho-fdt");
  EXPECT_EQ(v.err().loc.at.value, img.pg(1));
}

// ---- 16 KiB pages: kho-v2's tree has one level fewer than kho-v3's -----------------

//   16 KiB pages: page 2-3 the root FDT's order-1 block (page 2 is the FDT), 4-7 a
//   depth-4 (kho-v2) radix path for that block.
struct v2_16k_image : image<14> {
  v2_16k_image(const char* compatible) {
    root(2, compatible, pg(4));
    const u64 path[4] = {4, 5, 6, 7};
    radix_set(key(pg(2), 1), path, 4);
  }
};

TEST(KhoV2SixteenK, DepthFourTreeReadAsKhoV2) {
  v2_16k_image img("kho-v2");
  auto v = check<14>(img.memory(), phys_addr{img.pg(2)});
  ASSERT_TRUE(v) << to_string(v.code()) << " " << v.err().loc.structure;
  scratch_arena<14> scratch;
  u64 nodes[8];
  auto t = attach_preserve_bitmap<14>(img.memory(), phys_addr{img.pg(4)}, scratch.pages(), std::span<u64>(nodes), 4);
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->contains(phys_addr{img.pg(2)}, order{1}));
  EXPECT_TRUE(t->is_preserved(phys_addr{img.pg(3)}));
  EXPECT_EQ(t->count(order{1}), 1u);
  std::vector<u64> ranges;
  t->for_each_range([&](phys_addr s, u64 n) { ranges.push_back(s.value), ranges.push_back(n); });
  EXPECT_EQ(ranges, (std::vector<u64>{img.pg(2), 2 * img.P}));
}

TEST(KhoV2SixteenK, SameTreeUnderKhoV3IsOneLevelShort) {
  // Read with kho-v3's five levels, the depth-4 root's slot for the key (1024) is taken
  // as a top-level slot whose keys start at 1024 << 50, beyond any key.
  v2_16k_image img("kho-v3");
  auto v = check<14>(img.memory(), phys_addr{img.pg(2)});
  ASSERT_FALSE(v);
  EXPECT_EQ(v.code(), errc::out_of_range);
  EXPECT_STREQ(v.err().loc.structure, "radix");
  EXPECT_EQ(v.err().loc.at.value, img.pg(4));
  EXPECT_EQ(v.err().loc.depth, 0u);
}

TEST(KhoV2SixteenK, WriterRefusesAMapWithOrderZeroBlocks) {
  // kho's tree has five levels at 16 KiB pages; kho-v2's has four, the top table's
  // slot 0. An order-0 key needs slot 1, so that map cannot be described.
  arena<14> a{u64{4} << 20, B};
  auto map = preserve_bitmap<arena<14>::source_type, 14>::create(a.pages(), false);
  ASSERT_TRUE(map);
  ASSERT_TRUE(map->preserve(phys_addr{B + (u64{8} << 14)}, order{0}));
  auto w = kho_fdt_writer<arena<14>::source_type, 14>::create(a.pages(), map->root(),
                                                               kho_fdt_options{.version = kho_root_version::v2});
  ASSERT_FALSE(w);
  EXPECT_EQ(w.code(), errc::out_of_range);
  EXPECT_STREQ(w.err().loc.structure, "preserved-memory-map");
  EXPECT_EQ(w.err().loc.at, map->root());
  // kho-v3 names the five-level tree as it is.
  EXPECT_TRUE((kho_fdt_writer<arena<14>::source_type, 14>::create(a.pages(), map->root(),
                                                                   kho_fdt_options{.version = kho_root_version::v3})));
}

TEST(KhoV2SixteenK, WriterNamesTheSlotZeroSubtree) {
  arena<14> a{u64{4} << 20, B};
  auto map = preserve_bitmap<arena<14>::source_type, 14>::create(a.pages(), false);
  ASSERT_TRUE(map);
  const phys_addr block{B + (u64{8} << 14)};
  ASSERT_TRUE(map->preserve(block, order{1}));
  const phys_addr child{*reinterpret_cast<const u64*>(a.bytes(map->root()))};
  auto w = kho_fdt_writer<arena<14>::source_type, 14>::create(
      a.pages(), map->root(), kho_fdt_options{.kho_properties = false, .version = kho_root_version::v2});
  ASSERT_TRUE(w);
  auto v = check<14>(a.memory(), w->root(), {.require_preserved = false});
  ASSERT_TRUE(v) << to_string(v.code());
  EXPECT_EQ(v->memory_map(), child);
  scratch_arena<14> scratch;
  u64 nodes[8];
  auto t = attach_preserve_bitmap<14>(a.memory(), v->memory_map(), scratch.pages(), std::span<u64>(nodes),
                                      kho_root_radix_depth(v->version(), 14));
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->contains(block, order{1}));
  EXPECT_EQ(t->total(), 1u);
}

// ---- kho's writer at each version, read back ---------------------------------------

struct written {
  using source = arena<>::source_type;
  using map_type = preserve_bitmap<source>;
  using tracked_type = preserving_page_source<source, map_type>;
  arena<> a{u64{8} << 20, B};
  map_type map = *map_type::create(a.pages());
  tracked_type tracked{a.pages(), map};
  kho_fdt_writer<tracked_type> w;
  memblock_blob mb{};
  kexec_metadata_blob meta{};

  explicit written(kho_fdt_options opt)
      : w(*kho_fdt_writer<tracked_type>::create(tracked, opt.version == kho_root_version::v1 ? phys_addr{} : map.root(),
                                                opt)) {
    const reserve_mem_region regions[] = {{"trace", *tracked.alloc(order{1}), u64{2} << 12}};
    mb = *write_memblock(tracked, regions, 1);
    meta = *write_kexec_metadata(tracked, "6.20.0-kho", 2);
    EXPECT_TRUE(w.add(memblock_subtree, mb.phys, mb.size));
  }
  // kho-v1 only: the chunk chain of the map as it stands, from pages nothing records.
  void write_chunks() {
    auto c = write_kho_mem_chunks(a.pages(), map);
    ASSERT_TRUE(c);
    EXPECT_TRUE(w.set_memory_map(c->first));
    chunks = *c;
  }
  kho_mem_chunks_blob chunks{};
};

TEST(KhoFdtWriterVersions, EachVersionReadsBack) {
  for (unsigned ver = 1; ver <= 4; ++ver) {
    for (bool kho : {false, true}) {
      SCOPED_TRACE(testing::Message() << "kho-v" << ver << (kho ? " sealed" : " stock"));
      kho_fdt_options opt;
      opt.version = static_cast<kho_root_version>(ver);
      opt.kho_properties = kho;
      written h(opt);
      if (ver >= 3) {
        EXPECT_TRUE(h.w.add(kexec_metadata_subtree, h.meta.phys, h.meta.size));
      }
      if (ver == 1) h.write_chunks();
      if (kho) {
        const u64 sum = ver == 1 ? [&] {
          scratch_arena<> s;
          return attach_kho_mem_chunks(h.a.memory(), h.chunks.first, s.pages())->deep_checksum();
        }()
                                 : h.map.deep_checksum();
        EXPECT_TRUE(h.w.set_memory_map_checksum(sum));
        EXPECT_TRUE(h.w.seal());
      }
      auto v = check(h.a.remap(), h.w.root());
      ASSERT_TRUE(v) << to_string(v.code()) << " " << v.err().loc.structure;
      EXPECT_EQ(v->version(), opt.version);
      EXPECT_EQ(v->kho_sealed(), kho);
      EXPECT_EQ(v->count(), ver >= 3 ? 2u : 1u);
      auto m = v->find(memblock_subtree);
      ASSERT_TRUE(m);
      EXPECT_EQ(m->size, h.mb.size);
      EXPECT_STREQ(static_cast<const char*>(fdt_getprop(v->blob(), 0, "compatible", nullptr)),
                   kho_root_compatible(opt.version));
      const int node = fdt_subnode_offset(v->blob(), 0, memblock_subtree);
      EXPECT_EQ(fdt_getprop(v->blob(), node, "blob-size", nullptr) != nullptr, ver >= 3);
      EXPECT_EQ(fdt_getprop(v->blob(), node, "fdt", nullptr) != nullptr, ver == 1);
    }
  }
}

TEST(KhoFdtWriterVersions, ChunkWriterMatchesTheKernelsLayout) {
  written h(kho_fdt_options{.kho_properties = false, .version = kho_root_version::v1});
  h.write_chunks();
  // Orders ascending, one chunk each: order 0 (the FDTs' and metadata's pages), then
  // order 1 (the region).
  const unsigned char* c0 = h.a.bytes(h.chunks.first);
  u64 next = 0;
  std::memcpy(&next, c0, 8);
  u32 o0 = 0, n0 = 0, o1 = 0;
  std::memcpy(&o0, c0 + 8, 4);
  std::memcpy(&n0, c0 + 12, 4);
  EXPECT_EQ(o0, 0u);
  EXPECT_EQ(n0, 1u);
  ASSERT_NE(next, 0u);
  std::memcpy(&o1, h.a.bytes(phys_addr{next}) + 8, 4);
  EXPECT_EQ(o1, 1u);
  EXPECT_EQ(h.chunks.chunks, 2u);
  scratch_arena<> s;
  auto v = attach_kho_mem_chunks(h.a.memory(), h.chunks.first, s.pages());
  ASSERT_TRUE(v);
  u64 blocks = 0;
  v->for_each_block([&](phys_addr pa, order o) {
    EXPECT_TRUE(h.map.contains(pa, o));
    ++blocks;
  });
  EXPECT_EQ(blocks, h.map.total());
}

TEST(KhoFdtWriterVersions, GranularString) {
  written h(kho_fdt_options{.kho_properties = false, .granular = true});
  auto v = check(h.a.memory(), h.w.root());
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->compat().granular);
  EXPECT_STREQ(static_cast<const char*>(fdt_getprop(v->blob(), 0, "compatible", nullptr)),
               kho_root_granular_compatible);
  using tracked = written::tracked_type;
  EXPECT_EQ(kho_fdt_writer<tracked>::create(h.tracked, h.map.root(),
                                            kho_fdt_options{.version = kho_root_version::v3, .granular = true})
                .code(),
            errc::invalid_argument);
}

// ---- downgrades that would lose a field are refused by name ------------------------

void expect_refusal(written& h, const status& s, const char* subtree, const char* field, phys_addr blob) {
  ASSERT_FALSE(s);
  EXPECT_EQ(s.code(), errc::out_of_range);
  EXPECT_STREQ(s.err().loc.structure, field);
  EXPECT_EQ(s.err().loc.at, blob);
  EXPECT_EQ(s.err().loc.depth, 1u);
  EXPECT_STREQ(h.w.refusal().subtree, subtree);
  EXPECT_STREQ(h.w.refusal().field, field);
}

TEST(KhoFdtDowngrade, V1CarriesOnlyFdts) {
  written h(kho_fdt_options{.version = kho_root_version::v1});
  expect_refusal(h, h.w.add(kexec_metadata_subtree, h.meta.phys, h.meta.size), kexec_metadata_subtree, "fdt",
                 h.meta.phys);
  // LUO's luo_ser is a raw blob too.
  auto luo = luo_v5_writer<written::tracked_type>::create(h.tracked, 1);
  ASSERT_TRUE(luo);
  expect_refusal(h, h.w.add(luo_v5_subtree, luo->blob().phys, luo->blob().size), luo_v5_subtree, "fdt",
                 luo->blob().phys);
  EXPECT_EQ(h.w.add("memblock-copy", h.mb.phys, h.mb.size).code(), errc::aliased);  // an FDT is fine
}

TEST(KhoFdtDowngrade, V1AndV2LoseASizeOtherThanTheFdts) {
  for (auto ver : {kho_root_version::v1, kho_root_version::v2}) {
    written h(kho_fdt_options{.version = ver});
    ASSERT_TRUE(h.w.remove(memblock_subtree));
    expect_refusal(h, h.w.add(memblock_subtree, h.mb.phys, 4096), memblock_subtree, "blob-size", h.mb.phys);
    EXPECT_TRUE(h.w.add(memblock_subtree, h.mb.phys, h.mb.size));
  }
}

TEST(KhoFdtDowngrade, V2RefusesARawBlob) {
  written h(kho_fdt_options{.version = kho_root_version::v2});
  expect_refusal(h, h.w.add(kexec_metadata_subtree, h.meta.phys, h.meta.size), kexec_metadata_subtree,
                 "blob-size", h.meta.phys);
  // Nothing was written: the root still names one subtree.
  ASSERT_TRUE(h.w.seal());
  auto v = check(h.a.memory(), h.w.root());
  ASSERT_TRUE(v);
  EXPECT_EQ(v->count(), 1u);
}

// ---- tampered, then re-sealed ------------------------------------------------------

TEST(KhoV1Sealed, TamperedChunkResealed) {
  written h(kho_fdt_options{.version = kho_root_version::v1});
  h.write_chunks();
  // Two chunks: point the second back at the first, recompute the map checksum the
  // seal carries and the seal itself: only the chain's own check remains.
  u64 second = 0;
  std::memcpy(&second, h.a.bytes(h.chunks.first), 8);
  const u64 first = h.chunks.first.value;
  std::memcpy(h.a.bytes(phys_addr{second}), &first, 8);
  // The chain is now a loop, so its checksum is what the writer would compute over
  // the chunks it reaches once: hash them by hand.
  XXH64_state_t st;
  XXH64_reset(&st, 0);
  for (u64 c : {first, second}) {
    XXH64_update(&st, h.a.bytes(phys_addr{c}), 4096);
    u64 bitmap = 0;
    std::memcpy(&bitmap, h.a.bytes(phys_addr{c}) + 24, 8);
    XXH64_update(&st, h.a.bytes(phys_addr{bitmap}), 4096);
  }
  ASSERT_TRUE(h.w.set_memory_map_checksum(XXH64_digest(&st)));
  ASSERT_TRUE(h.w.seal());
  auto v = check(h.a.memory(), h.w.root());
  ASSERT_FALSE(v);
  EXPECT_EQ(v.code(), errc::cycle);
  EXPECT_STREQ(v.err().loc.structure, "kho-mem-chunks");
  EXPECT_EQ(v.err().loc.at.value, first);
  EXPECT_EQ(v.err().loc.depth, 2u);
}

TEST(KhoV1Sealed, MapChecksumCatchesAnUnresealedEdit) {
  written h(kho_fdt_options{.version = kho_root_version::v1});
  h.write_chunks();
  scratch_arena<> s;
  ASSERT_TRUE(h.w.set_memory_map_checksum(attach_kho_mem_chunks(h.a.memory(), h.chunks.first, s.pages())->deep_checksum()));
  ASSERT_TRUE(h.w.seal());
  h.a.bytes(h.chunks.first)[12] = 0;  // first chunk: count 1 -> 0
  auto v = check(h.a.memory(), h.w.root());
  ASSERT_FALSE(v);
  EXPECT_EQ(v.code(), errc::bad_checksum);
  EXPECT_STREQ(v.err().loc.structure, "kho-mem-chunks");
  EXPECT_EQ(v.err().loc.at, h.chunks.first);
}

TEST(KhoV2Sealed, SubFdtSwappedForARawBlobResealed) {
  // A sealed kho-v2 root whose subtree now names a raw blob: its size is unknown, so
  // kho's checksum cannot cover it.
  written h(kho_fdt_options{.version = kho_root_version::v2});
  ASSERT_TRUE(h.w.seal());
  void* f = h.a.bytes(h.w.root());
  const int node = fdt_subnode_offset(f, 0, memblock_subtree);
  unsigned char v8[8];
  impl::fdt_put_le64(v8, h.meta.phys.value);
  ASSERT_EQ(fdt_setprop_inplace(f, node, "preserved-data", v8, 8), 0);
  ASSERT_TRUE(h.w.seal());
  auto v = check(h.a.memory(), h.w.root());
  ASSERT_FALSE(v);
  EXPECT_EQ(v.code(), errc::bad_count);
  EXPECT_STREQ(v.err().loc.structure, "kho-fdt");
  EXPECT_EQ(v.err().loc.at.value, h.w.root().value + u64(node));
  EXPECT_EQ(v.err().loc.depth, 1u);
}

}  // namespace
}  // namespace kho::test::linux_kho_old_roots_test
