// kho/xarray/insert.hpp: insertion: growing and lowering the height, placing a record, splitting a
// full compact leaf in two halves of its run, bursting it into a branch or a dense leaf.
#pragma once

#include <kho/xarray/writer.hpp>

namespace kho {

/// Raises the height until the root covers index `last`. Errors: out_of_memory.
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::grow_for(u64 last) -> status {
  touch();
  xarray_root& r = rb();
  const unsigned want = geo::height_for(last);
  while (r.height.get() < want) {
    const u64 ref = r.root.get();
    const unsigned h = r.height.get();
    if (ref == 0) {
      r.height.set(want);
    } else if (kind(ref) == detail::xa_compact) {
      detail::header(node(ref)).level = static_cast<u8>(want);
      detail::header(node(ref)).shift = static_cast<u8>(geo::cover(want));
      r.height.set(want);
    } else {
      u64 pa = 0;
      auto br = new_header_node(detail::xa_branch_magic, h + 1, 0, geo::cover(h + 1), pa);
      if (!br) return br.err();
      write_slots(*br, 0, 1, ref);
      detail::header(*br).entries.set(r.count.get());
      refresh_slot(*br, 0);
      r.root.set(ref_of(pa, detail::xa_branch));
      r.height.set(h + 1);
    }
  }
  return {};
}

/// Lowers the height while the top branch holds one child at slot 0.
template <class Value, unsigned PageShift, PageSource Source>
inline void xarray<Value, PageShift, Source>::shrink() {
  touch();
  xarray_root& r = rb();
  for (;;) {
    const u64 ref = r.root.get();
    if (ref == 0) {
      r.height.set(0);
      return;
    }
    unsigned char* n = node(ref);
    if (kind(ref) == detail::xa_compact) {
      const u64 count = read::c_count(n);
      const unsigned h = geo::height_for(read::c_entry(n, count - 1).last());
      detail::header(n).level = static_cast<u8>(h);
      detail::header(n).shift = static_cast<u8>(geo::cover(h));
      detail::header(n).base.set(0);
      r.root.set(ref & ~(detail::xa_run_mask << detail::xa_run_shift));
      r.height.set(h);
      return;
    }
    const u64 first = read::slot(n, 0);
    const u64 used = detail::header(n).count.get();
    const bool only_branch = kind(first) == detail::xa_branch && used == 1;
    const bool only_leaf =
        kind(first) == detail::xa_compact && used == (u64{1} << read::run_of(first));
    if (!only_branch && !only_leaf) return;
    free_node(ref);
    r.root.set(first);
    r.height.set(r.height.get() - 1);
  }
}

/// The largest aligned run (at least 2^need slots) of empty slots around j.
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::free_run(const unsigned char* br,
    unsigned h, u64 j, unsigned need) -> unsigned {
  unsigned run = need;
  while (run < geo::slot_log(h)) {
    const u64 n = u64{1} << (run + 1), js = j & ~(n - 1);
    bool empty = true;
    for (u64 k = js; k < js + n && empty; ++k) empty = read::slot(br, k) == 0;
    if (!empty) break;
    ++run;
  }
  return run;
}

/// Inserts a record where no entry overlaps it. Errors: out_of_memory.
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::insert(u64 index, unsigned o, const Value& v) -> status {
  KHO_TRY(grow_for(index + geo::span_mask(o)));
  for (;;) {
    xarray_root& r = rb();
    const u64 ref = r.root.get();
    unsigned h = r.height.get();
    if (ref == 0) {
      u64 pa = 0;
      auto leaf = new_header_node(detail::xa_compact_magic, h, 0, geo::cover(h), pa);
      if (!leaf) return leaf.err();
      c_insert(*leaf, index, o, v);
      r.root.set(ref_of(pa, detail::xa_compact));
      r.count.set(1);
      return {};
    }
    if (kind(ref) == detail::xa_compact) {
      unsigned char* leaf = node(ref);
      if (read::c_count(leaf) == geo::compact_capacity) {
        KHO_TRY(split_root());
        continue;
      }
      c_insert(leaf, index, o, v);
      r.count.set(r.count.get() + 1);
      return {};
    }
    frame path[geo::max_height + 1];
    unsigned depth = 0;
    unsigned char* br = node(ref);
    u64 base = 0;
    bool again = false;
    for (;;) {
      const unsigned sb = geo::slot_bits(h);
      const u64 j = (index - base) >> sb;
      path[depth++] = frame{br, h, base, j};
      const u64 child = read::slot(br, j);
      if (child == 0) {
        const unsigned run = free_run(br, h, j, o >= sb ? o - sb : 0);
        const u64 js = j & ~((u64{1} << run) - 1);
        u64 pa = 0;
        auto leaf = new_header_node(detail::xa_compact_magic, h, base + (js << sb), sb + run, pa);
        if (!leaf) return leaf.err();
        c_insert(*leaf, index, o, v);
        write_slots(br, js, u64{1} << run, ref_of(pa, detail::xa_compact, run));
        break;
      }
      if (kind(child) == detail::xa_branch) {
        base += j << sb;
        br = node(child);
        --h;
        continue;
      }
      if (kind(child) == detail::xa_compact) {
        unsigned char* leaf = node(child);
        if (read::c_count(leaf) == geo::compact_capacity) {
          KHO_TRY(split(br, h, base, j));
          again = true;
          break;
        }
        c_insert(leaf, index, o, v);
        break;
      }
      unsigned char* sec = nullptr;
      if (o > 0) {
        auto s = ensure_side(br, j);
        if (!s) return s.err();
        sec = *s;
      } else {
        sec = read::side_section(memory(), br, j);
      }
      d_write(node(child), sec, index - base - (j << sb), o, v, 0);
      set_dense_count(br, j, read::dense_count(br, j) + 1);
      break;
    }
    if (again) continue;
    refresh_path(path, depth, 1);
    return {};
  }
}

/// A full compact root becomes the only child of a new branch. Errors: out_of_memory.
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::split_root() -> status {
  xarray_root& r = rb();
  const u64 ref = r.root.get();
  const unsigned h = r.height.get(), level = h == 0 ? 1 : h;
  const unsigned run = h == 0 ? 0 : geo::slot_log(h);
  u64 pa = 0;
  auto br = new_header_node(detail::xa_branch_magic, level, 0, geo::cover(level), pa);
  if (!br) return br.err();
  unsigned char* leaf = node(ref);
  detail::header(leaf).level = static_cast<u8>(level);
  write_slots(*br, 0, u64{1} << run, ref_of(ref & ~geo::page_mask, detail::xa_compact, run));
  detail::header(*br).entries.set(read::c_count(leaf));
  refresh_slot(*br, 0);
  r.root.set(ref_of(pa, detail::xa_branch));
  r.height.set(level);
  return {};
}

/// Makes room in the full compact leaf at slot j of `br`: halves its run, or bursts it
/// into a branch one level down, or (level 1, one slot) turns it into a dense leaf.
/// Errors: out_of_memory (nothing changed).
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::split(unsigned char* br, unsigned h, u64 base, u64 j) -> status {
  touch();
  const unsigned sb = geo::slot_bits(h);
  const u64 ref = read::slot(br, j);
  const u64 pa = ref & ~geo::page_mask;
  const unsigned run = read::run_of(ref);
  unsigned char* leaf = node(ref);
  const u64 n = read::c_count(leaf);
  if (run > 0) {
    const unsigned half = run - 1;
    const u64 js = j & ~((u64{1} << run) - 1), mid_j = js + (u64{1} << half);
    const u64 mid = base + (mid_j << sb);
    const u64 p = c_lower(leaf, mid);
    u64 lower = ref_of(pa, detail::xa_compact, half), upper = 0;
    if (p == 0) {
      std::swap(lower, upper);
      detail::header(leaf).base.set(mid);
    } else if (p < n) {
      u64 upa = 0;
      auto up = new_header_node(detail::xa_compact_magic, h, mid, sb + half, upa);
      if (!up) return up.err();
      c_move(*up, 0, leaf, p, n - p);
      c_set_count(*up, n - p);
      c_zero(leaf, p, n - p);
      c_set_count(leaf, p);
      upper = ref_of(upa, detail::xa_compact, half);
    }
    detail::header(leaf).shift = static_cast<u8>(sb + half);
    write_slots(br, js, u64{1} << half, lower);
    write_slots(br, mid_j, u64{1} << half, upper);
    set_summary(br, js, u64{1} << half, child_marks(br, js));
    set_summary(br, mid_j, u64{1} << half, child_marks(br, mid_j));
    return {};
  }
  const u64 cbase = base + (j << sb);
  if (h >= 2) {
    u64 bpa = 0;
    auto nb = new_header_node(detail::xa_branch_magic, h - 1, cbase, sb, bpa);
    if (!nb) return nb.err();
    detail::header(leaf).level = static_cast<u8>(h - 1);
    write_slots(*nb, 0, geo::fanout, ref_of(pa, detail::xa_compact, geo::branch_bits));
    detail::header(*nb).entries.set(n);
    refresh_slot(*nb, 0);
    write_slots(br, j, 1, ref_of(bpa, detail::xa_branch));
    return {};
  }
  bool needs_side = false;
  for (u64 i = 0; i < n; ++i) needs_side |= read::c_order(leaf, i) != 0 || read::c_marks(leaf, i) != 0;
  auto dpa = new_node();
  if (!dpa) return dpa.err();
  unsigned char* sec = nullptr;
  if (needs_side) {
    auto s = ensure_side(br, j);
    if (!s) {
      free_node(*dpa);
      return s.err();
    }
    sec = *s;
  }
  unsigned char* dense = node(*dpa);
  for (u64 i = 0; i < n; ++i)
    d_write(dense, sec, read::c_key(leaf, i) - cbase, read::c_order(leaf, i), read::c_value(leaf, i),
            read::c_marks(leaf, i));
  set_dense_count(br, j, n);
  write_slots(br, j, 1, ref_of(*dpa, detail::xa_dense));
  free_node(ref);
  return {};
}

}  // namespace kho
