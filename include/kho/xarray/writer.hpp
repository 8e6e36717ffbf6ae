// kho/xarray/writer.hpp: the writer, class xarray: its public operations, its state, and the
// declarations of its internals. The definitions of the longer internals live in
// nodes.hpp, remove.hpp, insert.hpp, in_place.hpp and append.hpp (each section of
// the class names its header); include kho/xarray.hpp, which brings them all.
#pragma once

#include <kho/checksum.hpp>
#include <kho/detail/fixed_string.hpp>
#include <kho/memory.hpp>
#include <kho/result.hpp>
#include <kho/xarray/queries.hpp>

#include <cstddef>
#include <span>
#include <utility>

namespace kho {

template <class Value, unsigned PageShift, Memory M>
class xarray_view;

// ---- writer ----------------------------------------------------------------------------

/// An index -> Value map in pages from `Source`, readable in place after kexec.
template <class Value, unsigned PageShift, PageSource Source>
class xarray : public detail::xa_queries<xarray<Value, PageShift, Source>, Value, PageShift> {
  using geo = detail::xa_geometry<Value, PageShift>;
  using read = detail::xa_read<Value, PageShift>;

 public:
  using entry = xarray_entry<Value>;
  using value_type = Value;
  static constexpr unsigned page_shift = PageShift;
  static constexpr u64 root_size = sizeof(xarray_root);  // bytes a handover entry covers
  static constexpr u64 compact_capacity = geo::compact_capacity;
  static constexpr u64 leaf_slots = geo::leaf_slots;
  static constexpr u64 fanout = geo::fanout;
  static constexpr unsigned max_height = geo::max_height;

  /// An empty map: one page for the root block. Errors: out_of_memory.
  static result<xarray> create(Source& source) {
    auto pa = alloc_zeroed(source, order{0}, geo::page);
    if (!pa) return pa.err();
    auto* r = static_cast<xarray_root*>(source.memory().to_virt(*pa, sizeof(xarray_root)));
    r->magic.set(xarray_magic);
    detail::store_string(r->compatible, sizeof r->compatible, xarray_compatible);
    r->version_major.set(xarray_version_major);
    r->version_minor.set(xarray_version_minor);
    r->page_shift.set(PageShift);
    r->value_size.set(sizeof(Value));
    xarray x(source, *pa);
    x.seal();
    return x;
  }

  /// Turns a validated view (next kernel) back into a writer over the same nodes.
  /// New nodes come from `source`, freed ones go to it. Complexity: O(1).
  /// Errors: out_of_bounds (source cannot reach the root block).
  template <Memory M>
  static result<xarray> adopt(const xarray_view<Value, PageShift, M>& view, Source& source) {
    if (source.memory().to_virt(view.root(), geo::page) == nullptr) return errc::out_of_bounds;
    return xarray(source, view.root());
  }

  /// Stores `v` at `index` as an order-0 entry. Same as store_range(index, order{0}, v).
  status store(u64 index, const Value& v) { return store_range(index, order{0}, v); }

  /// Stores `v` as ONE entry covering [index, index + 2^o). Entries that overlap the
  /// block are replaced: a larger entry holding it is removed whole, smaller ones inside
  /// it are removed; an entry of exactly this block keeps its marks.
  /// Complexity: O(H + log compact_capacity) plus O(page) per split, plus what it replaces.
  /// Errors: out_of_range (o > 63), misaligned (index not a multiple of 2^o),
  /// invalid_argument (the all-zero Value, which means absent), out_of_memory (the
  /// replaced entries are then already gone; the map is otherwise consistent).
  status store_range(u64 index, order o, const Value& v) {
    if (o.value > 63) return errc::out_of_range;
    if ((index & geo::span_mask(o.value)) != 0) return errc::misaligned;
    if (detail::is_zero_value(v)) return errc::invalid_argument;
    settle();
    if (o.value == 0 && (store_in_place(index, v) || (follows_dense_run(index) && open_dense(index, v)))) return {};
    touch();
    u64 lo = index, hi = index + geo::span_mask(o.value);
    if (auto e = overlapping(index, hi)) {
      if (e->index == index && e->span == o) {
        write_value(*e, v);
        return {};
      }
      if (e->index < index || e->span.value > o.value) lo = e->index, hi = e->last();
      remove_range(lo, hi);
    }
    status st = insert(index, o.value, v);
    shrink();
    return st;
  }

