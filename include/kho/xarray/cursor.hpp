// kho/xarray/cursor.hpp: xa_cursor, the resumable scan behind cursor() and marked_cursor().
#pragma once

#include <kho/xarray/read.hpp>

#include <cstdint>
#include <type_traits>

namespace kho {

namespace detail {

/// A resumable scan in index order (of every entry, or of those carrying one mark): it
/// keeps the path of branches to where it stopped, so each next() continues from there
/// instead of descending from the root again. Derived is the writer or the view.
///
/// The scan may interleave with changes to the writer: next() returns the first entry
/// (carrying the mark) that begins after the last entry returned, in the map as it is
/// then. A change that moves or frees nodes or records (the writer's generation) or a
/// new mapping of the root block makes the cursor descend again from its position.
/// The cursor reads through `Derived`, which must outlive it and stay where it is.
template <class Derived, class Value, unsigned PageShift>
class xa_cursor {
  using geo = xa_geometry<Value, PageShift>;
  using read = xa_read<Value, PageShift>;

 public:
  using entry = xarray_entry<Value>;
  static_assert(!std::is_trivially_copyable_v<entry> || std::is_trivially_copyable_v<result<entry>>,
                "next()'s result must come back in registers, not through memory");

  /// A scan from `start`; mark < 0 for every entry, else only those carrying mark
  /// `mark` (an invalid mark gives an empty scan).
  xa_cursor(const Derived& d, u64 start, int mark)
      : d_(&d), pos_(start), mark_(mark), done_(mark >= static_cast<int>(xa_mark_count)) {}

  /// The next entry (carrying the mark): on the first call the entry holding `start` or
  /// the first after it, then the first that begins after the last one returned.
  /// Complexity: O(1) amortised per entry over a whole scan (O(H + leaf) after a change).
  /// Errors: not_found (the scan is over).
  [[gnu::always_inline]] result<entry> next() {
    if (slot_ < geo::leaf_slots && fresh()) [[likely]] {
      entry e;
      if (scan_fast(e)) return e;
    }
    return next_slow();
  }

  /// The index the scan continues from.
  u64 position() const { return fast_leaf_ && slot_ > 0 ? leaf_base_ + slot_ : pos_; }

 private:
  struct level {
    const unsigned char* br;
    unsigned h;
    u64 base;
    u64 j;  // the next slot to look at
  };

  /// Everything but the next hit in a dense leaf without multi-order entries: leaving a
  /// leaf, the path to the next one, compact leaves, and re-descending after a change.
  [[gnu::noinline]] result<entry> next_slow() {
    if (done_) return errc::not_found;
    sync_position();
    if (done_) return errc::not_found;
    if (!fresh()) seek();
    for (;;) {
      if (leaf_ != nullptr) {
        entry e;
        if (fast_leaf_) {
          if (scan_fast(e)) return e;
        } else if (leaf_compact_ ? scan_compact(e) : scan_dense(e)) {
          first_ = false;
          if (e.last() == ~u64{0}) {
            done_ = true;
          } else {
            pos_ = e.last() + 1;
          }
          return e;
        }
        leaf_ = nullptr;
        leave_fast();
        if (leaf_last_ == ~u64{0}) break;
        pos_ = leaf_last_ + 1;
        first_ = false;
      }
      if (!next_leaf()) break;
    }
    done_ = true;
    return errc::not_found;
  }

  void leave_fast() {
    fast_leaf_ = false;
    slot_ = geo::leaf_slots;  // next() goes the slow way
  }

  /// Brings pos_ up to date after hits of scan_fast, which advances slot_ only.
  void sync_position() {
    if (!fast_leaf_ || slot_ == 0) return;
    if (leaf_base_ + (slot_ - 1) == ~u64{0}) {
      done_ = true;  // the last index there is was returned
      leave_fast();
    } else {
      pos_ = leaf_base_ + slot_;
    }
  }

  [[gnu::always_inline]] bool fresh() const { return gen_ == generation() && anchor_ == anchor(); }

  /// The next hit at or after slot_ of a dense leaf whose slots are all order-0
  /// entries (no tail bits): the loop xas_for_each's fast path is, over a page of
  /// values instead of 64 slots, with no entry to decode.
  [[gnu::always_inline]] bool scan_fast(entry& e) {
    u64 i = slot_;
    if (mark_ < 0) {
      for (; i < geo::leaf_slots; ++i) {
        const Value v = read::d_value(leaf_, i);
        if (is_zero_value(v)) continue;
        slot_ = i + 1;  // pos_ is leaf_base_ + slot_ while fast_leaf_ (sync_position)
        e = entry{leaf_base_ + i, order{0}, marks_at(i), v};
        return true;
      }
      return false;
    } else {
      i = next_marked_slot(i);
      if (i >= geo::leaf_slots) return false;
    }
    slot_ = i + 1;  // pos_ is leaf_base_ + slot_ while fast_leaf_ (sync_position)
    e = entry{leaf_base_ + i, order{0}, marks_at(i), read::d_value(leaf_, i)};
    return true;
  }

