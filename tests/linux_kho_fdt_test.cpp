// The KHO root FDT ("kho-v4"): the stock page byte for byte (hand-written from
// shared/LINUX-FORMATS.md section 1 and libfdt's documented layout), kho's seal, and
// every refusal of the reader on trees that were tampered with and then re-sealed.
#include <kho/linux/kho_fdt.hpp>

#include "golden_bytes.hpp"
#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace kho::test::linux_kho_fdt_test {
namespace {

using namespace kho::upstream;

constexpr u64 base = u64{1} << 32;
constexpr phys_addr map_at{0x1'2345'6000};

bytes prop(u32 nameoff, const bytes& value) {
  bytes v = value;
  v.resize((v.size() + 3) & ~size_t{3}, 0);
  return cat({be32(3), be32(u32(value.size())), be32(nameoff), v});
}

template <unsigned PageShift = 12>
struct fdt_fixture {
  arena<PageShift> a{u64{4} << 20, base};
  using writer = kho_fdt_writer<typename arena<PageShift>::source_type, PageShift>;

  writer make(bool kho = true, u64 generation = 7) {
    auto w = writer::create(a.pages(), map_at, kho_fdt_options{kho, generation});
    EXPECT_TRUE(w.has_value());
    return *w;
  }
  phys_addr blob(u64 fill, u64 size = 64) {
    auto pa = a.pages().alloc(order{0});
    EXPECT_TRUE(pa.has_value());
    std::memset(a.bytes(*pa), int(fill), size);
    return *pa;
  }
  void* fdt(phys_addr root) { return a.bytes(root); }
  result<kho_fdt_view<flat_memory, PageShift>> attach(phys_addr root) {
    return kho_fdt_view<flat_memory, PageShift>::attach(a.memory(), root);
  }
  // Re-seals a tampered tree: every subtree's kho,xxh64, then the root's checksum,
  // state SEALED; so only the structural checks stand between it and a reader.
  void reseal(phys_addr root) {
    void* f = fdt(root);
    int node;
    fdt_for_each_subnode(node, f, 0) {
      int len = 0;
      const void* d = fdt_getprop(f, node, kho_fdt_data, &len);
      const void* s = fdt_getprop(f, node, kho_fdt_size, &len);
      if (!d || !s || !fdt_getprop(f, node, kho_fdt_blob_checksum, &len)) continue;
      const u64 size = impl::fdt_le64(s);
      const void* b = a.memory().to_virt(phys_addr{impl::fdt_le64(d)}, size ? size : 1);
      if (b == nullptr) continue;
      unsigned char v[8];
      impl::fdt_put_le64(v, checksum(b, size));
      fdt_setprop_inplace(f, node, kho_fdt_blob_checksum, v, 8);
    }
    unsigned char state[4];
    u32 sealed = u32(handover_state::sealed);
    std::memcpy(state, &sealed, 4);
    fdt_setprop_inplace(f, 0, kho_fdt_state, state, 4);
    unsigned char v[8];
    impl::fdt_put_le64(v, impl::kho_fdt_root_checksum(f));
    fdt_setprop_inplace(f, 0, kho_fdt_checksum, v, 8);
  }
  // Opens the tree for libfdt's read-write calls, runs `edit`, packs it again.
  template <class F>
  void edit(phys_addr root, F&& f) {
    void* t = fdt(root);
    ASSERT_EQ(fdt_open_into(t, t, int(page_geometry<PageShift>::size)), 0);
    f(t);
    ASSERT_EQ(fdt_pack(t), 0);
  }
};

// What kho_init writes before any subtree: header, the empty reserve map at 48,
// the structure block at 64, then the strings (the sequential writer puts each new
// name in front of the earlier ones, so "compatible" sits after
// "preserved-memory-map").
TEST(KhoFdtGolden, StockRootAsKhoInitWritesIt) {
  fdt_fixture<> fx;
  auto w = fx.make(false);
  const bytes header = cat({be32(0xd00dfeed), be32(152), be32(64), be32(120), be32(48), be32(17), be32(16),
                            be32(0), be32(32), be32(56)});
  const bytes structure = cat({be32(1), bytes(4, 0),                       // BEGIN_NODE ""
                               prop(21, field("kho-v4", 7)),               // compatible
                               prop(0, le64(map_at.value)),                // preserved-memory-map
                               be32(2), be32(9)});                         // END_NODE, END
  ASSERT_EQ(structure.size(), 56u);
  const bytes strings = cat({field("preserved-memory-map", 21), field("compatible", 11)});
  const auto* p = static_cast<const unsigned char*>(fx.fdt(w.root()));
  EXPECT_EQ(bytes(p, p + 152), cat({header, bytes(48 - 40 + 16, 0), structure, strings}));
  EXPECT_EQ(w.size(), 4096u);
}

// kho_add_subtree twice: the newest node first, blob-size before preserved-data
// (libfdt inserts a new node after the properties and before older nodes, a new
// property before the older ones); the read-write calls append new names to the
// strings block.
TEST(KhoFdtGolden, StockSubtreesInKernelOrder) {
  fdt_fixture<> fx;
  auto w = fx.make(false);
  ASSERT_TRUE(w.add("LUO", phys_addr{base + 0x10000}, 0x20));
  ASSERT_TRUE(w.add("kexec-metadata", phys_addr{base + 0x20000}, 73));
  const void* f = fx.fdt(w.root());
  const bytes structure = cat({be32(1), bytes(4, 0), prop(21, field("kho-v4", 7)), prop(0, le64(map_at.value)),
                               be32(1), field("kexec-metadata", 16),
                               prop(47, le64(73)), prop(32, le64(base + 0x20000)), be32(2),
                               be32(1), field("LUO", 4),
                               prop(47, le64(0x20)), prop(32, le64(base + 0x10000)), be32(2),
                               be32(2), be32(9)});
  const auto* p = static_cast<const unsigned char*>(f);
  EXPECT_EQ(bytes(p + fdt_off_dt_struct(f), p + fdt_off_dt_struct(f) + fdt_size_dt_struct(f)), structure);
  const bytes strings = cat({field("preserved-memory-map", 21), field("compatible", 11),
                             field("preserved-data", 15), field("blob-size", 10)});
  EXPECT_EQ(bytes(p + fdt_off_dt_strings(f), p + fdt_off_dt_strings(f) + fdt_size_dt_strings(f)), strings);
  EXPECT_EQ(fdt_totalsize(f), fdt_off_dt_strings(f) + fdt_size_dt_strings(f));  // packed
}

template <class T>
class KhoFdt : public ::testing::Test {};
using page_shifts = ::testing::Types<std::integral_constant<unsigned, 12>, std::integral_constant<unsigned, 14>,
                                     std::integral_constant<unsigned, 16>>;
TYPED_TEST_SUITE(KhoFdt, page_shifts);

TYPED_TEST(KhoFdt, SealedRoundTripAtAnotherAddress) {
  constexpr unsigned shift = TypeParam::value;
  fdt_fixture<shift> fx;
  auto w = fx.make(true, 42);
  const phys_addr luo = fx.blob(0x11), meta = fx.blob(0x22);
  ASSERT_TRUE(w.add("LUO", luo, 64, "luo-v5"));
  ASSERT_TRUE(w.add("kexec-metadata", meta, 73));
  ASSERT_TRUE(w.set_deep_checksum("LUO", 0xfeed));
  ASSERT_TRUE(w.seal());
  EXPECT_TRUE(w.sealed());
  const flat_memory moved = fx.a.remap();
  auto v = kho_fdt_view<flat_memory, shift>::attach(moved, w.root());
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  EXPECT_TRUE(v->kho_sealed());
  EXPECT_EQ(v->generation(), 42u);
  EXPECT_EQ(v->memory_map(), map_at);
  EXPECT_EQ(v->count(), 2u);
  auto l = v->find("LUO");
  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->phys, luo);
  EXPECT_EQ(l->size, 64u);
  EXPECT_STREQ(l->compatible, "luo-v5");
  EXPECT_TRUE(l->has_deep_checksum);
  EXPECT_EQ(l->deep_checksum, 0xfeedu);
  auto m = v->find("kexec-metadata");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->compatible, nullptr);
  EXPECT_FALSE(m->has_deep_checksum);
  EXPECT_EQ(v->find("memblock").code(), errc::not_found);
  std::vector<std::string> names;
  v->for_each([&](const kho_subtree& t) { names.push_back(t.name); });
  EXPECT_EQ(names, (std::vector<std::string>{"kexec-metadata", "LUO"}));
}

