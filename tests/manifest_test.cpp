// The manifest an image carries and the negotiation it feeds: layout round trip,
// every refusal of a malformed manifest at its offset, the ELF section read back from
// this very executable, and negotiation against a brute-force oracle.
#include <kho/manifest.hpp>
#include <kho/model/elf_section.hpp>
#include <kho/negotiate.hpp>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

namespace manifest_test {
namespace {

using namespace kho;

constexpr manifest_line test_lines[] = {
    {"kho", version_bit(3) | version_bit(4), version_bit(4)},
    {"memfd", version_bit(1) | version_bit(2) | version_bit(3), version_bit(1) | version_bit(2), 0x5},
    {"kho-root", version_bit(1), version_bit(1)},
};

// This test binary is an image with a manifest, as a kernel would be.
KHO_MANIFEST_SECTION constinit const manifest_image<3> test_manifest = make_manifest("kho-tests-1.0", test_lines);

std::vector<unsigned char> bytes_of(const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  return {b, b + n};
}

std::vector<unsigned char> good() { return bytes_of(&test_manifest, sizeof test_manifest); }

template <class T>
void put(std::vector<unsigned char>& b, size_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof v);
}

errc parse_code(const std::vector<unsigned char>& b) { return manifest_view::parse(b.data(), b.size()).code(); }
u64 parse_at(const std::vector<unsigned char>& b) {
  return manifest_view::parse(b.data(), b.size()).err().loc.at.value;
}

TEST(Manifest, RoundTrip) {
  auto b = good();
  auto m = manifest_view::parse(b.data(), b.size());
  ASSERT_TRUE(m) << to_string(m.code());
  EXPECT_EQ(m->size(), 3);
  EXPECT_STREQ(m->image(), "kho-tests-1.0");
  EXPECT_EQ(m->reads("kho"), version_bit(3) | version_bit(4));
  EXPECT_EQ(m->writes("memfd"), version_bit(1) | version_bit(2));
  EXPECT_EQ(m->features("memfd"), 0x5u);
  EXPECT_EQ(m->reads("luo"), 0u) << "an absent family reads nothing";
  EXPECT_EQ(m->version_minor(), 0);
}

TEST(Manifest, LayoutIsTheDocumentedBytes) {
  auto b = good();
  ASSERT_EQ(b.size(), 64u + 3 * 48);
  EXPECT_EQ(std::memcmp(b.data(), "KHOMNFST", 8), 0);
  EXPECT_EQ(b[8], 1);
  EXPECT_EQ(b[12], 48);
  EXPECT_EQ(b[14], 3);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data() + 16)), "kho-tests-1.0");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data() + 64 + 48)), "memfd");
  EXPECT_EQ(b[64 + 48 + 16], 0x0e) << "memfd reads versions 1, 2, 3: bits 1-3";
  EXPECT_EQ(b[64 + 48 + 32], 0x05);
}

