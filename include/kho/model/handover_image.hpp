// kho/model/handover_image.hpp: a memory image opened and its handover found, in one
// call (hosted only): what `kho dump` and `kho verify` read.
//
// The file is a flat image or an ELF core, told apart by its first bytes
// (model/image_memory.hpp); the options name the handover, or leave it to the image.
// The first row that applies decides what is read:
//
//   option or image                                       located as
//   --radix-root PHYS     a bare kho-v2 radix tree          located_radix_tree
//   --fdt-file F          Linux's KHO root FDT, saved       located_linux_fdt (its bytes)
//   --fdt PHYS            Linux's KHO root FDT in memory    located_linux_fdt (a page)
//   --dtb F               a boot DTB whose /chosen names    located_linux_fdt (with
//                           the root FDT and scratch          kho_data, from /chosen)
//                           (linux/dt_chosen.hpp), checked as x86's kho_data is
//   --root PHYS           kho's own root (kho-root-v1)      located_kho_root
//   flat image, boot page at its base, checked against      located_kho_root (with the
//     the memory (model/boot_page.hpp)                        boot page, for its generation)
//   flat image, x86 setup_data list at its base whose       located_linux_fdt (with
//     SETUP_KEXEC_KHO node's kho_data is checked              kho_data)
//   none of these                                           handover_refusal (bad_magic)
//
// An ELF core has no boot page, so one of the first five options must name its root.
//
// Two kinds of failure, as the CLI's exit statuses tell them apart. Input that cannot
// be read throws, as opening a memory image does: options that do not fit the file's
// format, the file itself, an FDT file over a page. A handover refused on the way to
// its root (a boot page that does not describe the memory, a bad setup_data list or
// kho_data) is a value, handover_refusal: where and why, and on the way to a Linux
// root a stock kernel's verdict on the same bytes.
#pragma once

#include <kho/linux/dt_chosen.hpp>
#include <kho/linux/x86_boot.hpp>
#include <kho/model/boot_page.hpp>
#include <kho/model/image_memory.hpp>
#include <kho/model/kernel_verdict.hpp>
#include <kho/model/physical_memory.hpp>
#include <kho/model/report.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace kho::model {

/// Where the handover is: the CLI's --memory, --base, --root, --radix-root, --fdt,
/// --fdt-file, --dtb and --page-size.
struct image_options {
  std::string memory;
  std::optional<phys_addr> base;  // a flat image's first byte; refused for an ELF core
  std::optional<phys_addr> root;
  std::optional<phys_addr> radix_root;
  std::optional<phys_addr> fdt;
  std::string fdt_file;
  std::string dtb;  // a boot DTB: /chosen's linux,kho-fdt and linux,kho-scratch
  u64 page_size = page_geometry<>::size;  // 4096, 16384 or 65536
};

/// A bare radix tree (as a Linux kernel leaves it), no root around it.
struct located_radix_tree {
  phys_addr root;
};

/// kho's own root, and the boot page that named it (none with --root): the boot page's
/// generation can be checked only once the root is read (handover_image::check_generation).
struct located_kho_root {
  phys_addr root;
  std::optional<boot_page> boot;
};

/// Linux's root FDT: in memory at `phys` (`size` bytes: a page, or kho_data's
/// fdt_size), or the bytes of an FDT file (phys 0); `boot` when kho_data named it.
struct located_linux_fdt {
  phys_addr phys{};
  u64 size = 0;
  std::vector<unsigned char> bytes;
  std::optional<upstream::located_kho_data> boot;
};

/// A handover refused before its root is read, as one line for people and as JSON.
struct handover_refusal {
  error err;
  std::string detail;
  // On the way to a Linux root, a stock kernel's verdict on the same bytes; null for
  // kho's own format, which no stock kernel reads.
  nlohmann::json kernel = nullptr;

