// kho/xarray/remove.hpp: removing whole ranges and subtrees: what erase and a replacing store_range do.
#pragma once

#include <kho/xarray/writer.hpp>

namespace kho {

template <class Value, unsigned PageShift, PageSource Source>
inline void xarray<Value, PageShift, Source>::free_subtree(u64 ref, unsigned h) {
  if (ref == 0) return;
  if (kind(ref) == detail::xa_branch) {
    unsigned char* br = node(ref);
    for (u64 j = 0; j < geo::fanout; ++j) {
      const u64 child = read::slot(br, j);
      if (child == 0) continue;
      free_subtree(child, h - 1);
      if (kind(child) == detail::xa_compact) j |= (u64{1} << read::run_of(child)) - 1;
    }
    for (u64 g = 0; g < geo::side_count; ++g)
      if (u64 s = detail::get64(br + geo::side_off + 8 * g)) free_node(s);
  }
  free_node(ref);
}

/// Removes every entry inside [lo, hi] (callers widen the range to whole entries).
template <class Value, unsigned PageShift, PageSource Source>
inline void xarray<Value, PageShift, Source>::remove_range(u64 lo, u64 hi) {
  touch();
  xarray_root& r = rb();
  const u64 ref = r.root.get();
  const unsigned h = r.height.get();
  if (ref == 0) return;
  u64 removed = 0;
  unsigned char* n = node(ref);
  if (kind(ref) == detail::xa_compact) {
    removed = c_remove(n, lo, hi);
  } else {
    removed = b_remove(n, h, 0, lo, hi);
  }
  if (detail::header(n).entries.get() == 0) {
    free_subtree(ref, h);
    r.root.set(0);
  }
  r.count.set(r.count.get() - removed);
  r.marks.set(root_marks());
}

template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::b_remove(unsigned char* br, unsigned h,
    u64 base, u64 lo, u64 hi) -> u64 {
  const unsigned sb = geo::slot_bits(h);
  const u64 usable_last = (u64{1} << geo::slot_log(h)) - 1;
  const u64 j0 = lo > base ? (lo - base) >> sb : 0;
  const u64 j1 = ((hi - base) >> sb) < usable_last ? (hi - base) >> sb : usable_last;
  u64 removed = 0;
  for (u64 j = j0; j <= j1; ++j) {
    const u64 ref = read::slot(br, j);
    if (ref == 0) continue;
    const u64 cbase = base + (j << sb);
    if (kind(ref) == detail::xa_compact) {
      const u64 n = u64{1} << read::run_of(ref), js = j & ~(n - 1);
      unsigned char* leaf = node(ref);
      const u64 k = c_remove(leaf, lo, hi);
      removed += k;
      if (read::c_count(leaf) == 0) {
        free_node(ref);
        write_slots(br, js, n, 0);
      }
      if (k != 0) set_summary(br, js, n, child_marks(br, j));
      j = js + n - 1;
      continue;
    }
    if (kind(ref) == detail::xa_dense) {
      removed += d_remove(br, j, cbase, lo, hi);
      if (read::dense_count(br, j) == 0) {
        free_node(ref);
        write_slots(br, j, 1, 0);
      }
      drop_side_if_empty(br, j);
    } else {
      unsigned char* child = node(ref);
      if (lo <= cbase && cbase + geo::span_mask(sb) <= hi) {
        removed += detail::header(child).entries.get();
        free_subtree(ref, h - 1);
        write_slots(br, j, 1, 0);
      } else {
        removed += b_remove(child, h - 1, cbase, lo, hi);
        if (detail::header(child).entries.get() == 0) {
          free_subtree(ref, h - 1);
          write_slots(br, j, 1, 0);
        }
      }
    }
    set_summary(br, j, 1, child_marks(br, j));
  }
  detail::xa_node_header& hd = detail::header(br);
  hd.entries.set(hd.entries.get() - removed);
  hd.marks = branch_marks(br);
  return removed;
}

}  // namespace kho