  /// Removes the whole entry holding `index` (all 2^order indices of a multi-order entry,
  /// and its marks). Complexity: O(H + compact_capacity). Errors: not_found.
  status erase(u64 index) {
    settle();
    spot* at;
    if (!reach(index, at)) return errc::not_found;
    const int r = at->compact() ? c_erase_in_place(*at, index) : d_erase_in_place(*at, index);
    if (r == 0) return errc::not_found;
    if (r > 0) return {};
    // The leaf empties or the entry spans slots: the general path, which frees and shrinks.
    touch();
    auto e = this->entry_at(index);
    if (!e) return errc::not_found;
    remove_range(e->index, e->last());
    shrink();
    return {};
  }

  /// Replaces the value of the entry holding `index`, keeping its extent and marks, and
  /// returns the old value. Complexity: O(H + log compact_capacity) (+ 2^order slots of a
  /// dense leaf). Errors: not_found (nothing stored), invalid_argument (all-zero value).
  result<Value> exchange(u64 index, const Value& v) {
    if (detail::is_zero_value(v)) return errc::invalid_argument;
    spot* at;
    if (!reach(index, at)) return errc::not_found;
    if (at->compact()) {
      const long p = read::c_find(at->leaf, index);
      if (p < 0) return errc::not_found;
      const Value old = read::c_value(at->leaf, static_cast<u64>(p));
      std::memcpy(at->leaf + geo::values_off + geo::value_size * static_cast<u64>(p), &v, sizeof v);
      return old;
    }
    const u64 i = index & (geo::leaf_slots - 1);
    if (!read::d_present(at->leaf, i)) return errc::not_found;
    u64 head;
    unsigned ord;
    read::d_extent(at->sec, i, head, ord);
    const Value old = read::d_value(at->leaf, head);
    for (u64 k = 0; k < (u64{1} << ord); ++k) std::memcpy(at->leaf + geo::value_size * (head + k), &v, sizeof v);
    return old;
  }

  /// Appends `v` as one entry covering [index, index + 2^o) after every entry already in
  /// the map: the bulk path for index-ordered input (the folios of a memfd arrive in
  /// index order when it is preserved). Entries land in the rightmost leaf directly, with
  /// no search; a run of consecutive indices that filled a dense leaf starts the next one
  /// dense instead of passing through a compact leaf first.
  /// Complexity: O(H) (H+2 counters) while entries land in the current leaf, otherwise
  /// as store_range. Errors: invalid_argument (index not after the last entry's last
  /// index: out-of-order input; nothing changed), and store_range's.
  status append_ordered(u64 index, order o, const Value& v) {
    const entry e{index, o, 0, v};
    if (append_run(&e, &e + 1) != &e) return {};
    return append_slow(index, o, v);
  }
  /// append_ordered of an order-0 entry.
  status append_ordered(u64 index, const Value& v) { return append_ordered(index, order{0}, v); }

  /// append_ordered of every entry of `batch` in turn, marks included: the folios of a
  /// memfd as the kernel pins them, an array at a time. A run of unmarked order-0
  /// entries that lands in the open dense leaf is written by one loop that checks the
  /// writer's mapping once for the run instead of once per entry.
  /// Complexity: as append_ordered per entry; a few instructions per entry of a run.
  /// Errors: as append_ordered, and invalid_argument for a mark bit beyond xa_mark_count,
  /// at the first entry refused; the entries before it stay appended (count() says how
  /// many), nothing of it or after it is.
  status append_ordered(std::span<const entry> batch) {
    const entry* e = batch.data();
    const entry* const end = e + batch.size();
    while ((e = append_run(e, end)) != end) {
      if ((e->marks >> xa_mark_count) != 0) return errc::invalid_argument;
      KHO_TRY(append_ordered(e->index, e->span, e->value));
      for (unsigned m = 0; m < xa_mark_count; ++m)
        if (e->marked(static_cast<xa_mark>(m))) KHO_TRY(set_mark(e->index, static_cast<xa_mark>(m)));
      ++e;
    }
    return {};
  }

  /// Bumped by every change that moves or frees nodes or compact records; cursors over
  /// this writer re-descend from their position when it moved.
  u64 generation() const { return gen_; }

  /// Sets mark `m` on the entry holding `index`. Complexity: O(H * fanout / 64).
  /// Errors: not_found, invalid_argument (m), out_of_memory (a dense leaf's side node).
  status set_mark(u64 index, xa_mark m) {
    if (mark_plain(index, m)) return {};
    return change_mark(index, m, true);
  }
  /// Clears mark `m` on the entry holding `index`. Errors: not_found, invalid_argument.
  status clear_mark(u64 index, xa_mark m) { return change_mark(index, m, false); }

