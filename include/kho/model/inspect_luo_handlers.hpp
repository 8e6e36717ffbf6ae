// kho/model/inspect_luo_handlers.hpp: the JSON of what a LUO file's or an FLB's data
// names, by the string of its handler (hosted only): the report's side of
// kho/linux/luo_handlers.hpp. Each format reads with its own validating reader; a
// refusal is {"ok": false, "error", "summary"} and clears `ok`, never an exception. A
// string no reader knows is shown as it is: name or compatible, token or count, data.
#pragma once

#include <kho/detail/fixed_string.hpp>
#include <kho/linux/luo_handlers.hpp>
#include <kho/linux/luo_versions.hpp>
#include <kho/linux/memfd.hpp>
#include <kho/manifest.hpp>
#include <kho/model/report.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <string>

namespace kho::model::linux_inspect {

using namespace kho::upstream;

/// A fixed-size name field up to its NUL (the readers proved there is one).
inline std::string field_string(const char* field, u64 cap) {
  return std::string(field, kho::detail::bounded_length(field, cap));
}

inline nlohmann::json refused(const char* what, const error& e) {
  return {{"ok", false}, {"error", describe_error(e)}, {"summary", fmt::format("{}: {}", what, format_error(e))}};
}

/// A memfd-v2/v1 file's state: pos, size, seals, nr_folios and its first
/// `max_folios` folios.
template <unsigned PageShift, Memory M>
nlohmann::json memfd_json(const M& mem, phys_addr ser, memfd_version version, u64 max_folios) {
  auto m = attach_memfd<PageShift>(mem, ser, version);
  if (!m) return refused("memfd refused", m.err());
  nlohmann::json folios = nlohmann::json::array();
  m->for_each_folio([&](const memfd_folio& f) {
    if (folios.size() < max_folios)
      folios.push_back({{"pfn", hex(f.frame.value)}, {"index", f.index}, {"flags", f.flags}});
  });
  return {{"ok", true},
          {"version", wire_name_of("memfd", static_cast<u8>(version))},
          {"address", hex(ser.value)},
          {"pos", m->pos()},
          {"size", m->size()},
          {"seals", m->seals()},
          {"flags", m->flags()},
          {"nr_folios", m->nr_folios()},
          {"folios", folios},
          {"folios_truncated", m->nr_folios() > folios.size()}};
}

/// One LUO file, and the state its data names when a reader knows its compatible.
template <unsigned PageShift, Memory M>
nlohmann::json luo_file_json(const M& mem, const luo_file_ser& f, u64 max_folios, bool& ok) {
  nlohmann::json j{{"compatible", field_string(f.compatible, luo_v5_file_compatible_len)},
                   {"token", f.token.get()},
                   {"data", hex(f.data.get())}};
  const auto version = memfd_version_of(f);
  if (version) j["format"] = wire_name_of("memfd", static_cast<u8>(*version));
  if (version && f.data.get() != 0) {
    j["memfd"] = memfd_json<PageShift>(mem, phys_addr{f.data.get()}, *version, max_folios);
    ok = ok && j["memfd"]["ok"].get<bool>();
  }
  // -- file handlers: hugetlb, guest_memfd, KVM, tmpfs --

  // -- file handlers: devices (iommufd, vfio-pci) --

  return j;
}

/// One FLB entry, and the state its data names when a reader knows its name.
template <unsigned PageShift, Memory M>
nlohmann::json luo_flb_json(const M& mem, const luo_flb_ser& b, u64 max_folios, bool& ok) {
  (void)mem, (void)max_folios, (void)ok;
  nlohmann::json j{{"name", field_string(b.name, luo_v5_flb_name_len)},
                   {"count", b.count.get()},
                   {"data", hex(b.data.get())}};
  // -- FLB handlers: hugetlb --

  // -- FLB handlers: devices (PCI, IOMMU) --

  return j;
}

}  // namespace kho::model::linux_inspect
