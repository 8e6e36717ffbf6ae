// kho/xarray/nodes.hpp: the writer's node primitives: allocating and freeing node pages (and the
// root's address fingerprint), branch slots and mark summaries, compact-leaf records,
// dense leaves and their side nodes.
#pragma once

#include <kho/xarray/writer.hpp>

namespace kho {

template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::new_node() -> result<u64> {
  touch();
  auto pa = alloc_zeroed(*src_, order{0}, geo::page);
  if (!pa) return pa.err();
  account(pa->value, 1);
  return pa->value;
}

template <class Value, unsigned PageShift, PageSource Source>
inline void xarray<Value, PageShift, Source>::free_node(u64 ref) {
  touch();
  const u64 pa = ref & ~geo::page_mask;
  account(pa, ~u64{0});
  src_->free(phys_addr{pa}, order{0});
}

template <class Value, unsigned PageShift, PageSource Source>
inline void xarray<Value, PageShift, Source>::account(u64 pa, u64 sign) {  // sign: 1 or -1 (mod 2^64)
  xarray_root& r = rb();
  r.nodes.set(r.nodes.get() + sign);
  r.address_sum.set(r.address_sum.get() + sign * pa);
  r.address_mix.set(r.address_mix.get() + sign * detail::xa_mix(pa));
}

template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::new_header_node(u32 magic, unsigned level,
    u64 base, unsigned shift, u64& pa) -> result<unsigned char*> {
  auto p = new_node();
  if (!p) return p.err();
  pa = *p;
  unsigned char* n = node(pa);
  detail::header(n).magic.set(magic);
  detail::header(n).level = static_cast<u8>(level);
  detail::header(n).shift = static_cast<u8>(shift);
  detail::header(n).base.set(base);
  return n;
}

/// Writes `ref` into slots [js, js + n), keeping the branch's non-null slot count.
template <class Value, unsigned PageShift, PageSource Source>
inline void xarray<Value, PageShift, Source>::write_slots(unsigned char* br, u64 js, u64 n, u64 ref) {
  u32 count = detail::header(br).count.get();
  for (u64 j = js; j < js + n; ++j) {
    count -= read::slot(br, j) != 0;
    count += ref != 0;
    detail::put64(br + geo::slots_off + 8 * j, ref);
  }
  detail::header(br).count.set(count);
}

template <class Value, unsigned PageShift, PageSource Source>
inline void xarray<Value, PageShift, Source>::set_summary(unsigned char* br, u64 js, u64 n, u8 marks) {
  for (unsigned m = 0; m < xa_mark_count; ++m) {
    unsigned char* bits = br + geo::summary_off + m * geo::fanout / 8;
    const bool on = (marks >> m) & 1;
    for (u64 j = js; j < js + n;) {
      if (j % 64 == 0 && js + n - j >= 64) {
        detail::put64(bits + j / 8, on ? ~u64{0} : 0);
        j += 64;
      } else {
        detail::assign_bit(bits, j++, on);
      }
    }
  }
}

template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::branch_marks(const unsigned char* br) -> u8 {
  u8 marks = 0;
  for (unsigned m = 0; m < xa_mark_count; ++m)
    if (detail::any_bits(br + geo::summary_off + m * geo::fanout / 8, geo::fanout / 8))
      marks |= static_cast<u8>(1u << m);
  return marks;
}

/// The marks of whatever slot j of `br` holds.
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::child_marks(const unsigned char* br, u64 j) const -> u8 {
  const u64 ref = read::slot(br, j);
  if (ref == 0) return 0;
  if (kind(ref) != detail::xa_dense) return detail::header(node(ref)).marks;
  const unsigned char* sec = read::side_section(memory(), br, j);
  u8 marks = 0;
  if (sec != nullptr)
    for (unsigned m = 0; m < xa_mark_count; ++m)
      if (detail::any_bits(read::side_bitmap(sec, m), geo::side_bitmap_bytes)) marks |= static_cast<u8>(1u << m);
  return marks;
}

/// Refreshes slot j's summary from its child and the branch's own marks.
template <class Value, unsigned PageShift, PageSource Source>
inline void xarray<Value, PageShift, Source>::refresh_slot(unsigned char* br, u64 j) {
  const u64 ref = read::slot(br, j);
  const u64 n = kind(ref) == detail::xa_compact ? u64{1} << read::run_of(ref) : 1;
  set_summary(br, j & ~(n - 1), n, child_marks(br, j));
  detail::header(br).marks = branch_marks(br);
}

/// After a change below path[0..depth): entry counts by `delta`, summaries bottom-up.
template <class Value, unsigned PageShift, PageSource Source>
inline void xarray<Value, PageShift, Source>::refresh_path(frame* path, unsigned depth, u64 delta) {
  for (unsigned k = depth; k-- > 0;) {
    detail::xa_node_header& h = detail::header(path[k].br);
    h.entries.set(h.entries.get() + delta);
    refresh_slot(path[k].br, path[k].j);
  }
  xarray_root& r = rb();
  r.count.set(r.count.get() + delta);
  r.marks.set(root_marks());
}

template <class Value, unsigned PageShift, PageSource Source>
inline void xarray<Value, PageShift, Source>::c_move(unsigned char* dst, u64 di,
    const unsigned char* src, u64 si, u64 n) {
  std::memmove(dst + geo::keys_off + 8 * di, src + geo::keys_off + 8 * si, 8 * n);
  std::memmove(dst + geo::values_off + geo::value_size * di, src + geo::values_off + geo::value_size * si,
               geo::value_size * n);
  std::memmove(dst + geo::orders_off + di, src + geo::orders_off + si, n);
  std::memmove(dst + geo::marks_off + di, src + geo::marks_off + si, n);
}

template <class Value, unsigned PageShift, PageSource Source>
inline void xarray<Value, PageShift, Source>::c_zero(unsigned char* leaf, u64 i, u64 n) {
  std::memset(leaf + geo::keys_off + 8 * i, 0, 8 * n);
  std::memset(leaf + geo::values_off + geo::value_size * i, 0, geo::value_size * n);
  std::memset(leaf + geo::orders_off + i, 0, n);
  std::memset(leaf + geo::marks_off + i, 0, n);
}

template <class Value, unsigned PageShift, PageSource Source>
inline void xarray<Value, PageShift, Source>::c_insert(unsigned char* leaf, u64 index, unsigned o, const Value& v) {
  const u64 n = read::c_count(leaf), p = c_lower(leaf, index);
  c_move(leaf, p + 1, leaf, p, n - p);
  detail::put64(leaf + geo::keys_off + 8 * p, index);
  std::memcpy(leaf + geo::values_off + geo::value_size * p, &v, sizeof v);
  leaf[geo::orders_off + p] = static_cast<u8>(o);
  leaf[geo::marks_off + p] = 0;
  detail::header(leaf).count.set(static_cast<u32>(n + 1));  // an unmarked record: marks stay
  detail::header(leaf).entries.set(n + 1);
}

/// Removes the records inside [lo, hi]; returns how many.
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::c_remove(unsigned char* leaf, u64 lo, u64 hi) -> u64 {
  const u64 n = read::c_count(leaf);
  const u64 p0 = c_lower(leaf, lo), p1 = read::c_upper_bound(leaf, hi);
  if (p1 <= p0) return 0;
  c_move(leaf, p0, leaf, p1, n - p1);
  c_zero(leaf, n - (p1 - p0), p1 - p0);
  c_set_count(leaf, n - (p1 - p0));
  return p1 - p0;
}

/// The side section of slot j, allocating the side node if needed. Errors: out_of_memory.
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::ensure_side(unsigned char* br, u64 j) -> result<unsigned char*> {
  if (unsigned char* sec = read::side_section(memory(), br, j)) return sec;
  const u64 g = j / geo::side_group;
  const u64 base = detail::header(br).base.get() + ((g * geo::side_group) << geo::slot_bits(1));
  u64 pa = 0;
  auto n = new_header_node(detail::xa_side_magic, 1, base,
                           geo::slot_bits(1) + static_cast<unsigned>(std::countr_zero(geo::side_group)), pa);
  if (!n) return n.err();
  detail::put64(br + geo::side_off + 8 * g, pa);
  return read::side_section(memory(), br, j);
}

/// Frees slot j's side node once none of its bits is set.
template <class Value, unsigned PageShift, PageSource Source>
inline void xarray<Value, PageShift, Source>::drop_side_if_empty(unsigned char* br, u64 j) {
  const u64 ref = side_ref(br, j);
  if (ref == 0 || detail::any_bits(node(ref) + 64, geo::side_group * geo::side_leaf_bytes)) return;
  free_node(ref);
  detail::put64(br + geo::side_off + 8 * (j / geo::side_group), 0);
}

/// Writes one entry of order o at slot i of a dense leaf (value repeated, tails marked).
template <class Value, unsigned PageShift, PageSource Source>
inline void xarray<Value, PageShift, Source>::d_write(unsigned char* leaf, unsigned char* sec,
    u64 i, unsigned o, const Value& v, u8 marks) {
  for (u64 k = 0; k < (u64{1} << o); ++k) {
    std::memcpy(leaf + geo::value_size * (i + k), &v, sizeof v);
    if (sec != nullptr) detail::assign_bit(read::side_bitmap(sec, read::tail), i + k, k != 0);
  }
  if (sec != nullptr)
    for (unsigned m = 0; m < xa_mark_count; ++m) detail::assign_bit(read::side_bitmap(sec, m), i, (marks >> m) & 1);
}

/// Removes the entries of slot j's dense leaf inside [lo, hi]; returns how many.
template <class Value, unsigned PageShift, PageSource Source>
inline auto xarray<Value, PageShift, Source>::d_remove(unsigned char* br, u64 j, u64 lbase, u64 lo, u64 hi) -> u64 {
  unsigned char* leaf = node(read::slot(br, j));
  unsigned char* sec = read::side_section(memory(), br, j);
  const u64 i0 = lo > lbase ? lo - lbase : 0;
  const u64 i1 = hi - lbase >= geo::leaf_slots - 1 ? geo::leaf_slots - 1 : hi - lbase;
  u64 removed = 0;
  for (u64 i = i0; i <= i1; ++i) {
    if (!read::d_present(leaf, i)) continue;
    if (sec == nullptr || !detail::test_bit(read::side_bitmap(sec, read::tail), i)) ++removed;
    std::memset(leaf + geo::value_size * i, 0, geo::value_size);
  }
  if (sec != nullptr)
    for (unsigned b = 0; b < 4; ++b) detail::clear_bits(read::side_bitmap(sec, b), i0, i1);
  set_dense_count(br, j, read::dense_count(br, j) - removed);
  return removed;
}

}  // namespace kho
