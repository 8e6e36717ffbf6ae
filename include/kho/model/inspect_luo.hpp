// kho/model/inspect_luo.hpp: read a LUO root in place and describe it (hosted only).
//
// The reader for the handover entry whose compatible string is luo_compatible
// ("kho-luo-v1"): attaches the LUO root at the entry's address, which validates
// every session, file and shared object, and reports them as JSON. The next kernel's
// indexes need scratch pages; here they come from a sparse memfd standing for a
// physical range of their own, sized from the memory being read.
#pragma once

#include <kho/handover.hpp>
#include <kho/luo.hpp>
#include <kho/model/physical_memory.hpp>
#include <kho/model/scratch_pages.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <unordered_map>

namespace kho::model {

inline constexpr const char* luo_compatible = kho::luo_compatible;

/// Scratch pages for luo_view's indexes (see scratch_pages.hpp).
using luo_scratch = scratch_pages<>;

/// A failure as JSON, with the same fields as describe_error in inspect.hpp.
inline nlohmann::json luo_error_json(const error& e) {
  return {{"error", to_string(e.code)},
          {"structure", e.loc.structure},
          {"at", fmt::format("{:#x}", e.loc.at.value)},
          {"depth", e.loc.depth}};
}

/// Attaches the LUO root named by `entry` and describes it: "ok", "summary", "error"
/// (when not ok), "liveupdate_number", "sessions" (name, files: token, compatible,
/// data as hex, flags, flb) and "flbs" (name, id, data, refs).
/// Pages are 2^PageShift bytes.
template <unsigned PageShift = 12, Memory M>
nlohmann::json read_luo(const M& mem, const handover_entry& entry) {
  const phys_addr root{entry.phys.get()};
  if (entry.size.get() < sizeof(luo_root)) {
    const error e = make_error(errc::bad_count, "luo", root);
    return {{"ok", false}, {"summary", "LUO entry smaller than its root"}, {"error", luo_error_json(e)}};
  }
  scratch_pages<PageShift> scratch(mem);
  auto v = attach_luo<PageShift>(mem, root, scratch.pages());
  if (!v) {
    return {{"ok", false},
            {"summary", fmt::format("LUO refused: {}", to_string(v.code()))},
            {"error", luo_error_json(v.err())}};
  }
  nlohmann::json flbs = nlohmann::json::array();
  std::unordered_map<u64, std::string> names;  // FLB id -> name; attach() checked each file's
  for (const luo_flb_entry& b : v->flbs()) {
    names.emplace(b.id.get(), b.name);
    flbs.push_back({{"name", b.name},
                    {"id", b.id.get()},
                    {"data", fmt::format("{:#x}", b.data.get())},
                    {"refs", b.refs.get()}});
  }
  auto flb_name = [&](u64 id) -> nlohmann::json {
    if (id == 0) return nullptr;
    return names.at(id);
  };
  nlohmann::json sessions = nlohmann::json::array();
  for (const luo_session_entry& s : v->sessions()) {
    nlohmann::json files = nlohmann::json::array();
    for (const luo_file_entry& f : v->files(s))
      files.push_back({{"token", f.token.get()},
                       {"compatible", f.compatible},
                       {"data", fmt::format("{:#x}", f.data.get())},
                       {"flags", f.flags.get()},
                       {"flb", flb_name(f.flb.get())}});
    sessions.push_back({{"name", s.name}, {"files", std::move(files)}});
  }
  nlohmann::json out{
      {"ok", true},
      {"summary", fmt::format("live update #{}: {} sessions, {} files, {} shared objects, {} blocks",
                              v->liveupdate_number(), v->session_count(), v->file_count(),
                              v->flb_count(), v->block_count())},
      {"liveupdate_number", v->liveupdate_number()},
      {"sessions", std::move(sessions)},
      {"flbs", std::move(flbs)}};
  v->release();
  return out;
}

}  // namespace kho::model
