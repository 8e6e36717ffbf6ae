// kho: inspect and verify handover memory images.
//
//   kho dump   --memory FILE [--base PHYS] [--root PHYS | --fdt PHYS | --fdt-file F]
//              [--page-size N] [--json] [--holes] [--max-ranges N]
//   kho verify --memory FILE [--base PHYS] [--root PHYS | --fdt PHYS | --fdt-file F] [--page-size N]
//              [--json]
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
#include <kho/linux/x86_boot.hpp>
#include <kho/model/boot_page.hpp>
#include <kho/model/image_memory.hpp>
#include <kho/model/inspect_linux.hpp>
#include <kho/model/inspect.hpp>
#include <kho/model/inspect_holes.hpp>
#include <kho/model/inspect_radix.hpp>
#include <kho/model/physical_memory.hpp>
#include <kho/model/qualify.hpp>
#include <kho/model/elf_section.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <fstream>
#include <iterator>
#include <vector>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>

#include <unistd.h>

namespace {

using namespace kho;

constexpr int exit_refused = 2;
constexpr int exit_unreadable = 1;
constexpr int exit_out_of_memory = 3;
constexpr int exit_kho_stricter = 4;  // kho refuses what a stock kernel accepts or skips
constexpr int exit_kernel_fails = 5;  // kho accepts what a stock kernel refuses, hangs on or loses

/// The exit status of a Linux handover's report: kho's verdict ("status") and a stock
/// kernel's ("kernel") together; see the header comment.
int linux_exit(const nlohmann::json& j) {
  const std::string kernel = j["kernel"]["verdict"].get<std::string>();
  const bool kernel_keeps = kernel == model::to_string(model::kernel_outcome::accepts);
  const bool kernel_skips = kernel == model::to_string(model::kernel_outcome::ignores);
  if (j["status"] == "ok") return kernel_keeps ? 0 : exit_kernel_fails;
  return kernel_keeps || kernel_skips ? exit_kho_stricter : exit_refused;
}

struct image_options {
  std::string memory;
  std::optional<u64> base;
  std::optional<u64> root;
  std::optional<u64> radix_root;
  std::optional<u64> fdt;
  std::string fdt_file;
  u64 page_size = page_geometry<>::size;
};

struct dump_options {
  bool json = false;
  bool holes = false;
  u64 max_ranges = model::radix_listed_ranges;
};

void add_image_options(CLI::App* cmd, image_options& o, bool memory_required = true) {
  auto* memory = cmd->add_option("--memory", o.memory, "memory image: a flat image or an ELF core (a regular file)")
                     ->check(CLI::ExistingFile);
  if (memory_required) memory->required();
  cmd->add_option("--base", o.base,
                  "physical address of a flat image's first byte (page-aligned; not for an ELF core)");
  cmd->add_option("--root", o.root,
                  "physical address of the handover root (default: boot page; required for an ELF core)");
  cmd->add_option("--radix-root", o.radix_root,
                  "read a bare kho-v2 preserved-memory radix tree at this address instead");
  cmd->add_option("--fdt", o.fdt, "physical address of Linux's KHO root FDT (kho-v4)");
  cmd->add_option("--fdt-file", o.fdt_file, "Linux's KHO root FDT saved from debugfs (kho-v4)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--page-size", o.page_size, "the handover's page size in bytes")
      ->check(CLI::IsMember({4096, 16384, 65536}))
      ->capture_default_str();
}

/// The memory FILE stands for, as one Memory type whatever the file's format: a flat
/// image (with its mapping, which holds the boot page) or an ELF core's segments.
struct opened_image {
  std::optional<model::physical_memory> flat;
  std::unique_ptr<model::memory_image> image;

  model::image_memory memory() const { return image->memory(); }
};

/// Opens FILE by its first bytes. Errors (exit 1): std::invalid_argument for options that
/// do not fit the format, and whatever opening or parsing the file throws.
opened_image open_memory(const image_options& o) {
  opened_image m;
  if (model::is_elf_file(o.memory)) {
    if (o.base)
      throw std::invalid_argument(fmt::format(
          "{} is an ELF core: its segments carry their physical addresses, --base is for flat images", o.memory));
    if (!o.root && !o.radix_root && !o.fdt && o.fdt_file.empty())
      throw std::invalid_argument(
          fmt::format("{} is an ELF core, which has no boot page: pass --fdt, --fdt-file or --root", o.memory));
    m.image = model::open_elf_core(o.memory);
    return m;
  }
  if (!o.base) throw std::invalid_argument(fmt::format("{} is a flat image: --base is required", o.memory));
  m.flat.emplace(model::open_image(o.memory, *o.base, o.page_size));
  m.image = model::memory_image::over(m.flat->memory());
  return m;
}

/// The root to read, and the boot page it came from (none with --root).
struct located_root {
  phys_addr root;
  std::optional<model::boot_page> boot;
};

/// A refusal as one line for people and as the JSON dump prints it.
struct refusal {
  error err;
  std::string detail;
  // On the way to a Linux root, a stock kernel's verdict on the same bytes; null for
  // kho's own format, which no stock kernel reads.
  nlohmann::json kernel = nullptr;