  /// The first slot at or after i whose bit of the scanned mark is set, or leaf_slots.
  u64 next_marked_slot(u64 i) const {
    if (sec_ == nullptr || i >= geo::leaf_slots) return geo::leaf_slots;
    const unsigned char* bits = read::side_bitmap(sec_, static_cast<unsigned>(mark_));
    u64 w = i / 64;
    u64 word = get64(bits + 8 * w) & (~u64{0} << (i % 64));
    while (word == 0) {
      if (++w == geo::leaf_slots / 64) return geo::leaf_slots;
      word = get64(bits + 8 * w);
    }
    return w * 64 + static_cast<u64>(std::countr_zero(word));
  }

  u8 marks_at(u64 s) const {
    if (sec_ == nullptr) return 0;
    const u64 at = 8 * (s / 64), b = s % 64;
    static_assert(xa_mark_count == 3);
    return static_cast<u8>(((get64(sec_ + at) >> b) & 1) |
                           (((get64(sec_ + geo::side_bitmap_bytes + at) >> b) & 1) << 1) |
                           (((get64(sec_ + 2 * geo::side_bitmap_bytes + at) >> b) & 1) << 2));
  }

  u64 generation() const {
    if constexpr (requires(const Derived& x) { x.generation(); }) {
      return d_->generation();
    } else {
      return 0;  // a view never changes
    }
  }
  /// What changes when the memory is mapped anew: the translation where the Memory
  /// offers one (a few loads), else where the root block now lies.
  std::uintptr_t anchor() const {
    if constexpr (requires { d_->memory().translation(); }) {
      return d_->memory().translation();
    } else {
      return reinterpret_cast<std::uintptr_t>(d_->memory().to_virt(d_->root(), 1));
    }
  }

  /// Rebuilds the path to pos_ (descending whatever the summaries say).
  void seek() {
    gen_ = generation();
    anchor_ = anchor();
    depth_ = 0;
    leaf_ = nullptr;
    leave_fast();
    u64 ref = d_->root_ref();
    unsigned h = d_->root_height();
    if (ref == 0 || (geo::cover(h) < 64 && (pos_ >> geo::cover(h)) != 0)) {
      done_ = true;
      return;
    }
    if ((ref & xa_kind_mask) != xa_branch) {
      enter_root_leaf(ref, h);
      return;
    }
    u64 base = 0;
    for (;;) {
      const unsigned char* br = read::node(d_->memory(), ref);
      const u64 j = (pos_ - base) >> geo::slot_bits(h);
      stack_[depth_++] = level{br, h, base, j};
      const u64 child = read::slot(br, j);
      if (child == 0) return;  // next_leaf() starts at slot j and moves on
      if ((child & xa_kind_mask) != xa_branch) {
        enter(stack_[depth_ - 1], child);
        return;
      }
      stack_[depth_ - 1].j = j + 1;
      base += j << geo::slot_bits(h);
      ref = child;
      --h;
    }
  }

  void enter_root_leaf(u64 ref, unsigned h) {
    leaf_ = read::node(d_->memory(), ref);
    leaf_compact_ = true;
    leaf_last_ = geo::span_mask(geo::cover(h));
    rec_ = start_record();
  }

  /// Enters the leaf in slot L.j and moves L past it.
  void enter(level& L, u64 ref) {
    const u64 span = (ref & xa_kind_mask) == xa_compact ? u64{1} << read::run_of(ref) : 1;
    const u64 js = L.j & ~(span - 1);
    const unsigned sb = geo::slot_bits(L.h);
    leaf_ = read::node(d_->memory(), ref);
    leaf_base_ = L.base + (js << sb);
    leaf_last_ = leaf_base_ + ((span << sb) - 1);
    L.j = js + span;
    leaf_compact_ = (ref & xa_kind_mask) == xa_compact;
    if (leaf_compact_) {
      rec_ = start_record();
    } else {
      sec_ = read::side_section(d_->memory(), L.br, js);
      fast_leaf_ = sec_ == nullptr || !any_bits(read::side_bitmap(sec_, read::tail), geo::side_bitmap_bytes);
      if (fast_leaf_) {
        slot_ = pos_ > leaf_base_ ? pos_ - leaf_base_ : 0;
        first_ = false;  // no entry of this leaf starts before pos_
      }
    }
  }

