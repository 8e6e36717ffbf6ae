// Strong physical types and page geometry.
#include <kho/phys.hpp>
#include <kho/memory.hpp>

#include <gtest/gtest.h>

#include <type_traits>
#include <vector>

namespace kho::test::phys_test {
namespace {

// Mixing the three kinds of number must not compile silently.
static_assert(!std::is_convertible_v<u64, phys_addr>);
static_assert(!std::is_convertible_v<phys_addr, u64>);
static_assert(!std::is_convertible_v<pfn, phys_addr>);
static_assert(!std::is_convertible_v<phys_addr, pfn>);
static_assert(!std::is_convertible_v<unsigned, order>);
static_assert(!std::is_assignable_v<phys_addr&, pfn>);

TEST(PageGeometry, ConversionsForEveryPageSize) {
  EXPECT_EQ(page_geometry<12>::to_pfn(phys_addr{0x12345000}).value, 0x12345u);
  EXPECT_EQ(page_geometry<14>::to_phys(pfn{3}).value, 3u << 14);
  EXPECT_EQ(page_geometry<16>::size, 65536u);
  EXPECT_TRUE(page_geometry<12>::is_aligned(phys_addr{0x200000}, order{9}));
  EXPECT_FALSE(page_geometry<12>::is_aligned(phys_addr{0x201000}, order{9}));
  EXPECT_FALSE(page_geometry<12>::is_aligned(phys_addr{0}, order{52}));
  EXPECT_EQ(page_geometry<12>::block_bytes(order{51}), u64{1} << 63);
  EXPECT_EQ(page_geometry<12>::block_bytes(order{52}), 0u);
  EXPECT_EQ(page_geometry<16>::block_bytes(order{48}), 0u);
}

TEST(RangeWithin, OverflowSafe) {
  EXPECT_TRUE(range_within(10, 5, 10, 15));
  EXPECT_FALSE(range_within(10, 6, 10, 15));
  EXPECT_FALSE(range_within(~u64{0}, 2, 0, ~u64{0}));
  EXPECT_FALSE(range_within(9, 1, 10, 15));
}

TEST(FlatMemory, ToVirtRejectsEveryByteOutside) {
  std::vector<unsigned char> bytes(4096);
  flat_memory m(phys_addr{0x1000}, bytes.size(), bytes.data());
  EXPECT_EQ(m.to_virt(phys_addr{0x1000}, 4096), bytes.data());
  EXPECT_EQ(m.to_virt(phys_addr{0x1fff}, 1), bytes.data() + 4095);
  EXPECT_EQ(m.to_virt(phys_addr{0x1fff}, 2), nullptr);
  EXPECT_EQ(m.to_virt(phys_addr{0xfff}, 1), nullptr);
  EXPECT_EQ(m.to_virt(phys_addr{0x2000}, 0), nullptr);
  EXPECT_EQ(m.to_virt(phys_addr{0x1000}, ~u64{0}), nullptr);
}

TEST(BumpPageSource, AlignsReusesAndRunsOut) {
  alignas(4096) static unsigned char bytes[64 * 4096];
  flat_memory m(phys_addr{0x100000}, sizeof bytes, bytes);
  bump_page_source<flat_memory> pages(m, phys_addr{0x101000}, phys_addr{0x100000 + sizeof bytes});
  auto a = pages.alloc(order{0});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->value, 0x101000u);
  auto b = pages.alloc(order{4});  // 64 KiB, aligned to 64 KiB
  ASSERT_TRUE(b);
  EXPECT_EQ(b->value % 0x10000, 0u);
  pages.free(*a, order{0});
  auto c = pages.alloc(order{0});
  ASSERT_TRUE(c);
  EXPECT_EQ(*c, *a);
  EXPECT_EQ(pages.alloc(order{6}).code(), errc::out_of_memory);
  EXPECT_EQ(pages.alloc(order{31}).code(), errc::out_of_range);
  EXPECT_EQ(pages.pages_in_use(), 17u);
}

}  // namespace
}  // namespace kho::test::phys_test
