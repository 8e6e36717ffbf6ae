// kho/model/inspect_linux.hpp: a Linux KHO handover (the "kho-v4" root FDT) as JSON and
// as text (hosted only): what `kho dump` prints for a stock kernel's handover.
//
// The whole handover is checked first, as a next kernel checks it (check_kho_fdt: every
// structure, one owner per page, every page reached preserved); only then is any
// subtree read, with the reader its format names (subtree_format). Every reader has
// therefore validated once already. Should one refuse anyway (a reader
// stricter than the check), that subtree has "ok": false with its error and "status"
// is "subtree failed", never an exception. A refused
// handover reports its error and, when the root FDT itself validated, what the root
// says (names, addresses, sizes, formats, checksums): never what the structures
// behind it hold.
//
// Beside kho's verdict ("status"), "kernel" is a stock kernel's (model/kernel_verdict.hpp).
//
//   { "format": "kho-v4", "status": "ok" | to_string(errc) | "subtree failed",
//     "error": {...describe_error...},                         (when refused)
//     "root": {address, compatible, preserved_memory_map, kho_sealed, generation,
//              subtree_count},
//     "preserved": radix_report of preserved-memory-map,       (when checked)
//     "subtrees": [{name, phys, size, format, kho_compatible, checksum, deep_checksum,
//                   ok, summary, <the format's fields>,
//                   stands, check_error}],   (stands: refused whole, root and map fine:
//                                             whether the subtree stands on its own)
//     "orphans": {count, pages, first: [[address, order]...]},  (when checked)
//     "kernel": {kernel, verdict, findings: [{outcome, structure, at, what}],
//                finding_count} }
//
// Complexity: the check (O(bytes reachable)), then one read of each subtree: O(LUO's
// entries + the memfds' folio records + regions + the xarray), and the radix walk;
// the JSON holds every session, file, FLB and region, and at most `max_ranges`
// preserved ranges and `max_ranges` folios per memfd (all are counted).
#pragma once

#include <kho/detail/fixed_string.hpp>
#include <kho/handover.hpp>
#include <kho/handover_check.hpp>
#include <kho/linux/kho_fdt.hpp>
#include <kho/linux/kho_fdt_check.hpp>
#include <kho/linux/luo_versions.hpp>
#include <kho/manifest.hpp>
#include <kho/model/inspect_luo.hpp>
#include <kho/model/inspect_luo_handlers.hpp>
#include <kho/model/inspect_radix.hpp>
#include <kho/model/inspect_xarray.hpp>
#include <kho/model/kernel_verdict.hpp>
#include <kho/model/report.hpp>
#include <kho/model/scratch_pages.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iterator>
#include <optional>
#include <algorithm>
#include <utility>
#include <vector>
#include <map>
#include <span>
#include <string>

