// Handover root: edges of the writer and the reader, for every page size.
#include <kho/handover.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <string>

namespace kho::test::handover_test {
namespace {

template <class Shift>
class HandoverTest : public ::testing::Test {
 protected:
  static constexpr unsigned shift = Shift::value;
  using writer = handover_writer<typename arena<shift>::source_type, shift>;
  using geometry = page_geometry<shift>;

  arena<shift> mem{u64{16} << 20};

  phys_addr blob(const std::string& text) {
    auto pa = alloc_zeroed(mem.pages(), order{0}, geometry::size);
    EXPECT_TRUE(pa.has_value());
    std::memcpy(mem.bytes(*pa), text.data(), text.size());
    return *pa;
  }
};

using shifts = ::testing::Types<std::integral_constant<unsigned, 12>,
                                std::integral_constant<unsigned, 14>,
                                std::integral_constant<unsigned, 16>>;
TYPED_TEST_SUITE(HandoverTest, shifts);

TYPED_TEST(HandoverTest, EmptyRootSealsAndAttaches) {
  auto w = TestFixture::writer::create(this->mem.pages(), 7);
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->seal());
  auto v = attach_handover_root<TestFixture::shift>(this->mem.remap(), w->root());
  ASSERT_TRUE(v) << to_string(v.code());
  EXPECT_EQ(v->size(), 0u);
  EXPECT_EQ(v->generation(), 7u);
  EXPECT_EQ(v->find("anything").code(), errc::not_found);
}

TYPED_TEST(HandoverTest, EntriesRoundTripAtAnotherAddress) {
  auto w = TestFixture::writer::create(this->mem.pages());
  ASSERT_TRUE(w);
  const phys_addr a = this->blob("alpha"), b = this->blob("beta");
  ASSERT_TRUE(w->add("first", "kho-v2", a, 5));
  ASSERT_TRUE(w->add("second", "luo-v1", b, 4));
  ASSERT_TRUE(w->seal());
  EXPECT_TRUE(w->sealed());
  auto v = attach_handover_root<TestFixture::shift>(this->mem.remap(), w->root());
  ASSERT_TRUE(v) << to_string(v.code());
  ASSERT_EQ(v->size(), 2u);
  auto e = v->find("second");
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)->phys.get(), b.value);
  EXPECT_EQ((*e)->size.get(), 4u);
  EXPECT_STREQ((*e)->compatible, "luo-v1");
  auto c = v->find_compatible("kho-v2");
  ASSERT_TRUE(c);
  EXPECT_STREQ((*c)->name, "first");
  EXPECT_EQ(v->find_compatible("kho-v2", 1).code(), errc::not_found);
}

TYPED_TEST(HandoverTest, TableFillsToCapacityThenRefuses) {
  auto w = TestFixture::writer::create(this->mem.pages());
  ASSERT_TRUE(w);
  const phys_addr a = this->blob("x");
  for (u64 i = 0; i < TestFixture::writer::capacity; ++i)
    ASSERT_TRUE(w->add(("e" + std::to_string(i)).c_str(), "kho-blob-v1", a + i, 1)) << i;
  EXPECT_EQ(w->add("one-more", "kho-blob-v1", a, 1).code(), errc::table_full);
  ASSERT_TRUE(w->seal());
  auto v = attach_handover_root<TestFixture::shift>(this->mem.memory(), w->root());
  ASSERT_TRUE(v);
  EXPECT_EQ(v->size(), TestFixture::writer::capacity);
}

TYPED_TEST(HandoverTest, WriterRejectsBadArguments) {
  auto w = TestFixture::writer::create(this->mem.pages());
  ASSERT_TRUE(w);
  const phys_addr a = this->blob("x");
  const std::string longest_name(handover_name_len - 1, 'n');
  const std::string too_long_name(handover_name_len, 'n');
  const std::string too_long_compat(handover_compatible_len, 'c');
  EXPECT_TRUE(w->add(longest_name.c_str(), "c", a, 1));
  EXPECT_EQ(w->add(too_long_name.c_str(), "c", a, 1).code(), errc::bad_string);
  EXPECT_EQ(w->add("", "c", a, 1).code(), errc::bad_string);
  EXPECT_EQ(w->add("n", too_long_compat.c_str(), a, 1).code(), errc::bad_string);
  EXPECT_EQ(w->add(longest_name.c_str(), "c", a, 1).code(), errc::duplicate);
  EXPECT_EQ(w->add("far", "c", phys_addr{1}, 1).code(), errc::out_of_bounds);
  EXPECT_EQ(w->add("wraps", "c", phys_addr{~u64{0} - 2}, 16).code(), errc::out_of_bounds);
  const phys_addr end = this->mem.memory().end();
  EXPECT_EQ(w->add("straddles", "c", phys_addr{end.value - 8}, 16).code(), errc::out_of_bounds);
  EXPECT_EQ(w->update("nope", a, 1).code(), errc::not_found);
  EXPECT_EQ(w->remove("nope").code(), errc::not_found);
}