TEST(Manifest, EachMalformationRefusedWhereItIs) {
  struct tamper {
    const char* name;
    void (*edit)(std::vector<unsigned char>&);
    errc code;
    u64 at;
  };
  const tamper cases[] = {
      {"magic", [](auto& b) { b[0] ^= 1; }, errc::bad_magic, 0},
      {"major", [](auto& b) { put<u16>(b, 8, 2); }, errc::bad_version, 8},
      {"entry size short", [](auto& b) { put<u16>(b, 12, 40); }, errc::misaligned, 12},
      {"entry size odd", [](auto& b) { put<u16>(b, 12, 52); }, errc::misaligned, 12},
      {"count over max", [](auto& b) { put<u16>(b, 14, 65); }, errc::bad_count, 14},
      {"count past end", [](auto& b) { put<u16>(b, 14, 4); }, errc::out_of_bounds, 14},
      {"image unterminated", [](auto& b) { std::memset(b.data() + 16, 'x', 48); }, errc::bad_string, 16},
      {"image empty", [](auto& b) { std::memset(b.data() + 16, 0, 48); }, errc::bad_string, 16},
      {"stale byte after image", [](auto& b) { b[16 + 40] = 'y'; }, errc::bad_string, 16},
      {"family unterminated", [](auto& b) { std::memset(b.data() + 64 + 48, 'f', 16); }, errc::bad_string, 112},
      {"version 0 read", [](auto& b) { b[64 + 2 * 48 + 16] |= 1; }, errc::out_of_range, 64 + 2 * 48 + 16},
      {"version 0 written", [](auto& b) { b[64 + 24] |= 1; }, errc::out_of_range, 64 + 16},
      {"reserved", [](auto& b) { b[64 + 48 + 47] = 1; }, errc::reserved_nonzero, 64 + 48 + 40},
      {"duplicate family", [](auto& b) { std::memcpy(b.data() + 64 + 96, "kho\0\0\0\0\0\0", 9); },
       errc::duplicate, 64 + 96},
  };
  for (const tamper& t : cases) {
    auto b = good();
    t.edit(b);
    EXPECT_EQ(parse_code(b), t.code) << t.name;
    EXPECT_EQ(parse_at(b), t.at) << t.name;
  }
  EXPECT_EQ(manifest_view::parse(nullptr, 0).code(), errc::out_of_bounds);
  auto b = good();
  for (size_t n = 0; n < b.size(); ++n)
    EXPECT_FALSE(manifest_view::parse(b.data(), n)) << "truncated to " << n;
}

// The minor-version rule for the manifest itself: a later minor may grow each entry
// (entry_size > 48); a minor-0 reader steps over the new bytes and reads the rest.
TEST(Manifest, ReaderOfMinorZeroReadsAGrownMinorOne) {
  auto b = good();
  const size_t step = 56;
  std::vector<unsigned char> grown(b.begin(), b.begin() + 64);
  put<u16>(grown, 10, 1);
  put<u16>(grown, 12, step);
  for (int i = 0; i < 3; ++i) {
    grown.insert(grown.end(), b.begin() + 64 + 48 * i, b.begin() + 64 + 48 * (i + 1));
    for (int k = 0; k < 8; ++k) grown.push_back(static_cast<unsigned char>(0xa0 + k));
  }
  auto m = manifest_view::parse(grown.data(), grown.size());
  ASSERT_TRUE(m) << to_string(m.code());
  EXPECT_EQ(m->version_minor(), 1);
  EXPECT_EQ(m->reads("kho-root"), version_bit(1));
  EXPECT_EQ(m->features("memfd"), 0x5u);
}

TEST(Manifest, ReadBackFromThisExecutablesElfSection) {
  const auto file = model::read_whole_file("/proc/self/exe");
  const auto section = model::elf_section(file, manifest_section);
  ASSERT_EQ(section.size(), sizeof test_manifest);
  EXPECT_EQ(std::memcmp(section.data(), &test_manifest, sizeof test_manifest), 0);
  auto m = manifest_view::parse(section.data(), section.size());
  ASSERT_TRUE(m);
  EXPECT_STREQ(m->image(), "kho-tests-1.0");
}

TEST(Manifest, ElfSectionRefusals) {
  const auto file = model::read_whole_file("/proc/self/exe");
  EXPECT_THROW(model::elf_section(file, ".no-such-section"), std::runtime_error);
  auto cut = file;
  cut.resize(64);
  EXPECT_THROW(model::elf_section(cut, manifest_section), std::runtime_error) << "headers outside the file";
  auto bad = file;
  bad[4] = 1;  // ELFCLASS32
  EXPECT_THROW(model::elf_section(bad, manifest_section), std::runtime_error);
  auto strndx = file;
  put<u16>(strndx, 62, 0xfff0);
  EXPECT_THROW(model::elf_section(strndx, manifest_section), std::runtime_error);
  EXPECT_THROW(model::elf_section(std::vector<unsigned char>(10, 0), manifest_section), std::runtime_error);
}

// ---- negotiation -----------------------------------------------------------------

