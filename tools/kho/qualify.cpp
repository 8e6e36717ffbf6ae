// kho qualify: before kexec, will the next image read every structure the handover
// carries? (main.cpp's header comment; model/qualify.hpp)
#include "commands.hpp"

#include <kho/linux/liveupdate_versions.hpp>
#include <kho/model/elf_section.hpp>
#include <kho/model/qualify.hpp>

#include <fmt/format.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace kho::cli {

namespace {

/// The handover's report, as `kho dump --json` prints it, or a refusal's.
nlohmann::json handover_report(const model::image_options& options) {
  model::image_options o = options;
  // qualify reads a whole handover; a bare radix tree carries no structure to qualify.
  o.radix_root.reset();
  const model::handover_image image = model::handover_image::open(o);
  const model::located_handover& found = image.handover();
  if (const auto* fdt = std::get_if<model::located_linux_fdt>(&found))
    return report_linux(image, *fdt, model::radix_listed_ranges);
  if (const auto* root = std::get_if<model::located_kho_root>(&found)) return report_kho_root(image, root->root);
  const auto& refusal = std::get<model::handover_refusal>(found);
  return {{"status", to_string(refusal.err.code)}, {"error", refusal.json()}};
}

/// Every family the writer writes, as one structure each, content unknown (no image).
std::vector<model::handover_structure> structures_written_by(const manifest_view& writer) {
  std::vector<model::handover_structure> structures;
  for (u16 i = 0; i < writer.size(); ++i) {
    const manifest_entry e = writer.entry(i);
    if (e.writes.get() != 0) structures.push_back({e.family, std::string("any ") + e.family, 0, ~u64{1}, 0, ""});
  }
  return structures;
}

}  // namespace

// The next image's .liveupdate_versions (an RFC section of vmlinux), parsed, or
// nullopt when the next image is not given as a file or has none.
std::optional<std::vector<unsigned char>> liveupdate_versions_bytes(const std::vector<unsigned char>& next_file) {
  if (next_file.empty()) return std::nullopt;
  return model::find_elf_section(next_file, upstream::liveupdate_versions_section);
}

int run_qualify(const qualify_options& q) {
  std::vector<unsigned char> next_file;
  if (!q.next_image.empty()) next_file = model::read_whole_file(q.next_image);
  const auto lvup_bytes = liveupdate_versions_bytes(next_file);
  std::optional<upstream::liveupdate_versions_view> lvup;
  if (lvup_bytes) {
    auto v = upstream::liveupdate_versions_view::parse(lvup_bytes->data(), lvup_bytes->size());
    if (!v)
      throw std::invalid_argument(fmt::format("{}: {} refused: {} at byte {}", q.next_image,
                                              upstream::liveupdate_versions_section, to_string(v.code()),
                                              v.err().loc.at.value));
    lvup = *v;
  }
  // A stock kernel has .liveupdate_versions but no .kho_manifest: then only the LUO
  // versions are qualified, which needs the handover itself.
  std::vector<unsigned char> next_bytes;
  if (!q.next_manifest.empty()) next_bytes = model::read_whole_file(q.next_manifest);
  else if (auto m = model::find_elf_section(next_file, manifest_section)) next_bytes = std::move(*m);
  else if (!lvup) throw std::runtime_error(fmt::format("ELF: no section named {}", manifest_section));
  else if (q.image.memory.empty())
    throw std::invalid_argument(fmt::format("{} has no {}: only its {} can be compared, which needs --memory",
                                            q.next_image, manifest_section, upstream::liveupdate_versions_section));
  std::optional<manifest_view> next;
  if (!next_bytes.empty()) next = parse_manifest(next_bytes, q.next_image + q.next_manifest);
  std::vector<unsigned char> writer_bytes;
  std::optional<manifest_view> writer;
  if (!q.writer_image.empty() || !q.writer_manifest.empty()) {
    writer_bytes = manifest_bytes(q.writer_image, q.writer_manifest);
    writer = parse_manifest(writer_bytes, q.writer_image + q.writer_manifest);
  }
  std::vector<model::handover_structure> structures;
  std::optional<model::liveupdate_versions_check> versions;
  if (!q.image.memory.empty()) {
    const nlohmann::json report = handover_report(q.image);
    if (report.value("status", "") != "ok") {
      fmt::print("the handover is refused before qualification: {}\n", report.value("status", "?"));
      return exit_refused;
    }
    structures = model::structures_of_report(report);
    if (lvup) versions = model::check_liveupdate_versions(report, *lvup);
  } else {
    structures = structures_written_by(*writer);
  }
  std::optional<model::qualify_result> result;
  if (next) result = model::qualify(structures, writer ? &*writer : nullptr, *next);
  const bool ok = (!result || result->ok()) && (!versions || versions->ok());
  if (q.json) {
    nlohmann::json j = result ? model::to_json(*result) : nlohmann::json{{"reader", q.next_image}};
    if (versions) j["liveupdate_versions"] = model::to_json(*versions);
    j["ok"] = ok;
    fmt::print("{}\n", j.dump(2));
  } else {
    if (result) fmt::print("{}", model::format_qualify(*result));
    if (versions) fmt::print("{}", model::format_liveupdate_versions_check(*versions));
    else if (lvup) fmt::print("next kernel's {}: {} entries (no handover given to compare)\n",
                              upstream::liveupdate_versions_section, lvup->size());
  }
  return ok ? 0 : exit_refused;
}

}  // namespace kho::cli