TYPED_TEST(KhoFdt, StockTreeIsReadWithoutTheSeal) {
  constexpr unsigned shift = TypeParam::value;
  fdt_fixture<shift> fx;
  auto w = fx.make(false);
  ASSERT_TRUE(w.add("LUO", fx.blob(1), 64, "ignored-without-kho"));
  ASSERT_TRUE(w.seal());  // nothing to seal
  auto v = fx.attach(w.root());
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  EXPECT_FALSE(v->kho_sealed());
  EXPECT_EQ(v->find("LUO")->compatible, nullptr);
  EXPECT_FALSE(v->find("LUO")->has_checksum);
}

TEST(KhoFdt, NamesAlikeBeforeTheUnitAddressAreOneName) {
  // The kernel's kho_retrieve_subtree("LUO") is libfdt's fdt_subnode_offset, which also
  // takes "LUO@1", and takes whichever comes first: the writer refuses the second.
  fdt_fixture<> fx;
  auto w = fx.make();
  const phys_addr luo = fx.blob(1), other = fx.blob(2);
  ASSERT_TRUE(w.add("LUO", luo, 8));
  EXPECT_EQ(w.add("LUO@1", other, 8).code(), errc::duplicate);
  ASSERT_TRUE(w.add("kexec-metadata@1", other, 8));
  EXPECT_EQ(w.add("kexec-metadata", fx.blob(3), 8).code(), errc::duplicate);
  ASSERT_TRUE(w.seal());
  auto v = fx.attach(w.root());
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->find("LUO")->phys, luo);
  EXPECT_EQ(v->find("kexec-metadata")->phys, other);  // as the kernel finds it
  EXPECT_EQ(v->find("kexec-metadata@1")->phys, other);
  EXPECT_EQ(v->find("kexec-metadata@2").code(), errc::not_found);
  EXPECT_EQ(v->find("LU").code(), errc::not_found);
  EXPECT_EQ(v->find("LUO@0").code(), errc::not_found);
}

