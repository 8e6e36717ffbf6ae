// kho/model/demo_holes.hpp: the kexec demo's scratch-growing step (hosted).
//
// The next kernel has validated the preserved-memory map and knows its RAM; its
// scratch ran short by `need` bytes. grow_scratch_report picks the fewest holes that
// cover it (largest first) and says what it chose and how much of the map it read.
#pragma once

#include <kho/hole_finder.hpp>
#include <kho/model/report.hpp>
#include <kho/preserve_bitmap.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <span>
#include <vector>

namespace kho::model {

/// grow_scratch(need) over a validated view, the caller's RAM ranges and optional
/// reserved ranges, in at most `max_pieces` pieces. Returns {"ok": true, "need",
/// "pieces": [["start", "size"], ...] largest first, "piece_count", "bytes",
/// "ranges_read", "summary"} or {"ok": false, "error", "summary"}.
template <Memory M, unsigned PageShift>
nlohmann::json grow_scratch_report(const preserve_bitmap_view<M, PageShift>& view,
                                   std::span<const phys_range> ram, u64 need,
                                   std::span<const phys_range> reserved = {}, unsigned max_pieces = 16) {
  auto refuse = [&](const error& e) {
    return nlohmann::json{{"ok", false},
                          {"need", need},
                          {"error", describe_error(e)},
                          {"summary", fmt::format("cannot grow scratch by {} KiB: {}", need >> 10, format_error(e))}};
  };
  auto finder = make_hole_finder(view, ram, reserved);
  if (!finder) return refuse(finder.err());
  std::vector<phys_range> out(max_pieces);
  auto plan = finder->grow_scratch(need, out);
  if (!plan) return refuse(plan.err());
  nlohmann::json pieces = nlohmann::json::array();
  for (u64 i = 0; i < plan->pieces; ++i) pieces.push_back({hex(out[i].start.value), hex(out[i].size())});
  return {{"ok", true},
          {"need", need},
          {"pieces", pieces},
          {"piece_count", plan->pieces},
          {"bytes", plan->bytes},
          {"ranges_read", finder->stats().ranges},
          {"summary", fmt::format("scratch grown by {} KiB in {} pieces (asked {} KiB)", plan->bytes >> 10,
                                  plan->pieces, need >> 10)}};
}

}  // namespace kho::model