namespace kho::model {


namespace linux_inspect {

using namespace kho::upstream;

/// What the root says of itself.
template <Memory M, unsigned PageShift>
nlohmann::json root_json(const kho_fdt_view<M, PageShift>& v) {
  nlohmann::json j{{"address", v.address() ? nlohmann::json(hex(v.address().value)) : nlohmann::json(nullptr)},
                   {"compatible", kho_root_compatible(v.compat())},
                   {"preserved_memory_map", hex(v.memory_map().value)},
                   {"kho_sealed", v.kho_sealed()},
                   {"subtree_count", v.count()}};
  if (v.kho_sealed()) j["generation"] = v.generation();
  return j;
}

/// What the root says of one subtree; "format" is null (and "format_error" set) when
/// its name and kho,compatible disagree. kho,deep-xxh64 is shown as written: no format
/// read here defines one, so neither the check nor this report verifies it.
inline nlohmann::json subtree_json(const kho_subtree& t) {
  nlohmann::json j{{"name", t.name}, {"phys", hex(t.phys.value)}, {"size", t.size}};
  if (auto f = subtree_format(t)) {
    j["format"] = *f;
  } else {
    j["format"] = nullptr;
    j["format_error"] = to_string(f.code());
  }
  if (t.compatible != nullptr) j["kho_compatible"] = t.compatible;
  if (t.has_checksum) j["checksum"] = hex(t.checksum);
  if (t.has_deep_checksum) j["deep_checksum"] = hex(t.deep_checksum);
  return j;
}

/// LUO in whichever layout its bytes are (luo-v1, luo-v5, luo-v5;block-v1, the
/// feature header, luo_layouts.hpp's eight): "format" the layout, liveupdate_num,
/// sessions with their files, FLBs (luo-v1 has none), through walk_luo.
template <unsigned PageShift, Memory M>
struct luo_json_visitor {
  const M& mem;
  u64 max_folios;
  bool& ok;
  nlohmann::json& sessions;
  nlohmann::json& flb_out;
  kvm_vm_dialect dialect;
  template <class View>
  status view(const View&) {
    return {};
  }
  status flbs(const luo_flb_ser* items, u64 n) {
    for (u64 i = 0; i < n; ++i) flb_out.push_back(luo_flb_json<PageShift>(mem, items[i], max_folios, ok));
    return {};
  }
  template <class Files>
  status session(const luo_session_ser& s, const Files& files) {
    nlohmann::json out = nlohmann::json::array();
    for (const luo_file_ser& f : files) out.push_back(luo_file_json<PageShift>(mem, f, max_folios, ok, dialect));
    sessions.push_back({{"name", field_string(s.name, luo_v5_session_name_len)}, {"files", std::move(out)}});
    return {};
  }
};

template <unsigned PageShift, Memory M>
nlohmann::json luo_v5_json(const M& mem, const kho_subtree& t, u64 max_folios,
                           kvm_vm_dialect dialect = kvm_vm_dialect::undecided) {
  scratch_pages<PageShift> scratch(mem);
  bool ok = true;
  nlohmann::json sessions = nlohmann::json::array(), flbs = nlohmann::json::array();
  auto info = walk_luo<PageShift>(mem, t.phys, t.size, scratch.pages(),
                                  luo_json_visitor<PageShift, M>{mem, max_folios, ok, sessions, flbs, dialect});
  if (!info) return refused("LUO refused", info.err());
  const luo_version version = info->version;
  const u64 number = info->liveupdate_num, session_count = info->sessions, file_count = info->files,
            blocks = info->blocks;
  return {{"ok", ok},
          {"format", luo_version_name(version)},
          {"summary", fmt::format("live update #{}: {} sessions, {} files, {} FLBs, {} blocks", number, session_count,
                                  file_count, flbs.size(), blocks)},
          {"liveupdate_num", number},
          {"sessions", std::move(sessions)},
          {"flbs", std::move(flbs)}};
}

/// "kexec-metadata-v1": version, previous_release, kexec_count.
template <unsigned PageShift, Memory M>
nlohmann::json kexec_metadata_json(const M& mem, const kho_subtree& t) {
  auto v = kexec_metadata_view<PageShift>::attach(mem, t.phys, t.size);
  if (!v) return refused("kexec-metadata refused", v.err());
  return {{"ok", true},
          {"summary", fmt::format("written by {}, kexec boot #{}", v->previous_release(), v->kexec_count())},
          {"version", v->version()},
          {"previous_release", v->previous_release()},
          {"kexec_count", v->kexec_count()}};
}

/// "memblock-v1": the reserve_mem regions.
template <unsigned PageShift, Memory M>
nlohmann::json memblock_json(const M& mem, const kho_subtree& t) {
  auto v = attach_memblock<PageShift>(mem, t.phys, t.size);
  if (!v) return refused("memblock refused", v.err());
  nlohmann::json regions = nlohmann::json::array();
  v->for_each_region([&](const reserve_mem_region& r) {
    regions.push_back({{"name", r.name}, {"start", hex(r.start.value)}, {"size", hex(r.size)}});
  });
  return {{"ok", true}, {"summary", fmt::format("{} reserve_mem regions", v->count())}, {"regions", regions}};
}

/// "mshv_kho-v1" (an RFC format): the raw-pfn tree's root, its pages, and the
/// hypervisor's pages as coalesced ranges (the first `max_ranges`).
template <unsigned PageShift, Memory M>
nlohmann::json mshv_json(const M& mem, const kho_subtree& t, u64 max_ranges = 64) {
  scratch_pages<PageShift> scratch(mem);
  auto v = attach_mshv<PageShift>(mem, t.phys, t.size, scratch.pages());
  if (!v) return refused("mshv refused", v.err());
  nlohmann::json ranges = nlohmann::json::array();
  u64 range_count = 0;
  v->tree().for_each_range([&](phys_addr start, u64 bytes) {
    if (range_count++ < max_ranges) ranges.push_back({hex(start.value), hex(bytes)});
  });
  return {{"ok", true},
          {"summary", fmt::format("MSHV (RFC format): {} hypervisor pages in {} ranges, tree of {} pages at {}",
                                  v->page_count(), range_count, v->node_count(), hex(v->root_table().value))},
          {"root_table", hex(v->root_table().value)},
          {"hypervisor_pages", v->page_count()},
          {"tree_pages", v->node_count()},
          {"range_count", range_count},
          {"ranges", ranges},
          {"ranges_truncated", range_count > ranges.size()}};
}

/// kho's own formats under an FDT subtree: their kho-root-v1 entry readers, given the
/// entry a kho root would hold for them.
template <unsigned PageShift, Memory M>
nlohmann::json kho_format_json(const M& mem, const kho_subtree& t, const char* format) {
  handover_entry e{};
  kho::detail::store_string(e.compatible, handover_compatible_len, format);
  e.phys.set(t.phys.value);
  e.size.set(t.size);
  if (kho::detail::same_string(format, xarray_compatible)) return read_xarray<PageShift>(mem, e);
  return read_luo<PageShift>(mem, e);
}

/// The format's reader for one subtree of a checked handover.
template <unsigned PageShift, Memory M>
nlohmann::json subtree_body(const M& mem, const kho_subtree& t, const char* format, u64 max_folios,
                            kvm_vm_dialect dialect = kvm_vm_dialect::undecided) {
  if (kho::detail::same_string(format, luo_v5_compatible)) return luo_v5_json<PageShift>(mem, t, max_folios, dialect);
  if (kho::detail::same_string(format, kexec_metadata_format)) return kexec_metadata_json<PageShift>(mem, t);
  if (kho::detail::same_string(format, memblock_compatible)) return memblock_json<PageShift>(mem, t);
  if (kho::detail::same_string(format, mshv_compatible)) return mshv_json<PageShift>(mem, t);
  if (kho::detail::same_string(format, xarray_compatible) || kho::detail::same_string(format, luo_compatible))
    return kho_format_json<PageShift>(mem, t, format);
  return {{"ok", true}, {"summary", fmt::format("opaque blob, {} bytes", t.size)}};
}

/// kho-v1's preserved-memory map, a chain of bitmap chunks, reported as radix_report
/// reports a tree: blocks per order, and the preserved ranges in address order.
template <unsigned PageShift, Memory M>
nlohmann::json chunks_report(const M& mem, phys_addr first, u64 max_ranges) {
  scratch_pages<PageShift> scratch(mem);
  auto chain = attach_kho_mem_chunks<PageShift>(mem, first, scratch.pages());
  if (!chain)
    return {{"ok", false}, {"error", describe_error(chain.err())},
            {"summary", fmt::format("refused: {}", format_error(chain.err()))}};
  std::vector<std::pair<u64, u64>> blocks;  // [start, end)
  std::map<unsigned, u64> orders;
  chain->for_each_block([&](phys_addr pa, order o) {
    blocks.emplace_back(pa.value, pa.value + (u64{1} << (PageShift + o.value)));
    ++orders[o.value];
  });
  std::sort(blocks.begin(), blocks.end());
  nlohmann::json counts = nlohmann::json::object(), ranges = nlohmann::json::array();
  for (const auto& [o, n] : orders) counts[std::to_string(o)] = n;
  u64 range_count = 0, bytes = 0;
  for (size_t i = 0; i < blocks.size();) {
    u64 start = blocks[i].first, end = blocks[i].second;
    for (++i; i < blocks.size() && blocks[i].first == end; ++i) end = blocks[i].second;
    if (range_count++ < max_ranges) ranges.push_back({hex(start), hex(end - start)});
    bytes += end - start;
  }
  return {{"ok", true},
          {"root", hex(first.value)},
          {"blocks", blocks.size()},
          {"orders", counts},
          {"tree_pages", chain->chunk_count() + chain->bitmap_count()},
          {"preserved_bytes", hex(bytes)},
          {"range_count", range_count},
          {"ranges", ranges},
          {"ranges_truncated", range_count > ranges.size()},
          {"summary", fmt::format("kho-v1 chunk chain: {} blocks in {} ranges, {} MiB preserved, {} chunks, {} bitmaps",
                                  blocks.size(), range_count, bytes >> 20, chain->chunk_count(), chain->bitmap_count())}};
}

/// The report of an attached root: the check, then (when it passes) the bodies.
/// What structures name as payload rather than own: reserve_mem regions, FLB data, and
/// the data of LUO files whose handler is not a memfd's. A preserved block starting in
/// one of these is reached (find_orphans), though no page of it is claimed.
class payload_references {
 public:
  template <unsigned PageShift, Memory M>
  static payload_references of(const kho_fdt_view<M, PageShift>& view) {
    payload_references refs;
    const M& mem = view.memory();
    view.for_each([&](const kho_subtree& t) {
      auto format = subtree_format(t);
      if (!format) return;
      if (kho::detail::same_string(*format, memblock_compatible)) {
        if (auto v = attach_memblock<PageShift>(mem, t.phys, t.size))
          v->for_each_region([&](const reserve_mem_region& r) { refs.add(r.start.value, r.size); });
      } else if (kho::detail::same_string(*format, luo_v5_compatible)) {
        refs.add_luo<PageShift>(mem, t);
      }
    });
    refs.coalesce();
    return refs;
  }
  /// Whether `pa` lies in a named range. Complexity: O(log ranges).
  bool contains(phys_addr pa) const {
    auto after = std::upper_bound(ranges_.begin(), ranges_.end(), std::pair{pa.value, ~u64{0}});
    return after != ranges_.begin() && pa.value - std::prev(after)->first < std::prev(after)->second;
  }

