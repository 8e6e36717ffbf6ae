// kho manifest: print the formats and versions an image reads and writes; the
// manifest reading that qualify shares.
#include "commands.hpp"

#include <kho/model/elf_section.hpp>
#include <kho/model/qualify.hpp>
#include <kho/model/report.hpp>

#include <fmt/format.h>

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

int run_manifest(const manifest_options& o) {
  const auto bytes = manifest_bytes(o.image, o.raw);
  const manifest_view m = parse_manifest(bytes, o.image + o.raw);
  nlohmann::json families = nlohmann::json::array();
  for (u16 i = 0; i < m.size(); ++i) {
    const manifest_entry e = m.entry(i);
    families.push_back({{"family", e.family},
                        {"reads", model::version_names(e.family, e.reads.get())},
                        {"writes", model::version_names(e.family, e.writes.get())},
                        {"features", model::hex(e.features.get())}});
  }
  if (o.json) {
    const nlohmann::json out{{"image", m.image()}, {"version_minor", m.version_minor()}, {"families", families}};
    fmt::print("{}\n", out.dump(2));
    return 0;
  }
  fmt::print("manifest of {} (version 1.{})\n", m.image(), m.version_minor());
  for (const auto& f : families)
    fmt::print("  {:<15} reads {}; writes {}\n", f["family"].get<std::string>(), f["reads"].get<std::string>(),
               f["writes"].get<std::string>());
  return 0;
}

}  // namespace kho::cli
