// kho/model/inspect_radix.hpp: the preserved-memory map as JSON (hosted only).
#pragma once

#include <kho/handover.hpp>
#include <kho/handover_check.hpp>
#include <kho/model/report.hpp>
#include <kho/model/scratch_pages.hpp>
#include <kho/preserve_bitmap.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kho::model {

/// How many ranges a root entry's report lists (as the xarray's lists its first
/// entries): `kho verify` and the kexec model read every entry through inspect(), and
/// what they keep must not grow with the ranges a tree holds. `kho dump` asks for more.
inline constexpr u64 radix_entry_listed_ranges = 8;
/// The default for radix_report: enough for every tree a test or a demo writes.
inline constexpr u64 radix_listed_ranges = 4096;

/// A range's exact end. Preserved blocks are whole pages, so a range the walker reports
/// as ending at 2^64 - 1 was clipped at its exclusive bound ~0, which stands for 2^64:
/// 128 bits hold that end (and a sum of sizes up to 2^64) without losing the byte.
inline wide_u64 exact_range_end(phys_addr start, u64 size) {
  const wide_u64 end = wide_u64{start.value} + size;
  return end == ~u64{0} ? wide_u64{1} << 64 : end;
}

/// Attaches the radix tree at `root` (a bare kho-v2 tree or a root entry's) and
/// reports per-order counts, the number of coalesced ranges (range_count) and the first
/// `max_ranges` of them as ["start", "size"] hex pairs ("ranges_truncated" when there
/// are more), preserved_bytes (hex, exact up to 2^64), and the tree's own pages.
/// Validation's visited set and the node list live in scratch pages of their own, the
/// list doubling until the tree fits (so a sparse 64 TiB image costs what its tree
/// holds, not what its RAM would). With `deep_checksum`, every node's bytes must also
/// hash to it. Pages are 2^PageShift bytes; `mem` is any Memory with a size() in bytes.
/// Complexity: the attach (O(nodes) over the doublings), one walk of the ranges;
/// memory O(nodes + max_ranges).
template <unsigned PageShift = 12, Memory M>
nlohmann::json radix_report(const M& mem, phys_addr root, std::optional<u64> deep_checksum = std::nullopt,
                            u64 max_ranges = radix_listed_ranges) {
  scratch_pages<PageShift> scratch(mem);
  detail::radix_nodes<PageShift, M, typename scratch_pages<PageShift>::source_type> nodes{&scratch.pages()};
  auto view = nodes.attach(mem, root);
  auto refuse = [](const error& e) -> nlohmann::json {
    return {{"ok", false}, {"error", describe_error(e)},
            {"summary", fmt::format("refused: {}", format_error(e))}};
  };
  if (!view) return refuse(view.err());
  if (deep_checksum && view->deep_checksum() != *deep_checksum)
    return refuse(make_error(errc::bad_checksum, "radix", root));
  nlohmann::json counts = nlohmann::json::object();
  for (unsigned o = 0; o <= radix_geometry<PageShift>::max_order; ++o)
    if (view->count(order{o}) != 0) counts[std::to_string(o)] = view->count(order{o});
  nlohmann::json ranges = nlohmann::json::array();
  u64 range_count = 0;
  wide_u64 bytes = 0;
  view->for_each_range([&](phys_addr start, u64 size) {
    const wide_u64 exact = exact_range_end(start, size) - start.value;
    if (range_count++ < max_ranges) ranges.push_back({hex(start.value), hex(exact)});
    bytes += exact;
  });
  return {{"ok", true},
          {"root", hex(root.value)},
          {"blocks", view->total()},
          {"orders", counts},
          {"tree_pages", view->node_count()},
          {"preserved_bytes", hex(bytes)},
          {"range_count", range_count},
          {"ranges", ranges},
          {"ranges_truncated", range_count > ranges.size()},
          {"summary", fmt::format("{} blocks in {} ranges, {} MiB preserved, {} tree pages",
                                  view->total(), range_count, static_cast<u64>(bytes >> 20), view->node_count())}};
}

/// Root-entry reader for compatible "kho-radix-v1".
template <unsigned PageShift = 12, Memory M>
nlohmann::json read_radix(const M& mem, const handover_entry& e) {
  std::optional<u64> deep;
  if (e.flags.get() & entry_deep_checksum) deep = e.deep_checksum.get();
  return radix_report<PageShift>(mem, phys_addr{e.phys.get()}, deep, radix_entry_listed_ranges);
}

}  // namespace kho::model
