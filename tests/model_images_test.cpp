// The model's two image flavours negotiating hops (model/model_images.hpp): what each
// pair writes, what is refused before anything is written and why, the reader gate,
// and a negotiated hop written and read back.
#include <kho/linux/kho_fdt_check.hpp>
#include <kho/linux/x86_boot.hpp>
#include <kho/model/inspect_linux.hpp>
#include <kho/model/model_images.hpp>
#include <kho/model/physical_memory.hpp>
#include <kho/model/scratch_pages.hpp>

#include <gtest/gtest.h>

namespace kho::test::model_images_test {
namespace {

constexpr auto current_bytes = make_manifest("current", model::current_image_lines);
constexpr auto legacy_bytes = make_manifest("legacy", model::legacy_image_lines);

manifest_view current() { return *manifest_view::parse(&current_bytes, sizeof current_bytes); }
manifest_view legacy() { return *manifest_view::parse(&legacy_bytes, sizeof legacy_bytes); }

model::hop_input hop(unsigned image, u32 seals, bool kho_formats = false) {
  model::hop_input in{image, image, {}, seals};
  in.formats.kho_formats = kho_formats;
  return in;
}

TEST(ModelImages, CurrentToCurrentWritesTheNewest) {
  const auto d = model::negotiate_hop(current(), current(), hop(1, upstream::memfd_seal_grow, true), {});
  ASSERT_TRUE(d.table.ok()) << model::format_qualify(d.table);
  EXPECT_EQ(d.formats.root, 4);
  EXPECT_EQ(d.formats.luo, 5);
  EXPECT_EQ(d.formats.memfd, 2);
}

TEST(ModelImages, CurrentToLegacyDowngradesUnsealedFiles) {
  const auto d = model::negotiate_hop(current(), legacy(), hop(1, 0), {});
  ASSERT_TRUE(d.table.ok()) << model::format_qualify(d.table);
  EXPECT_EQ(d.formats.root, 3);
  EXPECT_EQ(d.formats.memfd, 1);
  const auto back = model::negotiate_hop(legacy(), current(), hop(2, 0), {});
  ASSERT_TRUE(back.table.ok());
  EXPECT_EQ(back.formats.root, 3) << "the legacy image writes only what it knows";
  EXPECT_EQ(back.formats.memfd, 1);
}

TEST(ModelImages, SealedFilesAndKhoFormatsAreRefusedByName) {
  const auto d = model::negotiate_hop(current(), legacy(), hop(1, upstream::memfd_seal_grow, true), {});
  ASSERT_FALSE(d.table.ok());
  int memfds = 0, kho = 0;
  for (const auto& row : d.table.rows) {
    if (row.ok()) continue;
    if (row.structure.family == "memfd") {
      ++memfds;
      EXPECT_EQ(row.decision.why, refusal::content_not_carriable) << row.structure.what;
      EXPECT_EQ(row.structure.lossy_field, "seals");
    } else {
      ++kho;
      EXPECT_EQ(row.decision.why, refusal::reader_lacks_family) << row.structure.what;
    }
  }
  size_t files = 0;
  for (const auto& session : model::plan_after(1)) files += session.files.size();
  EXPECT_EQ(memfds, static_cast<int>(files)) << model::format_qualify(d.table);
  EXPECT_EQ(kho, 2) << "kho-xarray and kho-luo";
  const std::string text = model::format_qualify(d.table);
  EXPECT_NE(text.find("REFUSED  LUO session vm-alpha, file token 1 (memfd)"), std::string::npos) << text;
  EXPECT_NE(text.find("the common versions would drop seals"), std::string::npos) << text;
}

// A carried file keeps its seals: a later hop to the legacy image is refused for it
// even when new files are created unsealed.
TEST(ModelImages, CarriedSealsDecideLaterHops) {
  model::chain_carry carry;
  carry.files.push_back({"vm-alpha", 1, 0, upstream::memfd_seal_grow | upstream::memfd_seal_seal, {}});
  const auto d = model::negotiate_hop(current(), legacy(), hop(2, 0), carry);
  ASSERT_FALSE(d.table.ok());
  int refused = 0;
  for (const auto& row : d.table.rows) refused += row.ok() ? 0 : 1;
  EXPECT_EQ(refused, 1) << model::format_qualify(d.table);
}

// A negotiated hop, written and read back in one process: the root really is kho-v3,
// the files memfd-v1, the legacy image's gate passes it and the current image's too;
// a newest-version hop fails the legacy gate.
TEST(ModelImages, NegotiatedHopIsWhatTheNextImageReads) {
  for (bool negotiated : {true, false}) {
    auto pm = model::physical_memory::create(u64{4} << 30, u64{256} << 20);
    model::hop_input in = hop(1, 0);
    if (negotiated) in.formats = model::negotiate_hop(current(), legacy(), in, {}).formats;
    model::free_page_source pages = model::chain_pages(pm, {});
    model::write_chain_hop(pm, in, {}, pages, [](const std::string&) {}, [](const nlohmann::json&) {});
    const flat_memory mem = pm.memory();
    auto boot = upstream::find_kho_data(mem, pm.base());
    ASSERT_TRUE(boot);
    const nlohmann::json report = model::inspect_kho_fdt(mem, phys_addr{boot->data.fdt_addr.get()});
    ASSERT_EQ(report["status"], "ok") << report.dump();
    EXPECT_EQ(report["root"]["compatible"], negotiated ? "kho-v3" : "kho-v4");
    EXPECT_EQ(model::reader_gate(legacy(), report).ok(), negotiated);
    EXPECT_TRUE(model::reader_gate(current(), report).ok());
  }
}

}  // namespace
}  // namespace kho::test::model_images_test
