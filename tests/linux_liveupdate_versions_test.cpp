// The ".liveupdate_versions" vmlinux section (LINUX-FORMATS-NEXT.md section 7): the
// section's bytes encoded here from the spec's table, read by kho's parser; the
// malformed cases by their errc and offset; the section found in an ELF built here
// (apart from ".liveupdate_features"); and the comparison `kho qualify` makes with the
// LUO compatibles a handover uses.
#include <kho/linux/liveupdate_versions.hpp>
#include <kho/model/elf_core.hpp>
#include <kho/model/elf_section.hpp>
#include <kho/model/qualify.hpp>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace kho::test::linux_liveupdate_versions_test {
namespace {

using namespace kho::upstream;

// Independent encoder: "PUVL" (0x4c565550 LE), version 1 LE, then 48-byte entries.
std::vector<unsigned char> section(const std::vector<std::string>& names, u32 magic = 0x4c565550, u32 version = 1) {
  std::vector<unsigned char> b;
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<unsigned char>(magic >> (8 * i)));
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<unsigned char>(version >> (8 * i)));
  for (const std::string& n : names) {
    std::vector<unsigned char> e(48, 0);
    std::memcpy(e.data(), n.data(), std::min<size_t>(n.size(), 48));
    b.insert(b.end(), e.begin(), e.end());
  }
  return b;
}

result<liveupdate_versions_view> parse(const std::vector<unsigned char>& b) {
  return liveupdate_versions_view::parse(b.data(), b.size());
}

TEST(LinuxLiveupdateVersions, ReadsEntries) {
  const auto b = section({"memfd-v1", "luo-v1"});
  ASSERT_EQ(b.size(), 8u + 96u);
  EXPECT_EQ(b[0], 0x50);  // bytes 50 55 56 4c
  EXPECT_EQ(b[3], 0x4c);
  auto v = parse(b);
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  ASSERT_EQ(v->size(), 2u);
  EXPECT_STREQ(v->entry(0), "memfd-v1");
  EXPECT_STREQ(v->entry(1), "luo-v1");
  EXPECT_TRUE(v->lists("luo-v1"));
  EXPECT_FALSE(v->lists("luo-v5"));
  EXPECT_EQ(v->duplicates(), 0u);
  // An empty list is a header alone; 47 characters fill an entry but its NUL.
  EXPECT_EQ(parse(section({}))->size(), 0u);
  EXPECT_TRUE(parse(section({std::string(47, 'x')})).has_value());
}

TEST(LinuxLiveupdateVersions, DuplicatesAllowedAndCounted) {
  const auto b = section({"memfd-v1", "luo-v1", "memfd-v1", "memfd-v1"});  // the view reads these bytes
  auto v = parse(b);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->duplicates(), 2u);
}

void expect_refused(const std::vector<unsigned char>& b, errc code, u64 at) {
  auto v = parse(b);
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.code(), code);
  EXPECT_EQ(v.err().loc.at.value, at);
  EXPECT_STREQ(v.err().loc.structure, "liveupdate_versions");
}

TEST(LinuxLiveupdateVersions, Malformed) {
  expect_refused(section({"luo-v1"}, 0x4c565551), errc::bad_magic, 0);
  expect_refused(section({"luo-v1"}, 0x5055564c), errc::bad_magic, 0);  // big-endian magic
  expect_refused(section({"luo-v1"}, 0x4c565550, 2), errc::bad_version, 4);
  auto b = section({"luo-v1"});
  b.pop_back();  // 8 + 47
  expect_refused(b, errc::bad_count, 0);
  expect_refused(std::vector<unsigned char>(b.begin(), b.begin() + 7), errc::bad_count, 0);
  expect_refused(section({"memfd-v1", std::string(48, 'y')}), errc::bad_string, 56);  // no NUL
  expect_refused(section({""}), errc::bad_string, 8);
  b = section({"luo-v1", "memfd-v1"});
  b[8 + 48 + 20] = 'z';  // after memfd-v1's NUL: not zero-padded
  expect_refused(b, errc::reserved_nonzero, 56);
}

RC_GTEST_PROP(LinuxLiveupdateVersions, WriterAndEncoderAgree, ()) {
  const auto names = *rc::gen::container<std::vector<std::string>>(rc::gen::mapcat(
      rc::gen::inRange<size_t>(1, 48), [](size_t n) { return rc::gen::container<std::string>(n, rc::gen::inRange<char>('a', 'z')); }));
  RC_PRE(names.size() < 64);
  std::vector<const char*> ptrs;
  for (const auto& n : names) ptrs.push_back(n.c_str());
  std::vector<unsigned char> out(8 + 48 * names.size());
  RC_ASSERT(bool(write_liveupdate_versions(out.data(), ptrs.data(), ptrs.size())));
  RC_ASSERT(out == section(names));
  auto v = parse(out);
  RC_ASSERT(v.has_value());
  RC_ASSERT(v->size() == names.size());
  for (u64 i = 0; i < names.size(); ++i) RC_ASSERT(std::string(v->entry(i)) == names[i]);
}

// ---- in an ELF file ------------------------------------------------------------------