  bool linux_handover() const { return !kernel.is_null(); }
  int exit_status() const {
    return linux_handover() ? linux_exit({{"status", to_string(err.code)}, {"kernel", kernel}}) : exit_refused;
  }

  std::string line() const {
    return fmt::format("{} in {} at {:#x}: {}", to_string(err.code), err.loc.structure, err.loc.at.value, detail);
  }
  nlohmann::json json() const {
    nlohmann::json j = model::describe_error(err);
    j["detail"] = detail;
    return j;
  }
};

/// --root, or the boot page's root once its facts match the memory; else a refusal.
/// (open_memory made sure an ELF core comes with --root.)
std::variant<located_root, refusal> find_root(const opened_image& m, const image_options& o, unsigned page_shift) {
  if (o.root) return located_root{phys_addr{*o.root}, std::nullopt};
  const model::physical_memory& pm = *m.flat;
  model::boot_page boot{};
  if (!model::read_boot_page(pm, boot))
    return refusal{make_error(errc::bad_magic, "boot page", pm.base()),
                   fmt::format("neither a boot page nor a setup_data list naming kho_data at {:#x}; pass --fdt or --root", pm.base().value)};
  if (auto p = model::check_boot_page(boot, pm, page_shift)) return refusal{p->err, p->detail};
  return located_root{phys_addr{boot.root.get()}, boot};
}

/// Linux's root FDT, where it was found: in memory at `phys` (`size` bytes, kho_data's
/// fdt_size), or the bytes of an FDT file (phys 0); `boot` when kho_data named it.
struct located_fdt {
  phys_addr phys{};
  u64 size = 0;
  std::vector<unsigned char> bytes;
  std::optional<upstream::located_kho_data> boot;
};

/// A stock kernel's verdict where kho refused `e` on the way to a Linux root.
template <Memory M>
nlohmann::json kernel_verdict_on(const error& e, const M& mem) {
  model::kernel_verdict v;
  model::kernel_on_refusal(v, e, mem);
  return v.json();
}

/// --fdt-file, --fdt, or a flat image's setup_data list (when it has no boot page).
/// Nothing when the handover is kho-root-v1 (--root, a boot page) or a bare tree.
/// Errors: std::invalid_argument (an FDT file over a page: exit 1).
template <unsigned PageShift>
std::optional<std::variant<located_fdt, refusal>> find_fdt(const opened_image& m, const image_options& o) {
  constexpr u64 page = page_geometry<PageShift>::size;
  if (!o.fdt_file.empty()) {
    std::ifstream in(o.fdt_file, std::ios::binary);
    located_fdt f;
    f.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (!in.eof() && in.fail()) throw std::runtime_error("cannot read " + o.fdt_file);
    if (f.bytes.size() > page)
      throw std::invalid_argument(fmt::format("{}: {} bytes, but the KHO root FDT is at most a page ({} bytes)",
                                              o.fdt_file, f.bytes.size(), page));
    f.size = f.bytes.size();
    return f;
  }
  if (o.fdt) return located_fdt{phys_addr{*o.fdt}, page, {}, std::nullopt};
  if (o.root || o.radix_root || !m.flat) return std::nullopt;
  model::boot_page boot{};
  if (model::read_boot_page(*m.flat, boot)) return std::nullopt;
  auto k = upstream::find_kho_data(m.memory(), m.flat->base());
  if (!k) {
    if (k.code() == errc::not_found) return std::nullopt;  // neither: find_root names the boot page
    return refusal{k.err(), "the setup_data list at the image's base", kernel_verdict_on(k.err(), m.memory())};
  }
  if (status s = upstream::check_kho_boot<PageShift>(m.memory(), *k); !s)
    return refusal{s.err(), "kho_data", kernel_verdict_on(s.err(), m.memory())};
  return located_fdt{phys_addr{k->data.fdt_addr.get()}, k->data.fdt_size.get(), {}, *k};
}

/// The report of a kho-v4 handover (model::inspect_kho_fdt), with kho_data and its
/// scratch checked when kho_data named the root.
template <unsigned PageShift>
nlohmann::json report_fdt(const opened_image& m, const located_fdt& f, u64 max_ranges) {
  const auto mem = m.memory();
  nlohmann::json j = f.bytes.empty()
                         ? model::inspect_kho_fdt<PageShift>(mem, f.phys, f.size, max_ranges)
                         : model::inspect_kho_fdt<PageShift>(mem, f.bytes.data(), f.size, phys_addr{}, max_ranges);
  if (!f.boot) return j;
  const upstream::kho_data& d = f.boot->data;
  j["kho_data"] = {{"at", model::hex(f.boot->at.value)},
                   {"fdt", model::hex(d.fdt_addr.get())},
                   {"fdt_size", d.fdt_size.get()},
                   {"scratch", model::hex(d.scratch_addr.get())},
                   {"scratch_entries", upstream::kho_scratch_count(d)},
                   {"kho_nodes", f.boot->kho_nodes}};
  if (j["status"] != "ok") return j;
  model::scratch_pages<PageShift> scratch(mem);
  detail::radix_nodes<PageShift, std::remove_cvref_t<decltype(mem)>, typename model::scratch_pages<PageShift>::source_type>
      nodes{&scratch.pages()};
  auto map = nodes.attach(mem, phys_addr{std::stoull(j["root"]["preserved_memory_map"].get<std::string>(), nullptr, 16)});
  status s = map ? upstream::check_scratch_unpreserved(mem, d, *map) : status{map.err()};
  if (!s) {
    j["status"] = to_string(s.code());
    j["error"] = model::describe_error(s.err());
    j["kernel"] = kernel_verdict_on(s.err(), mem);
  }
  return j;
}

/// A root that validated but disagrees with the boot page's generation is stale.
std::optional<refusal> check_generation(const opened_image& m, const located_root& where, const nlohmann::json& j) {
  if (!where.boot || !j.contains("generation")) return std::nullopt;
  if (auto p = model::check_boot_generation(*where.boot, *m.flat, j["generation"].get<u64>()))
    return refusal{p->err, p->detail};
  return std::nullopt;
}

void print_ranges(const nlohmann::json& j) {
  for (const auto& r : j["ranges"]) fmt::print("  [{}, +{})\n", r[0].get<std::string>(), r[1].get<std::string>());
  if (j.value("ranges_truncated", false))
    fmt::print("  ... {} more ranges not listed (--max-ranges)\n", j["range_count"].get<u64>() - j["ranges"].size());
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

phys_addr entry_phys(const nlohmann::json& e) {
  return phys_addr{std::stoull(e["phys"].get<std::string>(), nullptr, 16)};
}

/// A bare radix tree (as a Linux kernel leaves it), no kho root around it.
template <unsigned PageShift>
int dump_radix(const opened_image& m, phys_addr root, const dump_options& d) {
  nlohmann::json j = model::radix_report<PageShift>(m.memory(), root, std::nullopt, d.max_ranges);
  if (d.holes && j["ok"].get<bool>()) j["holes"] = model::holes_report<PageShift>(m.memory(), root);
  if (d.json) {
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("radix tree {}: {}\n", model::hex(root.value), j["summary"].get<std::string>());
    if (j.contains("orders"))
      for (const auto& [o, n] : j["orders"].items()) fmt::print("  order {:>2}: {} blocks\n", o, n.template get<u64>());
    if (j.contains("ranges")) print_ranges(j);
    if (j.contains("holes")) fmt::print("holes: {}\n", j["holes"]["summary"].get<std::string>());
  }
  return j["ok"].get<bool>() ? 0 : exit_refused;
}

int print_refusal(const refusal& r, bool json) {
  nlohmann::json j{{"status", to_string(r.err.code)}, {"error", r.json()}};
  if (r.linux_handover()) j["kernel"] = r.kernel;
  if (json) {
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("{}\n", r.line());
    if (r.linux_handover()) fmt::print("{}", model::kernel_verdict_text(r.kernel));
  }
  return r.exit_status();
}

template <unsigned PageShift>
int dump_fdt(const opened_image& m, const std::variant<located_fdt, refusal>& found, const dump_options& d) {
  if (const refusal* r = std::get_if<refusal>(&found)) return print_refusal(*r, d.json);
  nlohmann::json j = report_fdt<PageShift>(m, std::get<located_fdt>(found), d.max_ranges);
  if (d.holes && j["status"] == "ok")
    j["holes"] = model::holes_report<PageShift>(
        m.memory(), phys_addr{std::stoull(j["root"]["preserved_memory_map"].get<std::string>(), nullptr, 16)});
  if (d.json) {
    fmt::print("{}\n", j.dump(2));
  } else {
    if (j.contains("kho_data")) {
      fmt::print("kho_data at {}: FDT {} ({} bytes), {} scratch ranges at {}\n", j["kho_data"]["at"].get<std::string>(),
                 j["kho_data"]["fdt"].get<std::string>(), j["kho_data"]["fdt_size"].get<u64>(),
                 j["kho_data"]["scratch_entries"].get<u64>(), j["kho_data"]["scratch"].get<std::string>());
      if (const u64 n = j["kho_data"]["kho_nodes"].get<u64>(); n > 1)
        fmt::print("  {} SETUP_KEXEC_KHO nodes in the setup_data list: the last one is read, as the kernel reads it\n", n);
    }
    fmt::print("{}", model::format_kho_fdt_report(j));
    if (j.contains("holes")) fmt::print("holes: {}\n", j["holes"]["summary"].get<std::string>());
  }
  return linux_exit(j);
}

template <unsigned PageShift>
int dump(const image_options& o, const dump_options& d) {
  const opened_image m = open_memory(o);
  if (o.radix_root) return dump_radix<PageShift>(m, phys_addr{*o.radix_root}, d);
  if (auto fdt = find_fdt<PageShift>(m, o)) return dump_fdt<PageShift>(m, *fdt, d);
  auto found = find_root(m, o, PageShift);
  if (const refusal* r = std::get_if<refusal>(&found)) return print_refusal(*r, d.json);
  const located_root& where = std::get<located_root>(found);
  nlohmann::json j = model::inspect<PageShift>(m.memory(), where.root);
  if (auto stale = check_generation(m, where, j)) {
    j["status"] = to_string(stale->err.code);
    j["error"] = stale->json();
  }
  for (auto& e : j["entries"]) {
    if (e["compatible"] != radix_compatible || !e.value("ok", false)) continue;
    // inspect() lists a few ranges per tree; the dump lists up to --max-ranges.
    if (d.json) {
      const nlohmann::json full =
          model::radix_report<PageShift>(m.memory(), entry_phys(e), std::nullopt, d.max_ranges);
      for (const char* key : {"ranges", "range_count", "ranges_truncated"}) e[key] = full[key];
    }
    // the memory image is the RAM; the preserved map says what is taken
    if (d.holes) j["holes"] = model::holes_report<PageShift>(m.memory(), entry_phys(e));
  }
  if (d.json) {
    fmt::print("{}\n", j.dump(2));
  } else {
    print_human(j);
    if (j.contains("holes")) fmt::print("holes: {}\n", j["holes"]["summary"].get<std::string>());
  }
  return j["status"] == "ok" ? 0 : exit_refused;
}

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

template <unsigned PageShift>
int verify(const image_options& o, bool json) {
  const opened_image m = open_memory(o);
  if (o.radix_root) {
    const nlohmann::json j = model::radix_report<PageShift>(m.memory(), phys_addr{*o.radix_root}, std::nullopt, 0);
    const bool ok = j["ok"].get<bool>();
    if (json) print_verify_json(ok ? "ok" : j["error"]["error"].get<std::string>(), ok ? nullptr : &j["error"]);
    else if (!ok) print_error_line(j["error"]);
    else fmt::print("ok: {}\n", j["summary"].get<std::string>());
    return ok ? 0 : exit_refused;
  }
  if (auto fdt = find_fdt<PageShift>(m, o)) {
    if (const refusal* r = std::get_if<refusal>(&*fdt)) return print_refusal(*r, json);
    // No ranges listed: verify's memory stays the readers' scratch.
    const nlohmann::json j = report_fdt<PageShift>(m, std::get<located_fdt>(*fdt), 0);
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
  auto found = find_root(m, o, PageShift);
  if (const refusal* r = std::get_if<refusal>(&found)) return print_refusal(*r, json);
  const located_root& where = std::get<located_root>(found);
  // inspect() keeps a few ranges per radix tree, never all of them: bounded memory.
  const nlohmann::json j = model::inspect<PageShift>(m.memory(), where.root);
  if (j.contains("error")) {
    if (json) print_verify_json(j["status"].get<std::string>(), &j["error"]);
    else print_error_line(j["error"]);
    return exit_refused;
  }
  bool ok = j["status"] == "ok";
  nlohmann::json failed = nlohmann::json::array();
  for (const auto& e : j["entries"])
    if (!e.value("ok", false)) {
      failed.push_back({{"name", e["name"]}, {"compatible", e["compatible"]}, {"error", e["error"]}});
      if (!json)
        fmt::print("{} in entry {} ({}) at {}\n", e["error"].value("error", "error"), e["name"].get<std::string>(),
                   e["compatible"].get<std::string>(), e["error"].value("at", e["phys"].get<std::string>()));
    }
  std::optional<refusal> stale = check_generation(m, where, j);
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

// ---- manifests and qualification ----------------------------------------------------

struct qualify_options {
  std::string writer_image, writer_manifest, next_image, next_manifest;
  bool json = false;
};

/// A manifest's bytes: the ".kho_manifest" section of an executable, or a file that
/// holds just the manifest (objcopy -O binary --only-section=.kho_manifest).
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

/// The handover's report, as `kho dump --json` prints it, or a refusal's.
template <unsigned PageShift>
nlohmann::json handover_report(const image_options& o) {
  const opened_image m = open_memory(o);
  if (auto fdt = find_fdt<PageShift>(m, o)) {
    if (const refusal* r = std::get_if<refusal>(&*fdt)) return {{"status", to_string(r->err.code)}, {"error", r->json()}};
    return report_fdt<PageShift>(m, std::get<located_fdt>(*fdt), model::radix_listed_ranges);
  }
  auto found = find_root(m, o, PageShift);
  if (const refusal* r = std::get_if<refusal>(&found)) return {{"status", to_string(r->err.code)}, {"error", r->json()}};
  return model::inspect<PageShift>(m.memory(), std::get<located_root>(found).root);
}

template <unsigned PageShift>
int qualify(const image_options& o, const qualify_options& q) {
  const auto next_bytes = manifest_bytes(q.next_image, q.next_manifest);
  const manifest_view next = parse_manifest(next_bytes, q.next_image + q.next_manifest);
  std::vector<unsigned char> writer_bytes;
  std::optional<manifest_view> writer;
  if (!q.writer_image.empty() || !q.writer_manifest.empty()) {
    writer_bytes = manifest_bytes(q.writer_image, q.writer_manifest);
    writer = parse_manifest(writer_bytes, q.writer_image + q.writer_manifest);
  }
  std::vector<model::handover_structure> structures;
  if (!o.memory.empty()) {
    const nlohmann::json report = handover_report<PageShift>(o);
    if (report.value("status", "") != "ok") {
      fmt::print("the handover is refused before qualification: {}\n", report.value("status", "?"));
      return exit_refused;
    }
    structures = model::structures_of_report(report);
  } else {
    // No image: every family the writer writes, as one structure each, content unknown.
    for (u16 i = 0; i < writer->size(); ++i) {
      const manifest_entry e = writer->entry(i);
      if (e.writes.get() != 0) structures.push_back({e.family, std::string("any ") + e.family, 0, ~u64{1}, 0, ""});
    }
  }
  const model::qualify_result result = model::qualify(structures, writer ? &*writer : nullptr, next);
  if (q.json) fmt::print("{}\n", model::to_json(result).dump(2));
  else fmt::print("{}", model::format_qualify(result));
  return result.ok() ? 0 : exit_refused;
}

int print_manifest(const std::string& executable, const std::string& raw, bool json) {
  const auto bytes = manifest_bytes(executable, raw);
  const manifest_view m = parse_manifest(bytes, executable + raw);
  nlohmann::json families = nlohmann::json::array();
  for (u16 i = 0; i < m.size(); ++i) {
    const manifest_entry e = m.entry(i);
    families.push_back({{"family", e.family},
                        {"reads", model::version_names(e.family, e.reads.get())},
                        {"writes", model::version_names(e.family, e.writes.get())},
                        {"features", model::hex(e.features.get())}});
  }
  if (json) {
    fmt::print("{}\n", nlohmann::json{{"image", m.image()}, {"version_minor", m.version_minor()}, {"families", families}}.dump(2));
    return 0;
  }
  fmt::print("manifest of {} (version 1.{})\n", m.image(), m.version_minor());
  for (const auto& f : families)
    fmt::print("  {:<15} reads {}; writes {}\n", f["family"].get<std::string>(), f["reads"].get<std::string>(),
               f["writes"].get<std::string>());
  return 0;
}

int run(int argc, char** argv) {
  CLI::App app{"kho: inspect kexec handover memory images"};
  app.require_subcommand(1);
  image_options dump_opts, verify_opts;
  dump_options d;
  auto* dump_cmd = app.add_subcommand("dump", "print everything the handover holds");
  add_image_options(dump_cmd, dump_opts);
  dump_cmd->add_flag("--json", d.json, "machine-readable output");
  dump_cmd->add_flag("--holes", d.holes, "also summarize unpreserved holes (largest, count over 2 MiB)");
  dump_cmd->add_option("--max-ranges", d.max_ranges,
                       "list at most N preserved ranges per radix tree and N folios per memfd (all are counted)")
      ->capture_default_str();
  auto* verify_cmd = app.add_subcommand(
      "verify", "validate; a Linux handover also gets a stock kernel's verdict (exit 0 both keep it, 2 refused, 4 only kho refuses, 5 the kernel fails)");
  add_image_options(verify_cmd, verify_opts);
  bool verify_json = false;
  verify_cmd->add_flag("--json", verify_json, "machine-readable: kho's status and error, and the kernel's verdict");
  image_options qualify_image;
  qualify_options q;
  auto* qualify_cmd = app.add_subcommand(
      "qualify", "before kexec: will the next image read every structure? exit 0 yes, 2 no");
  add_image_options(qualify_cmd, qualify_image, false);
  auto* writer_image = qualify_cmd->add_option("--writer-image", q.writer_image,
                                               "the running (old) image's executable: negotiate what it would write")
                           ->check(CLI::ExistingFile);
  auto* writer_manifest = qualify_cmd->add_option("--writer-manifest", q.writer_manifest, "the old image's manifest bytes")
                              ->check(CLI::ExistingFile)
                              ->excludes(writer_image);
  auto* next_image = qualify_cmd->add_option("--next-image", q.next_image, "the next image's executable")
                         ->check(CLI::ExistingFile);
  qualify_cmd->add_option("--next-manifest", q.next_manifest, "the next image's manifest bytes")
      ->check(CLI::ExistingFile)
      ->excludes(next_image);
  qualify_cmd->add_flag("--json", q.json, "machine-readable output");
  std::string manifest_image, manifest_raw;
  bool manifest_json = false;
  auto* manifest_cmd = app.add_subcommand("manifest", "print the formats and versions an image reads and writes");
  auto* manifest_exe = manifest_cmd->add_option("image", manifest_image, "an executable with a .kho_manifest section")
                           ->check(CLI::ExistingFile);
  manifest_cmd->add_option("--raw", manifest_raw, "a file of manifest bytes instead")
      ->check(CLI::ExistingFile)
      ->excludes(manifest_exe);
  manifest_cmd->add_flag("--json", manifest_json, "machine-readable output");
  CLI11_PARSE(app, argc, argv);
  if (*manifest_cmd) {
    if (manifest_image.empty() && manifest_raw.empty()) throw std::invalid_argument("manifest: an image or --raw FILE");
    return print_manifest(manifest_image, manifest_raw, manifest_json);
  }
  if (*qualify_cmd) {
    if (q.next_image.empty() && q.next_manifest.empty())
      throw std::invalid_argument("qualify: --next-image or --next-manifest is required");
    if (qualify_image.memory.empty() && !*writer_image && !*writer_manifest)
      throw std::invalid_argument("qualify: a handover (--memory) or the old image (--writer-image/--writer-manifest)");
  }
  // One instantiation of the readers per page size, chosen once here.
  auto with_page_shift = [](u64 page_size, auto&& run_at) {
    switch (page_size) {
      case 16384: return run_at(std::integral_constant<unsigned, 14>{});
      case 65536: return run_at(std::integral_constant<unsigned, 16>{});
      default: return run_at(std::integral_constant<unsigned, 12>{});  // IsMember allowed only these
    }
  };
  if (*dump_cmd)
    return with_page_shift(dump_opts.page_size, [&](auto shift) { return dump<decltype(shift)::value>(dump_opts, d); });
  if (*qualify_cmd)
    return with_page_shift(qualify_image.page_size,
                           [&](auto shift) { return qualify<decltype(shift)::value>(qualify_image, q); });
  return with_page_shift(verify_opts.page_size,
                         [&](auto shift) { return verify<decltype(shift)::value>(verify_opts, verify_json); });
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
