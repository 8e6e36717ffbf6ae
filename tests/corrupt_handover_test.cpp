// Handover root against hostile bytes: every bit of a sealed root flipped in turn,
// forged roots (correct checksum, invalid contents), truncated memory.
#include <kho/handover.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <set>

namespace kho::test {
namespace {

using writer = handover_writer<arena<12>::source_type, 12>;
using page_type = detail::handover_page<12>;

struct sealed_root {
  arena<12> mem{u64{4} << 20};
  phys_addr root{};
  phys_addr blob{};

  sealed_root() {
    auto w = writer::create(mem.pages(), 3);
    blob = *alloc_zeroed(mem.pages(), order{0}, 4096);
    std::memcpy(mem.bytes(blob), "blob contents", 13);
    EXPECT_TRUE(w->add("alpha", "kho-blob-v1", blob, 13));
    EXPECT_TRUE(w->add("beta", "kho-blob-v1", blob, 4));
    EXPECT_TRUE(w->seal());
    root = w->root();
  }
  page_type& page() { return *reinterpret_cast<page_type*>(mem.bytes(root)); }
  errc attach() { return attach_handover(mem.memory(), root).code(); }
  // A forger who knows the format: valid checksum over invalid contents.
  void reseal() {
    page().header.checksum.set(detail::root_checksum(page()));
    page().header.state.set(static_cast<u32>(handover_state::sealed));
  }
};

TEST(CorruptHandover, EveryBitFlipOfTheRootPageIsRefused) {
  sealed_root s;
  ASSERT_EQ(s.attach(), errc::ok);
  std::set<errc> seen;
  u64 detected = 0, total = 0;
  for (u64 byte = 0; byte < 4096; ++byte) {
    for (unsigned bit = 0; bit < 8; ++bit) {
      s.mem.bytes(s.root)[byte] ^= static_cast<unsigned char>(1u << bit);
      const errc e = s.attach();
      s.mem.bytes(s.root)[byte] ^= static_cast<unsigned char>(1u << bit);
      ++total;
      if (e != errc::ok) ++detected;
      seen.insert(e);
      EXPECT_NE(e, errc::ok) << "byte " << byte << " bit " << bit;
    }
  }
  EXPECT_EQ(detected, total);
  EXPECT_TRUE(seen.count(errc::bad_magic));
  EXPECT_TRUE(seen.count(errc::bad_checksum));
  EXPECT_TRUE(seen.count(errc::torn));
  EXPECT_TRUE(seen.count(errc::bad_version));
  EXPECT_TRUE(seen.count(errc::page_size_mismatch));
  EXPECT_EQ(s.attach(), errc::ok);
}

TEST(CorruptHandover, EveryBitFlipOfAnEntryBlockIsRefused) {
  sealed_root s;
  for (u64 byte = 0; byte < 13; ++byte) {
    for (unsigned bit = 0; bit < 8; ++bit) {
      s.mem.bytes(s.blob)[byte] ^= static_cast<unsigned char>(1u << bit);
      EXPECT_EQ(s.attach(), errc::bad_checksum) << byte << ":" << bit;
      s.mem.bytes(s.blob)[byte] ^= static_cast<unsigned char>(1u << bit);
    }
  }
}

TEST(CorruptHandover, StatesGiveDistinctErrors) {
  sealed_root s;
  s.page().header.state.set(static_cast<u32>(handover_state::open));
  EXPECT_EQ(s.attach(), errc::not_sealed);
  s.page().header.state.set(static_cast<u32>(handover_state::sealing));
  EXPECT_EQ(s.attach(), errc::torn);
  s.page().header.state.set(0);
  EXPECT_EQ(s.attach(), errc::torn);
  s.page().header.state.set(static_cast<u32>(handover_state::sealed));
  EXPECT_EQ(s.attach(), errc::ok);
}

TEST(CorruptHandover, UnknownMajorVersionIsRefusedMinorIsNot) {
  sealed_root s;
  s.page().header.version_major.set(2);
  s.reseal();
  EXPECT_EQ(s.attach(), errc::bad_version);
  s.page().header.version_major.set(1);
  s.page().header.version_minor.set(9);
  s.reseal();
  EXPECT_EQ(s.attach(), errc::ok);
}

TEST(CorruptHandover, ForgedContentsWithValidChecksum) {
  {
    sealed_root s;
    std::memcpy(s.page().entries[1].name, "alpha", 6);
    s.reseal();
    EXPECT_EQ(s.attach(), errc::duplicate);
  }
  {
    sealed_root s;
    std::memset(s.page().entries[0].name, 'x', handover_name_len);
    s.reseal();
    EXPECT_EQ(s.attach(), errc::bad_string);
  }
  {
    sealed_root s;
    std::memset(s.page().entries[0].compatible, 0, handover_compatible_len);
    s.reseal();
    EXPECT_EQ(s.attach(), errc::bad_string);
  }
  {
    sealed_root s;  // stale bytes hidden behind the NUL
    s.page().entries[0].name[20] = 'z';
    s.reseal();
    EXPECT_EQ(s.attach(), errc::bad_string);
  }
  {
    sealed_root s;
    s.page().entries[0].phys.set(0x1000);
    s.reseal();
    auto v = attach_handover(s.mem.memory(), s.root);
    EXPECT_EQ(v.code(), errc::out_of_bounds);
    EXPECT_EQ(v.err().loc.at, s.root + 64);
  }
  {
    sealed_root s;
    s.page().entries[0].size.set(~u64{0});
    s.reseal();
    EXPECT_EQ(s.attach(), errc::out_of_bounds);
  }
  {
    sealed_root s;
    s.page().header.entry_count.set(32);
    s.reseal();
    EXPECT_EQ(s.attach(), errc::bad_count);
  }
  {
    sealed_root s;
    s.page().header.entry_count.set(0xffffffff);
    s.reseal();
    EXPECT_EQ(s.attach(), errc::bad_count);
  }
  {
    sealed_root s;
    std::memcpy(s.page().header.compatible, "kho-root-v2", 11);
    s.reseal();
    EXPECT_EQ(s.attach(), errc::bad_compatible);
  }
}

TEST(CorruptHandover, TruncatedMemory) {
  sealed_root s;
  const flat_memory m = s.mem.memory();
  ASSERT_EQ(s.root, m.base());  // first allocation; the blob follows it
  for (u64 keep : {u64{0}, u64{1}, u64{2048}, u64{4095}, u64{4096 + 12}}) {
    flat_memory truncated(m.base(), keep, m.virt());
    EXPECT_EQ(attach_handover(truncated, s.root).code(), errc::out_of_bounds) << keep;
  }
  ASSERT_EQ(s.blob, s.root + 4096);
  flat_memory whole_blob(m.base(), 4096 + 13, m.virt());
  EXPECT_EQ(attach_handover(whole_blob, s.root).code(), errc::ok);
}

}  // namespace
}  // namespace kho::test
