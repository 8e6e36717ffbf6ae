// kho: inspect and verify handover memory images.
//
//   kho dump   --memory FILE [--base PHYS] [--root PHYS | --fdt PHYS | --fdt-file F | --dtb F]
//              [--page-size N] [--json] [--holes] [--max-ranges N] [--kvm-vm-dialect A|B]
//   kho verify --memory FILE [--base PHYS] [--root PHYS | --fdt PHYS | --fdt-file F | --dtb F] [--page-size N]
//              [--json] [--kvm-vm-dialect A|B]
//   kho dump   --memory FILE [--base PHYS] --radix-root PHYS [--json]   (a bare radix tree)
//   kho qualify [--memory FILE ...] [--writer-image EXE | --writer-manifest F]
//               (--next-image EXE | --next-manifest F) [--json]
//   kho manifest (EXE | --raw F) [--json]
//
// qualify answers, before kexec, whether the next image reads every structure a
// handover carries (model/qualify.hpp): from the handover in --memory (the versions it
// holds), or from what the old image would write (its manifest, negotiated against the
// next image's; with --memory too, the content decides which versions can carry it).
// Exit 0 qualified, 2 not (each structure that cannot be carried is named with the
// versions on each side), 1 unreadable input. manifest prints an image's manifest.
//
// Which handover: --fdt PHYS names Linux's KHO root FDT ("kho-v4") in memory;
// --fdt-file F one saved from debugfs (at most a page), read beside the memory;
// --dtb F a boot devicetree whose /chosen linux,kho-fdt and linux,kho-scratch name the
// root FDT and the scratch array (a devicetree kernel's route; checked as kho_data is);
// --root PHYS kho's own root page (kho-root-v1). Without any, a flat image is looked
// at as a next kernel is handed it: the model's boot page (kho-root-v1) at PHYS, or
// else an x86 setup_data list at PHYS (what boot_params' setup_data names in the
// model) whose SETUP_KEXEC_KHO node's kho_data gives the FDT and the scratch array;
// kho_data and scratch are checked too (scratch holds no preserved page).
//
// FILE is either
//   - a flat image: a regular file standing for [PHYS, PHYS + file size), with --base
//     PHYS required and a multiple of the page size. Without --root the root's address
//     comes from the boot page at PHYS, whose base, size, page shift, reserved word and
//     generation are checked (docs/format.md); or
//   - an ELF core (it starts with the ELF magic): what QEMU's dump-guest-memory (ELF
//     format, not kdump-compressed) or a kdump kernel's /proc/vmcore writes, ELF64
//     little-endian ET_CORE for x86-64 or aarch64. Its PT_LOAD segments are the memory,
//     at their p_paddr; between them is none. Bytes past a segment's p_filesz (p_memsz
//     larger) are absent, not zero. --base is refused (the segments carry their
//     addresses) and, there being no boot page, --root (or --radix-root) is required.
//     A malformed core (bad header, headers or segments outside the file, wrapping or
//     overlapping segments) is refused with exit 1 and a line saying what is wrong.
// --kvm-vm-dialect says which layout a LUO file "kvm_vm_luo_v1" is in: A (linux-mm,
// memory attributes) or B (soleen, an arch-state blob). The string names both and the
// bytes cannot tell them apart; without the option such a file's own page is checked
// and claimed, and nothing it points at is read (docs/format.md).
// --page-size is the handover's page: 4096 (default), 16384 or 65536 (any other value
// is a usage error); every reader and the boot page's page shift use it.
// verify reads everything and keeps only counts, so its memory is the readers'
// scratch, which is mapped as they use it: set by what the handover holds, not by the
// size of the image (a valid handover in a 2 GiB image verifies under
// `ulimit -v 4000000`, the image's own mapping included); dump lists at most
// --max-ranges preserved ranges per radix tree and says how many it left out.
//
// Exit status: 0 valid (for a Linux handover: kho and a stock kernel both accept it and
// the kernel loses nothing); 2 the handover (or boot page) is refused, after one line
// naming the error and where (for a Linux handover: and a stock kernel refuses it too,
// hangs on it, loses data, or its verdict on that refusal is not modelled); 4 kho
// refuses a Linux handover that a stock kernel accepts or boots on without the
// structure (kho is stricter); 5 kho accepts a Linux handover that a stock kernel
// refuses, hangs on or loses data from; 1 the image cannot be read (not a regular
// file, misaligned base, malformed ELF core, I/O error) or bad arguments (CLI11's own
// codes for unparsable or invalid ones); 3 out of memory. Nothing ends in abort.
// A stock kernel is Linux at the commits shared/LINUX-FORMATS.md pins
// (model/kernel_verdict.hpp); kho's own kho-root-v1 format has no kernel verdict.
#include "commands.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>