template <u16 N>
manifest_view view_of(const manifest_image<N>& m) {
  auto v = manifest_view::parse(&m, sizeof m);
  EXPECT_TRUE(v);
  return *v;
}

TEST(Negotiate, PicksTheHighestCommonVersion) {
  static constexpr manifest_line old_lines[] = {{"kho", 0, version_bit(3) | version_bit(4)},
                                                {"memfd", 0, version_bit(1) | version_bit(2)}};
  static constexpr manifest_line new_lines[] = {{"kho", version_bit(2) | version_bit(3), 0},
                                                {"memfd", version_bit(1) | version_bit(2), 0}};
  static constexpr auto old_m = make_manifest("old", old_lines);
  static constexpr auto new_m = make_manifest("new", new_lines);
  const handover_need root{"kho", "root", ~u64{1}, 0, ""};
  const negotiated n = negotiate_one(view_of(old_m), view_of(new_m), root);
  EXPECT_EQ(n.version, 3);
  EXPECT_EQ(n.why, refusal::none);
  EXPECT_EQ(n.writer_versions, version_bit(3) | version_bit(4));
  EXPECT_EQ(n.reader_versions, version_bit(2) | version_bit(3));
}

TEST(Negotiate, EveryRefusalIsNamed) {
  static constexpr manifest_line w_lines[] = {{"kho", 0, version_bit(4), 0},
                                              {"memfd", 0, version_bit(1) | version_bit(2) | version_bit(3)},
                                              {"luo", 0, version_bit(5)}};
  static constexpr manifest_line r_lines[] = {{"kho", version_bit(3), 0},
                                              {"memfd", version_bit(1) | version_bit(3), 0, 0x1},
                                              {"kho-root", version_bit(1), 0, 0}};
  static constexpr auto w = make_manifest("writer", w_lines);
  static constexpr auto r = make_manifest("reader", r_lines);
  const handover_need needs[] = {
      {"kho", "root", ~u64{1}, 0, ""},
      {"luo", "LUO", ~u64{1}, 0, ""},
      {"kho-root", "root", ~u64{1}, 0, ""},
      {"memfd", "session s, token 1", version_bit(2) | version_bit(3), 0x2, "seals"},
      {"memfd", "session s, token 2", version_bit(2), 0, "seals"},
      {"memfd", "session s, token 3", version_bit(1) | version_bit(2) | version_bit(3), 0x2, ""},
      {"memfd", "session s, token 4", version_bit(2) | version_bit(3), 0x1, "seals"},
  };
  negotiated out[7];
  EXPECT_EQ(negotiate(view_of(w), view_of(r), needs, 7, out), 5u);
  EXPECT_EQ(out[0].why, refusal::no_common_version);
  EXPECT_EQ(out[1].why, refusal::reader_lacks_family);
  EXPECT_EQ(out[2].why, refusal::writer_lacks_family);
  EXPECT_EQ(out[3].why, refusal::features_unsupported);
  EXPECT_EQ(out[4].why, refusal::content_not_carriable);
  EXPECT_EQ(out[5].version, 1) << "feature 0x2 unsupported, so memfd-v1 rather than the feature header";
  EXPECT_EQ(out[6].version, 3);
  EXPECT_STREQ(wire_name_of("memfd", out[6].version), "memfd feature header");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(out[i].version, 0);
}

TEST(Negotiate, TheVersionTableIsConsistent) {
  for (const format_version& v : format_versions) {
    EXPECT_GE(v.version, 1);
    EXPECT_LE(v.version, manifest_max_version);
    EXPECT_LT(detail::bounded_length(v.family, manifest_family_len), manifest_family_len) << v.family;
    EXPECT_STREQ(wire_name_of(v.family, v.version), v.wire_name);
    int same = 0;
    for (const format_version& o : format_versions)
      same += o.version == v.version && std::string(o.family) == v.family;
    EXPECT_EQ(same, 1) << v.family << " " << int{v.version};
  }
  EXPECT_EQ(wire_name_of("kho", 9), nullptr);
  EXPECT_EQ(highest_version(0), 0);
  EXPECT_EQ(highest_version(version_bit(1) | version_bit(63)), 63);
  EXPECT_EQ(version_bit(0), 0u);
  EXPECT_EQ(version_bit(64), 0u);
}

