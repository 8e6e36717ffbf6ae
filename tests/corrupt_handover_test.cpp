// Handover root against hostile bytes: every bit of a sealed root flipped in turn,
// forged roots (correct checksum, invalid contents), truncated memory.
#include <kho/handover.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <utility>
#include <vector>

namespace kho::test::corrupt_handover_test {
namespace {

using writer = handover_writer<arena<12>::source_type, 12>;
using page_type = detail::handover_page<12>;

struct sealed_root {
  arena<12> mem{u64{4} << 20};
  phys_addr root{};
  phys_addr blob{};
  phys_addr blob2{};

  sealed_root() {
    auto w = writer::create(mem.pages(), 3);
    blob = *alloc_zeroed(mem.pages(), order{0}, 4096);
    blob2 = *alloc_zeroed(mem.pages(), order{0}, 4096);
    std::memcpy(mem.bytes(blob), "blob contents", 13);
    std::memcpy(mem.bytes(blob2), "blob", 4);
    EXPECT_TRUE(w->add("alpha", "kho-blob-v1", blob, 13));
    EXPECT_TRUE(w->add("beta", "kho-blob-v1", blob2, 4));
    EXPECT_TRUE(w->seal());
    root = w->root();
  }
  page_type& page() { return *reinterpret_cast<page_type*>(mem.bytes(root)); }
  errc attach() { return attach_handover_root(mem.memory(), root).code(); }
  error attach_error() { return attach_handover_root(mem.memory(), root).err(); }
  // A forger who knows the format: valid checksums over invalid contents.
  void reseal_entry(u32 i) {
    handover_entry& e = page().entries[i];
    e.checksum.set(checksum(mem.bytes(phys_addr{e.phys.get()}), e.size.get()));
    reseal();
  }
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
    auto v = attach_handover_root(s.mem.memory(), s.root);
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

// Two names for one structure, or a structure inside the root page: each reader would
// get its own view (its own retrieve-once state) of the same bytes.
TEST(CorruptHandover, EntriesSharingBytesAreAliased) {
  constexpr u64 entry0 = 64, entry1 = 64 + 128;
  {
    sealed_root s;  // beta names alpha's block
    s.page().entries[1].phys.set(s.blob.value);
    s.reseal_entry(1);
    const error e = s.attach_error();
    EXPECT_EQ(e.code, errc::aliased);
    EXPECT_EQ(e.loc.at, s.root + entry1);
    EXPECT_EQ(e.other.at, s.root + entry0);
  }
  {
    sealed_root s;  // beta's block starts inside alpha's last byte
    s.page().entries[1].phys.set(s.blob.value + 12);
    s.reseal_entry(1);
    EXPECT_EQ(s.attach_error().code, errc::aliased);
  }
  {
    sealed_root s;  // beta ends right before alpha: disjoint, accepted
    s.page().entries[1].phys.set(s.blob.value + 13);
    s.reseal_entry(1);
    EXPECT_EQ(s.attach(), errc::ok);
  }
  {
    sealed_root s;  // an empty block at alpha's first byte still names it
    s.page().entries[1].phys.set(s.blob.value);
    s.page().entries[1].size.set(0);
    s.reseal_entry(1);
    EXPECT_EQ(s.attach_error().code, errc::aliased);
  }
  {
    sealed_root s;  // a block inside the root page
    s.page().entries[0].phys.set(s.root.value + 4000);
    s.page().entries[0].size.set(8);
    s.reseal_entry(0);
    const error e = s.attach_error();
    EXPECT_EQ(e.code, errc::aliased);
    EXPECT_EQ(e.loc.at, s.root + entry0);
    EXPECT_EQ(e.other.at, s.root);
  }
}

// A forged entry with a flag bit this reader does not know, and one whose block
// starts on the root page's last byte: each refused where it stands.
TEST(CorruptHandover, UnknownFlagAndLastRootByteAreRefusedAtTheEntry) {
  {
    sealed_root s;
    s.page().entries[0].flags.set(2);
    s.reseal();
    const error e = s.attach_error();
    EXPECT_EQ(e.code, errc::bad_version);
    EXPECT_EQ(e.loc.at, s.root + 64);
  }
  {
    sealed_root s;
    s.page().entries[1].phys.set(s.root.value + 4095);
    s.page().entries[1].size.set(1);
    s.reseal_entry(1);
    const error e = s.attach_error();
    EXPECT_EQ(e.code, errc::aliased);
    EXPECT_EQ(e.loc.at, s.root + 64 + 128);
    EXPECT_EQ(e.other.at, s.root);
  }
}

TEST(CorruptHandover, WriterRefusesSharedBytes) {
  arena<12> mem{u64{1} << 20};
  auto w = writer::create(mem.pages(), 1);
  const phys_addr blob = *alloc_zeroed(mem.pages(), order{0}, 4096);
  ASSERT_TRUE(w->add("a", "kho-blob-v1", blob, 100));
  EXPECT_EQ(w->add("b", "kho-blob-v1", blob + 99, 1).code(), errc::aliased);
  EXPECT_EQ(w->add("b", "kho-blob-v1", w->root() + 8, 8).code(), errc::aliased);
  EXPECT_TRUE(w->add("b", "kho-blob-v1", blob + 100, 1));
  EXPECT_EQ(w->update("b", blob, 1).code(), errc::aliased);
  EXPECT_TRUE(w->update("b", blob + 200, 1));
}

// Fields documented as zero are zero at major version 1: a nonzero one is a writer bug
// or smuggled data, and a later minor version that gives it a meaning must bump major.
TEST(CorruptHandover, ReservedFieldsMustBeZero) {
  auto refused_at = [](auto tamper, u64 offset) {
    sealed_root s;
    tamper(s);
    s.reseal();
    const error e = s.attach_error();
    EXPECT_EQ(e.code, errc::reserved_nonzero);
    EXPECT_EQ(e.loc.at, s.root + offset);
  };
  refused_at([](sealed_root& s) { s.page().header.reserved.set(1); }, 56);
  refused_at([](sealed_root& s) { s.page().entries[1].reserved.set(1u << 31); }, 64 + 128);
  refused_at([](sealed_root& s) { s.page().entries[0].deep_checksum.set(7); }, 64);
  refused_at([](sealed_root& s) { s.page().entries[2].name[0] = 'x'; }, 64 + 2 * 128);
  refused_at([](sealed_root& s) { s.mem.bytes(s.root)[4095] = 1; }, 4095);
  // The byte right after the last entry, and an entry just past the count.
  refused_at([](sealed_root& s) { s.mem.bytes(s.root)[64 + 2 * 128] = 1; }, 64 + 2 * 128);
  refused_at([](sealed_root& s) { s.page().header.entry_count.set(1); }, 64 + 128);
}

// A crash at each point of seal() leaves a root the reader refuses with the error the
// format promises for that point; only a finished seal is accepted.
TEST(CorruptHandover, CrashAtEverySealStepIsRefused) {
  const std::pair<seal_step, errc> expected[] = {
      {seal_step::began, errc::torn},
      {seal_step::entries_checksummed, errc::torn},
      {seal_step::root_checksummed, errc::torn},
      {seal_step::published, errc::ok},
  };
  for (const auto& [step_to_crash, want] : expected) {
    const seal_step crash_at = step_to_crash;  // a lambda may not capture a structured binding before clang 16
    arena<12> mem{u64{1} << 20};
    auto w = writer::create(mem.pages(), 1);
    const phys_addr blob = *alloc_zeroed(mem.pages(), order{0}, 4096);
    ASSERT_TRUE(w->add("a", "kho-blob-v1", blob, 100));
    EXPECT_EQ(attach_handover_root(mem.memory(), w->root()).code(), errc::not_sealed);
    std::vector<unsigned char> snapshot;
    ASSERT_TRUE(w->seal([&](seal_step step) {
      if (step == crash_at) snapshot.assign(mem.bytes(w->root()), mem.bytes(w->root()) + 4096);
    }));
    std::memcpy(mem.bytes(w->root()), snapshot.data(), snapshot.size());  // the crash
    EXPECT_EQ(attach_handover_root(mem.memory(), w->root()).code(), want) << static_cast<int>(crash_at);
  }
}

TEST(CorruptHandover, TruncatedMemory) {
  sealed_root s;
  const flat_memory m = s.mem.memory();
  ASSERT_EQ(s.root, m.base());  // first allocation; the blob follows it
  for (u64 keep : {u64{0}, u64{1}, u64{2048}, u64{4095}, u64{4096 + 12}}) {
    flat_memory truncated(m.base(), keep, m.virt());
    EXPECT_EQ(attach_handover_root(truncated, s.root).code(), errc::out_of_bounds) << keep;
  }
  ASSERT_EQ(s.blob, s.root + 4096);
  ASSERT_EQ(s.blob2, s.blob + 4096);
  flat_memory whole_blob(m.base(), 2 * 4096 + 4, m.virt());
  EXPECT_EQ(attach_handover_root(whole_blob, s.root).code(), errc::ok);
}

}  // namespace
}  // namespace kho::test::corrupt_handover_test
