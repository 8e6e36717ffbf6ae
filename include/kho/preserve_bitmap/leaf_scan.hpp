// kho/preserve_bitmap/leaf_scan.hpp: every busy range of a validated radix view,
// ascending, fast. Beside preserve_bitmap.hpp rather than in detail/: it reads that
// header's view, so it sits above the radix tree, and detail/ holds only what the
// containers are built from.
//
// The merged walk of preserve_bitmap.hpp takes one cursor per order and pays a k-way
// minimum and a callback per run. Restores and boot-time hole sweeps read every run of
// the tree, and most trees are dominated by one order (4 KiB pages), so here that
// order's leaves are scanned word by word in a tight loop, and everything else (the
// other orders' cursors, the tree's own pages, and one caller stream such as memblock's
// present regions or RAM gaps and reserved ranges) is merged in as one pulled side
// stream, compared once per run:
//
//   dominant order   leaf words -> runs of set bits -> emit(s, e)   (the hot loop)
//   side stream      min(other order cursors, tree pages, extra) -> emit before any
//                    run that starts after it
//
// emit(s, e) sees ranges in ascending order of start, not coalesced (they may touch or
// overlap); it returns false to stop. Reads only the tree; safe on disjoint windows
// from several threads.
#pragma once

#include <kho/phys.hpp>
#include <kho/preserve_bitmap.hpp>

#include <algorithm>
#include <span>

namespace kho::detail {

/// An extra stream with nothing in it.
struct no_extra {
  u64 head() const { return ~u64{0}; }
  u64 head_end() const { return 0; }
  void next() {}
};

/// The order with the most blocks: its leaves are scanned directly.
template <class View>
unsigned dominant_order(const View& view) {
  unsigned best = 0;
  for (unsigned o = 1; o < View::orders; ++o)
    if (view.count(order{o}) > view.count(order{best})) best = o;
  return best;
}

template <class View>
u64 orders_present(const View& view) {
  u64 mask = 0;
  for (unsigned o = 0; o < View::orders; ++o)
    if (view.count(order{o}) != 0) mask |= u64{1} << o;
  return mask;
}

/// The key window [first, end) of order o's blocks overlapping [from, to).
template <class Geo>
void key_window(order o, u64 from, u64 to, u64& first, u64& end) {
  const unsigned shift = Geo::page_shift + o.value;
  const u64 bit = Geo::order_bit(o);
  first = bit + (from >> shift);
  end = std::min(bit + (to >> shift) + ((to & ((u64{1} << shift) - 1)) != 0), Geo::key_limit);
}

/// The tree pages that overlap [from, to).
template <unsigned PageShift>
std::span<const u64> nodes_in(std::span<const u64> nodes, u64 from, u64 to) {
  constexpr u64 page = u64{1} << PageShift;
  const u64* a = std::lower_bound(nodes.data(), nodes.data() + nodes.size(), from >= page ? from - page + 1 : 0);
  const u64* b = std::lower_bound(a, nodes.data() + nodes.size(), to);
  return {a, static_cast<size_t>(b - a)};
}

/// Everything but the dominant order, pulled in ascending order of start: the
/// cursors of the other orders present, the tree's own pages, and `Extra`. Most trees
/// hold one or two orders, so the linear minimum over the cursors is short.
template <class Walker, unsigned PageShift, class Extra>
class side_stream {
 public:
  using cursor = typename Walker::order_cursor;
  static constexpr u64 none = ~u64{0};
  static constexpr u64 page = u64{1} << PageShift;

  side_stream(const Walker& w, u64 orders, u64 from, u64 to, std::span<const u64> nodes, Extra extra)
      : walker_(&w), node_(nodes.data()), node_end_(nodes.data() + nodes.size()), extra_(extra), from_(from), to_(to) {
    for (unsigned o = 0; o < Walker::orders; ++o)
      if ((orders >> o) & 1) {
        cursors_[live_] = cursor(&w, order{o}, phys_addr{from}, phys_addr{to});
        if (cursors_[live_].live()) ++live_;
      }
    next();
  }

  /// Start of the next range, or `none`.
  u64 head() const { return start_; }
  u64 head_end() const { return end_; }

