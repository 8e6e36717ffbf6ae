// The kexec model's chain of live updates (model/demo_chain.hpp, model/free_pages.hpp):
// the allocator never hands out a busy page, the plan (the chain's oracle) finishes and
// adds one session per hop, and two hops written and read in one process carry the
// same folio pages, refusing a changed page, a wrong digest or a wrong kexec_count.
#include <kho/linux/kho_fdt_check.hpp>
#include <kho/model/demo_chain.hpp>
#include <kho/model/physical_memory.hpp>
#include <kho/model/scratch_pages.hpp>

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace kho::test::model_chain_test {
namespace {

constexpr u64 page = page_geometry<>::size;

model::physical_memory small_memory() { return model::physical_memory::create(u64{4} << 30, u64{64} << 20); }

TEST(FreePageSource, NeverHandsOutABusyPageAndAlignsBlocks) {
  auto pm = small_memory();
  const phys_addr lo = pm.base() + page;
  model::free_page_source pages(pm.memory(), {lo, lo + 64 * page});
  pages.reserve(lo + 2 * page, 3);  // pages 2..4 busy
  std::set<u64> got;
  for (int i = 0; i < 61; ++i) {
    auto p = pages.alloc(order{0});
    ASSERT_TRUE(p) << i;
    EXPECT_FALSE(*p >= lo + 2 * page && *p < lo + 5 * page) << std::hex << p->value;
    EXPECT_TRUE(got.insert(p->value).second);
  }
  EXPECT_EQ(pages.alloc(order{0}).code(), errc::out_of_memory);
  EXPECT_EQ(pages.allocated(), 61u);
  pages.free(phys_addr{*got.begin()}, order{0});
  EXPECT_EQ(pages.alloc(order{0}).value(), phys_addr{*got.begin()});  // found again behind the hint
}

TEST(FreePageSource, OrderBlocksAreNaturallyAlignedInPhysicalAddresses) {
  auto pm = small_memory();
  const phys_addr lo = pm.base() + page;  // not 16-page aligned
  model::free_page_source pages(pm.memory(), {lo, lo + 256 * page});
  auto b = pages.alloc(order{4});
  ASSERT_TRUE(b);
  EXPECT_EQ(b->value % (16 * page), 0u);
  EXPECT_FALSE(pages.is_free(*b));
  EXPECT_FALSE(pages.is_free(*b + 15 * page));
  EXPECT_EQ(pages.release(*b, 16), 16u);
  EXPECT_TRUE(pages.is_free(*b));
  EXPECT_EQ(pages.alloc(order{30}).code(), errc::out_of_memory);
  EXPECT_EQ(pages.alloc(order{40}).code(), errc::out_of_range);
}

TEST(ChainPlan, FinishesTheOldestSessionButVmAlphaAndAddsOnePerHop) {
  const auto a = model::plan_after(1), b = model::plan_after(2), c = model::plan_after(3);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[1].name, "database");
  EXPECT_EQ(model::finished_between(a, b), std::vector<std::string>{"database"});
  EXPECT_EQ(model::finished_between(b, c), std::vector<std::string>{"cache"});
  EXPECT_EQ(b.back().name, "svc-B");
  EXPECT_EQ(c.back().name, "svc-C");
  EXPECT_EQ(c[0].name, "vm-alpha");  // never finished
  EXPECT_EQ(c[0].files[0].indices.size(), 48 + 2 * model::chain_faults);
  EXPECT_EQ(model::chain_release(1), "kho-model-A");
  EXPECT_EQ(model::chain_image(27), "I27");
}

TEST(ChainPage, PatternDependsOnTokenAndIndex) {
  std::vector<unsigned char> p(page);
  model::fill_chain_page(p.data(), 7, 40);
  EXPECT_TRUE(model::chain_page_ok(p.data(), 7, 40));
  EXPECT_FALSE(model::chain_page_ok(p.data(), 7, 42));
  EXPECT_FALSE(model::chain_page_ok(p.data(), 9, 40));
  p[page - 1] ^= 1;
  EXPECT_FALSE(model::chain_page_ok(p.data(), 7, 40));
}

TEST(HopFormats, OnlyVersionsWithAWriterAreAccepted) {
  EXPECT_NO_THROW(model::check_writable({}));
  model::hop_formats old_root;
  old_root.root = 3;
  EXPECT_NO_THROW(model::check_writable(old_root));
  old_root.root = 2;  // kho-v2 cannot name the raw blobs a hop holds
  EXPECT_THROW(model::check_writable(old_root), std::invalid_argument);
  model::hop_formats v1;
  v1.memfd = 1;
  EXPECT_NO_THROW(model::check_writable(v1));
  EXPECT_STREQ(model::memfd_compatible_of(v1), "memfd-v1");
}

/// Writes hop `image` into pm from `carry`.
nlohmann::json write_hop(model::physical_memory& pm, unsigned image, const model::chain_carry& carry, u64 kexec_count,
                         const model::hop_formats& f = {}, u32 new_file_seals = upstream::memfd_seal_grow) {
  model::free_page_source pages = model::chain_pages(pm, carry);
  return model::write_chain_hop(pm, {image, kexec_count, f, new_file_seals}, carry, pages, [](const std::string&) {},
                                [](const nlohmann::json&) {});
}

/// Validates pm's handover as a whole and reads it as image `image`.
model::chain_read read_hop(model::physical_memory& pm, unsigned image, bool final_image, u64 digest) {
  const flat_memory mem = pm.memory();
  auto boot = upstream::find_kho_data(mem, pm.base());
  EXPECT_TRUE(boot);
  model::scratch_pages scratch(mem);
  auto root = upstream::attach_kho_handover(mem, phys_addr{boot->data.fdt_addr.get()}, scratch.pages(),
                                            boot->data.fdt_size.get());
  EXPECT_TRUE(root) << (root ? "" : to_string(root.code()));
  return model::read_chain_hop(mem, *root, image, final_image, digest);
}

u64 digest_of(const nlohmann::json& entry) { return std::stoull(entry["digest"].get<std::string>(), nullptr, 16); }

class ChainHops : public ::testing::TestWithParam<bool> {};

TEST_P(ChainHops, TheSameFolioPagesAreCarriedAndChecked) {
  auto pm = model::physical_memory::create(u64{4} << 30, u64{256} << 20);
  model::hop_formats f;
  f.kho_formats = GetParam();
  const auto a = write_hop(pm, 1, {}, 1, f);
  auto b_read = read_hop(pm, 2, false, digest_of(a));
  ASSERT_FALSE(b_read.problem) << *b_read.problem;
  EXPECT_EQ(b_read.report["kexec_count"], 1);
  EXPECT_EQ(b_read.report["previous_release"], "kho-model-A");
  EXPECT_EQ(b_read.carry.kho_xarray.value != 0, GetParam());
  // database is finished by B: its file is not carried.
  std::set<u64> kept;
  for (const auto& file : b_read.carry.files) {
    EXPECT_NE(file.session, "database");
    if (file.session == "vm-alpha")
      for (const auto& g : file.folios) kept.insert(g.page.value);
  }
  const auto b = write_hop(pm, 2, b_read.carry, 2, f);
  EXPECT_EQ(b["finished"], nlohmann::json::array({"database"}));
  auto c_read = read_hop(pm, 3, /*final_image=*/false, digest_of(b));  // C of a longer chain carries on
  ASSERT_FALSE(c_read.problem) << *c_read.problem;
  EXPECT_EQ(c_read.report["kexec_count"], 2);
  EXPECT_EQ(c_read.report["finished"], nlohmann::json::array({"cache"}));
  EXPECT_EQ(c_read.report["previous_release"], "kho-model-B");
  // Every vm-alpha page B carried is still where A put it, with A's content
  // (read_chain_hop checked the pattern of each), and C carries it on.
  std::set<u64> now;
  for (const auto& file : c_read.carry.files)
    for (const auto& g : file.folios) now.insert(g.page.value);
  EXPECT_TRUE(std::includes(now.begin(), now.end(), kept.begin(), kept.end()));
}

INSTANTIATE_TEST_SUITE_P(KhoFormats, ChainHops, ::testing::Bool());

TEST(ChainHops, AChangedFolioPageIsRefused) {
  auto pm = model::physical_memory::create(u64{4} << 30, u64{256} << 20);
  const auto a = write_hop(pm, 1, {}, 1);
  auto b_read = read_hop(pm, 2, false, digest_of(a));
  ASSERT_FALSE(b_read.problem);
  const phys_addr victim = b_read.carry.files[0].folios[5].page;
  static_cast<unsigned char*>(pm.memory().to_virt(victim, page))[100] ^= 0x40;
  auto again = read_hop(pm, 2, false, digest_of(a));
  ASSERT_TRUE(again.problem);
  EXPECT_NE(again.problem->find("vm-alpha/1: a page lost its content"), std::string::npos) << *again.problem;
}

TEST(ChainHops, AWrongDigestOrCountIsRefused) {
  auto pm = model::physical_memory::create(u64{4} << 30, u64{256} << 20);
  const auto a = write_hop(pm, 1, {}, 1);
  auto wrong_digest = read_hop(pm, 2, false, digest_of(a) ^ 1);
  ASSERT_TRUE(wrong_digest.problem);
  EXPECT_NE(wrong_digest.problem->find("digest"), std::string::npos);
  EXPECT_EQ(wrong_digest.report["digest_ok"], false);
  // Read as image 3, hop 1 has the wrong generation for the chain.
  auto wrong_hop = read_hop(pm, 3, false, digest_of(a));
  ASSERT_TRUE(wrong_hop.problem);
  EXPECT_NE(wrong_hop.problem->find("root generation 1, hop 2"), std::string::npos) << *wrong_hop.problem;
  // A writer that counts wrong: generation 2, kexec_count 5.
  auto b_read = read_hop(pm, 2, false, digest_of(a));
  ASSERT_FALSE(b_read.problem);
  const auto b = write_hop(pm, 2, b_read.carry, 5);
  auto c_read = read_hop(pm, 3, true, digest_of(b));
  ASSERT_TRUE(c_read.problem);
  EXPECT_EQ(*c_read.problem, "kexec_count 5, expected 2");
}

TEST(ChainHops, MemfdV1IsWrittenWhenTheHopAsksForIt) {
  auto pm = model::physical_memory::create(u64{4} << 30, u64{256} << 20);
  model::hop_formats f;
  f.memfd = 1;
  const auto a = write_hop(pm, 1, {}, 1, f, /*new_file_seals=*/0);
  EXPECT_EQ(a["formats"]["memfd"], "memfd-v1");
  auto b_read = read_hop(pm, 2, false, digest_of(a));
  ASSERT_FALSE(b_read.problem) << *b_read.problem;
  const auto b = write_hop(pm, 2, b_read.carry, 2);  // and back to memfd-v2
  auto c_read = read_hop(pm, 3, true, digest_of(b));
  ASSERT_FALSE(c_read.problem) << *c_read.problem;
}

// Seals are carried from hop to hop, so a memfd-v1 hop after a sealed file is a
// downgrade that would drop them: refused, naming the file, never written unsealed.
TEST(ChainHops, MemfdV1NeverDropsACarriedFilesSeals) {
  auto pm = model::physical_memory::create(u64{4} << 30, u64{256} << 20);
  const auto a = write_hop(pm, 1, {}, 1);
  auto b_read = read_hop(pm, 2, false, digest_of(a));
  ASSERT_FALSE(b_read.problem) << *b_read.problem;
  for (const auto& file : b_read.carry.files) EXPECT_EQ(file.seals, upstream::memfd_seal_grow) << file.session;
  model::hop_formats f;
  f.memfd = 1;
  try {
    write_hop(pm, 2, b_read.carry, 2, f, /*new_file_seals=*/0);
    FAIL() << "a sealed file was written as memfd-v1";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("memfd-v1 cannot carry the seals 0x4 of session vm-alpha, file token 1"),
              std::string::npos)
        << e.what();
  }
}

TEST(ChainHops, ReleasedPagesAreReusedOnlyOnceNotCarried) {
  auto pm = model::physical_memory::create(u64{4} << 30, u64{256} << 20);
  const auto a = write_hop(pm, 1, {}, 1);
  auto b_read = read_hop(pm, 2, false, digest_of(a));
  ASSERT_FALSE(b_read.problem);
  model::free_page_source pages = model::chain_pages(pm, b_read.carry);
  for (const auto& [pa, o] : b_read.carry.keep) EXPECT_FALSE(pages.is_free(pa));
  for (const auto& file : b_read.carry.files)
    for (const auto& g : file.folios) EXPECT_FALSE(pages.is_free(g.page));
  EXPECT_GT(b_read.old_pages, model::carried_pages(b_read.carry));
}

}  // namespace
}  // namespace kho::test::model_chain_test