  bool linux_handover() const { return !kernel.is_null(); }
  std::string line() const {
    return fmt::format("{} in {} at {:#x}: {}", to_string(err.code), err.loc.structure, err.loc.at.value, detail);
  }
  nlohmann::json json() const {
    nlohmann::json j = describe_error(err);
    j["detail"] = detail;
    return j;
  }
};

using located_handover = std::variant<located_radix_tree, located_kho_root, located_linux_fdt, handover_refusal>;

/// A stock kernel's verdict (kernel_verdict::json) where kho refused `e` on the way to
/// a Linux root.
template <Memory M>
nlohmann::json kernel_verdict_on(const error& e, const M& mem) {
  kernel_verdict v;
  kernel_on_refusal(v, e, mem);
  return v.json();
}

/// The shift of a handover page size. Errors: std::invalid_argument for any size but
/// 4096, 16384 and 65536 (the readers are built for those).
inline unsigned handover_page_shift(u64 page_size) {
  switch (page_size) {
    case 4096: return 12;
    case 16384: return 14;
    case 65536: return 16;
    default: throw std::invalid_argument(fmt::format("page size {}: 4096, 16384 or 65536", page_size));
  }
}

/// A memory image and the handover found in it; owns the image's mappings.
class handover_image {
 public:
  /// Opens options.memory and finds the handover (the table above). Complexity: the
  /// setup_data walk (at most upstream::max_setup_nodes nodes); memory is mapped, not read.
  /// Errors: std::invalid_argument for options that do not fit the image (--base for an
  /// ELF core or none for a flat image, an ELF core without a root, a misaligned base,
  /// an FDT file over a page); std::runtime_error and std::system_error for what cannot
  /// be opened or read (a malformed ELF core). A refused handover is handover().
  static handover_image open(const image_options& options) {
    handover_image image(handover_page_shift(options.page_size));
    image.open_memory(options);
    image.handover_ = image.locate(options);
    return image;
  }

  image_memory memory() const { return image_->memory(); }
  unsigned page_shift() const { return page_shift_; }
  u64 page_size() const { return u64{1} << page_shift_; }
  const located_handover& handover() const { return handover_; }

  /// A root that validated but whose generation is not its boot page's is stale: left
  /// over from an older handover. Nothing to check without a boot page (--root).
  std::optional<handover_refusal> check_generation(const located_kho_root& where, u64 root_generation) const {
    if (!where.boot) return std::nullopt;
    auto p = check_boot_generation(*where.boot, *flat_, root_generation);
    if (!p) return std::nullopt;
    return handover_refusal{p->err, p->detail};
  }

 private:
  explicit handover_image(unsigned page_shift) : page_shift_(page_shift) {}

  void open_memory(const image_options& o) {
    if (is_elf_file(o.memory)) {
      if (o.base)
        throw std::invalid_argument(fmt::format(
            "{} is an ELF core: its segments carry their physical addresses, --base is for flat images", o.memory));
      if (!o.root && !o.radix_root && !o.fdt && o.fdt_file.empty() && o.dtb.empty())
        throw std::invalid_argument(
            fmt::format("{} is an ELF core, which has no boot page: pass --fdt, --fdt-file, --dtb or --root", o.memory));
      image_ = open_elf_core(o.memory);
      return;
    }
    if (!o.base) throw std::invalid_argument(fmt::format("{} is a flat image: --base is required", o.memory));
    flat_.emplace(open_image(o.memory, o.base->value, page_size()));
    image_ = memory_image::over(flat_->memory());
  }

  located_handover locate(const image_options& o) const {
    if (o.radix_root) return located_radix_tree{*o.radix_root};
    if (!o.fdt_file.empty()) return read_fdt_file(o.fdt_file);
    if (o.fdt) return located_linux_fdt{*o.fdt, page_size(), {}, std::nullopt};
    if (!o.dtb.empty()) return locate_dtb(o.dtb);
    if (o.root) return located_kho_root{*o.root, std::nullopt};
    // A flat image without options (open_memory refused an ELF core without them).
    boot_page boot{};
    if (read_boot_page(*flat_, boot)) {
      if (auto p = check_boot_page(boot, *flat_, page_shift_)) return handover_refusal{p->err, p->detail};
      return located_kho_root{phys_addr{boot.root.get()}, boot};
    }
    return locate_setup_data();
  }