// Negotiation against a brute-force oracle over random manifests and needs: the chosen
// version is the largest v in writes & reads & carriable whose feature demands (if it
// is a feature-header version) the reader meets; refusal reasons follow the documented
// order.
RC_GTEST_PROP(Negotiate, MatchesTheOracle, ()) {
  const std::vector<std::string> families = {"kho", "luo", "memfd", "kexec-metadata", "kho-xarray"};
  auto mask = [] { return *rc::gen::inRange<u64>(0, 256) & 0xfe; };  // versions 1..7
  std::vector<manifest_line> wl, rl;
  std::vector<std::string> keep;
  for (const auto& f : families) {
    if (*rc::gen::inRange(0, 4) != 0) wl.push_back({f.c_str(), 0, mask(), 0});
    if (*rc::gen::inRange(0, 4) != 0) rl.push_back({f.c_str(), mask(), 0, *rc::gen::inRange<u64>(0, 8)});
  }
  auto build = [](const std::vector<manifest_line>& lines) {
    std::vector<unsigned char> b(64 + 48 * lines.size(), 0);
    manifest_header h{};
    h.magic.set(manifest_magic);
    h.version_major.set(1);
    h.entry_size.set(48);
    h.count.set(static_cast<u16>(lines.size()));
    std::memcpy(h.image, "x", 2);
    std::memcpy(b.data(), &h, sizeof h);
    for (size_t i = 0; i < lines.size(); ++i) {
      manifest_entry e{};
      std::memcpy(e.family, lines[i].family, std::strlen(lines[i].family));
      e.reads.set(lines[i].reads);
      e.writes.set(lines[i].writes);
      e.features.set(lines[i].features);
      std::memcpy(b.data() + 64 + 48 * i, &e, sizeof e);
    }
    return b;
  };
  const auto wb = build(wl), rb = build(rl);
  auto w = manifest_view::parse(wb.data(), wb.size());
  auto r = manifest_view::parse(rb.data(), rb.size());
  RC_ASSERT(bool(w) && bool(r));
  const std::string fam = *rc::gen::elementOf(families);
  const handover_need need{fam.c_str(), "x", mask(), *rc::gen::inRange<u64>(0, 8), ""};
  const negotiated n = negotiate_one(*w, *r, need);

  auto find = [&](const std::vector<manifest_line>& ls) {
    for (const auto& l : ls)
      if (fam == l.family) return l;
    return manifest_line{"", 0, 0, 0};
  };
  const manifest_line wf = find(wl), rf = find(rl);
  std::set<int> fits;
  for (int v = 1; v < 8; ++v) {
    const u64 bit = u64{1} << v;
    if (!(wf.writes & bit) || !(rf.reads & bit) || !(need.carriable & bit)) continue;
    if (is_feature_version(fam.c_str(), static_cast<u8>(v)) && (need.features_required & ~rf.features)) continue;
    fits.insert(v);
  }
  RC_ASSERT(int{n.version} == (fits.empty() ? 0 : *fits.rbegin()));
  if (!fits.empty()) {
    RC_ASSERT(n.why == refusal::none);
  } else if (wf.writes == 0) {
    RC_ASSERT(n.why == refusal::writer_lacks_family);
  } else if (rf.reads == 0) {
    RC_ASSERT(n.why == refusal::reader_lacks_family);
  } else if ((wf.writes & rf.reads) == 0) {
    RC_ASSERT(n.why == refusal::no_common_version);
  } else if ((wf.writes & rf.reads & need.carriable) == 0) {
    RC_ASSERT(n.why == refusal::content_not_carriable);
  } else {
    RC_ASSERT(n.why == refusal::features_unsupported);
  }
}

}  // namespace
}  // namespace manifest_test
