// kho/model/demo_xarray.hpp: a memfd-shaped file on the KHO xarray, for the kexec demo
// (hosted only).
//
// The old kernel's side preserves a sparse "file": page index -> folio, as a memfd's
// page cache is. Folios have mixed orders (4 KiB pages, 2 MiB and, when the memory
// allows, 1 GiB folios, each ONE multi-order entry), and carry the memfd flags both in
// the value (pfn << 12 | flags, as memfd-v1's records) and as xarray marks so that the
// next kernel can find the dirty ones without reading the rest. The next kernel's side
// attaches, adopts the map with its own page source and keeps faulting pages in.
#pragma once

#include <kho/handover.hpp>
#include <kho/model/inspect_xarray.hpp>
#include <kho/xarray.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace kho::model {

inline constexpr const char* memfd_entry_name = "memfd:demo";
inline constexpr u64 memfd_flag_dirty = 1;     // memfd-v1's flag bits
inline constexpr u64 memfd_flag_uptodate = 2;
inline constexpr xa_mark memfd_mark_dirty = xa_mark::mark0;
inline constexpr xa_mark memfd_mark_uptodate = xa_mark::mark1;

/// The value a memfd folio is recorded with: its first pfn and its flags.
inline u64 memfd_value(phys_addr folio, u64 flags, unsigned page_shift = 12) {
  return ((folio.value >> page_shift) << 12) | flags;
}

/// Allocates a folio of order `o`, records it at `index` with `flags` and the marks
/// that mirror them. Errors: those of the page source and of the xarray.
template <class Xarray, PageSource Source>
status add_demo_folio(Xarray& file, Source& pages, u64 index, order o, u64 flags) {
  auto folio = pages.alloc(o);
  if (!folio) return folio.err();
  KHO_TRY(file.store_range(index, o, memfd_value(*folio, flags, Xarray::page_shift)));
  if (flags & memfd_flag_dirty) KHO_TRY(file.set_mark(index, memfd_mark_dirty));
  if (flags & memfd_flag_uptodate) KHO_TRY(file.set_mark(index, memfd_mark_uptodate));
  return {};
}

/// Builds the demo file from `pages` and adds its sealed root to `root` as
/// memfd_entry_name with the xarray's compatible string: 100 pages at indices 0..99
/// (every third dirty), three 2 MiB folios at 1024, 1536 and 3584, a 1 GiB folio at
/// 786432 if the page source has one (skipped otherwise), and 50 pages scattered from
/// index 10^9. Pass a preserving_page_source to have every page preserved as it is
/// allocated. Errors: out_of_memory and whatever the writers report.
template <PageSource Source, class RootWriter>
status build_demo_memfd(Source& pages, RootWriter& root) {
  auto made = make_xarray<u64, 12>(pages);
  if (!made) return made.err();
  auto& file = *made;
  for (u64 i = 0; i < 100; ++i)
    KHO_TRY(add_demo_folio(file, pages, i, order{0}, memfd_flag_uptodate | (i % 3 == 0 ? memfd_flag_dirty : 0)));
  for (u64 i : {u64{1024}, u64{1536}, u64{3584}})
    KHO_TRY(add_demo_folio(file, pages, i, order{9}, memfd_flag_uptodate | (i == 1536 ? memfd_flag_dirty : 0)));
  if (status s = add_demo_folio(file, pages, u64{3} << 18, order{18}, memfd_flag_uptodate);
      !s && s.code() != errc::out_of_memory && s.code() != errc::out_of_range)
    return s;
  for (u64 i = 0; i < 50; ++i)
    KHO_TRY(add_demo_folio(file, pages, u64{1000000000} + i * 4099, order{0}, memfd_flag_dirty | memfd_flag_uptodate));
  file.seal();
  return root.add(memfd_entry_name, kho::xarray_compatible, file.root(), file.root_size);
}

/// Counts the entries carrying `m` by skipping through find_marked.
template <class Map>
u64 count_marked(const Map& file, xa_mark m) {
  u64 n = 0;
  for (auto e = file.find_marked(0, m); e; e = file.find_marked(e->last() + 1, m)) {
    ++n;
    if (e->last() == ~u64{0}) break;
  }
  return n;
}

/// The next kernel's side: attaches the file named by `entry` through `fresh`'s memory,
/// adopts it with `fresh` as its page source, writes back the dirty 2 MiB folio (clears
/// its dirty mark), faults in `faults` new pages after the last index, seals, attaches
/// again and reports JSON: "ok", "before" and "after" (count, height, nodes),
/// "dirty_before", "dirty_after", "faulted", "summary", or "error" when not ok.
template <PageSource Source>
nlohmann::json reclaim_demo_memfd(Source& fresh, phys_addr file_root, u64 faults = 64) {
  auto error_json = [](const error& e) { return xarray_failure_json("memfd refused", e); };
  const auto& mem = fresh.memory();
  auto view = attach_xarray<u64, 12>(mem, file_root, fresh);  // scratch: lent back
  if (!view) return error_json(view.err());
  auto shape = [](const auto& x) {
    return nlohmann::json{{"count", x.count()}, {"height", x.height()}, {"nodes", x.nodes()}};
  };
  nlohmann::json out{{"ok", true}, {"before", shape(*view)}, {"dirty_before", count_marked(*view, memfd_mark_dirty)}};
  auto file = xarray<u64, 12, Source>::adopt(*view, fresh);
  if (!file) return error_json(file.err());
  if (status s = file->clear_mark(1536, memfd_mark_dirty); !s && s.code() != errc::not_found)
    return error_json(s.err());
  // Faults land past the file's last entry: a page index a folio already covers would
  // replace that folio.
  u64 next = 0;
  file->for_each(0, ~u64{0}, [&](const auto& e) { next = e.last() + 1; });
  for (u64 i = 0; i < faults; ++i)
    if (status s = add_demo_folio(*file, fresh, next + i, order{0}, memfd_flag_dirty | memfd_flag_uptodate); !s)
      return error_json(s.err());
  file->seal();
  auto again = attach_xarray<u64, 12>(mem, file->root(), fresh);
  if (!again) return error_json(again.err());
  out["after"] = shape(*again);
  out["dirty_after"] = count_marked(*again, memfd_mark_dirty);
  out["faulted"] = faults;
  out["summary"] = fmt::format("memfd adopted: {} -> {} entries, {} faulted in after kexec",
                               out["before"]["count"].get<u64>(), again->count(), faults);
  return out;
}

/// The same, for the handover root's entry.
template <PageSource Source>
nlohmann::json reclaim_demo_memfd(Source& fresh, const handover_entry& entry, u64 faults = 64) {
  return reclaim_demo_memfd(fresh, phys_addr{entry.phys.get()}, faults);
}

}  // namespace kho::model
