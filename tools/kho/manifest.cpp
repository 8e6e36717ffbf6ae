// kho manifest: print the formats and versions an image reads and writes; the
// manifest reading that qualify shares.
#include "commands.hpp"

#include <kho/linux/liveupdate_versions.hpp>
#include <kho/model/elf_section.hpp>
#include <kho/model/qualify.hpp>
#include <kho/model/report.hpp>

#include <fmt/format.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace kho::cli {

std::vector<unsigned char> manifest_bytes(const std::string& executable, const std::string& raw) {
  if (!raw.empty()) return model::read_whole_file(raw);
  return model::elf_section(model::read_whole_file(executable), manifest_section);
}

manifest_view parse_manifest(const std::vector<unsigned char>& bytes, const std::string& from) {
  auto m = manifest_view::parse(bytes.data(), bytes.size());
  if (!m)
    throw std::invalid_argument(fmt::format("{}: not a manifest: {} at byte {}", from, to_string(m.code()),
                                            m.err().loc.at.value));
  return *m;
}

// The image's .liveupdate_versions (an RFC section of vmlinux) as JSON, or null when it
// has none (or a raw manifest is read). Errors: std::invalid_argument for a malformed one.
nlohmann::json liveupdate_versions_json(const std::vector<unsigned char>& file, const std::string& from) {
  if (file.empty()) return nullptr;
  const auto bytes = model::find_elf_section(file, upstream::liveupdate_versions_section);
  if (!bytes) return nullptr;
  auto v = upstream::liveupdate_versions_view::parse(bytes->data(), bytes->size());
  if (!v)
    throw std::invalid_argument(fmt::format("{}: {} refused: {} at byte {}", from,
                                            upstream::liveupdate_versions_section, to_string(v.code()),
                                            v.err().loc.at.value));
  nlohmann::json entries = nlohmann::json::array();
  for (u64 i = 0; i < v->size(); ++i) entries.push_back(v->entry(i));
  return {{"section", upstream::liveupdate_versions_section},
          {"entries", entries},
          {"duplicates", v->duplicates()},
          {"note", "FLB names are not listed in this section"}};
}

int run_manifest(const manifest_options& o) {
  std::vector<unsigned char> file;
  if (o.raw.empty()) file = model::read_whole_file(o.image);
  const nlohmann::json versions = liveupdate_versions_json(file, o.image);
  // A stock vmlinux has .liveupdate_versions and no .kho_manifest.
  std::optional<std::vector<unsigned char>> bytes;
  if (!o.raw.empty()) bytes = model::read_whole_file(o.raw);
  else bytes = model::find_elf_section(file, manifest_section);
  if (!bytes && versions.is_null()) throw std::runtime_error(fmt::format("ELF: no section named {}", manifest_section));
  nlohmann::json out{{"image", o.image + o.raw}};
  if (bytes) {
    const manifest_view m = parse_manifest(*bytes, o.image + o.raw);
    nlohmann::json families = nlohmann::json::array();
    for (u16 i = 0; i < m.size(); ++i) {
      const manifest_entry e = m.entry(i);
      families.push_back({{"family", e.family},
                          {"reads", model::version_names(e.family, e.reads.get())},
                          {"writes", model::version_names(e.family, e.writes.get())},
                          {"features", model::hex(e.features.get())}});
    }
    out = {{"image", m.image()}, {"version_minor", m.version_minor()}, {"families", families}};
  }
  if (!versions.is_null()) out["liveupdate_versions"] = versions;
  if (o.json) {
    fmt::print("{}\n", out.dump(2));
    return 0;
  }
  if (bytes) {
    fmt::print("manifest of {} (version 1.{})\n", out["image"].get<std::string>(), out["version_minor"].get<u64>());
    for (const auto& f : out["families"])
      fmt::print("  {:<15} reads {}; writes {}\n", f["family"].get<std::string>(), f["reads"].get<std::string>(),
                 f["writes"].get<std::string>());
  } else {
    fmt::print("{}: no {}\n", o.image, manifest_section);
  }
  if (!versions.is_null()) {
    fmt::print("{} ({} entries{}; FLB names are not listed there)\n", upstream::liveupdate_versions_section,
               versions["entries"].size(),
               versions["duplicates"].get<u64>() ? fmt::format(", {} duplicates", versions["duplicates"].get<u64>())
                                                 : std::string());
    for (const auto& e : versions["entries"]) fmt::print("  {}\n", e.get<std::string>());
  }
  return 0;
}

}  // namespace kho::cli
