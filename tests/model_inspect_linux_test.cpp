// The report `kho dump` prints for a Linux KHO handover ("kho-v4" root FDT,
// kho/model/inspect_linux.hpp): a whole handover (radix map, LUO with memfd files and an
// FLB, kexec-metadata, memblock, kho's xarray, an opaque blob) read at another address
// with 4, 16 and 64 KiB pages; a tampered and re-sealed one refused with its error
// while the root's own listing stays; a stock kernel's (no kho properties); an FDT
// read from a caller's buffer.
#include <kho/checksum.hpp>
#include <kho/linux/kexec_metadata.hpp>
#include <kho/linux/kho_fdt.hpp>
#include <kho/linux/luo_v5.hpp>
#include <kho/linux/memblock.hpp>
#include <kho/linux/memfd.hpp>
#include <kho/luo.hpp>
#include <kho/model/inspect_linux.hpp>
#include <kho/model/inspect_radix.hpp>
#include <kho/preserving_page_source.hpp>
#include <kho/xarray.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <string>
#include <vector>

namespace kho::test::model_inspect_linux_test {
namespace {

using namespace kho::upstream;
using model::hex;

template <unsigned PageShift>
struct reported_handover {
  using source = typename arena<PageShift>::source_type;
  using map_type = preserve_bitmap<source, PageShift>;
  using tracked_type = preserving_page_source<source, map_type>;
  static constexpr u64 page = page_geometry<PageShift>::size;

  arena<PageShift> a{u64{16} << 20, u64{1} << 32};
  map_type map = *map_type::create(a.pages());
  tracked_type tracked{a.pages(), map};
  kho_fdt_writer<tracked_type, PageShift> w;
  std::vector<memfd_folio> v2_folios, v1_folios;
  phys_addr memfd2{}, memfd1{}, luo{}, meta{}, memblock{}, trace{}, xa{}, blob{}, kho_luo{};

  explicit reported_handover(bool kho_properties = true)
      : w(*kho_fdt_writer<tracked_type, PageShift>::create(tracked, map.root(), kho_fdt_options{kho_properties, 4})) {
    v2_folios = folios(3, memfd_folio_dirty);  // flags other than v1's, to see each reported
    v1_folios = folios(10, memfd_folio_dirty | memfd_folio_uptodate);
    memfd2 = *write_memfd<PageShift>(tracked, memfd_file{123, u64{12} << PageShift, memfd_seal_seal | memfd_seal_grow,
                                                         v2_folios.data(), v2_folios.size()});
    memfd1 = *write_memfd<PageShift>(tracked, memfd_file{0, u64{40} << PageShift, 0, v1_folios.data(), v1_folios.size()},
                                     memfd_version::v1);
    auto l = luo_v5_writer<tracked_type, PageShift>::create(tracked, 7);
    EXPECT_TRUE(l && l->create_session("vm") && l->create_session("empty"));
    EXPECT_TRUE(l->preserve_file("vm", memfd_v2_compatible, memfd2.value, 1));
    EXPECT_TRUE(l->preserve_file("vm", memfd_v1_compatible, memfd1.value, 2));
    EXPECT_TRUE(l->preserve_file("vm", "opaque-v1", 0xabc000, 3));  // a handler no reader knows: opaque
    EXPECT_TRUE(l->add_flb("iommu", 0x5000, 2));
    luo = l->blob().phys;
    auto m = write_kexec_metadata<PageShift>(tracked, "6.20.0-kho", 3);
    meta = m->phys;
    trace = *tracked.alloc(order{1});
    const reserve_mem_region regions[] = {{"trace", trace, u64{2} << PageShift}};
    auto mb = write_memblock<PageShift>(tracked, regions, 1);
    memblock = mb->phys;
    auto x = xarray<u64, PageShift, tracked_type>::create(tracked);
    EXPECT_TRUE(x && x->store(5, 55) && x->store(9, 99));
    x->seal();
    xa = x->root();
    auto k = luo_writer<tracked_type, PageShift>::create(tracked, 9);
    EXPECT_TRUE(k && k->create_session("kho-vm"));
    EXPECT_TRUE(k->preserve_file("kho-vm", luo_file{11, "kho-memfd-v1", phys_addr{}, 0}));
    auto sealed = k->seal();
    kho_luo = sealed->root;
    blob = *tracked.alloc(order{0});
    std::memset(a.bytes(blob), 0x5a, 100);
    EXPECT_TRUE(w.add(luo_v5_subtree, luo, l->blob().size, luo_v5_compatible));
    EXPECT_TRUE(w.add(kexec_metadata_subtree, meta, m->size));
    EXPECT_TRUE(w.add(memblock_subtree, memblock, mb->size));
    EXPECT_TRUE(w.add("kho-memfd-index", xa, x->root_size, xarray_compatible));
    EXPECT_TRUE(w.add("kho-luo", kho_luo, sealed->size, kho::luo_compatible));
    EXPECT_TRUE(w.add("opaque", blob, 100));
    EXPECT_TRUE(w.seal());
  }

