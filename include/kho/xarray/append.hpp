// kho/xarray/append.hpp: the bulk path: append_ordered writes index-ordered entries into the rightmost
// leaf without a search and opens the next dense leaf directly.
#pragma once

#include <kho/xarray/writer.hpp>

namespace kho {

/// Brings the counts up to date with the appends made since the tail hint was taken.
/// Descends again (the mapping may have changed since): O(H).
template <class Value, unsigned PageShift, PageSource Source>
inline void xarray<Value, PageShift, Source>::flush_tail() {
  tail_hint& t = tail_;
  if (t.pending == 0) return;
  spot at;
  if (locate(t.last, at) && !at.compact()) {
    const step& f = at.path[at.depth - 1];
    set_dense_count(f.br, f.j, read::dense_count(f.br, f.j) + t.pending);
    count_by(at, t.pending);
  }
  t.pending = 0;
}

/// Writes entries from `e` on while each is unmarked, of order 0, not the all-zero
/// value and lands in the open dense leaf after its last entry; returns the first it
/// did not write. Such a slot is absent (past the last entry) and carries no side
/// bits; the counts follow at the next other change, at seal() or when the leaf is
/// left (pending).
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::append_run(const entry* e, const entry* end) -> const entry* {
  tail_hint& t = tail_;
  if (e == end || !t.dense || t.gen != gen_ || t.anchor != &rb()) return e;
  unsigned char* const leaf = t.at.leaf;
  const u64 leaf_last = t.leaf_last;
  u64 last = t.last, n = 0;
  for (; e != end; ++e, ++n) {
    const u64 index = e->index;
    if (e->span.value != 0 || e->marks != 0 || index <= last || index > leaf_last || detail::is_zero_value(e->value))
      break;
    std::memcpy(leaf + geo::value_size * (index & (geo::leaf_slots - 1)), &e->value, sizeof(Value));
    last = index;
  }
  t.pending += n;
  t.last = last;
  return e;
}

template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::append_slow(u64 index, order o, const Value& v) -> status {
  if (o.value > 63) return errc::out_of_range;
  if ((index & geo::span_mask(o.value)) != 0) return errc::misaligned;
  if (detail::is_zero_value(v)) return errc::invalid_argument;
  flush_tail();
  tail_hint& t = tail_;
  xarray_root& r = rb();
  const bool hint = t.gen == gen_ && t.anchor == &r;
  const bool any = r.root.get() != 0;
  const u64 last = hint ? t.last : any ? last_index() : 0;
  if (any && index <= last) return errc::invalid_argument;
  if (hint && !t.dense && o.value == 0 && index <= t.leaf_last) {
    unsigned char* leaf = t.at.leaf;
    const u64 n = read::c_count(leaf);
    if (n < geo::compact_capacity) {  // after every record: no record moves
      detail::put64(leaf + geo::keys_off + 8 * n, index);
      std::memcpy(leaf + geo::values_off + geo::value_size * n, &v, sizeof v);
      detail::header(leaf).count.set(static_cast<u32>(n + 1));
      detail::header(leaf).entries.set(n + 1);
      count_up(t.at);
      t.last = index;
      return {};
    }
  }
  // A run of consecutive indices that filled a dense leaf crosses into the next leaf's
  // window: start that leaf dense (a compact leaf would fill and burst at once).
  const bool dense_next = o.value == 0 && hint && t.dense && index == last + 1 && r.height.get() >= 1 &&
                          read::dense_count(t.at.path[t.at.depth - 1].br, t.at.path[t.at.depth - 1].j) >=
                              geo::compact_capacity;
  settle();
  if (!(dense_next && open_dense(index, v))) {
    KHO_TRY(store_range(index, o, v));
  }
  return take_tail(index + geo::span_mask(o.value));
}

/// True if `index` starts a leaf's window right after a dense leaf that a run of
/// consecutive indices filled beyond a compact leaf's capacity, ending at index - 1:
/// ascending stores then open the next leaf dense instead of filling and bursting a
/// compact one (a dense leaf opened so is at worst one page per compact_capacity
/// entries stored before it).
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::follows_dense_run(u64 index) const -> bool {
  if ((index & (geo::leaf_slots - 1)) != 0 || index == 0) return false;
  spot at;
  if (!locate(index - 1, at) || at.compact()) return false;
  const step& f = at.path[at.depth - 1];
  return read::dense_count(f.br, f.j) >= geo::compact_capacity && read::d_present(at.leaf, geo::leaf_slots - 1);
}

/// Creates the branches down to level 1 and a dense leaf holding `v` at `index`, where
/// the path is free of leaves. False (nothing changed) where a leaf is in the way or a
/// page is missing: every page is allocated before anything is linked.
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::open_dense(u64 index, const Value& v) -> bool {
  xarray_root& r = rb();
  unsigned h = r.height.get();
  if (h == 0 || (geo::cover(h) < 64 && (index >> geo::cover(h)) != 0)) return false;
  u64 ref = r.root.get();
  spot at;
  u64 base = 0;
  unsigned char* br = nullptr;
  u64 j = 0;
  for (;;) {
    if (kind(ref) != detail::xa_branch) return false;
    br = node(ref);
    j = (index - base) >> geo::slot_bits(h);
    at.path[at.depth++] = step{br, j};
    base += j << geo::slot_bits(h);
    const u64 child = read::slot(br, j);
    if (child == 0) break;
    ref = child;
    --h;
  }
  // Slot j of the level-h branch is empty: h - 1 branches and one dense leaf go below.
  u64 pages[geo::max_height + 1];
  for (unsigned k = 0; k < h; ++k) {
    auto pa = new_node();
    if (!pa) {
      while (k-- > 0) free_node(pages[k]);
      return false;
    }
    pages[k] = *pa;
  }
  for (unsigned k = 0; k + 1 < h; ++k) {
    const unsigned level = h - 1 - k;
    unsigned char* nb = node(pages[k]);
    detail::header(nb).magic.set(detail::xa_branch_magic);
    detail::header(nb).level = static_cast<u8>(level);
    detail::header(nb).shift = static_cast<u8>(geo::cover(level));
    detail::header(nb).base.set(base);
    detail::header(nb).entries.set(1);
    write_slots(br, j, 1, ref_of(pages[k], detail::xa_branch));
    br = nb;
    j = (index - base) >> geo::slot_bits(level);
    base += j << geo::slot_bits(level);
  }
  std::memcpy(node(pages[h - 1]) + geo::value_size * (index & (geo::leaf_slots - 1)), &v, sizeof v);
  set_dense_count(br, j, 1);
  write_slots(br, j, 1, ref_of(pages[h - 1], detail::xa_dense));
  at.root = &r;
  count_up(at);
  return true;
}

/// Points the tail hint at the leaf holding `last` (just written, the map's last index).
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::take_tail(u64 last) -> status {
  tail_hint& t = tail_;
  t.gen = ~u64{0};
  if (!locate(last, t.at)) return {};
  t.dense = !t.at.compact();
  if (t.dense) {
    t.leaf_last = last | (geo::leaf_slots - 1);
  } else {
    const detail::xa_node_header& h = detail::header(t.at.leaf);
    t.leaf_last = h.base.get() + geo::span_mask(h.shift);
  }
  t.last = last;
  t.anchor = t.at.root;
  t.gen = gen_;
  return {};
}

/// The last index of the last entry (the map is not empty). Complexity: O(H * fanout).
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::last_index() const -> u64 {
  const xarray_root& r = rb();
  u64 ref = r.root.get();
  unsigned h = r.height.get();
  u64 base = 0;
  while (kind(ref) == detail::xa_branch) {
    const unsigned char* br = node(ref);
    u64 j = (u64{1} << geo::slot_log(h)) - 1;
    while (read::slot(br, j) == 0) --j;  // a branch is never empty
    base += j << geo::slot_bits(h);
    ref = read::slot(br, j);
    --h;
  }
  const unsigned char* leaf = node(ref);
  if (kind(ref) == detail::xa_compact) return read::c_entry(leaf, read::c_count(leaf) - 1).last();
  u64 i = geo::leaf_slots - 1;
  while (!read::d_present(leaf, i)) --i;  // a dense leaf is never empty; a tail ends its entry
  return (base & ~(geo::leaf_slots - 1)) + i;
}

}  // namespace kho
