// kho/xarray/in_place.hpp: changes to one entry that move nothing: value, marks and erase in the
// leaf a single descent reaches (the hint that skips even that descent lives here).
#pragma once

#include <kho/xarray/writer.hpp>

namespace kho {

/// Walks to the leaf holding `index`; fills the path. Returns the leaf ref or 0.
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::descend(u64 index, frame* path, unsigned& depth) const -> u64 {
  const xarray_root& r = rb();
  u64 ref = r.root.get();
  unsigned h = r.height.get();
  u64 base = 0;
  depth = 0;
  while (kind(ref) == detail::xa_branch) {
    unsigned char* br = node(ref);
    const u64 j = (index - base) >> geo::slot_bits(h);
    path[depth++] = frame{br, h, base, j};
    base += j << geo::slot_bits(h);
    ref = read::slot(br, j);
    --h;
  }
  return ref;
}

template <class Value, unsigned PageShift, PageSource Source>
inline void xarray<Value, PageShift, Source>::write_value(const entry& e, const Value& v) {
  frame path[geo::max_height + 1];
  unsigned depth = 0;
  const u64 ref = descend(e.index, path, depth);
  unsigned char* n = node(ref);
  if (kind(ref) == detail::xa_compact) {
    const long i = read::c_find(n, e.index);
    std::memcpy(n + geo::values_off + geo::value_size * static_cast<u64>(i), &v, sizeof v);
    return;
  }
  const frame& f = path[depth - 1];
  const u64 i = e.index - leaf_base(f);
  for (u64 k = 0; k < (u64{1} << e.span.value); ++k) std::memcpy(n + geo::value_size * (i + k), &v, sizeof v);
}

/// One descent; summaries change only on the path, and only while a bit flips.
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::change_mark(u64 index, xa_mark m, bool on) -> status {
  const unsigned mi = static_cast<unsigned>(m);
  if (mi >= xa_mark_count) return errc::invalid_argument;
  const u8 bit = static_cast<u8>(1u << mi);
  spot* found;
  if (!reach(index, found)) return errc::not_found;
  const spot& at = *found;
  if (at.compact()) {
    const long p = read::c_find(at.leaf, index);
    if (p < 0) return errc::not_found;
    u8& rec = at.leaf[geo::marks_off + static_cast<u64>(p)];
    if (((rec & bit) != 0) == on) return {};
    rec = static_cast<u8>(on ? rec | bit : rec & ~bit);
    const u8 old = detail::header(at.leaf).marks;
    const u8 now = on ? static_cast<u8>(old | bit) : compact_marks(at.leaf);
    if (now != old) {
      detail::header(at.leaf).marks = now;
      propagate(at, now);
    }
    return {};
  }
  const u64 i = index & (geo::leaf_slots - 1);
  if (!read::d_present(at.leaf, i)) return errc::not_found;
  const step& f = at.path[at.depth - 1];
  unsigned char* sec = at.sec;
  if (sec == nullptr && !on) return {};
  u64 head;
  unsigned ord;
  read::d_extent(sec, i, head, ord);
  if (sec != nullptr && detail::test_bit(read::side_bitmap(sec, mi), head) == on) return {};
  if (on) {
    if (sec == nullptr) {
      auto s = ensure_side(f.br, f.j);
      if (!s) return s.err();
      sec = *s;
    }
    detail::assign_bit(read::side_bitmap(sec, mi), head, true);
    if (!read::summary_bit(f.br, mi, f.j)) propagate(at, child_marks(f.br, f.j));
    return {};
  }
  detail::assign_bit(read::side_bitmap(sec, mi), head, false);
  if (!detail::any_bits(read::side_bitmap(sec, mi), geo::side_bitmap_bytes)) {
    propagate(at, child_marks(f.br, f.j));
    drop_side_if_empty(f.br, f.j);
  }
  return {};
}

/// set_mark's common case, small enough to inline into the caller: an order-0 entry
/// of a dense leaf in the window of the leaf last reached, whose side node exists and
/// whose slot's summary already carries the mark, so nothing above the leaf changes.
/// False (nothing changed) where change_mark must decide.
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::mark_plain(u64 index, xa_mark m) -> bool {
  const unsigned mi = static_cast<unsigned>(m);
  const leaf_hint& h = hint_;
  const spot& at = h.at;
  if (mi >= xa_mark_count || h.gen != gen_ || index - h.first > h.last - h.first || at.sec == nullptr ||
      at.compact() || at.root != &rb())
    return false;
  const u64 i = index & (geo::leaf_slots - 1);
  const step& f = at.path[at.depth - 1];
  if (!read::d_present(at.leaf, i) || !read::summary_bit(f.br, mi, f.j) || !read::d_single(at.sec, i)) return false;
  detail::assign_bit(read::side_bitmap(at.sec, mi), i, true);
  return true;
}

/// Walks to the leaf whose range holds `index`. False if none does (no entry there).
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::locate(u64 index, spot& at) const -> bool {
  xarray_root& r = rb();
  u64 ref = r.root.get();
  unsigned h = r.height.get();
  if (ref == 0 || (geo::cover(h) < 64 && (index >> geo::cover(h)) != 0)) return false;
  unsigned depth = 0;
  while (kind(ref) == detail::xa_branch) {
    unsigned char* br = node(ref);
    // a branch's range is aligned to its cover, so the slot is these bits of the index
    const u64 j = (index >> geo::slot_bits(h)) & (geo::fanout - 1);
    at.path[depth++] = step{br, j};
    ref = read::slot(br, j);
    if (ref == 0) return false;
    --h;
  }
  at.depth = depth;
  at.ref = ref;
  at.leaf = node(ref);
  at.sec = depth == 0 || kind(ref) != detail::xa_dense ? nullptr
                                                       : read::side_section(memory(), at.path[depth - 1].br,
                                                                            at.path[depth - 1].j);
  at.root = &r;
  return true;
}

/// locate() through the leaf hint: `at` is the hint's spot, valid until the next
/// change. A change in the window of the leaf last reached skips the descent, as the
/// kernel's xa_state keeps its node between operations; the hint is trusted only
/// while no node or record moved (the generation) and the root block is mapped where
/// it was (a writer whose memory was remapped never writes through a stale pointer).
/// Complexity: O(1) on a hit, else locate's O(H).
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::reach(u64 index, spot*& at) -> bool {
  leaf_hint& h = hint_;
  at = &h.at;
  xarray_root* r = &rb();
  if (h.gen == gen_ && h.at.root == r && index - h.first <= h.last - h.first) return true;
  h.gen = ~u64{0};
  if (!locate(index, h.at)) return false;
  if (h.at.compact()) {
    const detail::xa_node_header& n = detail::header(h.at.leaf);
    h.first = n.base.get();
    h.last = h.first + geo::span_mask(n.shift);
  } else {
    h.first = index & ~(geo::leaf_slots - 1);
    h.last = h.first + (geo::leaf_slots - 1);
  }
  h.gen = gen_;
  return true;
}

/// Adds `delta` (mod 2^64) to the entry counts on the path of `at` and in the root block.
template <class Value, unsigned PageShift, PageSource Source>
inline void xarray<Value, PageShift, Source>::count_by(const spot& at, u64 delta) {
  for (unsigned k = 0; k < at.depth; ++k) {
    detail::xa_node_header& h = detail::header(at.path[k].br);
    h.entries.set(h.entries.get() + delta);
  }
  at.root->count.set(at.root->count.get() + delta);
}

/// The leaf below `at` now carries `marks`: rewrites the summary bits upwards while
/// a branch's own marks change, and the root block's marks at the top.
template <class Value, unsigned PageShift, PageSource Source>
inline void xarray<Value, PageShift, Source>::propagate(const spot& at, u8 marks) {
  for (unsigned k = at.depth; k-- > 0;) {
    unsigned char* br = at.path[k].br;
    const u64 j = at.path[k].j, ref = read::slot(br, j);
    const u64 n = kind(ref) == detail::xa_compact ? u64{1} << read::run_of(ref) : 1;
    set_summary(br, j & ~(n - 1), n, marks);
    const u8 now = branch_marks(br);
    if (now == detail::header(br).marks) return;
    detail::header(br).marks = now;
    marks = now;
  }
  rb().marks.set(marks);
}

/// A plain order-0 store: overwrites an order-0 entry or adds one to the leaf that
/// covers `index`, in one descent. False (nothing changed) where the general path must
/// run: no leaf there, a full compact leaf, or a multi-order entry in the way.
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::store_in_place(u64 index, const Value& v) -> bool {
  spot* found;
  if (!reach(index, found)) return false;
  const spot& at = *found;
  unsigned char* leaf = at.leaf;
  if (at.compact()) {
    const u64 n = read::c_count(leaf), p = read::c_upper_bound(leaf, index);
    if (p > 0) {
      const u64 key = read::c_key(leaf, p - 1);
      if (key == index && read::c_order(leaf, p - 1) == 0) {
        std::memcpy(leaf + geo::values_off + geo::value_size * (p - 1), &v, sizeof v);
        return true;
      }
      if (((index - key) >> read::c_order(leaf, p - 1)) == 0) return false;
    }
    if (n == geo::compact_capacity) return false;
    if (p < n) {
      touch();  // records move
      c_move(leaf, p + 1, leaf, p, n - p);
    }
    detail::put64(leaf + geo::keys_off + 8 * p, index);
    std::memcpy(leaf + geo::values_off + geo::value_size * p, &v, sizeof v);
    leaf[geo::orders_off + p] = 0;
    leaf[geo::marks_off + p] = 0;
    detail::header(leaf).count.set(static_cast<u32>(n + 1));
    detail::header(leaf).entries.set(n + 1);
  } else {
    const u64 i = index & (geo::leaf_slots - 1);
    const step& f = at.path[at.depth - 1];
    if (read::d_present(leaf, i)) {
      if (!read::d_single(at.sec, i)) return false;
      std::memcpy(leaf + geo::value_size * i, &v, sizeof v);
      return true;
    }
    // An absent slot carries no side bits: the new entry is unmarked, as summaries say.
    std::memcpy(leaf + geo::value_size * i, &v, sizeof v);
    set_dense_count(f.br, f.j, read::dense_count(f.br, f.j) + 1);
  }
  count_up(at);
  return true;
}

/// Erase from a compact leaf in place: 1 done, 0 nothing there, -1 the leaf would
/// empty (the general path frees it).
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::c_erase_in_place(spot& at, u64 index) -> int {
  unsigned char* leaf = at.leaf;
  const long found = read::c_find(leaf, index);
  if (found < 0) return 0;
  const u64 n = read::c_count(leaf), p = static_cast<u64>(found);
  if (n == 1) return -1;
  touch();
  const u8 marks = read::c_marks(leaf, p);
  c_move(leaf, p, leaf, p + 1, n - p - 1);
  c_zero(leaf, n - 1, 1);
  detail::header(leaf).count.set(static_cast<u32>(n - 1));
  detail::header(leaf).entries.set(n - 1);
  if (marks != 0) {
    const u8 now = compact_marks(leaf);
    if (now != detail::header(leaf).marks) {
      detail::header(leaf).marks = now;
      propagate(at, now);
    }
  }
  count_down(at);
  if (at.depth == 0) shrink();  // a compact root's height follows its last record
  return 1;
}

/// Erase of an order-0 entry from a dense leaf in place: 1, 0 or -1 as above (-1 also
/// for a multi-order entry).
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::d_erase_in_place(spot& at, u64 index) -> int {
  const u64 i = index & (geo::leaf_slots - 1);
  if (!read::d_present(at.leaf, i)) return 0;
  const step& f = at.path[at.depth - 1];
  unsigned char* sec = at.sec;
  if (!read::d_single(sec, i)) return -1;
  const u16 dcount = read::dense_count(f.br, f.j);
  if (dcount == 1) return -1;
  std::memset(at.leaf + geo::value_size * i, 0, geo::value_size);
  set_dense_count(f.br, f.j, dcount - 1u);
  if (sec != nullptr) {
    bool had = false;
    for (unsigned m = 0; m < xa_mark_count; ++m) {
      had |= detail::test_bit(read::side_bitmap(sec, m), i);
      detail::assign_bit(read::side_bitmap(sec, m), i, false);
    }
    if (had) {
      const u8 now = child_marks(f.br, f.j);
      if (now != summary_of(f.br, f.j)) propagate(at, now);
      drop_side_if_empty(f.br, f.j);
    }
  }
  count_down(at);
  return 1;
}

}  // namespace kho
