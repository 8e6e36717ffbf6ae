// Golden images: small memory files checked in under tests/golden/. The readers must
// read them as the facts below say, and today's writers must still write them byte for
// byte, so any drift in a format fails here.
#include <kho/model/inspect.hpp>

#include "golden_files.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>

namespace kho::test::golden_test {
namespace {

using golden_file = golden::image;
using golden::load;
using golden::read_index;

/// The image mapped (aligned) at golden::image_base, inspected as `kho dump` would.
nlohmann::json inspect_file(const golden_file& f, bool bare_radix = false,
                            const handover_check_options& options = {}) {
  void* mem = std::aligned_alloc(65536, (f.bytes.size() + 65535) & ~size_t{65535});
  std::memcpy(mem, f.bytes.data(), f.bytes.size());
  flat_memory m(phys_addr{golden::image_base}, f.bytes.size(), mem);
  nlohmann::json j = bare_radix ? model::radix_report(m, f.root) : model::inspect(m, f.root, options);
  std::free(mem);
  return j;
}

TEST(Golden, WritersStillWriteTheCheckedInBytes) {
  const auto roots = read_index();
  for (const auto& g : golden::all()) {
    const golden::image img = g.make();
    const golden_file f = load(g.name);
    EXPECT_EQ(img.bytes.size(), f.bytes.size()) << g.name;
    EXPECT_TRUE(img.bytes == f.bytes) << g.name << ": the writer's bytes drifted from tests/golden";
    EXPECT_EQ(img.root.value, roots.at(g.name)) << g.name;
  }
}

TEST(Golden, RootsReadAsWritten) {
  // Bare roots carry no preserved-memory map: a next kernel refuses them (nothing is
  // preserved), a tool reading the format waives that check.
  constexpr handover_check_options bare{.require_preserved = false};
  EXPECT_EQ(inspect_file(load("root-empty"))["status"], to_string(errc::not_preserved));
  const auto empty = inspect_file(load("root-empty"), false, bare);
  EXPECT_EQ(empty["status"], "ok");
  EXPECT_EQ(empty["entries"].size(), 0u);
  EXPECT_EQ(empty["generation"], 42);
  const auto three = inspect_file(load("root-three-blobs"), false, bare);
  ASSERT_EQ(three["status"], "ok");
  ASSERT_EQ(three["entries"].size(), 3u);
  EXPECT_EQ(three["entries"][2]["name"], "blob-2");
  EXPECT_EQ(three["entries"][2]["size"], 13);  // "blob number 2"
  EXPECT_EQ(three["entries"][2]["phys"], "0x100003000");
  EXPECT_EQ(inspect_file(load("root-full-table"), false, bare)["entries"].size(), 31u);
}

TEST(Golden, RadixTreesReadAsWritten) {
  const auto one = inspect_file(load("radix-one-page"), true);
  ASSERT_TRUE(one["ok"]);
  EXPECT_EQ(one["ranges"], nlohmann::json::parse(R"([["0x1000", "0x1000"]])"));
  EXPECT_EQ(one["tree_pages"], 6);
  const auto mixed = inspect_file(load("radix-mixed-orders"), true);
  ASSERT_TRUE(mixed["ok"]);
  EXPECT_EQ(mixed["blocks"], 202);
  EXPECT_EQ(mixed["orders"], nlohmann::json::parse(R"({"0": 200, "9": 1, "18": 1})"));
  EXPECT_EQ(mixed["ranges"][0], nlohmann::json::parse(R"(["0x200000", "0x200000"])"));
  EXPECT_EQ(mixed["ranges"][1], nlohmann::json::parse(R"(["0x40000000", "0x40000000"])"));
  EXPECT_EQ(mixed["ranges"].size(), 202u);
  const auto edges = inspect_file(load("radix-edges"), true);
  ASSERT_TRUE(edges["ok"]);
  EXPECT_EQ(edges["ranges"], nlohmann::json::parse(
                                 R"([["0x80000000", "0x200000"], ["0x8000000000000000", "0x8000000000000000"]])"));
  EXPECT_EQ(edges["preserved_bytes"], "0x8000000000200000");  // to 2^64 exactly
}

TEST(Golden, FullHandoverReadsAsWritten) {
  const auto full = inspect_file(load("handover-full"));
  ASSERT_EQ(full["status"], "ok") << full.dump(2);
  ASSERT_EQ(full["entries"].size(), 4u);
  EXPECT_EQ(full["entries"][0]["name"], "demo-blob");
  EXPECT_EQ(full["entries"][1]["compatible"], "kho-luo-v1");
  EXPECT_EQ(full["entries"][1]["liveupdate_number"], 1);
  EXPECT_EQ(full["entries"][1]["sessions"].size(), 3u);
  EXPECT_EQ(full["entries"][2]["compatible"], "kho-xarray-v1");
  EXPECT_EQ(full["entries"][2]["count"], 102);
  EXPECT_EQ(full["entries"][3]["compatible"], "kho-radix-v1");
  EXPECT_EQ(full["generation"], 7);
}

TEST(Golden, AFlippedByteInAGoldenImageIsRefused) {
  golden_file f = load("handover-full");
  f.bytes[f.root - phys_addr{golden::image_base} + 100] ^= 0x10;
  EXPECT_NE(inspect_file(f)["status"], "ok");
}

}  // namespace
}  // namespace kho::test::golden_test