TEST(KhoFdt, RemoveAndReadFromACallerBuffer) {
  fdt_fixture<> fx;
  auto w = fx.make();
  ASSERT_TRUE(w.add("a", fx.blob(1), 8));
  ASSERT_TRUE(w.add("b", fx.blob(2), 8));
  ASSERT_TRUE(w.remove("a"));
  EXPECT_EQ(w.remove("a").code(), errc::not_found);
  ASSERT_TRUE(w.seal());
  // An FDT saved from debugfs: the bytes lie outside memory and own no page.
  std::vector<unsigned char> copy(4096);
  std::memcpy(copy.data(), fx.fdt(w.root()), copy.size());
  auto v = kho_fdt_view<flat_memory>::attach_bytes(fx.a.memory(), copy.data(), copy.size());
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  EXPECT_EQ(v->count(), 1u);
  EXPECT_FALSE(v->address());
}

TEST(KhoFdt, WriterRefusesWhatTheReaderWould) {
  fdt_fixture<> fx;
  auto w = fx.make();
  const phys_addr b = fx.blob(1);
  EXPECT_EQ(w.add("", b, 8).code(), errc::bad_string);
  EXPECT_EQ(w.add("a/b", b, 8).code(), errc::bad_string);
  EXPECT_EQ(w.add("x", b, 8, std::string(60, 'c').c_str()).code(), errc::bad_string);
  EXPECT_EQ(w.add("x", w.root() + 8, 8).code(), errc::aliased);
  EXPECT_EQ(w.add("x", phys_addr{base - 4096}, 8).code(), errc::out_of_bounds);
  ASSERT_TRUE(w.add("x", b, 8));
  EXPECT_EQ(w.add("x", fx.blob(2), 8).code(), errc::duplicate);
  EXPECT_EQ(w.add("y", b + 4, 8).code(), errc::aliased);
  EXPECT_EQ(w.set_deep_checksum("nope", 1).code(), errc::not_found);
  // Subtrees until the page is full: table_full, and the tree stays valid.
  status s;
  char name[16];
  for (int i = 0; s && i < 1000; ++i) {
    std::snprintf(name, sizeof name, "n%d", i);
    s = w.add(name, b + 64 + u64(i) * 8 % 4000, 0);
  }
  // b's page holds every zero-sized blob; those overlap, so stop at aliased or full.
  EXPECT_TRUE(s.code() == errc::aliased || s.code() == errc::table_full);
  ASSERT_TRUE(w.seal());
  EXPECT_TRUE(fx.attach(w.root()).has_value());
}

