// kho/model/inspect_xarray.hpp: read a KHO xarray in place and describe it (hosted only).
//
// The reader for handover entries whose compatible string is "kho-xarray-v1": attaches
// the xarray root block at the entry's address (validating every node) and reports
// entry count, height, nodes, bytes per entry, marks and the first entries as JSON.
// Values are read as u64, the layout the kexec demo writes (a memfd's page index ->
// pfn << 12 | flags), with the handover's page size.
#pragma once

#include <kho/handover.hpp>
#include <kho/model/inspect_luo.hpp>
#include <kho/model/physical_memory.hpp>
#include <kho/xarray.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace kho::model {

inline constexpr const char* xarray_compatible = kho::xarray_compatible;

/// How many entries read_xarray lists under "first_entries".
inline constexpr u64 xarray_listed_entries = 8;

/// {"ok": false, "summary": "<what>: <error>", "error": {error, structure, at, depth}}.
inline nlohmann::json xarray_failure_json(const char* what, const error& e) {
  return {{"ok", false},
          {"summary", fmt::format("{}: {}", what, to_string(e.code))},
          {"error",
           {{"error", to_string(e.code)},
            {"structure", e.loc.structure},
            {"at", fmt::format("{:#x}", e.loc.at.value)},
            {"depth", e.loc.depth}}}};
}

/// Attaches the xarray root named by `entry` and describes it: "ok", "summary",
/// "error" {error, structure, at, depth} when not ok, "count", "height", "nodes",
/// "bytes_per_entry", "marks" (entries per mark) and "first_entries" (index, order,
/// value as hex, marks).
/// Pages are 2^PageShift bytes.
template <unsigned PageShift = 12, Memory M>
nlohmann::json read_xarray(const M& mem, const handover_entry& entry) {
  const phys_addr root{entry.phys.get()};
  auto fail = [](const error& e) { return xarray_failure_json("xarray refused", e); };
  if (entry.size.get() < sizeof(xarray_root)) return fail(make_error(errc::bad_count, "xarray", root));
  scratch_pages<PageShift> scratch(mem);  // sparse; the visited set needs about 32 bytes per page
  auto v = attach_xarray<u64, PageShift>(mem, root, scratch.pages());
  if (!v) return fail(v.err());
  u64 marked[xa_mark_count] = {};
  nlohmann::json first = nlohmann::json::array();
  v->for_each(0, ~u64{0}, [&](const xarray_entry<u64>& e) {
    for (unsigned m = 0; m < xa_mark_count; ++m) marked[m] += (e.marks >> m) & 1;
    if (first.size() < xarray_listed_entries)
      first.push_back({{"index", e.index},
                       {"order", e.span.value},
                       {"value", fmt::format("{:#x}", e.value)},
                       {"marks", e.marks}});
  });
  const u64 bytes = (v->nodes() + 1) << PageShift;  // the root block's page included
  const double per_entry = v->count() ? static_cast<double>(bytes) / static_cast<double>(v->count()) : 0.0;
  return {{"ok", true},
          {"summary", fmt::format("{} entries, height {}, {} nodes, {:.2f} bytes per entry", v->count(),
                                  v->height(), v->nodes(), per_entry)},
          {"count", v->count()},
          {"height", v->height()},
          {"nodes", v->nodes()},
          {"bytes_per_entry", per_entry},
          {"marks", {marked[0], marked[1], marked[2]}},
          {"first_entries", std::move(first)}};
}

}  // namespace kho::model
