// kho/model/inspect_radix.hpp: the preserved-memory map as JSON (hosted only).
#pragma once

#include <kho/handover.hpp>
#include <kho/model/report.hpp>
#include <kho/model/scratch_pages.hpp>
#include <kho/preserve_bitmap.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace kho::model {

/// Attaches the radix tree at `root` (a bare kho-v2 tree or a root entry's) and
/// reports per-order counts, the coalesced ranges as ["start", "size"] hex pairs, and
/// the tree's own pages. Validation's visited set lives in scratch pages of its own;
/// the node list has one slot per page of memory, allocated but never touched beyond
/// the nodes actually found (so a sparse 1 TiB image costs what its tree holds).
/// With `deep_checksum`, every node's bytes must also hash to it.
inline nlohmann::json radix_report(const flat_memory& mem, phys_addr root,
                                   std::optional<u64> deep_checksum = std::nullopt) {
  scratch_pages scratch(mem);
  const u64 slots = mem.size() / page_geometry<>::size + 1;
  auto nodes = std::make_unique_for_overwrite<u64[]>(slots);
  auto view = attach_preserve_bitmap(mem, root, scratch.pages(), std::span<u64>(nodes.get(), slots));
  auto refuse = [](const error& e) -> nlohmann::json {
    return {{"ok", false}, {"error", describe_error(e)},
            {"summary", fmt::format("refused: {}", format_error(e))}};
  };
  if (!view) return refuse(view.err());
  if (deep_checksum && view->deep_checksum() != *deep_checksum)
    return refuse(make_error(errc::bad_checksum, "radix", root));
  nlohmann::json counts = nlohmann::json::object();
  for (unsigned o = 0; o <= radix_geometry<12>::max_order; ++o)
    if (view->count(order{o}) != 0) counts[std::to_string(o)] = view->count(order{o});
  nlohmann::json ranges = nlohmann::json::array();
  u64 bytes = 0;
  view->for_each_range([&](phys_addr start, u64 size) {
    ranges.push_back({hex(start.value), hex(size)});
    bytes += size;
  });
  return {{"ok", true},
          {"root", hex(root.value)},
          {"blocks", view->total()},
          {"orders", counts},
          {"tree_pages", view->node_count()},
          {"preserved_bytes", bytes},
          {"ranges", ranges},
          {"summary", fmt::format("{} blocks in {} ranges, {} MiB preserved, {} tree pages",
                                  view->total(), ranges.size(), bytes >> 20, view->node_count())}};
}

/// Root-entry reader for compatible "kho-radix-v1".
inline nlohmann::json read_radix(const flat_memory& mem, const handover_entry& e) {
  std::optional<u64> deep;
  if (e.flags.get() & entry_deep_checksum) deep = e.deep_checksum.get();
  return radix_report(mem, phys_addr{e.phys.get()}, deep);
}

}  // namespace kho::model