 private:
  void add(u64 start, u64 size) {
    if (size != 0) ranges_.emplace_back(start, std::min(size, ~u64{0} - start));
  }
  // Sorted and merged, so at most one range can hold an address.
  void coalesce() {
    std::sort(ranges_.begin(), ranges_.end());
    std::vector<std::pair<u64, u64>> merged;
    for (const auto& [start, bytes] : ranges_) {
      if (!merged.empty() && start - merged.back().first <= merged.back().second) {
        const u64 end = std::max(merged.back().first + merged.back().second, start + bytes);
        merged.back().second = end - merged.back().first;
      } else {
        merged.emplace_back(start, bytes);
      }
    }
    ranges_ = std::move(merged);
  }
  // What every FLB's and every file's data names that no reader walks (memfd's are
  // walked), in any layout, through walk_luo.
  struct luo_payload_visitor {
    payload_references& refs;
    template <class View>
    status view(const View&) {
      return {};
    }
    status flbs(const luo_flb_ser* items, u64 n) {
      for (u64 i = 0; i < n; ++i) refs.add(items[i].data.get(), 1);
      return {};
    }
    template <class Files>
    status session(const luo_session_ser&, const Files& files) {
      for (const luo_file_ser& f : files)
        if (!memfd_version_of(f)) refs.add(f.data.get(), 1);
      return {};
    }
  };
  template <unsigned PageShift, Memory M>
  void add_luo(const M& mem, const kho_subtree& t) {
    scratch_pages<PageShift> scratch(mem);
    (void)walk_luo<PageShift>(mem, t.phys, t.size, scratch.pages(), luo_payload_visitor{*this});
  }

