// The hosted model's reports and files: exact ranges at the top of the address space,
// bounded range lists, the boot page's checks, and which files open as memory.
#include <kho/model/boot_page.hpp>
#include <kho/model/inspect_radix.hpp>
#include <kho/model/physical_memory.hpp>
#include <kho/preserve_bitmap.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <stdexcept>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

namespace kho::test::model_report_test {
namespace {

using source = arena<>::source_type;

/// The report of a tree holding `blocks` (address, order), listing up to `max_ranges`.
nlohmann::json report_of(std::initializer_list<std::pair<u64, unsigned>> blocks, u64 max_ranges = 4096) {
  arena<> a(u64{4} << 20);
  auto t = preserve_bitmap<source>::create(a.pages(), /*record_own_pages=*/false);
  EXPECT_TRUE(t);
  for (auto [pa, o] : blocks) EXPECT_TRUE(t->preserve(phys_addr{pa}, order{o})) << pa;
  return model::radix_report(a.memory(), t->root(), std::nullopt, max_ranges);
}

TEST(RadixReport, ARangeEndingAt2Pow64KeepsItsLastByte) {
  const auto j = report_of({{0xfffffffffff00000, 8}});
  ASSERT_TRUE(j["ok"]) << j.dump();
  EXPECT_EQ(j["ranges"], nlohmann::json::parse(R"([["0xfffffffffff00000", "0x100000"]])"));
  EXPECT_EQ(j["preserved_bytes"], "0x100000");
  EXPECT_EQ(j["range_count"], 1);
}

TEST(RadixReport, TheWholeAddressSpaceIs2Pow64Bytes) {
  const auto j = report_of({{0, 51}, {u64{1} << 63, 51}});
  ASSERT_TRUE(j["ok"]) << j.dump();
  EXPECT_EQ(j["ranges"], nlohmann::json::parse(R"([["0x0", "0x10000000000000000"]])"));
  EXPECT_EQ(j["preserved_bytes"], "0x10000000000000000");
}

TEST(RadixReport, ARangeJustBelowTheTopIsNotWidened) {
  // Ends at 2^64 - 4096: the last page is free, so nothing may be added to it.
  const auto j = report_of({{0xffffffffffffe000, 0}});
  ASSERT_TRUE(j["ok"]) << j.dump();
  EXPECT_EQ(j["ranges"], nlohmann::json::parse(R"([["0xffffffffffffe000", "0x1000"]])"));
  EXPECT_EQ(j["preserved_bytes"], "0x1000");
}

TEST(RadixReport, ListsAtMostMaxRangesAndCountsTheRest) {
  const auto all = report_of({{0x1000, 0}, {0x3000, 0}, {0x5000, 0}, {0x7000, 0}, {0x9000, 0}});
  EXPECT_EQ(all["ranges"].size(), 5u);
  EXPECT_FALSE(all["ranges_truncated"]);
  const auto two = report_of({{0x1000, 0}, {0x3000, 0}, {0x5000, 0}, {0x7000, 0}, {0x9000, 0}}, 2);
  EXPECT_EQ(two["ranges"], nlohmann::json::parse(R"([["0x1000", "0x1000"], ["0x3000", "0x1000"]])"));
  EXPECT_EQ(two["range_count"], 5);
  EXPECT_TRUE(two["ranges_truncated"]);
  EXPECT_EQ(two["preserved_bytes"], "0x5000");  // every range is summed, listed or not
  const auto none = report_of({{0x1000, 0}, {0x3000, 0}}, 0);
  EXPECT_TRUE(none["ranges"].empty());
  EXPECT_EQ(none["range_count"], 2);
}

TEST(RadixReport, TheRootEntryReaderListsFewRanges) {
  arena<> a(u64{4} << 20);
  auto t = preserve_bitmap<source>::create(a.pages(), false);
  ASSERT_TRUE(t);
  for (u64 i = 0; i < 100; ++i) ASSERT_TRUE(t->preserve(phys_addr{u64{1} << 32 | i << 13}, order{0}));
  handover_entry e{};
  e.phys.set(t->root().value);
  const auto j = model::read_radix(a.memory(), e);
  EXPECT_EQ(j["ranges"].size(), model::radix_entry_listed_ranges);
  EXPECT_EQ(j["range_count"], 100);
  EXPECT_TRUE(j["ranges_truncated"]);
}

// ---- the boot page ------------------------------------------------------------------

class BootPage : public ::testing::Test {
 protected:
  model::physical_memory pm = model::physical_memory::create(u64{4} << 30, u64{1} << 20);
  model::boot_page boot() {
    model::boot_page b{};
    EXPECT_TRUE(model::read_boot_page(pm, b));
    return b;
  }
  void SetUp() override { model::write_boot_page(pm, pm.base() + 4096, 7, 12); }
  void expect_refused(model::boot_page b, errc code, u64 field) {
    auto p = model::check_boot_page(b, pm);
    ASSERT_TRUE(p) << "field " << field;
    EXPECT_EQ(p->err.code, code);
    EXPECT_STREQ(p->err.loc.structure, "boot page");
    EXPECT_EQ(p->err.loc.at, pm.base() + field);
    EXPECT_FALSE(p->detail.empty());
  }
};

TEST_F(BootPage, AsWrittenItDescribesItsMemory) {
  EXPECT_FALSE(model::check_boot_page(boot(), pm));
  EXPECT_FALSE(model::check_boot_generation(boot(), pm, 7));
  EXPECT_EQ(boot().root.get(), pm.base().value + 4096);
}

TEST_F(BootPage, EachFieldHasItsOwnError) {
  auto b = boot();
  b.memory_base.set(pm.base().value + 4096);
  expect_refused(b, errc::invalid_argument, 16);
  b = boot();
  b.memory_size.set(pm.size() * 2);
  expect_refused(b, errc::out_of_bounds, 24);
  b = boot();
  b.page_shift.set(14);
  expect_refused(b, errc::page_size_mismatch, 48);
  b = boot();
  b.reserved.set(1);
  expect_refused(b, errc::reserved_nonzero, 56);
}

TEST_F(BootPage, AnotherGenerationIsStale) {
  auto p = model::check_boot_generation(boot(), pm, 8);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->err.code, errc::stale);
  EXPECT_EQ(p->err.loc.at, pm.base() + 32);
  EXPECT_EQ(p->detail, "boot page generation 7, root generation 8");
}

TEST_F(BootPage, NoMagicNoBootPage) {
  std::memset(pm.virt(), 0, 8);
  model::boot_page b{};
  EXPECT_FALSE(model::read_boot_page(pm, b));
}

// ---- which files are memory ---------------------------------------------------------

std::string temp_path(const char* name) {
  return ::testing::TempDir() + "kho-model-report-" + std::to_string(::getpid()) + "-" + name;
}

TEST(PhysicalMemory, OnlyRegularFilesOpen) {
  const std::string fifo = temp_path("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Without O_NONBLOCK this open would wait for a writer forever.
  EXPECT_THROW(model::physical_memory::open(fifo, u64{4} << 30, false), std::runtime_error);
  ::unlink(fifo.c_str());
  EXPECT_THROW(model::physical_memory::open("/dev/null", u64{4} << 30, false), std::runtime_error);
  EXPECT_THROW(model::physical_memory::open(::testing::TempDir(), u64{4} << 30, false), std::runtime_error);
}

TEST(PhysicalMemory, AMisalignedBaseIsRefused) {
  const std::string path = temp_path("image");
  { auto pm = model::physical_memory::create(u64{4} << 30, u64{1} << 20, path); }
  EXPECT_NO_THROW(model::physical_memory::open(path, u64{4} << 30, false));
  EXPECT_THROW(model::physical_memory::open(path, (u64{4} << 30) + 8, false), std::invalid_argument);
  EXPECT_THROW(model::physical_memory::open(path, (u64{4} << 30) + 2048, false), std::invalid_argument);
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace kho::test::model_report_test
