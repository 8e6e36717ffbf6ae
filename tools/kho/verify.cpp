// kho verify: validate, keeping only counts (main.cpp's header comment). No ranges are
// listed, so verify's memory stays the readers' scratch.
#include "commands.hpp"

#include <kho/model/kernel_verdict.hpp>

#include <fmt/format.h>

#include <string>
#include <utility>
#include <variant>

namespace kho::cli {

namespace {

void print_error_line(const nlohmann::json& err) {
  fmt::print("{} in {} at {}\n", err["error"].get<std::string>(), err["structure"].get<std::string>(),
             err["at"].get<std::string>());
}

/// verify --json for a handover with no kernel verdict (kho's own root, a bare tree).
void print_verify_json(const std::string& status, const nlohmann::json* error) {
  nlohmann::json out{{"status", status}};
  if (error != nullptr) out["error"] = *error;
  fmt::print("{}\n", out.dump(2));
}

int verify_radix(const model::handover_image& image, phys_addr root, bool json) {
  const nlohmann::json j = report_radix(image, root, 0);
  const bool ok = j["ok"].get<bool>();
  if (json) print_verify_json(ok ? "ok" : j["error"]["error"].get<std::string>(), ok ? nullptr : &j["error"]);
  else if (!ok) print_error_line(j["error"]);
  else fmt::print("ok: {}\n", j["summary"].get<std::string>());
  return ok ? 0 : exit_refused;
}

int verify_linux(const model::handover_image& image, const model::located_linux_fdt& fdt, bool json,
                 upstream::kvm_vm_dialect kvm_vm) {
  const nlohmann::json j = report_linux(image, fdt, 0, kvm_vm);
  if (json) {
    nlohmann::json out{{"status", j["status"]}, {"kernel", j["kernel"]}};
    if (j.contains("error")) out["error"] = j["error"];
    fmt::print("{}\n", out.dump(2));
    return linux_exit(j);
  }
  if (j["status"] != "ok") {
    if (j.contains("error")) print_error_line(j["error"]);
    else fmt::print("{}\n", j["status"].get<std::string>());
  } else {
    fmt::print("ok: {} handover, {} subtrees verified ({})\n", j["root"]["compatible"].get<std::string>(),
               j["subtrees"].size(),
               j["root"].value("kho_sealed", false) ? "sealed by kho" : "no kho seal, as a stock kernel writes it");
  }
  fmt::print("{}", model::kernel_verdict_text(j["kernel"]));
  return linux_exit(j);
}

/// The entries that failed, each also as a line unless --json.
nlohmann::json failed_entries(const nlohmann::json& j, bool json) {
  nlohmann::json failed = nlohmann::json::array();
  for (const auto& e : j["entries"])
    if (!e.value("ok", false)) {
      failed.push_back({{"name", e["name"]}, {"compatible", e["compatible"]}, {"error", e["error"]}});
      if (!json)
        fmt::print("{} in entry {} ({}) at {}\n", e["error"].value("error", "error"), e["name"].get<std::string>(),
                   e["compatible"].get<std::string>(), e["error"].value("at", e["phys"].get<std::string>()));
    }
  return failed;
}

int verify_kho_root(const model::handover_image& image, const model::located_kho_root& where, bool json) {
  const nlohmann::json j = report_kho_root(image, where.root);
  if (j.contains("error")) {
    if (json) print_verify_json(j["status"].get<std::string>(), &j["error"]);
    else print_error_line(j["error"]);
    return exit_refused;
  }
  bool ok = j["status"] == "ok";
  nlohmann::json failed = failed_entries(j, json);
  const std::optional<model::handover_refusal> stale = check_generation(image, where, j);
  if (stale) ok = false;
  if (json) {
    nlohmann::json out{{"status", stale ? to_string(stale->err.code) : j["status"].get<std::string>()},
                       {"failed_entries", std::move(failed)}};
    if (stale) out["error"] = stale->json();
    fmt::print("{}\n", out.dump(2));
  } else if (stale) {
    fmt::print("{}\n", stale->line());
  } else if (ok) {
    fmt::print("ok: {} entries verified\n", j["entries"].size());
  }
  return ok ? 0 : exit_refused;
}

}  // namespace

int run_verify(const verify_options& v) {
  const model::handover_image image = model::handover_image::open(v.image);
  const model::located_handover& found = image.handover();
  if (const auto* tree = std::get_if<model::located_radix_tree>(&found)) return verify_radix(image, tree->root, v.json);
  if (const auto* fdt = std::get_if<model::located_linux_fdt>(&found)) return verify_linux(image, *fdt, v.json, v.kvm_vm);
  if (const auto* root = std::get_if<model::located_kho_root>(&found)) return verify_kho_root(image, *root, v.json);
  return print_refusal(std::get<model::handover_refusal>(found), v.json);
}

}  // namespace kho::cli