TEST(KhoFdt, FillsThePageThenRefuses) {
  fdt_fixture<> fx;
  auto w = fx.make();
  status s;
  int added = 0;
  char name[16];
  for (; added < 1000; ++added) {
    std::snprintf(name, sizeof name, "n%d", added);
    s = w.add(name, fx.blob(1), 8);
    if (!s) break;
  }
  EXPECT_EQ(s.code(), errc::table_full);
  EXPECT_GT(added, 40);
  ASSERT_TRUE(w.seal());
  auto v = fx.attach(w.root());
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  EXPECT_EQ(v->count(), u64(added));
}

TEST(KhoFdt, CrashAtEverySealStep) {
  struct expect {
    seal_step step;
    errc code;
  };
  for (const expect e : {expect{seal_step::began, errc::torn}, expect{seal_step::entries_checksummed, errc::torn},
                         expect{seal_step::root_checksummed, errc::torn}, expect{seal_step::published, errc::ok}}) {
    fdt_fixture<> fx;
    auto w = fx.make();
    ASSERT_TRUE(w.add("LUO", fx.blob(3), 64));
    std::vector<unsigned char> at_crash;
    ASSERT_TRUE(w.seal([&](seal_step s) {
      if (s == e.step) {
        const auto* p = static_cast<const unsigned char*>(fx.fdt(w.root()));
        at_crash.assign(p, p + 4096);
      }
    }));
    std::memcpy(fx.fdt(w.root()), at_crash.data(), at_crash.size());
    EXPECT_EQ(fx.attach(w.root()).code(), e.code) << int(e.step);
  }
  fdt_fixture<> fx;
  auto w = fx.make();
  EXPECT_EQ(fx.attach(w.root()).code(), errc::not_sealed);
  ASSERT_TRUE(w.seal());
  ASSERT_TRUE(w.add("late", fx.blob(4), 8));  // a change reopens the seal
  EXPECT_EQ(fx.attach(w.root()).code(), errc::not_sealed);
}

// ---- tampered, then re-sealed --------------------------------------------------------

struct Tampered : ::testing::Test {
  fdt_fixture<> fx;
  kho_fdt_writer<arena<12>::source_type> w = fx.make();
  phys_addr luo = fx.blob(1), meta = fx.blob(2);

