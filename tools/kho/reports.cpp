// The readers behind every subcommand, instantiated here alone, once per page size
// (commands.hpp), and the exit statuses of refusals and Linux reports.
#include "commands.hpp"

#include <kho/linux/x86_boot.hpp>
#include <kho/model/inspect.hpp>
#include <kho/model/inspect_holes.hpp>
#include <kho/model/inspect_linux.hpp>
#include <kho/model/inspect_radix.hpp>
#include <kho/model/kernel_verdict.hpp>
#include <kho/model/report.hpp>
#include <kho/model/scratch_pages.hpp>

#include <fmt/format.h>

#include <string>
#include <type_traits>

namespace kho::cli {

namespace {

template <unsigned Shift>
using page_shift = std::integral_constant<unsigned, Shift>;

/// run_at(page_shift<S>{}) for the image's page shift S.
template <class RunAt>
nlohmann::json at_page_shift(const model::handover_image& image, RunAt&& run_at) {
  switch (image.page_shift()) {
    case 14: return run_at(page_shift<14>{});
    case 16: return run_at(page_shift<16>{});
    default: return run_at(page_shift<12>{});  // model::handover_page_shift allows only these
  }
}

/// What kho_data says, and the refusal of a preserved page in the scratch it names
/// (the next kernel allocates from scratch at once).
template <unsigned PageShift>
void check_kho_data(nlohmann::json& j, const model::image_memory& mem, const upstream::located_kho_data& boot) {
  const upstream::kho_data& d = boot.data;
  j["kho_data"] = {{"at", model::hex(boot.at.value)},
                   {"fdt", model::hex(d.fdt_addr.get())},
                   {"fdt_size", d.fdt_size.get()},
                   {"scratch", model::hex(d.scratch_addr.get())},
                   {"scratch_entries", upstream::kho_scratch_count(d)},
                   // The kernel's newer name for the same array (kho/linux/bootmem.hpp).
                   {"bootmem", model::hex(d.scratch_addr.get())},
                   {"bootmem_entries", upstream::kho_scratch_count(d)},
                   {"kho_nodes", boot.kho_nodes},
                   {"route", boot.from_chosen ? "dtb /chosen" : "setup_data"}};
  if (j["status"] != "ok") return;
  model::scratch_pages<PageShift> scratch(mem);
  detail::radix_nodes<PageShift, model::image_memory, typename model::scratch_pages<PageShift>::source_type> nodes{
      &scratch.pages()};
  auto map = nodes.attach(mem, preserved_memory_map(j));
  status s = map ? upstream::check_scratch_unpreserved(mem, d, *map) : status{map.err()};
  if (!s) {
    j["status"] = to_string(s.code());
    j["error"] = model::describe_error(s.err());
    j["kernel"] = model::kernel_verdict_on(s.err(), mem);
  }
}

template <unsigned PageShift>
nlohmann::json report_linux_at(const model::image_memory& mem, const model::located_linux_fdt& f, u64 max_ranges,
                               upstream::kvm_vm_dialect kvm_vm) {
  handover_check_options options;
  options.kvm_vm_dialect = kvm_vm;
  nlohmann::json j = f.bytes.empty()
                         ? model::inspect_kho_fdt<PageShift>(mem, f.phys, f.size, max_ranges, options)
                         : model::inspect_kho_fdt<PageShift>(mem, f.bytes.data(), f.size, phys_addr{}, max_ranges,
                                                             options);
  if (f.boot) check_kho_data<PageShift>(j, mem, *f.boot);
  return j;
}

}  // namespace

int linux_exit(const nlohmann::json& report) {
  const std::string kernel = report["kernel"]["verdict"].get<std::string>();
  const bool kernel_keeps = kernel == model::to_string(model::kernel_outcome::accepts);
  const bool kernel_skips = kernel == model::to_string(model::kernel_outcome::ignores);
  if (report["status"] == "ok") return kernel_keeps ? 0 : exit_kernel_fails;
  return kernel_keeps || kernel_skips ? exit_kho_stricter : exit_refused;
}

phys_addr preserved_memory_map(const nlohmann::json& linux_report) {
  return phys_addr{std::stoull(linux_report["root"]["preserved_memory_map"].get<std::string>(), nullptr, 16)};
}

std::optional<model::handover_refusal> check_generation(const model::handover_image& image,
                                                        const model::located_kho_root& where,
                                                        const nlohmann::json& report) {
  if (!report.contains("generation")) return std::nullopt;
  return image.check_generation(where, report["generation"].get<u64>());
}

int print_refusal(const model::handover_refusal& r, bool json) {
  nlohmann::json j{{"status", to_string(r.err.code)}, {"error", r.json()}};
  if (r.linux_handover()) j["kernel"] = r.kernel;
  if (json) {
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("{}\n", r.line());
    if (r.linux_handover()) fmt::print("{}", model::kernel_verdict_text(r.kernel));
  }
  return r.linux_handover() ? linux_exit(j) : exit_refused;
}

nlohmann::json report_linux(const model::handover_image& image, const model::located_linux_fdt& fdt, u64 max_ranges,
                            upstream::kvm_vm_dialect kvm_vm) {
  return at_page_shift(image, [&]<unsigned Shift>(page_shift<Shift>) {
    return report_linux_at<Shift>(image.memory(), fdt, max_ranges, kvm_vm);
  });
}

nlohmann::json report_kho_root(const model::handover_image& image, phys_addr root) {
  return at_page_shift(image, [&]<unsigned Shift>(page_shift<Shift>) {
    return model::inspect<Shift>(image.memory(), root);
  });
}

nlohmann::json report_radix(const model::handover_image& image, phys_addr root, u64 max_ranges) {
  return at_page_shift(image, [&]<unsigned Shift>(page_shift<Shift>) {
    return model::radix_report<Shift>(image.memory(), root, std::nullopt, max_ranges);
  });
}

nlohmann::json report_holes(const model::handover_image& image, phys_addr root) {
  return at_page_shift(image, [&]<unsigned Shift>(page_shift<Shift>) {
    return model::holes_report<Shift>(image.memory(), root);
  });
}

}  // namespace kho::cli
