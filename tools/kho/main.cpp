// kho: inspect and verify handover memory images.
//
//   kho dump   --memory FILE --base PHYS [--root PHYS] [--json] [--holes]
//   kho verify --memory FILE --base PHYS [--root PHYS]
//   kho dump   --memory FILE --base PHYS --radix-root PHYS [--json]   (a bare kho-v2 tree)
//
// FILE is a memory image standing for [PHYS, PHYS + file size). Without --root the
// root's address comes from the boot page at PHYS. verify exits 0 when everything
// validates and 2 (after one line naming the error and where) when not.
#include <kho/model/inspect.hpp>
#include <kho/model/inspect_holes.hpp>
#include <kho/model/physical_memory.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <optional>
#include <string>

namespace {

using namespace kho;

struct image_options {
  std::string memory;
  u64 base = 0;
  std::optional<u64> root;
  std::optional<u64> radix_root;
};

void add_image_options(CLI::App* cmd, image_options& o) {
  cmd->add_option("--memory", o.memory, "memory image file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--base", o.base, "physical address of the image's first byte")->required();
  cmd->add_option("--root", o.root, "physical address of the handover root (default: boot page)");
  cmd->add_option("--radix-root", o.radix_root,
                  "read a bare kho-v2 preserved-memory radix tree at this address instead");
}

/// The root's address: --root, or the boot page's. Empty if neither exists.
std::optional<phys_addr> find_root(const model::physical_memory& pm, const image_options& o) {
  if (o.root) return phys_addr{*o.root};
  model::boot_page boot{};
  if (!model::read_boot_page(pm, boot)) return std::nullopt;
  return phys_addr{boot.root.get()};
}

void print_human(const nlohmann::json& j) {
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

/// A bare radix tree (as a Linux kernel leaves it), no kho root around it.
int dump_radix(const model::physical_memory& pm, phys_addr root, bool json, bool holes) {
  nlohmann::json j = model::radix_report(pm.memory(), root);
  if (holes && j["ok"].get<bool>()) j["holes"] = model::holes_report(pm.memory(), root);
  if (json) {
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("radix tree {}: {}\n", model::hex(root.value), j["summary"].get<std::string>());
    if (j.contains("orders"))
      for (const auto& [o, n] : j["orders"].items()) fmt::print("  order {:>2}: {} blocks\n", o, n.get<u64>());
    if (j.contains("ranges"))
      for (const auto& r : j["ranges"])
        fmt::print("  [{}, +{})\n", r[0].get<std::string>(), r[1].get<std::string>());
    if (j.contains("holes")) fmt::print("holes: {}\n", j["holes"]["summary"].get<std::string>());
  }
  return j["ok"].get<bool>() ? 0 : 2;
}

int dump(const image_options& o, bool json, bool holes) {
  auto pm = model::physical_memory::open(o.memory, o.base, /*writable=*/false);
  if (o.radix_root) return dump_radix(pm, phys_addr{*o.radix_root}, json, holes);
  auto root = find_root(pm, o);
  if (!root) {
    fmt::print(stderr, "kho: no boot page at {:#x}; pass --root\n", o.base);
    return 2;
  }
  nlohmann::json j = model::inspect(pm.memory(), *root);
  if (holes)  // the memory image is the RAM; the preserved map says what is taken
    for (const auto& e : j["entries"])
      if (e["compatible"] == radix_compatible && e.value("ok", false))
        j["holes"] = model::holes_report(pm.memory(), phys_addr{std::stoull(e["phys"].get<std::string>(), nullptr, 16)});
  if (json) {
    fmt::print("{}\n", j.dump(2));
  } else {
    print_human(j);
    if (j.contains("holes")) fmt::print("holes: {}\n", j["holes"]["summary"].get<std::string>());
  }
  return j["status"] == "ok" ? 0 : 2;
}

int verify(const image_options& o) {
  auto pm = model::physical_memory::open(o.memory, o.base, /*writable=*/false);
  if (o.radix_root) {
    nlohmann::json j = model::radix_report(pm.memory(), phys_addr{*o.radix_root});
    if (j["ok"].get<bool>()) {
      fmt::print("ok: {}\n", j["summary"].get<std::string>());
      return 0;
    }
    fmt::print("{} in {} at {}\n", j["error"]["error"].get<std::string>(),
               j["error"]["structure"].get<std::string>(), j["error"]["at"].get<std::string>());
    return 2;
  }
  auto root = find_root(pm, o);
  if (!root) {
    fmt::print(stderr, "kho: no boot page at {:#x}; pass --root\n", o.base);
    return 2;
  }
  nlohmann::json j = model::inspect(pm.memory(), *root);
  if (j["status"] == "ok") {
    fmt::print("ok: {} entries verified\n", j["entries"].size());
    return 0;
  }
  if (j.contains("error")) {
    fmt::print("{} in {} at {}\n", j["error"]["error"].get<std::string>(),
               j["error"]["structure"].get<std::string>(), j["error"]["at"].get<std::string>());
    return 2;
  }
  for (const auto& e : j["entries"])
    if (!e.value("ok", false))
      fmt::print("{} in entry {} ({}) at {}\n", e["error"].value("error", "error"),
                 e["name"].get<std::string>(), e["compatible"].get<std::string>(),
                 e["error"].value("at", e["phys"].get<std::string>()));
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kho: inspect kexec handover memory images"};
  app.require_subcommand(1);
  image_options dump_opts, verify_opts;
  bool json = false, holes = false;
  auto* dump_cmd = app.add_subcommand("dump", "print everything the handover holds");
  add_image_options(dump_cmd, dump_opts);
  dump_cmd->add_flag("--json", json, "machine-readable output");
  dump_cmd->add_flag("--holes", holes, "also summarize unpreserved holes (largest, count over 2 MiB)");
  auto* verify_cmd = app.add_subcommand("verify", "validate; exit 2 with the error if invalid");
  add_image_options(verify_cmd, verify_opts);
  CLI11_PARSE(app, argc, argv);
  try {
    if (*dump_cmd) return dump(dump_opts, json, holes);
    return verify(verify_opts);
  } catch (const std::exception& e) {
    fmt::print(stderr, "kho: {}\n", e.what());
    return 2;
  }
}