  void SetUp() override {
    ASSERT_TRUE(w.add("LUO", luo, 64, "luo-v5"));
    ASSERT_TRUE(w.add("kexec-metadata", meta, 73));
    ASSERT_TRUE(w.seal());
  }
  int node(const char* name) { return fdt_subnode_offset(fx.fdt(w.root()), 0, name); }
  error refused() {
    fx.reseal(w.root());
    auto v = fx.attach(w.root());
    EXPECT_FALSE(v.has_value());
    return v ? error{} : v.err();
  }
  // The error is at subtree `name` (depth 1, address root + its node offset).
  void expect_at(const error& e, errc code, const char* name) {
    EXPECT_EQ(e.code, code) << to_string(e.code);
    EXPECT_STREQ(e.loc.structure, "kho-fdt");
    EXPECT_EQ(e.loc.depth, 1u);
    EXPECT_EQ(e.loc.at, w.root() + u64(node(name)));
  }
  void expect_root(const error& e, errc code) {
    EXPECT_EQ(e.code, code) << to_string(e.code);
    EXPECT_EQ(e.loc.at, w.root());
    EXPECT_EQ(e.loc.depth, 0u);
  }
  void set64(const char* node_name, const char* prop_name, u64 v) {
    fx.edit(w.root(), [&](void* f) {
      const int n = node_name ? fdt_subnode_offset(f, 0, node_name) : 0;
      unsigned char b[8];
      impl::fdt_put_le64(b, v);
      ASSERT_EQ(fdt_setprop(f, n, prop_name, b, 8), 0);
    });
  }
};

TEST_F(Tampered, Untouched) { EXPECT_TRUE(fx.attach(w.root()).has_value()); }

TEST_F(Tampered, BlobOverlapsTheRootPage) {
  // Past the tree's totalsize, so the re-seal's checksums hold and only ownership fails.
  set64("LUO", kho_fdt_data, w.root().value + 2048);
  const error e = refused();
  expect_at(e, errc::aliased, "LUO");
  EXPECT_EQ(e.other.at, w.root());
}

TEST_F(Tampered, TwoSubtreesNameOneBlob) {
  set64("LUO", kho_fdt_data, meta.value + 8);
  const error e = refused();
  // kexec-metadata is first in the tree, so LUO is the second claimant.
  expect_at(e, errc::aliased, "LUO");
  EXPECT_EQ(e.other.at, w.root() + u64(node("kexec-metadata")));
}

TEST_F(Tampered, BlobsSharingOnlyAnEdgeByte) {
  // kexec-metadata is [meta, meta + 73). LUO (64 bytes) moved onto its last byte, then
  // onto its first: one byte claimed twice either way. Just past it, nothing is shared.
  set64("LUO", kho_fdt_data, meta.value + 72);
  expect_at(refused(), errc::aliased, "LUO");
  set64("LUO", kho_fdt_data, meta.value - 63);
  expect_at(refused(), errc::aliased, "LUO");
  set64("LUO", kho_fdt_data, meta.value + 73);
  fx.reseal(w.root());
  EXPECT_TRUE(fx.attach(w.root()).has_value());
}

TEST_F(Tampered, BlobOutsideMemory) {
  set64("LUO", kho_fdt_data, base - 4096);
  expect_at(refused(), errc::out_of_bounds, "LUO");
}

TEST_F(Tampered, BlobSizeWraps) {
  set64("LUO", kho_fdt_size, ~u64{0});
  expect_at(refused(), errc::out_of_bounds, "LUO");
}

TEST_F(Tampered, PropertyOfTheWrongWidth) {
  fx.edit(w.root(), [&](void* f) {
    ASSERT_EQ(fdt_setprop_u32(f, fdt_subnode_offset(f, 0, "LUO"), kho_fdt_data, 0x1000), 0);
  });
  expect_at(refused(), errc::bad_count, "LUO");
}

TEST_F(Tampered, MissingBlobSize) {
  fx.edit(w.root(), [&](void* f) { ASSERT_EQ(fdt_delprop(f, fdt_subnode_offset(f, 0, "LUO"), kho_fdt_size), 0); });
  expect_at(refused(), errc::not_found, "LUO");
}

