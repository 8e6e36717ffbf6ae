// kho/xarray/read.hpp: the read paths the writer and the view share: load, walk, first entry.
//
// Every function reads nodes through a Memory and trusts their layout: the view
// validated it at attach, the writer wrote it.
#pragma once

#include <kho/memory.hpp>
#include <kho/result.hpp>
#include <kho/xarray/layout.hpp>

#include <bit>
#include <cstring>

namespace kho {

namespace detail {

/// Queries shared by the writer and the view: they read nodes through any Memory.
template <class Value, unsigned PageShift>
struct xa_read {
  using geo = xa_geometry<Value, PageShift>;
  using entry = xarray_entry<Value>;

  template <Memory M>
  static unsigned char* node(const M& mem, u64 ref) {
    return static_cast<unsigned char*>(mem.to_virt(phys_addr{ref & ~geo::page_mask}, geo::page));
  }
  static unsigned run_of(u64 ref) { return static_cast<unsigned>((ref >> xa_run_shift) & xa_run_mask); }

  // compact leaves
  static u64 c_key(const unsigned char* leaf, u64 i) { return get64(leaf + geo::keys_off + 8 * i); }
  static Value c_value(const unsigned char* leaf, u64 i) {
    Value v;
    std::memcpy(&v, leaf + geo::values_off + geo::value_size * i, sizeof v);
    return v;
  }
  static u8 c_order(const unsigned char* leaf, u64 i) { return leaf[geo::orders_off + i]; }
  static u8 c_marks(const unsigned char* leaf, u64 i) { return leaf[geo::marks_off + i]; }
  static u64 c_count(const unsigned char* leaf) { return header(leaf).count.get(); }
  /// The record holding idx, or -1.
  static long c_find(const unsigned char* leaf, u64 idx) {
    const u64 p = c_upper_bound(leaf, idx);
    if (p == 0) return -1;
    return ((idx - c_key(leaf, p - 1)) >> c_order(leaf, p - 1)) == 0 ? static_cast<long>(p - 1) : -1;
  }
  /// Records whose first index is <= idx (binary search over the key array only).
  static u64 c_upper_bound(const unsigned char* leaf, u64 idx) {
    u64 first = 0, len = c_count(leaf);
    while (len > 0) {
      const u64 half = len / 2;
      if (c_key(leaf, first + half) <= idx) {
        first += half + 1;
        len -= half + 1;
      } else {
        len = half;
      }
    }
    return first;
  }
  /// c_upper_bound for a leaf known to cover the aligned range of 2^bits indices that
  /// holds idx: the first probe is where idx would sit if the keys were spread evenly
  /// over that range (interpolation), then a gallop to bracket the answer and a binary
  /// search inside the bracket. Random keys (PFNs, hashed offsets) are found in one or two
  /// cache lines of the key array instead of the half dozen a plain binary search
  /// touches first; skewed keys cost at most twice the plain search.
  static u64 c_upper_bound(const unsigned char* leaf, u64 idx, unsigned bits) {
    const u64 n = c_count(leaf);
    return n == 0 ? 0 : c_upper_bound_from(leaf, idx, c_guess(idx, bits, n), n);
  }
  /// c_find for a leaf covering the aligned 2^bits indices around idx. The record's value
  /// and order are fetched while the keys are searched: it is nearly always the guess's.
  static long c_find(const unsigned char* leaf, u64 idx, unsigned bits) {
    // The guess needs the count, which sits in the header: fetch the key lines the
    // guess lands in for a leaf half, three quarters and wholly full together with the
    // header, so that on a cold leaf the search waits for memory once, not twice.
    for (const u64 full : {geo::compact_capacity / 2, geo::compact_capacity * 3 / 4, geo::compact_capacity})
      __builtin_prefetch(leaf + geo::keys_off + 8 * c_guess(idx, bits, full));
    const u64 n = c_count(leaf);
    if (n == 0) return -1;
    const u64 g = c_guess(idx, bits, n);
    __builtin_prefetch(leaf + geo::values_off + geo::value_size * g);
    __builtin_prefetch(leaf + geo::orders_off + g);
    const u64 p = c_upper_bound_from(leaf, idx, g, n);
    if (p == 0) return -1;
    return ((idx - c_key(leaf, p - 1)) >> c_order(leaf, p - 1)) == 0 ? static_cast<long>(p - 1) : -1;
  }
  /// Where idx would sit among n keys spread evenly over the aligned 2^bits around it.
  static u64 c_guess(u64 idx, unsigned bits, u64 n) {
    const unsigned scale = bits > 56 ? bits - 56 : 0;  // keeps offset * n below 2^64
    const u64 offset = (idx & geo::span_mask(bits)) >> scale;
    return (offset * n) >> (bits - scale);
  }
  /// The upper bound among n > 0 keys, galloping out from g < n to bracket it.
  static u64 c_upper_bound_from(const unsigned char* leaf, u64 idx, u64 g, u64 n) {
    u64 lo, hi;  // the answer lies in [lo, hi]
    if (c_key(leaf, g) <= idx) {
      lo = g + 1;
      u64 step = 1;
      while (lo + step - 1 < n && c_key(leaf, lo + step - 1) <= idx) {
        lo += step;
        step *= 2;
      }
      hi = lo + step - 1 < n ? lo + step - 1 : n;
    } else {
      hi = g;
      u64 step = 1;
      while (hi >= step && c_key(leaf, hi - step) > idx) {
        hi -= step;
        step *= 2;
      }
      lo = hi >= step ? hi - step + 1 : 0;
    }
    while (lo < hi) {  // key[lo-1] <= idx (or lo == 0), key[hi] > idx (or hi == n)
      const u64 mid = lo + (hi - lo) / 2;
      if (c_key(leaf, mid) <= idx) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }
  static entry c_entry(const unsigned char* leaf, u64 i) {
    return entry{c_key(leaf, i), order{c_order(leaf, i)}, c_marks(leaf, i), c_value(leaf, i)};
  }

  // branches
  static u64 slot(const unsigned char* br, u64 j) { return get64(br + geo::slots_off + 8 * j); }
  static bool summary_bit(const unsigned char* br, unsigned m, u64 j) {
    return test_bit(br + geo::summary_off + m * geo::fanout / 8, j);
  }
  static u16 dense_count(const unsigned char* br, u64 j) { return get16(br + geo::dense_count_off + 2 * j); }
  static u64 side_ref(const unsigned char* br, u64 j) {
    return get64(br + geo::side_off + 8 * (j / geo::side_group));
  }
  /// The side-node section of the dense leaf in slot j, or nullptr.
  template <Memory M>
  static unsigned char* side_section(const M& mem, const unsigned char* br, u64 j) {
    const u64 ref = side_ref(br, j);
    if (ref == 0) return nullptr;
    return node(mem, ref) + 64 + (j % geo::side_group) * geo::side_leaf_bytes;
  }
  static unsigned char* side_bitmap(unsigned char* sec, unsigned which) {
    return sec + which * geo::side_bitmap_bytes;
  }
  static const unsigned char* side_bitmap(const unsigned char* sec, unsigned which) {
    return sec + which * geo::side_bitmap_bytes;
  }
  static constexpr unsigned tail = 3;  // side bitmap 3: slot continues the entry before it

  // dense leaves
  static Value d_value(const unsigned char* leaf, u64 i) {
    Value v;
    std::memcpy(&v, leaf + geo::value_size * i, sizeof v);
    return v;
  }
  static bool d_present(const unsigned char* leaf, u64 i) {
    if constexpr (sizeof(Value) == 8) {
      return get64(leaf + 8 * i) != 0;
    } else {
      return !is_zero_value(d_value(leaf, i));
    }
  }
  /// True if the present slot i of a dense leaf with side section `sec` (or none) holds
  /// a whole order-0 entry: neither a tail nor the head of a multi-order entry.
  static bool d_single(const unsigned char* sec, u64 i) {
    if (sec == nullptr) return true;
    const unsigned char* tails = side_bitmap(sec, tail);
    return !test_bit(tails, i) && !(i + 1 < geo::leaf_slots && test_bit(tails, i + 1));
  }
  /// The head slot and order of the present entry at slot i.
  static void d_extent(const unsigned char* sec, u64 i, u64& head, unsigned& ord) {
    head = i;
    ord = 0;
    if (sec == nullptr) return;
    const unsigned char* tails = side_bitmap(sec, tail);
    while (head > 0 && test_bit(tails, head)) --head;
    u64 n = 1;
    while (head + n < geo::leaf_slots && test_bit(tails, head + n)) ++n;
    ord = static_cast<unsigned>(std::countr_zero(n));
  }
  static entry d_entry(const unsigned char* leaf, const unsigned char* sec, u64 base, u64 i) {
    u64 head;
    unsigned ord;
    d_extent(sec, i, head, ord);
    u8 marks = 0;
    if (sec != nullptr)
      for (unsigned m = 0; m < xa_mark_count; ++m)
        marks |= static_cast<u8>(test_bit(side_bitmap(sec, m), head) << m);
    return entry{base + head, order{ord}, marks, d_value(leaf, head)};
  }

  /// The value at idx, or nullptr. Complexity: O(H + log compact_capacity).
  template <Memory M>
  static const unsigned char* lookup(const M& mem, u64 ref, unsigned h, u64 idx) {
    if (geo::cover(h) < 64 && (idx >> geo::cover(h)) != 0) return nullptr;
    unsigned bits = geo::cover(h);  // a compact leaf met now covers the 2^bits around idx
    for (;;) {
      const unsigned char* n = node(mem, ref);
      switch (ref & xa_kind_mask) {
        case xa_branch:
          ref = slot(n, (idx >> geo::slot_bits(h)) & (geo::fanout - 1));
          bits = geo::slot_bits(h) + run_of(ref);
          --h;
          break;
        case xa_compact: {
          const long i = c_find(n, idx, bits);
          return i < 0 ? nullptr : n + geo::values_off + geo::value_size * static_cast<u64>(i);
        }
        case xa_dense: {
          const u64 i = idx & (geo::leaf_slots - 1);
          return d_present(n, i) ? n + geo::value_size * i : nullptr;
        }
        default:
          return nullptr;
      }
    }
  }

  /// Visits entries overlapping [first, last] in ascending order, only those carrying
  /// `mark` when mark >= 0; f(entry) returns false to stop. Returns false if stopped.
  template <Memory M, class F>
  static bool walk(const M& mem, u64 ref, unsigned h, u64 first, u64 last, int mark, F& f) {
    if (ref == 0) return true;
    if (geo::cover(h) < 64) {
      if ((first >> geo::cover(h)) != 0) return true;
      if ((last >> geo::cover(h)) != 0) last = geo::span_mask(geo::cover(h));
    }
    if ((ref & xa_kind_mask) == xa_compact) return walk_compact(node(mem, ref), first, last, mark, f);
    return walk_branch(mem, node(mem, ref), h, 0, first, last, mark, f);
  }

  template <class F>
  static bool walk_compact(const unsigned char* leaf, u64 first, u64 last, int mark, F& f) {
    u64 i = c_upper_bound(leaf, first);
    if (i > 0 && ((first - c_key(leaf, i - 1)) >> c_order(leaf, i - 1)) == 0) --i;
    for (const u64 n = c_count(leaf); i < n && c_key(leaf, i) <= last; ++i) {
      if (mark >= 0 && !((c_marks(leaf, i) >> mark) & 1)) continue;
      if (!f(c_entry(leaf, i))) return false;
    }
    return true;
  }

  template <class F>
  static bool walk_dense(const unsigned char* leaf, const unsigned char* sec, u64 base, u64 first,
                         u64 last, int mark, F& f) {
    u64 i = first > base ? first - base : 0;
    const u64 end = last - base >= geo::leaf_slots - 1 ? geo::leaf_slots - 1 : last - base;
    if (mark >= 0) {
      if (sec == nullptr) return true;
      const unsigned char* bits = side_bitmap(sec, static_cast<unsigned>(mark));
      if (i > 0 && d_present(leaf, i) && test_bit(side_bitmap(sec, tail), i)) {
        u64 head;
        unsigned ord;
        d_extent(sec, i, head, ord);
        i = head;
      }
      for (u64 w = i / 64; w * 64 <= end; ++w) {
        u64 word = get64(bits + 8 * w);
        if (w == i / 64) word &= ~u64{0} << (i % 64);
        while (word != 0) {
          const u64 s = w * 64 + static_cast<u64>(std::countr_zero(word));
          word &= word - 1;
          if (s > end) return true;
          if (!f(d_entry(leaf, sec, base, s))) return false;
        }
      }
      return true;
    }
    if (sec == nullptr || !any_bits(side_bitmap(sec, tail), geo::side_bitmap_bytes)) {
      // The common dense case: every present slot is an order-0 entry.
      for (; i <= end; ++i) {
        if (!d_present(leaf, i)) continue;
        u8 marks = 0;
        if (sec != nullptr)
          for (unsigned m = 0; m < xa_mark_count; ++m)
            marks |= static_cast<u8>(test_bit(side_bitmap(sec, m), i) << m);
        if (!f(entry{base + i, order{0}, marks, d_value(leaf, i)})) return false;
      }
      return true;
    }
    for (; i <= end; ++i) {
      if (!d_present(leaf, i)) continue;
      const entry e = d_entry(leaf, sec, base, i);
      if (!f(e)) return false;
      i = e.last() - base;
    }
    return true;
  }

  template <Memory M, class F>
  static bool walk_branch(const M& mem, const unsigned char* br, unsigned h, u64 base, u64 first,
                          u64 last, int mark, F& f) {
    const unsigned sb = geo::slot_bits(h);
    u64 j = first > base ? (first - base) >> sb : 0;
    const u64 usable_last = (u64{1} << geo::slot_log(h)) - 1;
    const u64 jl = ((last - base) >> sb) < usable_last ? (last - base) >> sb : usable_last;
    for (; j <= jl; ++j) {
      const u64 ref = slot(br, j);
      if (ref == 0) continue;
      if (mark >= 0 && !summary_bit(br, static_cast<unsigned>(mark), j)) {
        if ((ref & xa_kind_mask) == xa_compact) j |= (u64{1} << run_of(ref)) - 1;
        continue;
      }
      const u64 cbase = base + (j << sb);
      switch (ref & xa_kind_mask) {
        case xa_branch:
          if (!walk_branch(mem, node(mem, ref), h - 1, cbase, first, last, mark, f)) return false;
          break;
        case xa_compact:
          if (!walk_compact(node(mem, ref), first, last, mark, f)) return false;
          j |= (u64{1} << run_of(ref)) - 1;
          break;
        case xa_dense:
          if (!walk_dense(node(mem, ref), side_section(mem, br, j), cbase, first, last, mark, f))
            return false;
          break;
      }
    }
    return true;
  }

  /// The first entry overlapping [first, last] (with `mark` when mark >= 0).
  template <Memory M>
  static result<entry> first_in(const M& mem, u64 ref, unsigned h, u64 first, u64 last, int mark) {
    entry out{};
    bool found = false;
    auto take = [&](const entry& e) {
      out = e;
      found = true;
      return false;
    };
    walk(mem, ref, h, first, last, mark, take);
    if (!found) return errc::not_found;
    return out;
  }
  template <Memory M>
  static result<entry> first_from(const M& mem, u64 ref, unsigned h, u64 start, int mark) {
    return first_in(mem, ref, h, start, ~u64{0}, mark);
  }
};

}  // namespace detail

}  // namespace kho
