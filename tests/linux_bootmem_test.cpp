// KHO boot memory (formerly scratch): the kho_bootmem= / kho_scratch= parameter, under
// both names, and the hole finder's newer name for growing it.
#include <kho/linux/bootmem.hpp>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cstring>
#include <string>

namespace bootmem_test {

using namespace kho;
using namespace kho::upstream;

result<kho_bootmem_sizes> parse(const std::string& s) { return parse_kho_bootmem(s.data(), s.size()); }

TEST(LinuxBootmem, ThreeSizesWithSuffixes) {
  auto r = parse("16M,512M,256M");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->is_scale);
  EXPECT_EQ(r->lowmem, u64{16} << 20);
  EXPECT_EQ(r->global, u64{512} << 20);
  EXPECT_EQ(r->per_node, u64{256} << 20);
  r = parse("4096,1g,0");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->lowmem, 4096u);
  EXPECT_EQ(r->global, u64{1} << 30);
  EXPECT_EQ(r->per_node, 0u);
  r = parse("1k,2T,3E");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->lowmem, 1024u);
  EXPECT_EQ(r->global, u64{2} << 40);
  EXPECT_EQ(r->per_node, u64{3} << 60);
}

TEST(LinuxBootmem, Scale) {
  auto r = parse("200%");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->is_scale);
  EXPECT_EQ(r->scale_percent, 200u);
  EXPECT_EQ(parse("0%").code(), errc::invalid_argument);
  EXPECT_EQ(parse("%").code(), errc::bad_string);
  EXPECT_EQ(parse("5M%").code(), errc::bad_string);
}

TEST(LinuxBootmem, MalformedValuesNameTheirPlace) {
  struct bad {
    const char* value;
    errc code;
    u64 at;
  };
  for (const bad& b : {bad{"", errc::bad_string, 0}, bad{"16M", errc::bad_string, 3},
                       bad{"16M,512M", errc::bad_string, 8}, bad{"16M,,1M", errc::bad_string, 4},
                       bad{"16M,512M,256M,1M", errc::bad_string, 13}, bad{"16X,1,1", errc::bad_string, 2},
                       bad{"16M,512M,256MB", errc::bad_string, 13}, bad{"16E,1,16E", errc::out_of_range, 3},
                       bad{"99999999999999999999,1,1", errc::out_of_range, 19}}) {
    auto r = parse(b.value);
    ASSERT_FALSE(r) << b.value;
    EXPECT_EQ(r.code(), b.code) << b.value;
    EXPECT_EQ(r.err().loc.at.value, b.at) << b.value;
    EXPECT_STREQ(r.err().loc.structure, "kho_bootmem");
  }
}

TEST(LinuxBootmem, CommandLineCarriesEitherNameAndTheLastOccurrenceWins) {
  const std::string cmdline = "console=ttyS0 kho=on kho_scratch=1M,2M,3M  kho_bootmem=4M,5M,6M\tquiet kho_bootmem=10%";
  const auto hits = find_kho_bootmem_param(cmdline.data(), cmdline.size());
  ASSERT_TRUE(hits.scratch.found);
  ASSERT_TRUE(hits.bootmem.found);
  EXPECT_EQ(cmdline.substr(hits.scratch.at, hits.scratch.len), "1M,2M,3M");
  EXPECT_EQ(cmdline.substr(hits.bootmem.at, hits.bootmem.len), "10%");
  const std::string old_only = "kho_scratch=16M,512M,256M";
  const auto old_hits = find_kho_bootmem_param(old_only.data(), old_only.size());
  EXPECT_FALSE(old_hits.bootmem.found);
  ASSERT_TRUE(old_hits.scratch.found);
  auto r = parse_kho_bootmem(old_only.data() + old_hits.scratch.at, old_hits.scratch.len);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->global, u64{512} << 20);
  // A word that only starts with the name is another parameter.
  const std::string other = "kho_scratchy=1M,1M,1M kho_bootmem kho_bootmem_x=1";
  const auto none = find_kho_bootmem_param(other.data(), other.size());
  EXPECT_FALSE(none.bootmem.found);
  EXPECT_FALSE(none.scratch.found);
}

// Any three sizes written as the kernel documents them read back as written.
RC_GTEST_PROP(LinuxBootmem, SizesRoundTrip, ()) {
  const char suffixes[] = {'\0', 'K', 'M', 'G', 'k', 'm', 'g'};
  const unsigned shifts[] = {0, 10, 20, 30, 10, 20, 30};
  std::string text;
  u64 expect[3];
  for (int f = 0; f < 3; ++f) {
    const auto n = *rc::gen::inRange<u64>(0, u64{1} << 20);
    const auto s = *rc::gen::inRange<size_t>(0, sizeof suffixes);
    if (f > 0) text += ',';
    text += std::to_string(n);
    if (suffixes[s] != '\0') text += suffixes[s];
    expect[f] = n << shifts[s];
  }
  auto r = parse(text);
  RC_ASSERT(bool(r));
  RC_ASSERT(r->lowmem == expect[0]);
  RC_ASSERT(r->global == expect[1]);
  RC_ASSERT(r->per_node == expect[2]);
}

}  // namespace bootmem_test