TEST_F(Tampered, DuplicateName) {
  // libfdt refuses a second node of one name, so rename one in place (same length).
  fx.edit(w.root(), [&](void* f) { ASSERT_EQ(fdt_set_name(f, fdt_subnode_offset(f, 0, "kexec-metadata"), "LUO"), 0); });
  const error e = refused();
  EXPECT_EQ(e.code, errc::duplicate);
  EXPECT_EQ(e.loc.depth, 1u);
}

TEST_F(Tampered, NestedSubtree) {
  fx.edit(w.root(), [&](void* f) { ASSERT_GE(fdt_add_subnode(f, fdt_subnode_offset(f, 0, "LUO"), "inner"), 0); });
  expect_at(refused(), errc::bad_fdt, "LUO");
}

TEST_F(Tampered, NoMemoryMap) {
  fx.edit(w.root(), [&](void* f) { ASSERT_EQ(fdt_delprop(f, 0, kho_fdt_memory_map), 0); });
  expect_root(refused(), errc::not_found);
}

TEST_F(Tampered, ZeroMemoryMap) {
  set64(nullptr, kho_fdt_memory_map, 0);
  expect_root(refused(), errc::not_found);
}

TEST_F(Tampered, NewerRootCompatible) {
  // kho-v1..v4 are all read now (linux_kho_old_roots_test.cpp); a newer one is not.
  fx.edit(w.root(), [&](void* f) { ASSERT_EQ(fdt_setprop_string(f, 0, "compatible", "kho-v5"), 0); });
  expect_root(refused(), errc::bad_version);
}

TEST_F(Tampered, UnknownKhoPropertyAtTheRoot) {
  set64(nullptr, "kho,flags", 1);
  expect_root(refused(), errc::reserved_nonzero);
}

TEST_F(Tampered, UnknownKhoPropertyInASubtree) {
  set64("LUO", "kho,flags", 1);
  expect_at(refused(), errc::reserved_nonzero, "LUO");
}

TEST_F(Tampered, UnknownKernelPropertyIsIgnored) {
  set64("LUO", "future-kernel-field", 1);
  fx.reseal(w.root());
  EXPECT_TRUE(fx.attach(w.root()).has_value());
}

TEST_F(Tampered, CompatibleWithTwoStrings) {
  fx.edit(w.root(), [&](void* f) {
    ASSERT_EQ(fdt_setprop(f, fdt_subnode_offset(f, 0, "LUO"), kho_fdt_blob_compatible, "a\0b", 4), 0);
  });
  expect_at(refused(), errc::bad_string, "LUO");
}

TEST_F(Tampered, SubtreeWithoutItsChecksum) {
  fx.edit(w.root(), [&](void* f) {
    ASSERT_EQ(fdt_delprop(f, fdt_subnode_offset(f, 0, "LUO"), kho_fdt_blob_checksum), 0);
  });
  expect_at(refused(), errc::not_found, "LUO");
}

TEST_F(Tampered, SealPropertyOfTheWrongWidth) {
  fx.edit(w.root(), [&](void* f) { ASSERT_EQ(fdt_setprop_u32(f, 0, kho_fdt_generation, 1), 0); });
  expect_root(refused(), errc::bad_count);
}

TEST_F(Tampered, MemoryMapOfTheWrongWidth) {
  fx.edit(w.root(), [&](void* f) { ASSERT_EQ(fdt_setprop_u32(f, 0, kho_fdt_memory_map, 0x1000), 0); });
  expect_root(refused(), errc::bad_count);
}

TEST_F(Tampered, MapChecksumOfTheWrongWidth) {
  fx.edit(w.root(), [&](void* f) { ASSERT_EQ(fdt_setprop_u32(f, 0, kho_fdt_map_checksum, 1), 0); });
  expect_root(refused(), errc::bad_count);
}

TEST_F(Tampered, SubtreeChecksumOfTheWrongWidth) {
  fx.edit(w.root(), [&](void* f) {
    ASSERT_EQ(fdt_setprop_u32(f, fdt_subnode_offset(f, 0, "LUO"), kho_fdt_blob_checksum, 1), 0);
  });
  expect_at(refused(), errc::bad_count, "LUO");
}

