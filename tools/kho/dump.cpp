// kho dump: print everything the handover holds (main.cpp's header comment).
#include "commands.hpp"

#include <kho/model/inspect_linux.hpp>
#include <kho/model/report.hpp>

#include <fmt/format.h>

#include <string>
#include <variant>

namespace kho::cli {

namespace {

void print_ranges(const nlohmann::json& j) {
  for (const auto& r : j["ranges"]) fmt::print("  [{}, +{})\n", r[0].get<std::string>(), r[1].get<std::string>());
  if (j.value("ranges_truncated", false))
    fmt::print("  ... {} more ranges not listed (--max-ranges)\n", j["range_count"].get<u64>() - j["ranges"].size());
}

void print_holes(const nlohmann::json& j) {
  if (j.contains("holes")) fmt::print("holes: {}\n", j["holes"]["summary"].get<std::string>());
}

void print_kho_root(const nlohmann::json& j) {
  fmt::print("handover root {}: {}\n", j["root"].get<std::string>(), j["status"].get<std::string>());
  if (j.contains("error")) fmt::print("  error: {}\n", j["error"].dump());
  if (j.contains("generation")) fmt::print("  generation {}\n", j["generation"].get<u64>());
  for (const auto& e : j["entries"]) {
    fmt::print("  entry {:<16} {:<16} phys {} size {} checksum {}\n", e["name"].get<std::string>(),
               e["compatible"].get<std::string>(), e["phys"].get<std::string>(),
               e["size"].get<u64>(), e["checksum"].get<std::string>());
    if (e.contains("summary")) fmt::print("    {}\n", e["summary"].get<std::string>());
    if (e.contains("error")) fmt::print("    error: {}\n", e["error"].dump());
  }
}

void print_kho_data(const nlohmann::json& k) {
  const std::string where =
      k.value("route", "") == "dtb /chosen" ? "the DTB's /chosen" : "kho_data at " + k["at"].get<std::string>();
  fmt::print("{}: FDT {} ({} bytes), {} KHO boot memory (scratch) ranges at {}\n", where,
             k["fdt"].get<std::string>(), k["fdt_size"].get<u64>(), k["scratch_entries"].get<u64>(),
             k["scratch"].get<std::string>());
  if (const u64 n = k["kho_nodes"].get<u64>(); n > 1)
    fmt::print("  {} SETUP_KEXEC_KHO nodes in the setup_data list: the last one is read, as the kernel reads it\n", n);
}

phys_addr entry_phys(const nlohmann::json& e) {
  return phys_addr{std::stoull(e["phys"].get<std::string>(), nullptr, 16)};
}

/// A bare radix tree (as a Linux kernel leaves it), no kho root around it.
int dump_radix(const model::handover_image& image, phys_addr root, const dump_options& d) {
  nlohmann::json j = report_radix(image, root, d.max_ranges);
  if (d.holes && j["ok"].get<bool>()) j["holes"] = report_holes(image, root);
  if (d.json) {
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("radix tree {}: {}\n", model::hex(root.value), j["summary"].get<std::string>());
    if (j.contains("orders"))
      for (const auto& [o, n] : j["orders"].items()) fmt::print("  order {:>2}: {} blocks\n", o, n.get<u64>());
    if (j.contains("ranges")) print_ranges(j);
    print_holes(j);
  }
  return j["ok"].get<bool>() ? 0 : exit_refused;
}

int dump_linux(const model::handover_image& image, const model::located_linux_fdt& fdt, const dump_options& d) {
  nlohmann::json j = report_linux(image, fdt, d.max_ranges, d.kvm_vm);
  if (d.holes && j["status"] == "ok")
    j["holes"] = report_holes(image, preserved_memory_map(j));
  if (d.json) {
    fmt::print("{}\n", j.dump(2));
  } else {
    if (j.contains("kho_data")) print_kho_data(j["kho_data"]);
    fmt::print("{}", model::format_kho_fdt_report(j));
    print_holes(j);
  }
  return linux_exit(j);
}

int dump_kho_root(const model::handover_image& image, const model::located_kho_root& where, const dump_options& d) {
  nlohmann::json j = report_kho_root(image, where.root);
  if (auto stale = check_generation(image, where, j)) {
    j["status"] = to_string(stale->err.code);
    j["error"] = stale->json();
  }
  for (auto& e : j["entries"]) {
    if (e["compatible"] != radix_compatible || !e.value("ok", false)) continue;
    // report_kho_root lists a few ranges per tree; the dump lists up to --max-ranges.
    if (d.json) {
      const nlohmann::json full = report_radix(image, entry_phys(e), d.max_ranges);
      for (const char* key : {"ranges", "range_count", "ranges_truncated"}) e[key] = full[key];
    }
    // the memory image is the RAM; the preserved map says what is taken
    if (d.holes) j["holes"] = report_holes(image, entry_phys(e));
  }
  if (d.json) {
    fmt::print("{}\n", j.dump(2));
  } else {
    print_kho_root(j);
    print_holes(j);
  }
  return j["status"] == "ok" ? 0 : exit_refused;
}

}  // namespace

int run_dump(const dump_options& d) {
  const model::handover_image image = model::handover_image::open(d.image);
  const model::located_handover& found = image.handover();
  if (const auto* tree = std::get_if<model::located_radix_tree>(&found)) return dump_radix(image, tree->root, d);
  if (const auto* fdt = std::get_if<model::located_linux_fdt>(&found)) return dump_linux(image, *fdt, d);
  if (const auto* root = std::get_if<model::located_kho_root>(&found)) return dump_kho_root(image, *root, d);
  return print_refusal(std::get<model::handover_refusal>(found), d.json);
}

}  // namespace kho::cli
