// kho/model/inspect_holes.hpp: unpreserved memory of a handover image as JSON (hosted).
//
// For `kho dump --holes`: the memory file's own range stands for the RAM, the radix
// tree at `radix_root` for what is preserved, and the tree's pages count as busy.
#pragma once

#include <kho/handover_check.hpp>
#include <kho/hole_finder.hpp>
#include <kho/model/image_memory.hpp>
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
/// range as ["start", "size"] hex, the number of holes of at least 2 MiB, and totals:
/// "ram" is [first RAM byte, RAM bytes], "ram_ranges" every range as ["start", "size"].
/// The RAM is the memory's ranges (ram_ranges: a flat image's one, an ELF core's
/// segments), each shrunk to whole 2^PageShift pages.
/// On failure {"ok": false, "error", "summary"}.
template <unsigned PageShift = 12, Memory M>
nlohmann::json holes_report(const M& mem, phys_addr radix_root) {
  using geometry = page_geometry<PageShift>;
  auto refuse = [&](const error& e) {
    return nlohmann::json{{"ok", false},
                          {"error", describe_error(e)},
                          {"summary", fmt::format("refused: {}", format_error(e))}};
  };
  scratch_pages<PageShift> scratch(mem);
  const std::vector<phys_range> ranges = ram_ranges(mem);
  detail::radix_nodes<PageShift, M, typename scratch_pages<PageShift>::source_type> nodes{&scratch.pages()};
  auto view = nodes.attach(mem, radix_root);
  if (!view) return refuse(view.err());
  // RAM: the memory's pages (a base or size off a page boundary loses the partial page).
  std::vector<phys_range> ram;
  for (const phys_range& r : ranges) {
    const u64 start = (r.start.value + geometry::mask) & ~geometry::mask;
    const u64 end = r.end.value & ~geometry::mask;
    if (start < end) ram.push_back({phys_addr{start}, phys_addr{end}});
  }
  if (ram.empty()) return refuse(make_error(errc::invalid_argument, "holes", ranges.front().start));
  u64 ram_bytes = 0;
  nlohmann::json ram_json = nlohmann::json::array();
  for (const phys_range& r : ram) {
    ram_bytes += r.size();
    ram_json.push_back({hex(r.start.value), hex(r.size())});
  }
  auto finder = make_hole_finder(*view, std::span<const phys_range>(ram));
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
          {"ram", {hex(ram.front().start.value), hex(ram_bytes)}},
          {"ram_ranges", ram_json},
          {"summary",
           largest ? fmt::format("largest hole {} ({} KiB), {} holes of 2 MiB or more, {} KiB free in {} holes",
                                 hex(largest->start.value), largest->size() >> 10, large, free_bytes >> 10, holes)
                   : std::string("no hole: every page is preserved or holds the tree")}};
}

}  // namespace kho::model
