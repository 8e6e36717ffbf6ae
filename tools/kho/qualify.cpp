// kho qualify: before kexec, will the next image read every structure the handover
// carries? (main.cpp's header comment; model/qualify.hpp)
#include "commands.hpp"

#include <kho/model/qualify.hpp>

#include <fmt/format.h>

#include <optional>
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

int run_qualify(const qualify_options& q) {
  const auto next_bytes = manifest_bytes(q.next_image, q.next_manifest);
  const manifest_view next = parse_manifest(next_bytes, q.next_image + q.next_manifest);
  std::vector<unsigned char> writer_bytes;
  std::optional<manifest_view> writer;
  if (!q.writer_image.empty() || !q.writer_manifest.empty()) {
    writer_bytes = manifest_bytes(q.writer_image, q.writer_manifest);
    writer = parse_manifest(writer_bytes, q.writer_image + q.writer_manifest);
  }
  std::vector<model::handover_structure> structures;
  if (!q.image.memory.empty()) {
    const nlohmann::json report = handover_report(q.image);
    if (report.value("status", "") != "ok") {
      fmt::print("the handover is refused before qualification: {}\n", report.value("status", "?"));
      return exit_refused;
    }
    structures = model::structures_of_report(report);
  } else {
    structures = structures_written_by(*writer);
  }
  const model::qualify_result result = model::qualify(structures, writer ? &*writer : nullptr, next);
  if (q.json) fmt::print("{}\n", model::to_json(result).dump(2));
  else fmt::print("{}", model::format_qualify(result));
  return result.ok() ? 0 : exit_refused;
}

}  // namespace kho::cli