TYPED_TEST(HandoverTest, RemoveKeepsOrderAndUpdateRepoints) {
  auto w = TestFixture::writer::create(this->mem.pages());
  ASSERT_TRUE(w);
  const phys_addr a = this->blob("a"), b = this->blob("bb");
  u64 next = 0;
  for (const char* n : {"one", "two", "three"}) ASSERT_TRUE(w->add(n, "c", a + next++, 1));
  ASSERT_TRUE(w->remove("two"));
  ASSERT_TRUE(w->update("three", b, 2));
  ASSERT_TRUE(w->seal());
  auto v = attach_handover_root<TestFixture::shift>(this->mem.remap(), w->root());
  ASSERT_TRUE(v);
  ASSERT_EQ(v->size(), 2u);
  EXPECT_STREQ((*v)[0].name, "one");
  EXPECT_STREQ((*v)[1].name, "three");
  EXPECT_EQ((*v)[1].phys.get(), b.value);
}

TYPED_TEST(HandoverTest, ChangeAfterSealReopensUntilResealed) {
  auto w = TestFixture::writer::create(this->mem.pages());
  ASSERT_TRUE(w);
  const phys_addr a = this->blob("a");
  ASSERT_TRUE(w->seal());
  ASSERT_TRUE(w->add("late", "c", a, 1));
  EXPECT_FALSE(w->sealed());
  EXPECT_EQ(attach_handover_root<TestFixture::shift>(this->mem.memory(), w->root()).code(),
            errc::not_sealed);
  ASSERT_TRUE(w->seal());
  EXPECT_TRUE(attach_handover_root<TestFixture::shift>(this->mem.memory(), w->root()));
}

TYPED_TEST(HandoverTest, BlockChangedAfterSealIsDetected) {
  auto w = TestFixture::writer::create(this->mem.pages());
  ASSERT_TRUE(w);
  const phys_addr a = this->blob("payload");
  ASSERT_TRUE(w->add("p", "c", a, 7));
  ASSERT_TRUE(w->seal());
  this->mem.bytes(a)[3] ^= 0x20;
  auto v = attach_handover_root<TestFixture::shift>(this->mem.memory(), w->root());
  EXPECT_EQ(v.code(), errc::bad_checksum);
  EXPECT_EQ(v.err().loc.depth, 1u);
  EXPECT_STREQ(v.err().loc.structure, "handover");
  // Bytes past `size` are not covered: the entry says how much its block holds.
  this->mem.bytes(a)[3] ^= 0x20;
  this->mem.bytes(a)[100] ^= 1;
  EXPECT_TRUE(attach_handover_root<TestFixture::shift>(this->mem.memory(), w->root()));
}

TEST(HandoverPageSize, ReaderRefusesAnotherPageSize) {
  arena<12> mem;
  auto w = handover_writer<arena<12>::source_type, 12>::create(mem.pages());
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->seal());
  // A 16 KiB reader sees a 4 KiB root (the root page is 16 KiB-aligned: first allocation).
  EXPECT_EQ(attach_handover_root<14>(mem.memory(), w->root()).code(), errc::page_size_mismatch);
}

TEST(HandoverAttach, RootAddressChecks) {
  arena<12> mem;
  auto w = handover_writer<arena<12>::source_type, 12>::create(mem.pages());
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->seal());
  const flat_memory m = mem.memory();
  EXPECT_EQ(attach_handover_root(m, w->root() + 8).code(), errc::misaligned);
  EXPECT_EQ(attach_handover_root(m, phys_addr{0}).code(), errc::out_of_bounds);
  EXPECT_EQ(attach_handover_root(m, m.end()).code(), errc::out_of_bounds);
  EXPECT_EQ(attach_handover_root(m, phys_addr{~u64{0} & ~u64{4095}}).code(), errc::out_of_bounds);
  EXPECT_EQ(attach_handover_root(m, w->root() + 4096).code(), errc::bad_magic);
  // A memory that ends inside the root page.
  flat_memory truncated(m.base(), (w->root() - m.base()) + 2048, m.virt());
  EXPECT_EQ(attach_handover_root(truncated, w->root()).code(), errc::out_of_bounds);
}

TEST(HandoverAttach, RangeMemoryWithHoles) {
  arena<12> mem;
  auto w = handover_writer<arena<12>::source_type, 12>::create(mem.pages());
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->seal());
  const flat_memory m = mem.memory();
  range_memory<2> ranges;
  // Only the root's page is present: everything else is a hole.
  ASSERT_TRUE(ranges.add(w->root(), 4096, mem.bytes(w->root())));
  EXPECT_EQ(ranges.add(w->root() + 100, 10, nullptr).code(), errc::invalid_argument);
  EXPECT_TRUE(attach_handover_root(ranges, w->root()));
  EXPECT_EQ(ranges.to_virt(w->root() + 4090, 8), nullptr);
  EXPECT_EQ(ranges.to_virt(w->root() + 4096, 1), nullptr);
  EXPECT_EQ(ranges.to_virt(phys_addr{m.base().value - 1}, 1), nullptr);
}

TEST(ErrorText, EveryCodeHasWords) {
  for (u16 c = 0; c <= static_cast<u16>(errc::stale); ++c)
    EXPECT_STRNE(to_string(static_cast<errc>(c)), "unknown error") << c;
}

}  // namespace
}  // namespace kho::test::handover_test