TEST_F(Tampered, SealWithoutItsChecksum) {
  // Not re-sealed: there is no checksum left to recompute.
  fx.edit(w.root(), [&](void* f) { ASSERT_EQ(fdt_delprop(f, 0, kho_fdt_checksum), 0); });
  expect_root(fx.attach(w.root()).err(), errc::not_found);
}

TEST_F(Tampered, BlobChangedAfterSealing) {
  fx.a.bytes(luo)[5] ^= 1;
  expect_at(fx.attach(w.root()).err(), errc::bad_checksum, "LUO");
}

TEST_F(Tampered, TreeChangedAfterSealing) {
  void* f = fx.fdt(w.root());
  int len = 0;
  auto* v = static_cast<unsigned char*>(const_cast<void*>(fdt_getprop(f, node("LUO"), kho_fdt_size, &len)));
  v[0] ^= 1;
  expect_root(fx.attach(w.root()).err(), errc::bad_checksum);
}

TEST_F(Tampered, StockRootWithKhoChecksums) {
  fx.edit(w.root(), [&](void* f) {
    ASSERT_EQ(fdt_delprop(f, 0, kho_fdt_state), 0);
    ASSERT_EQ(fdt_delprop(f, 0, kho_fdt_checksum), 0);
    ASSERT_EQ(fdt_delprop(f, 0, kho_fdt_generation), 0);
  });
  expect_at(fx.attach(w.root()).err(), errc::not_sealed, "kexec-metadata");
}

// libfdt 1.6.1 dereferences NULL in fdt_check_full on some trees of version below 16
// (found by fuzz_kho_fdt; its input is in that target's corpus), and below 17 it skips
// the structure block's own bound: the reader refuses an older version before libfdt
// reads the tree, even one libfdt alone would accept.
TEST_F(Tampered, OlderFdtVersion) {
  auto* f = static_cast<unsigned char*>(fx.fdt(w.root()));
  for (u32 version : {16u, 2u}) {
    const bytes v = be32(version);
    std::memcpy(f + 20, v.data(), 4);  // fdt_header.version
    if (version == 16) {
      ASSERT_EQ(fdt_check_full(f, 4096), 0);  // libfdt alone accepts it
      fx.reseal(w.root());                    // (libfdt reads no property of version 2)
    }
    expect_root(fx.attach(w.root()).err(), errc::bad_fdt);
    auto b = kho_fdt_view<flat_memory>::attach_bytes(fx.a.memory(), f, fdt_totalsize(f));
    EXPECT_EQ(b.code(), errc::bad_fdt);
  }
}

TEST_F(Tampered, TruncatedOrGarbage) {
  auto v = kho_fdt_view<flat_memory>::attach(fx.a.memory(), w.root(), 39);
  EXPECT_EQ(v.code(), errc::bad_fdt);
  v = kho_fdt_view<flat_memory>::attach(fx.a.memory(), w.root(), 100);  // under totalsize
  EXPECT_EQ(v.code(), errc::bad_fdt);
  EXPECT_EQ(kho_fdt_view<flat_memory>::attach(fx.a.memory(), w.root(), 8192).code(), errc::out_of_range);
  EXPECT_EQ(kho_fdt_view<flat_memory>::attach(fx.a.memory(), w.root() + 8).code(), errc::misaligned);
  // Every single-byte change of the header or structure block is refused (by
  // libfdt, the compatible check or the seal), never crashes.
  auto* f = static_cast<unsigned char*>(fx.fdt(w.root()));
  const u32 total = fdt_totalsize(f);
  for (u32 i = 0; i < total; ++i) {
    const unsigned char old = f[i];
    f[i] ^= 0x5a;
    EXPECT_FALSE(fx.attach(w.root()).has_value()) << i;
    f[i] = old;
  }
  EXPECT_TRUE(fx.attach(w.root()).has_value());
}

}  // namespace
}  // namespace kho::test::linux_kho_fdt_test