  /// The first record to look at: the one holding pos_ on the first call, else the
  /// first beginning at or after pos_.
  u64 start_record() const {
    u64 i = read::c_upper_bound(leaf_, pos_);
    if (i > 0) {
      const u64 key = read::c_key(leaf_, i - 1);
      if (key == pos_ || (first_ && ((pos_ - key) >> read::c_order(leaf_, i - 1)) == 0)) --i;
    }
    return i;
  }

  /// Finds the next leaf, skipping empty slots and (for a marked scan) slots whose
  /// summary bit is clear. False at the end of the map.
  bool next_leaf() {
    while (depth_ > 0) {
      level& L = stack_[depth_ - 1];
      if (L.j >= (u64{1} << geo::slot_log(L.h))) {
        --depth_;
        continue;
      }
      const u64 ref = read::slot(L.br, L.j);
      if (ref == 0) {
        ++L.j;
        continue;
      }
      const u64 span = (ref & xa_kind_mask) == xa_compact ? u64{1} << read::run_of(ref) : 1;
      if (mark_ >= 0 && !read::summary_bit(L.br, static_cast<unsigned>(mark_), L.j)) {
        L.j = (L.j & ~(span - 1)) + span;
        continue;
      }
      if ((ref & xa_kind_mask) == xa_branch) {
        const u64 cbase = L.base + (L.j << geo::slot_bits(L.h));
        ++L.j;
        stack_[depth_] = level{read::node(d_->memory(), ref), L.h - 1, cbase, 0};
        ++depth_;
        continue;
      }
      enter(L, ref);
      return true;
    }
    return false;
  }

  bool scan_compact(entry& e) {
    for (const u64 n = read::c_count(leaf_); rec_ < n; ++rec_) {
      if (mark_ >= 0 && !((read::c_marks(leaf_, rec_) >> mark_) & 1)) continue;
      e = read::c_entry(leaf_, rec_++);
      return true;
    }
    return false;
  }

  bool scan_dense(entry& e) {
    u64 i = pos_ > leaf_base_ ? pos_ - leaf_base_ : 0;
    if (i >= geo::leaf_slots) return false;
    if (first_ && sec_ != nullptr && read::d_present(leaf_, i) &&
        detail::test_bit(read::side_bitmap(sec_, read::tail), i)) {
      u64 head;
      unsigned ord;
      read::d_extent(sec_, i, head, ord);  // the scan starts inside a multi-order entry
      i = head;
    }
    if (mark_ >= 0) {
      // only heads carry marks: the first set bit at or after i is the next hit
      i = next_marked_slot(i);
      if (i >= geo::leaf_slots) return false;
      e = head_entry(i);
      return true;
    }
    const unsigned char* tails = sec_ == nullptr ? nullptr : read::side_bitmap(sec_, read::tail);
    for (; i < geo::leaf_slots; ++i) {
      if (!read::d_present(leaf_, i)) continue;
      if (tails != nullptr && detail::test_bit(tails, i)) continue;  // inside an entry already returned
      e = head_entry(i);
      return true;
    }
    return false;
  }

  /// The entry whose first slot is s (a head: present and not a tail).
  entry head_entry(u64 s) const {
    const Value v = read::d_value(leaf_, s);
    if (sec_ == nullptr) return entry{leaf_base_ + s, order{0}, 0, v};
    const unsigned char* tails = read::side_bitmap(sec_, read::tail);
    u64 n = 1;
    while (s + n < geo::leaf_slots && detail::test_bit(tails, s + n)) ++n;
    return entry{leaf_base_ + s, order{static_cast<unsigned>(std::countr_zero(n))}, marks_at(s), v};
  }

  const Derived* d_;
  u64 pos_;
  int mark_;
  bool done_;
  bool first_ = true;
  u64 gen_ = ~u64{0};
  std::uintptr_t anchor_ = 0;
  level stack_[geo::max_height + 1];
  unsigned depth_ = 0;
  const unsigned char* leaf_ = nullptr;
  bool leaf_compact_ = false;
  u64 leaf_base_ = 0, leaf_last_ = 0;
  u64 rec_ = 0;                          // compact: the next record
  const unsigned char* sec_ = nullptr;   // dense: the side section, or nullptr
  bool fast_leaf_ = false;               // dense without tails: scan_fast from slot_
  u64 slot_ = geo::leaf_slots;           // fast_leaf_: the next slot to look at; else leaf_slots
};

}  // namespace detail

}  // namespace kho
