// kho/model/inspect.hpp: attach a handover and describe everything in it (hosted only).
//
// Shared by the next image of the kexec model and by `kho dump` / `kho verify`, so
// both read a handover the same way. Each root entry is attached with the reader its
// compatible string names; what it holds is reported as JSON. An entry with a format
// this reader does not know is reported as such, never guessed at.
#pragma once

#include <kho/handover.hpp>
#include <kho/handover_check.hpp>
#include <kho/model/inspect_luo.hpp>
#include <kho/model/inspect_radix.hpp>
#include <kho/model/inspect_xarray.hpp>
#include <kho/model/physical_memory.hpp>
#include <kho/model/report.hpp>
#include <kho/model/scratch_pages.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace kho::model {

/// Reads one root entry's structure in place. The JSON it returns has "ok" (bool),
/// "summary" (one line for people), "error" (describe_error) when not ok, and whatever
/// the structure has to say. Each structure's reader lives in model/inspect_<name>.hpp.
template <unsigned PageShift, Memory M>
struct entry_reader {
  const char* compatible;
  nlohmann::json (*read)(const M&, const handover_entry&);
};

/// Readers by compatible string. Reading a blob needs nothing beyond the root's checksum.
template <unsigned PageShift = 12, Memory M>
const entry_reader<PageShift, M>* find_entry_reader(const char* compatible) {
  static const entry_reader<PageShift, M> readers[] = {
      {radix_compatible, read_radix<PageShift, M>},
      {luo_compatible, read_luo<PageShift, M>},
      {xarray_compatible, read_xarray<PageShift, M>},
      {"kho-blob-v1",
       [](const M&, const handover_entry& e) -> nlohmann::json {
         return {{"ok", true}, {"summary", fmt::format("{} bytes, checksum verified", e.size.get())}};
       }},
  };
  for (const entry_reader<PageShift, M>& r : readers)
    if (std::string_view(r.compatible) == compatible) return &r;
  return nullptr;
}

/// Attaches the handover at `root` and reads every entry. The result has "status" ("ok" or
/// the error's name), "root" and "entries" (each with its own "ok").
/// Every structure is validated and every page checked for one owner and preservation
/// (attach_handover) before any entry is read; `options` can waive the preservation
/// check for a bare root.
/// Pages are 2^PageShift bytes; `mem` is any Memory with a size() in bytes (the
/// ceiling of the readers' scratch is set from it; what is mapped is what they use).
template <unsigned PageShift = 12, Memory M>
nlohmann::json inspect(const M& mem, phys_addr root, const handover_check_options& options = {}) {
  nlohmann::json out;
  out["root"] = hex(root.value);
  // The check's scratch is gone before the entries' readers take theirs: its chunks go
  // back to this thread's pool for them (model/scratch_pages.hpp).
  auto view = [&] {
    scratch_pages<PageShift> scratch(mem);
    return attach_handover<PageShift>(mem, root, scratch.pages(), options);
  }();
  if (!view) {
    out["status"] = to_string(view.code());
    out["error"] = describe_error(view.err());
    out["entries"] = nlohmann::json::array();
    return out;
  }
  out["generation"] = view->generation();
  bool all_ok = true;
  nlohmann::json entries = nlohmann::json::array();
  for (const handover_entry& e : *view) {
    nlohmann::json j{{"name", e.name},
                     {"compatible", e.compatible},
                     {"phys", hex(e.phys.get())},
                     {"size", e.size.get()},
                     {"checksum", hex(e.checksum.get())}};
    if (const auto* reader = find_entry_reader<PageShift, M>(e.compatible)) {
      j["known_format"] = true;
      j.update(reader->read(mem, e));
      if (!j.value("ok", false)) all_ok = false;
    } else {
      j["ok"] = true;
      j["known_format"] = false;
      j["summary"] = "format unknown to this reader; checksum verified";
    }
    entries.push_back(std::move(j));
  }
  out["entries"] = std::move(entries);
  out["status"] = all_ok ? "ok" : "entry failed";
  return out;
}

}  // namespace kho::model