  std::vector<memfd_folio> folios(u64 n, u16 flags) {
    std::vector<memfd_folio> out;
    for (u64 i = 0; i < n; ++i) out.push_back({pfn{tracked.alloc(order{0})->value >> PageShift}, i * 3 + 1, flags});
    return out;
  }

  // The report at another address, as the next kernel would read it.
  nlohmann::json report(u64 max_ranges = model::radix_listed_ranges) {
    const flat_memory moved = a.remap();
    return model::inspect_kho_fdt<PageShift>(moved, w.root(), page, max_ranges);
  }
};

const nlohmann::json& subtree(const nlohmann::json& j, const std::string& name) {
  for (const auto& t : j["subtrees"])
    if (t["name"] == name) return t;
  static const nlohmann::json none;
  ADD_FAILURE() << "no subtree " << name << " in " << j.dump();
  return none;
}

nlohmann::json folio_json(const memfd_folio& f) {
  return {{"pfn", hex(f.frame.value)}, {"index", f.index}, {"flags", f.flags}};
}

template <class T>
class InspectKhoFdtPages : public ::testing::Test {};
using page_shifts = ::testing::Types<std::integral_constant<unsigned, 12>, std::integral_constant<unsigned, 14>,
                                     std::integral_constant<unsigned, 16>>;
TYPED_TEST_SUITE(InspectKhoFdtPages, page_shifts);

TYPED_TEST(InspectKhoFdtPages, WholeHandoverReported) {
  constexpr unsigned shift = TypeParam::value;
  reported_handover<shift> h;
  const nlohmann::json j = h.report();
  ASSERT_EQ(j["status"], "ok") << j.dump(2);
  EXPECT_FALSE(j.contains("error"));
  EXPECT_EQ(j["format"], "kho-v4");
  EXPECT_EQ(j["root"], (nlohmann::json{{"address", hex(h.w.root().value)},
                                       {"compatible", "kho-v4"},
                                       {"preserved_memory_map", hex(h.map.root().value)},
                                       {"kho_sealed", true},
                                       {"generation", 4},
                                       {"subtree_count", 6}}));
  // The preserved map is radix_report's, as kho dump prints it for a bare tree.
  EXPECT_EQ(j["preserved"], model::radix_report<shift>(h.a.memory(), h.map.root()));
  EXPECT_TRUE(j["preserved"]["ok"]);
  EXPECT_GE(j["preserved"]["blocks"].template get<u64>(), 20u);

  // libfdt puts the newest subtree first.
  ASSERT_EQ(j["subtrees"].size(), 6u);
  EXPECT_EQ(j["subtrees"][0]["name"], "opaque");
  EXPECT_EQ(j["subtrees"][5]["name"], "LUO");

  const nlohmann::json& luo = subtree(j, "LUO");
  EXPECT_EQ(luo["format"], "luo-v5");
  EXPECT_EQ(luo["kho_compatible"], "luo-v5");
  EXPECT_EQ(luo["phys"], hex(h.luo.value));
  EXPECT_EQ(luo["size"], 32);
  EXPECT_EQ(luo["checksum"], hex(checksum(h.a.bytes(h.luo), 32)));
  EXPECT_FALSE(luo.contains("deep_checksum"));
  EXPECT_TRUE(luo["ok"]);
  EXPECT_EQ(luo["summary"], "live update #7: 2 sessions, 3 files, 1 FLBs, 2 blocks");
  EXPECT_EQ(luo["liveupdate_num"], 7);
  ASSERT_EQ(luo["sessions"].size(), 2u);
  EXPECT_EQ(luo["sessions"][1], (nlohmann::json{{"name", "empty"}, {"files", nlohmann::json::array()}}));
  const nlohmann::json& files = luo["sessions"][0]["files"];
  EXPECT_EQ(luo["sessions"][0]["name"], "vm");
  ASSERT_EQ(files.size(), 3u);
  nlohmann::json v2_folios = nlohmann::json::array();
  for (const memfd_folio& f : h.v2_folios) v2_folios.push_back(folio_json(f));
  EXPECT_EQ(files[0], (nlohmann::json{{"compatible", "memfd-v2"},
                                      {"format", "memfd-v2"},
                                      {"token", 1},
                                      {"data", hex(h.memfd2.value)},
                                      {"memfd",
                                       {{"ok", true},
                                        {"version", "memfd-v2"},
                                        {"address", hex(h.memfd2.value)},
                                        {"pos", 123},
                                        {"size", u64{12} << shift},
                                        {"seals", memfd_seal_seal | memfd_seal_grow},
                                        {"flags", 0},
                                        {"nr_folios", 3},
                                        {"folios", v2_folios},
                                        {"folios_truncated", false}}}}));
  const nlohmann::json& v1 = files[1]["memfd"];
  EXPECT_EQ(files[1]["compatible"], "memfd-v1");
  EXPECT_EQ(v1["version"], "memfd-v1");
  EXPECT_EQ(v1["seals"], 0);
  EXPECT_EQ(v1["nr_folios"], 10);
  ASSERT_EQ(v1["folios"].size(), 10u);  // every folio, up to max_ranges
  EXPECT_EQ(v1["folios"][9], folio_json(h.v1_folios[9]));
  EXPECT_FALSE(v1["folios_truncated"]);
  EXPECT_EQ(files[2], (nlohmann::json{{"compatible", "opaque-v1"}, {"token", 3}, {"data", "0xabc000"}}));
  EXPECT_EQ(luo["flbs"], nlohmann::json::parse(R"([{"name": "iommu", "count": 2, "data": "0x5000"}])"));

  const nlohmann::json& meta = subtree(j, "kexec-metadata");
  EXPECT_EQ(meta["format"], "kexec-metadata-v1");
  EXPECT_FALSE(meta.contains("kho_compatible"));
  EXPECT_EQ(meta["size"], 73);
  EXPECT_EQ(meta["version"], 1);
  EXPECT_EQ(meta["previous_release"], "6.20.0-kho");
  EXPECT_EQ(meta["kexec_count"], 3);

  const nlohmann::json& mb = subtree(j, "memblock");
  EXPECT_EQ(mb["format"], "memblock-v1");
  EXPECT_EQ(mb["regions"], (nlohmann::json::array(
                               {{{"name", "trace"}, {"start", hex(h.trace.value)}, {"size", hex(u64{2} << shift)}}})));

  const nlohmann::json& xa = subtree(j, "kho-memfd-index");
  EXPECT_EQ(xa["format"], "kho-xarray-v1");
  EXPECT_EQ(xa["phys"], hex(h.xa.value));
  EXPECT_TRUE(xa["ok"]);
  EXPECT_EQ(xa["count"], 2);
  EXPECT_EQ(xa["first_entries"][0]["index"], 5);
  EXPECT_EQ(xa["first_entries"][1]["value"], "0x63");

  const nlohmann::json& kho_luo = subtree(j, "kho-luo");
  EXPECT_EQ(kho_luo["format"], "kho-luo-v1");
  EXPECT_TRUE(kho_luo["ok"]);
  EXPECT_EQ(kho_luo["liveupdate_number"], 9);
  EXPECT_EQ(kho_luo["sessions"][0]["name"], "kho-vm");
  EXPECT_EQ(kho_luo["sessions"][0]["files"][0]["token"], 11);
  EXPECT_EQ(kho_luo["sessions"][0]["files"][0]["compatible"], "kho-memfd-v1");

  const nlohmann::json& blob = subtree(j, "opaque");
  EXPECT_EQ(blob["format"], "");
  EXPECT_EQ(blob["size"], 100);
  EXPECT_EQ(blob["summary"], "opaque blob, 100 bytes");
  EXPECT_EQ(blob["checksum"], hex(checksum(h.a.bytes(h.blob), 100)));
}

TYPED_TEST(InspectKhoFdtPages, TextNamesEverySubtree) {
  reported_handover<TypeParam::value> h;
  const std::string text = model::format_kho_fdt_report(h.report());
  EXPECT_EQ(text.find(fmt::format("kho-v4 root {}: ok\n  kho seal: generation 4\n", hex(h.w.root().value))), 0u)
      << text;
  for (const std::string& line :
       {std::string("subtree LUO              luo-v5"), std::string("    session vm: 3 files\n"),
        fmt::format("      file memfd-v2 token 1 data {}\n        memfd-v2: pos 123 size {} seals 0x5, 3 folios\n",
                    hex(h.memfd2.value), u64{12} << TypeParam::value),
        std::string("    FLB iommu: 2 files, data 0x5000\n"),
        fmt::format("    region trace [{}, +{})\n", hex(h.trace.value), hex(u64{2} << TypeParam::value)),
        std::string("    written by 6.20.0-kho, kexec boot #3\n"), std::string("(blob)"),
        fmt::format("preserved-memory-map {}: ", hex(h.map.root().value))})
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
}

TEST(InspectKhoFdt, MaxRangesBoundsTheListNotTheCount) {
  reported_handover<12> h;
  const nlohmann::json all = h.report();
  const nlohmann::json none = h.report(0);
  EXPECT_EQ(none["status"], "ok");
  EXPECT_EQ(none["preserved"]["ranges"], nlohmann::json::array());
  EXPECT_EQ(none["preserved"]["range_count"], all["preserved"]["range_count"]);
  EXPECT_TRUE(none["preserved"]["ranges_truncated"]);
  EXPECT_NE(model::format_kho_fdt_report(none).find("more ranges not listed (--max-ranges)"), std::string::npos);
  // The same bound lists folios: none listed, all counted.
  const nlohmann::json& v1 = subtree(none, "LUO")["sessions"][0]["files"][1]["memfd"];
  EXPECT_EQ(v1["folios"], nlohmann::json::array());
  EXPECT_EQ(v1["nr_folios"], 10);
  EXPECT_TRUE(v1["folios_truncated"]);
  EXPECT_NE(model::format_kho_fdt_report(none).find("10 more folios not listed"), std::string::npos);
  EXPECT_NE(model::format_kho_fdt_report(all).find(" pfn 0x"), std::string::npos);
}

// Two opaque blobs in one page: their bytes are disjoint, so the root FDT accepts them
// (and is re-sealed); ownership does not. The report names the error and still lists
// what the root says, and nothing any structure behind it holds.
TEST(InspectKhoFdt, TwoSubtreesSharingAPageRefused) {
  reported_handover<12> h;
  void* f = h.a.bytes(h.w.root());
  ASSERT_EQ(fdt_open_into(f, f, 4096), 0);
  const int node = fdt_add_subnode(f, 0, "second-half");
  ASSERT_GE(node, 0);
  unsigned char d[8], n[8], sum[8] = {};
  impl::fdt_put_le64(d, h.blob.value + 512);
  impl::fdt_put_le64(n, 16);
  ASSERT_EQ(fdt_setprop(f, node, kho_fdt_data, d, 8), 0);
  ASSERT_EQ(fdt_setprop(f, node, kho_fdt_size, n, 8), 0);
  ASSERT_EQ(fdt_setprop(f, node, kho_fdt_blob_checksum, sum, 8), 0);
  ASSERT_EQ(fdt_pack(f), 0);
  ASSERT_TRUE(h.w.seal());

  const nlohmann::json j = h.report();
  ASSERT_EQ(j["status"], to_string(errc::aliased)) << j.dump(2);
  // The newest subtree is first in the tree: it claims the page, "opaque" collides.
  EXPECT_EQ(j["error"], (nlohmann::json{{"error", to_string(errc::aliased)},
                                        {"structure", "blob"},
                                        {"at", hex(h.blob.value)},
                                        {"depth", 0},
                                        {"first_owner", {{"structure", "blob"}, {"at", hex(h.blob.value + 512)}}}}));
  EXPECT_TRUE(j["root"]["kho_sealed"]);
  EXPECT_EQ(j["root"]["subtree_count"], 7);
  EXPECT_FALSE(j.contains("preserved"));
  ASSERT_EQ(j["subtrees"].size(), 7u);
  EXPECT_EQ(j["subtrees"][0], (nlohmann::json{{"name", "second-half"},
                                              {"phys", hex(h.blob.value + 512)},
                                              {"size", 16},
                                              {"format", ""},
                                              {"checksum", hex(checksum(h.a.bytes(h.blob) + 512, 16))},
                                              {"stands", true}}));
  // Structure by structure, only "opaque" falls: the first claim of the page stands.
  for (const auto& t : j["subtrees"]) {
    EXPECT_EQ(t["stands"], t["name"] != "opaque") << t.dump();
    EXPECT_FALSE(t.contains("ok")) << t.dump();
    EXPECT_FALSE(t.contains("sessions") || t.contains("regions") || t.contains("summary")) << t.dump();
  }
  EXPECT_EQ(subtree(j, "LUO")["format"], "luo-v5");
  const std::string text = model::format_kho_fdt_report(j);
  EXPECT_NE(text.find(fmt::format("  error: {} in blob at {} (depth 0), first owned by blob at {}\n",
                                  to_string(errc::aliased), hex(h.blob.value), hex(h.blob.value + 512))),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("session"), std::string::npos) << text;
}

// LUO's upstream name with kho,compatible naming kho's LUO (re-sealed): the name is what
// a stock kernel dispatches on, so the check refuses it; the root still lists it,
// with no format.
TEST(InspectKhoFdt, UpstreamNameWithAnotherFormat) {
  reported_handover<12> h;
  void* f = h.a.bytes(h.w.root());
  ASSERT_EQ(fdt_open_into(f, f, 4096), 0);
  ASSERT_EQ(fdt_setprop_string(f, fdt_subnode_offset(f, 0, luo_v5_subtree), kho_fdt_blob_compatible, "kho-luo-v1"), 0);
  ASSERT_EQ(fdt_pack(f), 0);
  ASSERT_TRUE(h.w.seal());
  const nlohmann::json j = h.report();
  ASSERT_EQ(j["status"], to_string(errc::bad_compatible)) << j.dump(2);
  EXPECT_EQ(j["error"]["structure"], "kho-fdt");
  EXPECT_EQ(j["error"]["at"], hex(h.luo.value));
  const nlohmann::json& luo = subtree(j, "LUO");
  EXPECT_EQ(luo["format"], nullptr);
  EXPECT_EQ(luo["format_error"], to_string(errc::bad_compatible));
  EXPECT_EQ(luo["kho_compatible"], "kho-luo-v1");
  EXPECT_NE(model::format_kho_fdt_report(j).find(fmt::format("    format: {}\n", to_string(errc::bad_compatible))),
            std::string::npos);
}

// A gap the report makes visible rather than hides: kho's xarray under an FDT subtree
// with a blob-size under its root block passes the check (check_kho_fdt attaches it
// whatever the size), and the kho-root-v1 entry reader refuses it. Reported as a
// failed subtree, never thrown.
TEST(InspectKhoFdt, SubtreeShorterThanItsRootBlockIsRefused) {
  reported_handover<12> h;
  void* f = h.a.bytes(h.w.root());
  unsigned char n[8];
  impl::fdt_put_le64(n, 8);
  ASSERT_EQ(fdt_setprop_inplace(f, fdt_subnode_offset(f, 0, "kho-memfd-index"), kho_fdt_size, n, 8), 0);
  ASSERT_TRUE(h.w.seal());
  const nlohmann::json j = h.report();
  ASSERT_EQ(j["status"], to_string(errc::bad_count)) << j.dump(2);
  EXPECT_EQ(j["error"]["structure"], "xarray");
  EXPECT_EQ(j["error"]["at"], hex(h.xa.value));
}

TEST(InspectKhoFdt, RootRefusedListsNothing) {
  reported_handover<12> h;
  unsigned char generation[8];
  impl::fdt_put_le64(generation, 5);  // and not re-sealed
  ASSERT_EQ(fdt_setprop_inplace(h.a.bytes(h.w.root()), 0, kho_fdt_generation, generation, 8), 0);
  const nlohmann::json j = h.report();
  EXPECT_EQ(j["status"], to_string(errc::bad_checksum)) << j.dump(2);
  EXPECT_EQ(j["error"]["structure"], "kho-fdt");
  EXPECT_EQ(j["error"]["at"], hex(h.w.root().value));
  EXPECT_EQ(j["root"], (nlohmann::json{{"address", hex(h.w.root().value)}}));
  EXPECT_EQ(j["subtrees"], nlohmann::json::array());
  EXPECT_EQ(model::format_kho_fdt_report(j),
            fmt::format("kho-v4 root {0}: {1}\n  error: {1} in kho-fdt at {0} (depth 0)\n{2}", hex(h.w.root().value),
                        to_string(errc::bad_checksum), model::kernel_verdict_text(j["kernel"])));
  // The kernel checks no kho seal: it would read the changed bytes as they are.
  EXPECT_EQ(j["kernel"]["verdict"], "not modelled") << j["kernel"].dump(2);
}

TEST(InspectKhoFdt, StockKernelHandoverUnsealedByKho) {
  reported_handover<12> h(/*kho_properties=*/false);
  const nlohmann::json j = h.report();
  ASSERT_EQ(j["status"], "ok") << j.dump(2);
  EXPECT_FALSE(j["root"]["kho_sealed"]);
  EXPECT_FALSE(j["root"].contains("generation"));
  for (const auto& t : j["subtrees"]) {
    EXPECT_FALSE(t.contains("checksum") || t.contains("kho_compatible")) << t.dump();
    EXPECT_TRUE(t["ok"]) << t.dump();
  }
  // Without kho,compatible the upstream names still decide; kho's xarray is then a blob.
  EXPECT_EQ(subtree(j, "LUO")["format"], "luo-v5");
  EXPECT_EQ(subtree(j, "LUO")["liveupdate_num"], 7);
  EXPECT_EQ(subtree(j, "kho-memfd-index")["format"], "");
  EXPECT_NE(model::format_kho_fdt_report(j).find("kho seal: none"), std::string::npos);
}

TEST(InspectKhoFdt, FdtFromACallersBuffer) {
  reported_handover<12> h;
  const nlohmann::json in_memory = h.report();
  // As saved from debugfs: the bytes alone, lying nowhere in memory.
  const auto* root = h.a.bytes(h.w.root());
  const std::vector<unsigned char> saved(root, root + fdt_totalsize(root));
  const flat_memory mem = h.a.memory();
  const nlohmann::json j = model::inspect_kho_fdt(mem, saved.data(), saved.size(), phys_addr{});
  ASSERT_EQ(j["status"], "ok") << j.dump(2);
  EXPECT_EQ(j["root"]["address"], nullptr);
  EXPECT_EQ(j["root"]["generation"], 4);
  EXPECT_EQ(j["preserved"], in_memory["preserved"]);
  EXPECT_EQ(j["subtrees"], in_memory["subtrees"]);
  EXPECT_EQ(model::format_kho_fdt_report(j).find("kho-v4 root (from a file): ok\n"), 0u);
  // A truncated copy is refused by libfdt, before anything else is read.
  const nlohmann::json cut = model::inspect_kho_fdt(mem, saved.data(), saved.size() / 2, phys_addr{});
  EXPECT_EQ(cut["status"], to_string(errc::bad_fdt));
  EXPECT_EQ(cut["error"]["structure"], "kho-fdt");
  EXPECT_EQ(cut["root"]["address"], nullptr);
}

}  // namespace
}  // namespace kho::test::model_inspect_linux_test