  void next() {
    u64 head = none;
    unsigned min = live_;
    for (unsigned i = 0; i < live_; ++i)
      if (cursors_[i].head().value < head) head = cursors_[min = i].head().value;
    const bool node = node_ != node_end_ && *node_ < head;
    if (node) head = *node_;
    if (extra_.head() < head) {
      start_ = extra_.head();
      end_ = extra_.head_end();
      extra_.next();
    } else if (node) {
      start_ = std::max(*node_, from_);
      end_ = std::min(*node_ + page, to_);
      ++node_;
    } else if (min < live_) {
      cursor& c = cursors_[min];
      const u64 raw_end = c.head().value + c.run_bytes();
      start_ = std::max(head, from_);
      end_ = (raw_end == 0 || raw_end > to_) ? to_ : raw_end;
      c.next(walker_, phys_addr{to_});
      if (!c.live()) c = cursors_[--live_];
    } else {
      start_ = none;
    }
  }

 private:
  cursor cursors_[Walker::orders - 1];  // every order but the dominant one
  unsigned live_ = 0;
  const Walker* walker_;
  const u64* node_;
  const u64* node_end_;
  Extra extra_;
  u64 from_, to_;
  u64 start_ = none, end_ = 0;
};

/// Calls emit(s, e) for every busy range of `view` in [from, to) (clipped to it): its
/// blocks, its tree pages and `extra`'s ranges, ascending by start. emit returns false
/// to stop; returns false if it did. The view must be validated.
/// Complexity: O(W + R * (k + 1)) for W leaf words of the dominant order and R ranges
/// in the window, k the other orders present.
template <class View, class Extra, class Emit>
bool scan_busy(const View& view, u64 from, u64 to, Extra extra, Emit&& emit) {
  using geo = typename View::geometry;
  using walker = typename View::walker;
  const walker w(&view.memory(), view.root());
  const unsigned dom = dominant_order(view);
  const u64 lo = from, hi = to;
  side_stream<walker, geo::page_shift, Extra> side(w, orders_present(view) & ~(u64{1} << dom), lo, hi,
                                                   nodes_in<geo::page_shift>(view.nodes(), lo, hi), extra);
  u64 side_head = side.head();  // a local: the caller's stores may alias the stream's fields

  if (view.count(order{dom}) != 0) {
    const unsigned shift = geo::page_shift + dom;
    const u64 bit = geo::order_bit(order{dom});
    u64 key = 0, end_key = 0;
    key_window<geo>(order{dom}, lo, hi, key, end_key);
    typename walker::leaf_ref leaf{};
    while (key < end_key && w.next_leaf(key, end_key, leaf)) {
      u64 wi = key > leaf.base ? (key - leaf.base) >> 6 : 0;
      u64 bits = load_le(leaf.words + wi);
      if (key > leaf.base) bits &= ~u64{0} << ((key - leaf.base) & 63);
      const u64 leaf_addr = (leaf.base ^ bit) << shift;  // bit 0's block
      const u64 word_limit = std::min<u64>(((end_key - leaf.base) + 63) >> 6, geo::leaf_words);
      const u64 index_limit = end_key - leaf.base;  // bits at or past it are outside
      for (;;) {
        while (bits != 0) {
          const unsigned low = static_cast<unsigned>(__builtin_ctzll(bits));
          const u64 ones = ~(bits >> low);  // zero where the run continues
          const unsigned len = ones == 0 ? 64 - low : static_cast<unsigned>(__builtin_ctzll(ones));
          bits = len + low >= 64 ? 0 : bits & (~u64{0} << (low + len));
          const u64 index = (wi << 6) + low;
          if (index >= index_limit) goto leaf_done;
          const u64 run = std::min<u64>(len, index_limit - index);
          u64 s = leaf_addr + (index << shift);
          u64 e = s + (run << shift);
          if (s < lo) s = lo;
          if (e > hi || e == 0) e = hi;
          while (side_head < s) {
            if (!emit(side_head, side.head_end())) return false;
            side.next();
            side_head = side.head();
          }
          if (!emit(s, e)) return false;
        }
        do {
          if (++wi >= word_limit) goto leaf_done;
        } while ((bits = load_le(leaf.words + wi)) == 0);
      }
    leaf_done:
      key = leaf.base + (u64{1} << geo::leaf_bits);
    }
  }
  for (; side.head() != side.none; side.next())
    if (!emit(side.head(), side.head_end())) return false;
  return true;
}

}  // namespace kho::detail