  /// Recomputes the root block's checksum: call after the last change before handover.
  void seal() {
    flush_tail();
    xarray_root& r = rb();
    r.checksum.set(checksum_with_hole(&r, sizeof r, offsetof(xarray_root, checksum)));
  }

  /// Frees every node and the root block. The object must not be used afterwards.
  void destroy() {
    free_subtree(rb().root.get(), rb().height.get());
    src_->free(root_pa_, order{0});
  }

  phys_addr root() const { return root_pa_; }
  u64 count() const { return rb().count.get() + tail_.pending; }
  unsigned height() const { return rb().height.get(); }
  u64 nodes() const { return rb().nodes.get(); }
  u8 marks() const { return static_cast<u8>(rb().marks.get()); }
  Source& source() const { return *src_; }

  // for xa_queries
  const memory_of<Source>& memory() const { return src_->memory(); }
  u64 root_ref() const { return rb().root.get(); }
  unsigned root_height() const { return rb().height.get(); }

 private:
  struct frame {
    unsigned char* br;
    unsigned h;
    u64 base;
    u64 j;
  };

  xarray(Source& source, phys_addr root) : src_(&source), root_pa_(root) {}

  xarray_root& rb() const {
    return *static_cast<xarray_root*>(src_->memory().to_virt(root_pa_, sizeof(xarray_root)));
  }
  unsigned char* node(u64 ref) const { return read::node(memory(), ref); }
  static u64 kind(u64 ref) { return ref & detail::xa_kind_mask; }
  static u64 ref_of(u64 pa, u64 k, unsigned run = 0) { return pa | k | (u64{run} << detail::xa_run_shift); }

  // -- node pages and the fingerprint (xarray/nodes.hpp)
  result<u64> new_node();
  void free_node(u64 ref);
  void account(u64 pa, u64 sign);
  result<unsigned char*> new_header_node(u32 magic, unsigned level, u64 base, unsigned shift, u64& pa);

  // -- branch slots and summaries (xarray/nodes.hpp)
  static void write_slots(unsigned char* br, u64 js, u64 n, u64 ref);
  static void set_summary(unsigned char* br, u64 js, u64 n, u8 marks);
  static u8 branch_marks(const unsigned char* br);
  static u8 compact_marks(const unsigned char* leaf) {
    u8 marks = 0;
    for (u64 i = 0, n = read::c_count(leaf); i < n; ++i) marks |= read::c_marks(leaf, i);
    return marks;
  }
  u8 child_marks(const unsigned char* br, u64 j) const;
  void refresh_slot(unsigned char* br, u64 j);
  u8 root_marks() const {
    const u64 ref = rb().root.get();
    return ref == 0 ? 0 : detail::header(node(ref)).marks;
  }
  void refresh_path(frame* path, unsigned depth, u64 delta);

  // -- compact leaves (xarray/nodes.hpp)
  static void c_move(unsigned char* dst, u64 di, const unsigned char* src, u64 si, u64 n);
  static void c_zero(unsigned char* leaf, u64 i, u64 n);
  static void c_set_count(unsigned char* leaf, u64 n) {
    detail::header(leaf).count.set(static_cast<u32>(n));
    detail::header(leaf).entries.set(n);
    detail::header(leaf).marks = compact_marks(leaf);
  }
  /// Records with first index < idx.
  static u64 c_lower(const unsigned char* leaf, u64 idx) { return idx == 0 ? 0 : read::c_upper_bound(leaf, idx - 1); }
  static void c_insert(unsigned char* leaf, u64 index, unsigned o, const Value& v);
  static u64 c_remove(unsigned char* leaf, u64 lo, u64 hi);

  // -- dense leaves and their side nodes (xarray/nodes.hpp)
  u64 side_ref(const unsigned char* br, u64 j) const { return read::side_ref(br, j); }
  result<unsigned char*> ensure_side(unsigned char* br, u64 j);
  void drop_side_if_empty(unsigned char* br, u64 j);
  static void set_dense_count(unsigned char* br, u64 j, u64 n) {
    detail::put16(br + geo::dense_count_off + 2 * j, static_cast<u16>(n));
  }
  static void d_write(unsigned char* leaf, unsigned char* sec, u64 i, unsigned o, const Value& v, u8 marks);
  u64 d_remove(unsigned char* br, u64 j, u64 lbase, u64 lo, u64 hi);