#include <unistd.h>

namespace {

using namespace kho;
using namespace kho::cli;

/// An address option. CLI11 reads it as an std::optional<u64> (0x... too; an empty
/// value is none) and the model gets a phys_addr.
CLI::Option* add_address_option(CLI::App* cmd, const std::string& name, std::optional<phys_addr>& to,
                                const std::string& description) {
  return cmd->add_option_function<std::optional<u64>>(
      name, [&to](const std::optional<u64>& v) { to = v ? std::optional(phys_addr{*v}) : std::nullopt; },
      description);
}

void add_image_options(CLI::App* cmd, model::image_options& o, bool memory_required = true) {
  auto* memory = cmd->add_option("--memory", o.memory, "memory image: a flat image or an ELF core (a regular file)")
                     ->check(CLI::ExistingFile);
  if (memory_required) memory->required();
  add_address_option(cmd, "--base", o.base,
                     "physical address of a flat image's first byte (page-aligned; not for an ELF core)");
  add_address_option(cmd, "--root", o.root,
                     "physical address of the handover root (default: boot page; required for an ELF core)");
  add_address_option(cmd, "--radix-root", o.radix_root,
                     "read a bare kho-v2 preserved-memory radix tree at this address instead");
  add_address_option(cmd, "--fdt", o.fdt, "physical address of Linux's KHO root FDT (kho-v4)");
  cmd->add_option("--fdt-file", o.fdt_file, "Linux's KHO root FDT saved from debugfs (kho-v4)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--dtb", o.dtb, "a boot DTB whose /chosen linux,kho-fdt and linux,kho-scratch name the handover")
      ->check(CLI::ExistingFile);
  cmd->add_option("--page-size", o.page_size, "the handover's page size in bytes")
      ->check(CLI::IsMember({4096, 16384, 65536}))
      ->capture_default_str();
}

// Which layout a LUO file "kvm_vm_luo_v1" is read in: two carry the string and the
// bytes cannot tell (kho/linux/kvm.hpp). Not given: its page is claimed, nothing read.
void add_kvm_vm_dialect(CLI::App* cmd, upstream::kvm_vm_dialect& to) {
  cmd->add_option_function<std::string>(
         "--kvm-vm-dialect",
         [&to](const std::string& v) { to = v == "A" ? upstream::kvm_vm_dialect::linux_mm : upstream::kvm_vm_dialect::soleen; },
         "layout of kvm_vm_luo_v1 files: A (linux-mm, memory attributes) or B (soleen, arch state)")
      ->check(CLI::IsMember({"A", "B"}));
}

CLI::App* add_dump(CLI::App& app, dump_options& d) {
  auto* cmd = app.add_subcommand("dump", "print everything the handover holds");
  add_image_options(cmd, d.image);
  cmd->add_flag("--json", d.json, "machine-readable output");
  cmd->add_flag("--holes", d.holes, "also summarize unpreserved holes (largest, count over 2 MiB)");
  cmd->add_option("--max-ranges", d.max_ranges,
                  "list at most N preserved ranges per radix tree and N folios per memfd (all are counted)")
      ->capture_default_str();
  add_kvm_vm_dialect(cmd, d.kvm_vm);
  return cmd;
}

CLI::App* add_verify(CLI::App& app, verify_options& v) {
  auto* cmd = app.add_subcommand("verify",
                                 "validate; a Linux handover also gets a stock kernel's verdict (exit 0 both keep it, "
                                 "2 refused, 4 only kho refuses, 5 the kernel fails)");
  add_image_options(cmd, v.image);
  cmd->add_flag("--json", v.json, "machine-readable: kho's status and error, and the kernel's verdict");
  add_kvm_vm_dialect(cmd, v.kvm_vm);
  return cmd;
}

CLI::App* add_qualify(CLI::App& app, qualify_options& q) {
  auto* cmd = app.add_subcommand("qualify", "before kexec: will the next image read every structure? exit 0 yes, 2 no");
  add_image_options(cmd, q.image, false);
  auto* writer_image = cmd->add_option("--writer-image", q.writer_image,
                                       "the running (old) image's executable: negotiate what it would write")
                           ->check(CLI::ExistingFile);
  cmd->add_option("--writer-manifest", q.writer_manifest, "the old image's manifest bytes")
      ->check(CLI::ExistingFile)
      ->excludes(writer_image);
  auto* next_image =
      cmd->add_option("--next-image", q.next_image, "the next image's executable")->check(CLI::ExistingFile);
  cmd->add_option("--next-manifest", q.next_manifest, "the next image's manifest bytes")
      ->check(CLI::ExistingFile)
      ->excludes(next_image);
  cmd->add_flag("--json", q.json, "machine-readable output");
  return cmd;
}

CLI::App* add_manifest(CLI::App& app, manifest_options& m) {
  auto* cmd = app.add_subcommand("manifest", "print the formats and versions an image reads and writes");
  auto* image =
      cmd->add_option("image", m.image, "an executable with a .kho_manifest section")->check(CLI::ExistingFile);
  cmd->add_option("--raw", m.raw, "a file of manifest bytes instead")->check(CLI::ExistingFile)->excludes(image);
  cmd->add_flag("--json", m.json, "machine-readable output");
  return cmd;
}

/// What CLI11 cannot say: which of two options is required (exit 1 from main).
void check_qualify_inputs(const qualify_options& q) {
  if (q.next_image.empty() && q.next_manifest.empty())
    throw std::invalid_argument("qualify: --next-image or --next-manifest is required");
  if (q.image.memory.empty() && q.writer_image.empty() && q.writer_manifest.empty())
    throw std::invalid_argument("qualify: a handover (--memory) or the old image (--writer-image/--writer-manifest)");
}

int run(int argc, char** argv) {
  CLI::App app{"kho: inspect kexec handover memory images"};
  app.require_subcommand(1);
  dump_options dump;
  verify_options verify;
  qualify_options qualify;
  manifest_options manifest;
  auto* dump_cmd = add_dump(app, dump);
  add_verify(app, verify);
  auto* qualify_cmd = add_qualify(app, qualify);
  auto* manifest_cmd = add_manifest(app, manifest);
  CLI11_PARSE(app, argc, argv);
  if (*manifest_cmd) {
    if (manifest.image.empty() && manifest.raw.empty()) throw std::invalid_argument("manifest: an image or --raw FILE");
    return run_manifest(manifest);
  }
  if (*qualify_cmd) {
    check_qualify_inputs(qualify);
    return run_qualify(qualify);
  }
  if (*dump_cmd) return run_dump(dump);
  return run_verify(verify);
}

/// Out of memory ends the tool at once, with a message: a bad_alloc unwinding through
/// a large JSON value would reach nlohmann's destructor, which allocates (noexcept:
/// std::terminate, exit 134). Nothing is left to clean up but the mappings.
[[noreturn]] void out_of_memory() {
  static const char msg[] = "kho: out of memory (a --max-ranges too large for this machine?)\n";
  (void)!::write(2, msg, sizeof msg - 1);
  ::_exit(exit_out_of_memory);
}

}  // namespace

int main(int argc, char** argv) {
  std::set_new_handler(out_of_memory);
  // Whatever else a hostile image makes a reader or a report throw ends here, with a
  // message and an exit status, never in std::terminate.
  try {
    return run(argc, argv);
  } catch (const std::bad_alloc&) {
    std::fputs("kho: out of memory\n", stderr);
    return exit_out_of_memory;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kho: %s\n", e.what());
    return exit_unreadable;
  } catch (...) {
    std::fputs("kho: unknown error\n", stderr);
    return exit_unreadable;
  }
}
