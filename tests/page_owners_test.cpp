// page_owners: one owner per page, conflicts name both owners, preserved check.
#include <kho/page_owners.hpp>
#include <kho/preserve_bitmap.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <cstring>

namespace page_owners_test {
namespace {

using kho::errc;
using kho::page_owner;
using kho::phys_addr;
using arena = kho::test::arena<12>;
using owners = kho::page_owners<arena::source_type, 12>;

constexpr phys_addr at(kho::u64 page) { return phys_addr{(kho::u64{1} << 40) + page * 4096}; }

TEST(PageOwners, DisjointClaimsSucceed) {
  arena a;
  owners o(a.pages());
  ASSERT_TRUE(o.claim(at(0), 3, page_owner{"radix", at(0)}));
  ASSERT_TRUE(o.claim(at(3), 1, page_owner{"luo", at(3)}));
  EXPECT_EQ(o.size(), 4u);
  ASSERT_NE(o.find(at(2)), nullptr);
  EXPECT_STREQ(o.find(at(2))->structure, "radix");
  EXPECT_EQ(o.find(at(4)), nullptr);
}

TEST(PageOwners, OverlapNamesBothOwners) {
  arena a;
  owners o(a.pages());
  ASSERT_TRUE(o.claim(at(10), 4, page_owner{"xarray", at(10)}));
  kho::status s = o.claim(at(13), 2, page_owner{"luo", at(13)});
  ASSERT_EQ(s.code(), errc::aliased);
  EXPECT_STREQ(s.err().loc.structure, "luo");
  EXPECT_EQ(s.err().loc.at, at(13));
  EXPECT_STREQ(s.err().other.structure, "xarray");
  EXPECT_EQ(s.err().other.at, at(10));
}

TEST(PageOwners, SameOwnerTwiceIsAliasedToo) {
  arena a;
  owners o(a.pages());
  ASSERT_TRUE(o.claim(at(1), 1, page_owner{"xarray", at(0)}));
  EXPECT_EQ(o.claim(at(1), 1, page_owner{"xarray", at(0)}).code(), errc::aliased);
}

TEST(PageOwners, RefusesMisalignedAndWrapping) {
  arena a;
  owners o(a.pages());
  EXPECT_EQ(o.claim(phys_addr{at(1).value + 8}, 1, {"x", {}}).code(), errc::misaligned);
  EXPECT_EQ(o.claim(phys_addr{~kho::u64{0} << 12}, 2, {"x", {}}).code(), errc::out_of_range);
  EXPECT_TRUE(o.claim(phys_addr{~kho::u64{0} << 12}, 1, {"x", {}}));
}

TEST(PageOwners, PreservedCheckHonoursExemptions) {
  arena a;
  owners o(a.pages());
  auto map = kho::preserve_bitmap<arena::source_type, 12>::create(a.pages());
  ASSERT_TRUE(map);
  ASSERT_TRUE(map->preserve(at(8), kho::order{3}));  // pages 8..15
  ASSERT_TRUE(o.claim(at(9), 2, {"luo", at(9)}));
  EXPECT_TRUE(o.check_preserved(*map));
  ASSERT_TRUE(o.claim(at(40), 1, {"radix", at(40)}, owners::preserve::exempt));
  EXPECT_TRUE(o.check_preserved(*map));
  ASSERT_TRUE(o.claim(at(16), 1, {"xarray", at(16)}));
  kho::status s = o.check_preserved(*map);
  ASSERT_EQ(s.code(), errc::not_preserved);
  EXPECT_STREQ(s.err().loc.structure, "xarray");
  EXPECT_EQ(s.err().loc.at, at(16));
}

TEST(PageOwners, ScratchGrowsWithClaimsOnly) {
  arena a;
  owners o(a.pages());
  EXPECT_EQ(o.scratch_bytes(), 0u);
  for (kho::u64 i = 0; i < 5000; ++i) ASSERT_TRUE(o.claim(at(i * 7), 1, {"x", {}}));
  EXPECT_EQ(o.size(), 5000u);
  EXPECT_LE(o.scratch_bytes(), 5000u * 32 * 4);
}

}  // namespace
}  // namespace page_owners_test
