// tools/kho/commands.hpp: the kho subcommands, one file each, and what they share.
//
// main.cpp parses the command line into a subcommand's options and calls its run_*;
// its header comment is the CLI's documentation, exit statuses included. The readers
// are templates on the page shift: reports.cpp instantiates them once per page size,
// so the subcommands work on the JSON reports.
#pragma once

#include <kho/linux/kvm_dialect.hpp>
#include <kho/manifest.hpp>
#include <kho/model/handover_image.hpp>
#include <kho/model/inspect_radix.hpp>
#include <kho/phys.hpp>

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace kho::cli {

inline constexpr int exit_unreadable = 1;
inline constexpr int exit_refused = 2;
inline constexpr int exit_out_of_memory = 3;
inline constexpr int exit_kho_stricter = 4;  // kho refuses what a stock kernel accepts or skips
inline constexpr int exit_kernel_fails = 5;  // kho accepts what a stock kernel refuses, hangs on or loses

struct dump_options {
  model::image_options image;
  bool json = false;
  upstream::kvm_vm_dialect kvm_vm = upstream::kvm_vm_dialect::undecided;  // --kvm-vm-dialect
  bool holes = false;
  u64 max_ranges = model::radix_listed_ranges;
};

struct verify_options {
  model::image_options image;
  bool json = false;
  upstream::kvm_vm_dialect kvm_vm = upstream::kvm_vm_dialect::undecided;  // --kvm-vm-dialect
};

struct qualify_options {
  model::image_options image;  // memory empty: qualify from the writer's manifest alone
  std::string writer_image, writer_manifest, next_image, next_manifest;
  bool json = false;
};

struct manifest_options {
  std::string image, raw;
  bool json = false;
};

int run_dump(const dump_options& options);
int run_verify(const verify_options& options);
int run_qualify(const qualify_options& options);
int run_manifest(const manifest_options& options);

// ---- shared by the subcommands ------------------------------------------------------

/// The exit status of a Linux handover's report: kho's verdict ("status") and a stock
/// kernel's ("kernel") together.
int linux_exit(const nlohmann::json& report);

/// Prints a refusal (a line, or JSON with --json) and returns its exit status.
int print_refusal(const model::handover_refusal& refusal, bool json);

/// The address of the preserved-memory map a Linux handover's report names.
phys_addr preserved_memory_map(const nlohmann::json& linux_report);

/// A kho root whose report validated but disagrees with its boot page's generation:
/// stale (model::handover_image::check_generation).
std::optional<model::handover_refusal> check_generation(const model::handover_image& image,
                                                        const model::located_kho_root& where,
                                                        const nlohmann::json& report);

/// A Linux handover's report (model::inspect_kho_fdt), with kho_data and its scratch
/// checked when kho_data named the root; at most `max_ranges` ranges listed per tree.
nlohmann::json report_linux(const model::handover_image& image, const model::located_linux_fdt& fdt, u64 max_ranges,
                            upstream::kvm_vm_dialect kvm_vm = upstream::kvm_vm_dialect::undecided);
/// kho's own root (model::inspect): a few ranges per radix tree, never all of them.
nlohmann::json report_kho_root(const model::handover_image& image, phys_addr root);
/// A radix tree (model::radix_report), at most `max_ranges` ranges listed.
nlohmann::json report_radix(const model::handover_image& image, phys_addr root, u64 max_ranges);
/// The holes the radix tree at `root` leaves in the image's memory (model::holes_report).
nlohmann::json report_holes(const model::handover_image& image, phys_addr root);

/// A manifest's bytes: the ".kho_manifest" section of `executable`, or the file `raw`
/// that holds just the manifest (objcopy -O binary --only-section=.kho_manifest).
std::vector<unsigned char> manifest_bytes(const std::string& executable, const std::string& raw);
/// The manifest in `bytes`. Errors: std::invalid_argument naming `from` (exit 1).
manifest_view parse_manifest(const std::vector<unsigned char>& bytes, const std::string& from);

}  // namespace kho::cli