// A relocatable-like ELF64 LE with the given sections (and .shstrtab), nothing else.
std::vector<unsigned char> elf_with(const std::vector<std::pair<std::string, std::vector<unsigned char>>>& sections) {
  std::vector<unsigned char> strtab(1, 0);
  std::vector<u32> names;
  for (const auto& [n, b] : sections) {
    names.push_back(static_cast<u32>(strtab.size()));
    strtab.insert(strtab.end(), n.begin(), n.end());
    strtab.push_back(0);
  }
  const u32 shstrtab_name = static_cast<u32>(strtab.size());
  for (char c : std::string(".shstrtab")) strtab.push_back(static_cast<unsigned char>(c));
  strtab.push_back(0);
  std::vector<unsigned char> file(sizeof(model::elf::header));
  std::vector<model::elf::section_header> headers(1);
  auto append = [&](u32 name, const std::vector<unsigned char>& bytes) {
    model::elf::section_header s{};
    s.name.set(name);
    s.type.set(1);  // SHT_PROGBITS
    s.offset.set(file.size());
    s.size.set(bytes.size());
    file.insert(file.end(), bytes.begin(), bytes.end());
    headers.push_back(s);
  };
  for (size_t i = 0; i < sections.size(); ++i) append(names[i], sections[i].second);
  append(shstrtab_name, strtab);
  while (file.size() % 8) file.push_back(0);
  model::elf::header h{};
  std::memcpy(h.ident, model::elf::magic, 4);
  h.ident[4] = model::elf::class64;
  h.ident[5] = model::elf::data_lsb;
  h.ident[6] = 1;
  h.type.set(2);  // ET_EXEC
  h.machine.set(model::elf::machine_x86_64);
  h.version.set(1);
  h.ehsize.set(sizeof h);
  h.shoff.set(file.size());
  h.shentsize.set(sizeof(model::elf::section_header));
  h.shnum.set(static_cast<u16>(headers.size()));
  h.shstrndx.set(static_cast<u16>(headers.size() - 1));
  std::memcpy(file.data(), &h, sizeof h);
  for (const auto& s : headers) {
    const auto* p = reinterpret_cast<const unsigned char*>(&s);
    file.insert(file.end(), p, p + sizeof s);
  }
  return file;
}

TEST(LinuxLiveupdateVersions, FoundInAnElfBesideTheFeaturesVariant) {
  const auto versions = section({"memfd-v1", "luo-v1"});
  // Same magic, other entries: told apart by name only.
  std::vector<unsigned char> features = section({});
  features.resize(8 + 64, 0x11);
  const auto file = elf_with({{".liveupdate_features", features}, {".liveupdate_versions", versions}});
  auto found = model::find_elf_section(file, liveupdate_versions_section);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(*found, versions);
  auto v = parse(*found);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->size(), 2u);
  const auto other = model::find_elf_section(file, liveupdate_features_section);
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(parse(*other).code(), errc::bad_count);  // not this section's layout
  EXPECT_FALSE(model::find_elf_section(elf_with({{".data", {1, 2}}}), liveupdate_versions_section).has_value());
  EXPECT_THROW(model::elf_section(elf_with({{".data", {1, 2}}}), liveupdate_versions_section), std::runtime_error);
}

// ---- what qualify compares -------------------------------------------------------------

TEST(LinuxLiveupdateVersions, QualifyNamesWhatTheNextKernelLacks) {
  const nlohmann::json dump = nlohmann::json::parse(R"({
    "subtrees": [
      {"name": "LUO", "format": "luo-v5",
       "sessions": [{"name": "vm", "files": [{"compatible": "memfd-v2", "token": 1},
                                              {"compatible": "guest_memfd_luo_v1", "token": 2}]}],
       "flbs": [{"name": "hugetlb-v1"}]},
      {"name": "kexec-metadata", "format": "kexec-metadata-v1"}]})");
  const auto b = section({"memfd-v2", "luo-v5", "memfd-v2"});
  auto next = parse(b);
  ASSERT_TRUE(next.has_value());
  const model::liveupdate_versions_check c = model::check_liveupdate_versions(dump, *next);
  EXPECT_FALSE(c.ok());
  ASSERT_EQ(c.missing.size(), 1u);
  EXPECT_EQ(c.missing[0].compatible, "guest_memfd_luo_v1");
  EXPECT_EQ(c.missing[0].what, "LUO session vm, file token 2");
  EXPECT_EQ(c.present.size(), 2u);  // luo-v5 and memfd-v2
  ASSERT_EQ(c.flbs_not_listed.size(), 1u);
  EXPECT_EQ(c.flbs_not_listed[0].compatible, "hugetlb-v1");
  EXPECT_EQ(c.duplicates, 1u);
  const std::string text = model::format_liveupdate_versions_check(c);
  EXPECT_NE(text.find("MISSING  LUO session vm, file token 2: guest_memfd_luo_v1"), std::string::npos) << text;
  EXPECT_NE(text.find("FLBs are not listed"), std::string::npos) << text;
  EXPECT_EQ(text.find("MISSING  FLB"), std::string::npos) << text;
  const auto all = section({"memfd-v2", "luo-v5", "guest_memfd_luo_v1"});
  EXPECT_TRUE(model::check_liveupdate_versions(dump, *parse(all)).ok());
}

}  // namespace
}  // namespace kho::test::linux_liveupdate_versions_test