  // -- whole subtrees (xarray/remove.hpp)
  void free_subtree(u64 ref, unsigned h);
  void remove_range(u64 lo, u64 hi);
  u64 b_remove(unsigned char* br, unsigned h, u64 base, u64 lo, u64 hi);

  // -- height (xarray/insert.hpp)
  status grow_for(u64 last);
  void shrink();

  // -- insertion (xarray/insert.hpp)
  static unsigned free_run(const unsigned char* br, unsigned h, u64 j, unsigned need);
  status insert(u64 index, unsigned o, const Value& v);
  status split_root();
  status split(unsigned char* br, unsigned h, u64 base, u64 j);

  /// The first entry overlapping [first, last]. Complexity: O(H + entries in the range).
  result<entry> overlapping(u64 first, u64 last) const {
    return read::first_in(memory(), root_ref(), root_height(), first, last, -1);
  }

  // -- in-place changes to one entry (xarray/in_place.hpp)
  u64 descend(u64 index, frame* path, unsigned& depth) const;

  static u64 leaf_base(const frame& f) { return f.base + (f.j << geo::slot_bits(f.h)); }

  void write_value(const entry& e, const Value& v);
  status change_mark(u64 index, xa_mark m, bool on);
  bool mark_plain(u64 index, xa_mark m);

  // -- one-descent paths (xarray/in_place.hpp)
  /// Where a descent for one index ended: the branches above and the leaf.
  struct step {
    unsigned char* br;
    u64 j;
  };
  struct spot {
    step path[geo::max_height + 1];
    unsigned depth = 0;
    u64 ref = 0;
    unsigned char* leaf = nullptr;
    unsigned char* sec = nullptr;  // a dense leaf's side-node section, if its group has one
    xarray_root* root = nullptr;
    bool compact() const { return kind(ref) == detail::xa_compact; }
    template <Memory Mem>
    unsigned char* side(const Mem& mem) const {
      return depth == 0 ? nullptr : read::side_section(mem, path[depth - 1].br, path[depth - 1].j);
    }
  };
  bool locate(u64 index, spot& at) const;
  bool reach(u64 index, spot*& at);
  static void count_by(const spot& at, u64 delta);
  static void count_down(const spot& at) { count_by(at, ~u64{0}); }
  static void count_up(const spot& at) { count_by(at, 1); }
  void propagate(const spot& at, u8 marks);
  bool store_in_place(u64 index, const Value& v);
  int c_erase_in_place(spot& at, u64 index);
  int d_erase_in_place(spot& at, u64 index);
  static u8 summary_of(const unsigned char* br, u64 j) {
    u8 m = 0;
    for (unsigned k = 0; k < xa_mark_count; ++k) m |= static_cast<u8>(read::summary_bit(br, k, j) << k);
    return m;
  }

  // -- the bulk path (xarray/append.hpp)
  /// Where append_ordered writes next: the rightmost leaf, the branches above it, and
  /// the last index in the map. Valid while the generation and the mapping of the root
  /// block are those it was taken under; store_range and erase drop it.
  struct tail_hint {
    u64 gen = ~u64{0};
    const void* anchor = nullptr;
    u64 last = 0;       // last index of the last entry
    u64 leaf_last = 0;  // last index the leaf covers
    bool dense = false;
    spot at{};          // the path to the leaf
    u64 pending = 0;    // dense appends not yet in the counts
  };
  void flush_tail();
  /// Before any other change: counts up to date, the hint dropped.
  void settle() {
    flush_tail();
    tail_.gen = ~u64{0};
  }

  const entry* append_run(const entry* e, const entry* end);
  status append_slow(u64 index, order o, const Value& v);
  bool follows_dense_run(u64 index) const;
  bool open_dense(u64 index, const Value& v);
  status take_tail(u64 last);
  u64 last_index() const;

  void touch() { ++gen_; }

  /// The leaf the last one-descent change reached, and its window [first, last].
  struct leaf_hint {
    u64 gen = ~u64{0};
    u64 first = 0, last = 0;
    spot at{};
  };
  Source* src_;
  phys_addr root_pa_;
  u64 gen_ = 0;
  tail_hint tail_{};
  leaf_hint hint_{};
};

/// Creates with the source type deduced: make_xarray<u64>(pages).
template <class Value, unsigned PageShift = 12, PageSource Source>
result<xarray<Value, PageShift, Source>> make_xarray(Source& source) {
  return xarray<Value, PageShift, Source>::create(source);
}

}  // namespace kho