  located_linux_fdt read_fdt_file(const std::string& path) const {
    std::ifstream in(path, std::ios::binary);
    located_linux_fdt f;
    f.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (!in.eof() && in.fail()) throw std::runtime_error("cannot read " + path);
    if (f.bytes.size() > page_size())
      throw std::invalid_argument(fmt::format("{}: {} bytes, but the KHO root FDT is at most a page ({} bytes)", path,
                                              f.bytes.size(), page_size()));
    f.size = f.bytes.size();
    return f;
  }

  /// What boot_params' setup_data names in the model: a list at the image's base.
  located_handover locate_setup_data() const {
    const phys_addr base = flat_->base();
    auto k = upstream::find_kho_data(memory(), base);
    if (!k) {
      if (k.code() == errc::not_found)
        return handover_refusal{
            make_error(errc::bad_magic, "boot page", base),
            fmt::format("neither a boot page nor a setup_data list naming kho_data at {:#x}; pass --fdt or --root",
                        base.value)};
      return linux_refusal(k.err(), "the setup_data list at the image's base");
    }
    if (status s = check_kho_boot(*k); !s) return linux_refusal(s.err(), "kho_data");
    return located_linux_fdt{phys_addr{k->data.fdt_addr.get()}, k->data.fdt_size.get(), {}, *k};
  }

  /// What a devicetree kernel is handed: the DTB's /chosen names the root FDT and the
  /// scratch array, then checked as setup_data's kho_data is.
  located_handover locate_dtb(const std::string& path) const {
    std::ifstream in(path, std::ios::binary);
    std::vector<unsigned char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (!in.eof() && in.fail()) throw std::runtime_error("cannot read " + path);
    auto k = upstream::find_kho_chosen(bytes.data(), bytes.size());
    if (!k) {
      if (k.code() == errc::bad_version)
        return linux_refusal(k.err(), fmt::format("{}: /chosen has only the obsolete RFC names {} / {}, which no "
                                                  "kernel reads ({} and {} are expected)",
                                                  path, upstream::chosen_obsolete_kho_dt,
                                                  upstream::chosen_obsolete_kho_mem, upstream::chosen_kho_fdt,
                                                  upstream::chosen_kho_scratch));
      return linux_refusal(k.err(), fmt::format("{}: the DTB's /chosen ({} and {})", path, upstream::chosen_kho_fdt,
                                                upstream::chosen_kho_scratch));
    }
    if (status s = check_kho_boot(*k); !s) return linux_refusal(s.err(), fmt::format("{}: /chosen", path));
    return located_linux_fdt{phys_addr{k->data.fdt_addr.get()}, k->data.fdt_size.get(), {}, *k};
  }

  /// A refusal on the way to a Linux root, with a stock kernel's verdict on it.
  handover_refusal linux_refusal(const error& e, std::string detail) const {
    return handover_refusal{e, std::move(detail), kernel_verdict_on(e, memory())};
  }

  status check_kho_boot(const upstream::located_kho_data& k) const {
    switch (page_shift_) {
      case 14: return upstream::check_kho_boot<14>(memory(), k);
      case 16: return upstream::check_kho_boot<16>(memory(), k);
      default: return upstream::check_kho_boot<12>(memory(), k);  // handover_page_shift allows only these
    }
  }

  unsigned page_shift_;
  std::optional<physical_memory> flat_;  // a flat image's mapping, which holds the boot page
  std::unique_ptr<memory_image> image_;  // the memory, whatever the file's format
  located_handover handover_;
};

}  // namespace kho::model
