// kho/model/inspect_holes.hpp: unpreserved memory of a handover image as JSON (hosted).
//
// For `kho dump --holes`: the memory file's own range stands for the RAM, the radix
// tree at `radix_root` for what is preserved, and the tree's pages count as busy.
#pragma once

#include <kho/hole_finder.hpp>
#include <kho/model/report.hpp>
#include <kho/model/scratch_pages.hpp>
#include <kho/preserve_bitmap.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <span>
#include <vector>

namespace kho::model {

/// Holes of 2 MiB or more: what a huge page or a scratch extension can use.
inline constexpr u64 holes_report_min = u64{2} << 20;

/// Attaches the tree at `radix_root` and reports the largest hole of the memory's
/// range as ["start", "size"] hex, the number of holes of at least 2 MiB, and totals.
/// On failure {"ok": false, "error", "summary"}.
inline nlohmann::json holes_report(const flat_memory& mem, phys_addr radix_root) {
  using geometry = page_geometry<>;
  auto refuse = [&](const error& e) {
    return nlohmann::json{{"ok", false},
                          {"error", describe_error(e)},
                          {"summary", fmt::format("refused: {}", format_error(e))}};
  };
  scratch_pages scratch(mem);
  const u64 slots = mem.size() / geometry::size + 1;  // touched only up to the node count
  auto nodes = std::make_unique_for_overwrite<u64[]>(slots);
  auto view = attach_preserve_bitmap(mem, radix_root, scratch.pages(), std::span<u64>(nodes.get(), slots));
  if (!view) return refuse(view.err());
  // RAM: the memory's pages (a base or size off a page boundary loses the partial page).
  const u64 start = (mem.base().value + geometry::mask) & ~geometry::mask;
  const u64 end = mem.end().value & ~geometry::mask;
  if (start >= end) return refuse(make_error(errc::invalid_argument, "holes", mem.base()));
  const phys_range ram[] = {{phys_addr{start}, phys_addr{end}}};
  auto finder = make_hole_finder(*view, ram);
  if (!finder) return refuse(finder.err());

  u64 holes = 0, large = 0, free_bytes = 0;
  if (status s = finder->for_each_hole([&](phys_addr, u64 size) {
        ++holes;
        large += size >= holes_report_min;
        free_bytes += size;
      });
      !s)
    return refuse(s.err());
  auto largest = finder->largest_hole();
  nlohmann::json largest_json = nullptr;
  if (largest) largest_json = {hex(largest->start.value), hex(largest->size())};
  return {{"ok", true},
          {"largest_hole", largest_json},
          {"holes_over_2mib", large},
          {"holes", holes},
          {"free_bytes", free_bytes},
          {"ram", {hex(start), hex(end - start)}},
          {"summary",
           largest ? fmt::format("largest hole {} ({} KiB), {} holes of 2 MiB or more, {} KiB free in {} holes",
                                 hex(largest->start.value), largest->size() >> 10, large, free_bytes >> 10, holes)
                   : std::string("no hole: every page is preserved or holds the tree")}};
}

}  // namespace kho::model