  std::vector<std::pair<u64, u64>> ranges_;  // (start, bytes), sorted, disjoint
};

template <unsigned PageShift, Memory M>
nlohmann::json report(const kho_fdt_view<M, PageShift>& view, u64 max_ranges, const handover_check_options& options) {
  const M& mem = view.memory();
  nlohmann::json out{{"format", kho_root_compatible(view.compat())}, {"root", root_json(view)}};
  // The check's scratch is gone before the readers map theirs (as inspect() does).
  orphan_blocks orphans;
  const status checked = [&] {
    scratch_pages<PageShift> scratch(mem);
    return check_kho_fdt(view, scratch.pages(), options, [&](const auto& owners, const auto& map) {
      const payload_references refs = payload_references::of(view);
      find_orphans(owners, map, [&](phys_addr pa, order) { return refs.contains(pa); }, orphans);
    });
  }();
  if (!checked) {
    out["status"] = to_string(checked.code());
    out["error"] = describe_error(checked.err());
  }
  bool all_ok = true;
  if (checked) {
    out["preserved"] = kho_root_has_radix(view.version())
                           ? radix_report<PageShift>(mem, view.memory_map(), std::nullopt, max_ranges)
                           : chunks_report<PageShift>(mem, view.memory_map(), max_ranges);
    all_ok = out["preserved"]["ok"].get<bool>();
  }
  // Refused whole: which structures a next kernel that keeps what stands would keep
  // (check_kho_fdt_each), unless the root or the map itself failed.
  std::map<std::string, nlohmann::json> standing;
  if (!checked && kho_root_has_radix(view.version())) {
    scratch_pages<PageShift> scratch(mem);
    const status fatal = check_kho_fdt_each(
        view, scratch.pages(),
        [&](const kho_subtree& t, const error& e) {
          standing[t.name] = e.code == errc::ok ? nlohmann::json(true) : describe_error(e);
        },
        options);
    if (!fatal) standing.clear();
  }
  nlohmann::json subtrees = nlohmann::json::array();
  view.for_each([&](const kho_subtree& t) {
    nlohmann::json j = subtree_json(t);
    if (auto it = standing.find(t.name); it != standing.end()) {
      j["stands"] = it->second.is_boolean();
      if (!it->second.is_boolean()) j["check_error"] = it->second;
    }
    if (checked) {  // the check proved the format known to it: subtree_format succeeded
      j.update(subtree_body<PageShift>(mem, t, *subtree_format(t), max_ranges, options.kvm_vm_dialect));
      all_ok = all_ok && j["ok"].get<bool>();
    }
    subtrees.push_back(std::move(j));
  });
  out["subtrees"] = std::move(subtrees);
  if (checked) out["status"] = all_ok ? "ok" : "subtree failed";
  kernel_verdict kernel;
  if (!checked) kernel_on_refusal(kernel, checked.err(), mem);
  kernel_scan(kernel, view, bool(checked));
  if (checked) {
    out["orphans"] = orphans_json(orphans);
    kernel_on_orphans(kernel, orphans);
  }
  out["kernel"] = kernel.json();
  return out;
}

template <unsigned PageShift, Memory M>
nlohmann::json report(const result<kho_fdt_view<M, PageShift>>& view, phys_addr fdt_phys, u64 max_ranges,
                      const handover_check_options& options) {
  if (view) return report(*view, max_ranges, options);
  kernel_verdict kernel;
  kernel_on_refusal(kernel, view.err());
  return {{"format", kho_fdt_compatible},
          {"status", to_string(view.code())},
          {"error", describe_error(view.err())},
          {"root", {{"address", fdt_phys ? nlohmann::json(hex(fdt_phys.value)) : nlohmann::json(nullptr)}}},
          {"subtrees", nlohmann::json::array()},
          {"kernel", kernel.json()}};
}

}  // namespace linux_inspect

/// Reports the handover behind the KHO root FDT in [fdt, fdt + fdt_size), a caller's
/// buffer (an FDT saved from debugfs: `fdt_phys` 0) or the root's bytes in `mem` at
/// `fdt_phys` (its page is then owned by the root). The whole handover is checked
/// first; "status" is "ok" or the error's name, with "error" (describe_error).
/// Pages are 2^PageShift bytes, the handover's; the preserved ranges listed are at
/// most `max_ranges` (all are counted).
/// Complexity: see the file's comment. Errors: none thrown for any input (a refusal
/// is reported); std::bad_alloc as any JSON.
template <unsigned PageShift = 12, Memory M>
nlohmann::json inspect_kho_fdt(const M& mem, const void* fdt, u64 fdt_size, phys_addr fdt_phys,
                               u64 max_ranges = radix_listed_ranges, const handover_check_options& options = {}) {
  return linux_inspect::report(upstream::kho_fdt_view<M, PageShift>::attach_bytes(mem, fdt, fdt_size, fdt_phys),
                               fdt_phys, max_ranges, options);
}

/// Reports the handover whose root FDT is at `fdt_phys` in `mem`, `fdt_size` bytes
/// (kho_data.fdt_size): what a next kernel is handed. The root must be page-aligned
/// and at most a page (kho_fdt_view::attach), then as inspect_kho_fdt above.
template <unsigned PageShift = 12, Memory M>
nlohmann::json inspect_kho_fdt(const M& mem, phys_addr fdt_phys, u64 fdt_size = page_geometry<PageShift>::size,
                               u64 max_ranges = radix_listed_ranges, const handover_check_options& options = {}) {
  return linux_inspect::report(upstream::kho_fdt_view<M, PageShift>::attach(mem, fdt_phys, fdt_size), fdt_phys,
                               max_ranges, options);
}

namespace linux_inspect {

/// `e` (describe_error's JSON) as format_error words it.
inline std::string error_line(const nlohmann::json& e) {
  std::string line = fmt::format("{} in {} at {} (depth {})", e["error"].get<std::string>(),
                                 e["structure"].get<std::string>(), e["at"].get<std::string>(), e["depth"].get<u64>());
  if (e.contains("first_owner"))
    line += fmt::format(", first owned by {} at {}", e["first_owner"]["structure"].get<std::string>(),
                        e["first_owner"]["at"].get<std::string>());
  return line;
}

// A file's or FLB's "state" (inspect_luo_handlers.hpp) as text: the refusal, or one
// line of its scalar fields, then one line per element of each list it has.
inline void append_handler_state(std::string& s, const nlohmann::json& state) {
  auto out = std::back_inserter(s);
  if (!state.value("ok", false)) {
    fmt::format_to(out, "        {}\n", state.value("summary", std::string("refused")));
    return;
  }
  std::string line;
  for (const auto& [key, value] : state.items())
    if (key != "ok" && !value.is_array() && !value.is_object())
      line += fmt::format("{}{} {}", line.empty() ? "" : ", ", key, value.is_string() ? value.get<std::string>() : value.dump());
  fmt::format_to(out, "        {}\n", line);
  for (const auto& [key, value] : state.items()) {
    if (value.is_object()) fmt::format_to(out, "          {}: {}\n", key, value.dump());
    if (!value.is_array()) continue;
    for (const auto& item : value) fmt::format_to(out, "          {}: {}\n", key, item.dump());
  }
}

// The device formats (LINUX-FORMATS-NEXT.md section 5) under their file or FLB line.
inline void append_device_file(std::string& s, const nlohmann::json& f) {
  auto out = std::back_inserter(s);
  if (f.contains("iommufd") && f["iommufd"].value("ok", false)) {
    fmt::format_to(out, "        iommufd-v1: {} HWPTs\n", f["iommufd"]["nr_hwpts"].get<u64>());
    for (const auto& h : f["iommufd"]["hwpts"])
      fmt::format_to(out, "          token {} domain {} reclaimed {}\n", h["token"].get<u64>(),
                     h["domain_data"].get<std::string>(), h["reclaimed"].get<u64>());
  }
  if (f.contains("vfio_pci") && f["vfio_pci"].value("ok", false)) {
    const auto& v = f["vfio_pci"];
    fmt::format_to(out, "        vfio-pci-v1: domain {} bdf {} reset {}\n", v["domain"].get<u64>(),
                   v["bdf"].get<std::string>(), v["reset_works"].get<bool>() ? "works" : "does not work");
  }
}

inline void append_device_flb(std::string& s, const nlohmann::json& b) {
  auto out = std::back_inserter(s);
  if (b.contains("pci") && b["pci"].value("ok", false)) {
    const auto& p = b["pci"];
    fmt::format_to(out, "      {}: {} of {} devices\n", p["version"].get<std::string>(), p["nr_devices"].get<u64>(),
                   p["max_nr_devices"].get<u64>());
    for (const auto& d : p["devices"])
      fmt::format_to(out, "        domain {} bdf {}\n", d["domain"].get<u64>(), d["bdf"].get<std::string>());
  }
  if (b.contains("iommu") && b["iommu"].value("ok", false)) {
    const auto& m = b["iommu"];
    fmt::format_to(out, "      {}: {} hw units, {} domains, {} devices\n", m["version"].get<std::string>(),
                   m["hw"].size(), m["domains"].size(), m["devices"].size());
    for (const auto& d : m["devices"])
      fmt::format_to(out, "        device {} segment {} domain {} iommu {}\n", d["devid"].get<std::string>(),
                     d["pci_domain_nr"].get<u64>(), d["domain_phys"].get<std::string>(),
                     d["iommu_phys"].get<std::string>());
  }
}

inline void append_luo(std::string& s, const nlohmann::json& j) {
  auto out = std::back_inserter(s);
  for (const auto& session : j["sessions"]) {
    fmt::format_to(out, "    session {}: {} files\n", session["name"].get<std::string>(), session["files"].size());
    for (const auto& f : session["files"]) {
      fmt::format_to(out, "      file {} token {} data {}\n", f["compatible"].get<std::string>(),
                     f["token"].get<u64>(), f["data"].get<std::string>());
      if (f.contains("state")) append_handler_state(s, f["state"]);
      append_device_file(s, f);
      if (!f.contains("memfd") || !f["memfd"].value("ok", false)) continue;
      const auto& m = f["memfd"];
      fmt::format_to(out, "        {}: pos {} size {} seals {:#x}, {} folios\n", m["version"].get<std::string>(),
                     m["pos"].get<u64>(), m["size"].get<u64>(), m["seals"].get<u32>(), m["nr_folios"].get<u64>());
      for (const auto& folio : m["folios"])
        fmt::format_to(out, "          index {} pfn {} flags {:#x}\n", folio["index"].get<u64>(),
                       folio["pfn"].get<std::string>(), folio["flags"].get<u64>());
      if (m.value("folios_truncated", false))
        fmt::format_to(out, "          ... {} more folios not listed (--max-ranges)\n",
                       m["nr_folios"].get<u64>() - m["folios"].size());
    }
  }
  for (const auto& b : j["flbs"]) {
    fmt::format_to(out, "    FLB {}: {} files, data {}\n", b["name"].get<std::string>(), b["count"].get<u64>(),
                   b["data"].get<std::string>());
    if (b.contains("state")) append_handler_state(s, b["state"]);
    append_device_flb(s, b);
  }
}

inline void append_subtree(std::string& s, const nlohmann::json& t) {
  auto out = std::back_inserter(s);
  const std::string format = t["format"].is_string() ? t["format"].get<std::string>() : "?";
  fmt::format_to(out, "  subtree {:<16} {:<18} phys {} size {}", t["name"].get<std::string>(),
                 format.empty() ? "(blob)" : format, t["phys"].get<std::string>(), t["size"].get<u64>());
  if (t.contains("checksum")) fmt::format_to(out, " xxh64 {}", t["checksum"].get<std::string>());
  s += '\n';
  if (t.contains("format_error")) fmt::format_to(out, "    format: {}\n", t["format_error"].get<std::string>());
  if (t.contains("summary")) fmt::format_to(out, "    {}\n", t["summary"].get<std::string>());
  if (t.contains("stands")) {
    if (t["stands"].get<bool>()) s += "    stands on its own\n";
    else fmt::format_to(out, "    falls on its own: {}\n", error_line(t["check_error"]));
  }
  if (!t.value("ok", false)) return;
  if (format.rfind("luo", 0) == 0) append_luo(s, t);
  if (format == mshv_compatible)
    for (const auto& r : t["ranges"])
      fmt::format_to(out, "    hypervisor pages [{}, +{})\n", r[0].get<std::string>(), r[1].get<std::string>());
  if (format == memblock_compatible)
    for (const auto& r : t["regions"])
      fmt::format_to(out, "    region {} [{}, +{})\n", r["name"].get<std::string>(), r["start"].get<std::string>(),
                     r["size"].get<std::string>());
}

}  // namespace linux_inspect

/// inspect_kho_fdt's report as text for people, as `kho dump` prints it: the root and
/// its seal, the error if refused, the preserved ranges listed, then each subtree with
/// its summary (LUO's sessions, files, memfds and FLBs; memblock's regions).
inline std::string format_kho_fdt_report(const nlohmann::json& j) {
  std::string s;
  auto out = std::back_inserter(s);
  const nlohmann::json& root = j["root"];
  fmt::format_to(out, "{} root {}: {}\n", j["format"].get<std::string>(),
                 root["address"].is_string() ? root["address"].get<std::string>() : "(from a file)",
                 j["status"].get<std::string>());
  if (j.contains("error")) fmt::format_to(out, "  error: {}\n", linux_inspect::error_line(j["error"]));
  if (root.contains("kho_sealed")) {
    if (root["kho_sealed"].get<bool>())
      fmt::format_to(out, "  kho seal: generation {}\n", root["generation"].get<u64>());
    else
      s += "  kho seal: none (as a stock kernel writes it)\n";
  }
  if (j.contains("preserved")) {
    const nlohmann::json& p = j["preserved"];
    fmt::format_to(out, "  preserved-memory-map {}: {}\n", root["preserved_memory_map"].get<std::string>(),
                   p["summary"].get<std::string>());
    if (p.contains("ranges")) {
      for (const auto& r : p["ranges"])
        fmt::format_to(out, "    [{}, +{})\n", r[0].get<std::string>(), r[1].get<std::string>());
      if (p["ranges_truncated"].get<bool>())
        fmt::format_to(out, "    ... {} more ranges not listed (--max-ranges)\n",
                       p["range_count"].get<u64>() - p["ranges"].size());
    }
  } else if (root.contains("preserved_memory_map")) {
    fmt::format_to(out, "  preserved-memory-map {}\n", root["preserved_memory_map"].get<std::string>());
  }
  for (const auto& t : j["subtrees"]) linux_inspect::append_subtree(s, t);
  if (j.contains("kernel")) s += kernel_verdict_text(j["kernel"]);
  return s;
}

}  // namespace kho::model
