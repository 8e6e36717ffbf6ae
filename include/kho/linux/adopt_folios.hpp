// kho/linux/adopt_folios.hpp: a retrieved file's folios adopted into a kho xarray
// (kho/xarray.hpp), the next kernel's page-cache index -> folio map.
//
// The Linux formats hand the folios over as a flat array (huge-memfd-v1,
// guest_memfd_luo_v1); a kernel that keeps using the file wants them looked up by
// index. Each folio becomes ONE entry of its order (store_range): a 2 MiB huge folio
// of a 4 KiB-page file is one record covering 512 indices, not 512 entries. Keys are
// base-page indices (the formats' `index`: for a huge-memfd already counted in base
// pages, aligned to the order by the reader), so every base page inside a folio
// resolves to it; the value is the folio's head pfn (never 0: the readers refuse or
// skip a pfn of 0, and 0 is the xarray's "absent").
//
// Freestanding: the xarray allocates its nodes from the caller's PageSource (pair it
// with preserving_page_source and the map is itself preserved for the next handover).
// Complexity: O(nr_folios * (H + log compact_capacity)) plus node splits.
#pragma once

#include <kho/linux/guest_memfd.hpp>
#include <kho/linux/hugetlb.hpp>
#include <kho/result.hpp>
#include <kho/xarray.hpp>

namespace kho::upstream {

/// Stores every folio of a validated huge-memfd-v1 view into `xa` as one entry of the
/// file's order at its base-page index, value its head pfn. Returns the entries added.
/// Errors: store_range's (out_of_memory; the entries stored so far stay).
template <class XArray, Memory M, unsigned PageShift>
result<u64> adopt_folios(XArray& xa, const huge_memfd_view<M, PageShift>& file) {
  status s;
  u64 n = 0;
  file.for_each_folio([&](const huge_folio& f) {
    if (s) s = xa.store_range(f.index, order{file.folio_order()}, f.frame.value);
    if (s) ++n;
  });
  if (!s) return s.err();
  return n;
}

/// The same for a guest_memfd_luo_v1 view: order-0 entries (records with pfn 0 are
/// skipped, as the kernel skips them).
template <class XArray, Memory M, unsigned PageShift>
result<u64> adopt_folios(XArray& xa, const guest_memfd_view<M, PageShift>& file) {
  status s;
  u64 n = 0;
  file.for_each_folio([&](const guest_memfd_folio& f) {
    if (s) s = xa.store_range(f.index, order{0}, f.frame.value);
    if (s) ++n;
  });
  if (!s) return s.err();
  return n;
}

}  // namespace kho::upstream
