// kho/xarray.hpp: a sparse index -> value map that stays usable across kexec.
//
// A preserved memfd, guest_memfd or hugetlb file needs "page index -> folio" that the
// next kernel reads in place and keeps changing (faults after preservation). Upstream
// today writes a flat sorted array of 16-byte records (capped near 1 GiB, frozen once
// written); its work-in-progress KHO xarray is 6 levels of 512 u64 slots, which costs a
// page per entry when keys are sparse. This one answers that with two leaf kinds and
// branches whose slots may share a leaf:
//
//   root block ──► branch (level h) ──► branch (level 1) ──► dense leaf  [v v 0 v v ...]
//   (128 bytes,     header | marks      header | marks        2^leaf_bits Values, nothing
//    checksummed)   summary | slots     | dense counts          else: 0 means absent
//                                       | side refs | slots ─► side node (marks + tails)
//                                 └──────────────────────────► compact leaf covering a
//                                                              RUN of 2^r aligned slots
//                                                              [k0 k1 k2 ...][v..][o..][m..]
//
//   index bits (4 KiB pages, u64 values; L = 9 leaf bits, B = 8 branch bits):
//   63 ........ 57 56 .. 49 48 .. 41 ... 16 .. 9 8 ....... 0
//   [ level 7:7b ][level 6 ][level 5 ] ... [lvl 1][dense leaf]
//
// * Branch (level h >= 1): fanout = page/16 slots (256 with 4 KiB pages), each a ref:
//   physical address | kind (bits 0-1: null, branch, compact, dense) | run (bits 2-6).
//   Per slot it also keeps three mark-summary bits (some entry behind the slot carries
//   the mark: find_marked skips the subtree otherwise) and, for a dense child, its
//   entry count. Level-1 branches keep refs to side nodes, one per `side_group` slots.
// * Dense leaf: only under a level-1 branch; one page of Values indexed by the low L
//   bits, no header, so a dense u64 file costs 8 bytes per entry plus 1/256 for the
//   branches. The all-zero Value is "absent" (as a NULL in the kernel's xarray); storing
//   it is refused. Marks and multi-order entries (stored as the value repeated with a
//   "tail" bit on every slot after the first) live in a side node, allocated only
//   when a dense leaf has one.
// * Compact leaf: up to compact_capacity (224) sorted records (first index, order,
//   marks, value). It hangs off 2^run aligned slots of one branch (extendible hashing:
//   all those slots hold the same ref) and covers their whole range; when full it splits
//   in two halves of the run, at run 0 it bursts into a branch one level down (or, at
//   level 1, becomes a dense leaf). Sparse keys therefore share pages: N random 64-bit
//   keys cost about 4096 / (0.7 * 224) = 26 bytes each instead of a page each.
// * A multi-order entry (store_range: a 2 MiB or 1 GiB folio) is one record covering an
//   aligned block of 2^order indices, kept by a compact leaf whose range holds the
//   block, or by a dense leaf when it is smaller than one.
// * Height grows and shrinks with the largest index: the root covers [0, 2^cover(H))
//   and a file of 512 pages has height 0 (one compact leaf) or 1.
//
// Invariants (checked by attach): every node is page-aligned and inside memory; no page
// is reached twice (a visited set in caller-lent scratch holds every page reached, the
// root block's included, and is consulted before a node is read: the one legitimate
// sharing, a compact leaf's run of 2^r aligned slots holding one ref, is recognised from
// the slots and counted once); a node's header level, base and shift match its position
// and links go strictly down; compact records are sorted, disjoint, aligned to their
// order and inside the leaf; dense counts, compact counts and branch entry counts equal
// what is below them; summary bits equal the marks below; side bits sit only on present
// slots (marks on heads, tails after a head of equal value forming an aligned
// power-of-two block); every field documented as zero is zero (docs/format.md); entries,
// marks, node count and the address fingerprint equal the root's. A checksum or
// fingerprint a writer can recompute proves nothing about the graph; the visited set does.
//
// Complexity: load, store, erase, exchange, set/clear_mark are O(H + log compact_capacity)
// (H <= 7 with 4 KiB pages), and where the entry is plain (an order-0 store or erase in
// a leaf that neither fills nor empties, any mark or exchange) they are ONE descent:
// counts change on the path, mark summaries only where a bit flips, bottom-up until a
// branch's own marks stay the same; none at all when the change falls in the window of
// the leaf the last one reached (a hint kept as xa_state keeps its node, dropped by any
// change that moves nodes or records, or by a remap of the writer's memory). A store that splits a leaf adds O(page); store_range
// adds O(entries and nodes it replaces); find/find_marked O(H * fanout) worst case; a
// cursor (cursor(), marked_cursor()) resumes where it stopped, O(1) amortised per entry;
// append_ordered (index-ordered input: a memfd's folios at preservation) writes into the
// rightmost leaf without a search and opens the next dense leaf directly. Validation (attach) costs O(bytes reachable from the
// root) in time and O(pages reachable) in scratch (about 32 bytes per page), never O(RAM)
// or O(a count the root claims); claim_pages O(pages reached).
//
// The writer (xarray) allocates nodes from a PageSource; pair it with
// preserving_page_source and every node it adds after preservation is preserved too.
// The reader (xarray_view) is a validated const view; adopt() turns one back into a
// writer in the next kernel, reusing every node in place.
#pragma once

#include <kho/checksum.hpp>
#include <kho/detail/endian.hpp>
#include <kho/detail/fixed_string.hpp>
#include <kho/detail/probe_table.hpp>
#include <kho/detail/xarray_layout.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstddef>
#include <cstring>
#include <span>
#include <type_traits>
#include <utility>

namespace kho {

// ---- the root block --------------------------------------------------------------------

inline constexpr u64 xarray_magic = 0x31525241584f484bULL;  // "KHOXARR1" little-endian
inline constexpr const char* xarray_compatible = "kho-xarray-v1";
inline constexpr u16 xarray_version_major = 1;
inline constexpr u16 xarray_version_minor = 0;

/// What a handover entry points at: the whole state of one xarray.
struct xarray_root {
  detail::le64 magic;
  char compatible[16];           // "kho-xarray-v1", NUL-padded
  detail::le16 version_major;
  detail::le16 version_minor;
  detail::le16 page_shift;
  detail::le16 value_size;
  detail::le32 height;           // the root node covers [0, 2^cover(height))
  detail::le32 marks;            // bit m: some entry carries mark m
  detail::le64 root;             // ref of the root node (0: empty)
  detail::le64 count;            // entries (a multi-order entry counts once)
  detail::le64 nodes;            // node pages, the root block excluded
  detail::le64 address_sum;      // sum of node addresses, mod 2^64
  detail::le64 address_mix;      // sum of xa_mix(node address), mod 2^64
  detail::le64 checksum;         // XXH64 of these 128 bytes, this field counted as zero
  detail::le64 reserved[5];
};
static_assert(sizeof(xarray_root) == 128);
static_assert(offsetof(xarray_root, compatible) == 8);
static_assert(offsetof(xarray_root, version_major) == 24);
static_assert(offsetof(xarray_root, page_shift) == 28);
static_assert(offsetof(xarray_root, value_size) == 30);
static_assert(offsetof(xarray_root, height) == 32);
static_assert(offsetof(xarray_root, root) == 40);
static_assert(offsetof(xarray_root, count) == 48);
static_assert(offsetof(xarray_root, nodes) == 56);
static_assert(offsetof(xarray_root, address_sum) == 64);
static_assert(offsetof(xarray_root, checksum) == 80);
static_assert(std::has_unique_object_representations_v<xarray_root>);

/// One entry: `value` at every index of [index, index + 2^span).
template <class Value>
struct xarray_entry {
  u64 index = 0;
  order span{};
  u8 marks = 0;  // bit m: mark m
  Value value{};

  u64 last() const { return index + ((u64{1} << span.value) - 1); }
  bool marked(xa_mark m) const { return (marks >> static_cast<unsigned>(m)) & 1; }
};

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
    for (;;) {
      const unsigned char* n = node(mem, ref);
      switch (ref & xa_kind_mask) {
        case xa_branch:
          ref = slot(n, (idx >> geo::slot_bits(h)) & (geo::fanout - 1));
          --h;
          break;
        case xa_compact: {
          const long i = c_find(n, idx);
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

/// The const queries, written once for the writer and the view. Derived provides
/// memory(), root_ref(), root_height() and count().
template <class Derived, class Value, unsigned PageShift>
class xa_queries {
  using read = xa_read<Value, PageShift>;

 public:
  using entry = xarray_entry<Value>;

  /// The value at `index` (a multi-order entry answers for every index it covers).
  /// Complexity: O(H + log compact_capacity). Errors: not_found.
  result<Value> load(u64 index) const {
    const unsigned char* v = read::lookup(self().memory(), self().root_ref(), self().root_height(), index);
    if (v == nullptr) return errc::not_found;
    Value out;
    std::memcpy(&out, v, sizeof out);
    return out;
  }

  /// The whole entry holding `index`: its first index, order, marks and value.
  /// Complexity: O(H + log compact_capacity). Errors: not_found.
  result<entry> entry_at(u64 index) const {
    return read::first_in(self().memory(), self().root_ref(), self().root_height(), index, index, -1);
  }

  /// The first entry holding an index >= `start`. Complexity: O(H * fanout) worst case,
  /// O(H) when entries are near. Errors: not_found.
  result<entry> find(u64 start) const {
    return read::first_from(self().memory(), self().root_ref(), self().root_height(), start, -1);
  }

  /// The first entry that begins after `index`. Errors: not_found.
  result<entry> find_after(u64 index) const {
    if (index == ~u64{0}) return errc::not_found;
    auto e = find(index + 1);
    if (!e || e->index > index) return e;
    if (e->last() == ~u64{0}) return errc::not_found;
    return find(e->last() + 1);
  }

  /// The first entry holding an index >= `start` that carries `m`; subtrees whose
  /// summary bit is clear are skipped without being read. Errors: not_found, invalid_argument.
  result<entry> find_marked(u64 start, xa_mark m) const {
    if (static_cast<unsigned>(m) >= xa_mark_count) return errc::invalid_argument;
    return read::first_from(self().memory(), self().root_ref(), self().root_height(), start,
                            static_cast<int>(m));
  }

  /// True if the entry holding `index` carries `m`. Complexity: O(H + log compact_capacity).
  bool get_mark(u64 index, xa_mark m) const {
    auto e = entry_at(index);
    return e && static_cast<unsigned>(m) < xa_mark_count && e->marked(m);
  }

  /// Calls f(entry) for each entry overlapping [first, last], in ascending order; f may
  /// return bool (false stops). Complexity: O(entries visited + nodes touched).
  template <class F>
  void for_each(u64 first, u64 last, F&& f) const {
    each(first, last, -1, f);
  }
  /// As for_each, only entries carrying `m`, skipping unmarked subtrees.
  template <class F>
  void for_each_marked(u64 first, u64 last, xa_mark m, F&& f) const {
    if (static_cast<unsigned>(m) < xa_mark_count) each(first, last, static_cast<int>(m), f);
  }

  using cursor_type = xa_cursor<Derived, Value, PageShift>;
  /// A scan of every entry from `start` that resumes where it stopped (see xa_cursor).
  /// Complexity: O(1) amortised per entry. Errors: none (next() says not_found at the end).
  cursor_type cursor(u64 start = 0) const { return cursor_type(self(), start, -1); }
  /// A scan of the entries carrying `m` from `start`: each next() continues from the
  /// last hit, skipping subtrees whose summary bit is clear, where find_marked descends
  /// from the root every time. Complexity: O(1) amortised per hit plus the summaries
  /// skipped. An invalid mark yields an empty scan.
  cursor_type marked_cursor(u64 start, xa_mark m) const {
    return cursor_type(self(), start, static_cast<int>(m));
  }

  bool empty() const { return self().count() == 0; }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }

  template <class F>
  void each(u64 first, u64 last, int mark, F& f) const {
    if (first > last) return;
    auto call = [&](const entry& e) {
      if constexpr (std::is_same_v<decltype(f(e)), bool>) {
        return f(e);
      } else {
        f(e);
        return true;
      }
    };
    read::walk(self().memory(), self().root_ref(), self().root_height(), first, last, mark, call);
  }
};

}  // namespace detail

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

  // -- node pages and the fingerprint
  result<u64> new_node() {
    touch();
    auto pa = alloc_zeroed(*src_, order{0}, geo::page);
    if (!pa) return pa.err();
    account(pa->value, 1);
    return pa->value;
  }
  void free_node(u64 ref) {
    touch();
    const u64 pa = ref & ~geo::page_mask;
    account(pa, ~u64{0});
    src_->free(phys_addr{pa}, order{0});
  }
  void account(u64 pa, u64 sign) {  // sign: 1 or -1 (mod 2^64)
    xarray_root& r = rb();
    r.nodes.set(r.nodes.get() + sign);
    r.address_sum.set(r.address_sum.get() + sign * pa);
    r.address_mix.set(r.address_mix.get() + sign * detail::xa_mix(pa));
  }
  result<unsigned char*> new_header_node(u32 magic, unsigned level, u64 base, unsigned shift, u64& pa) {
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

  // -- branch slots and summaries
  /// Writes `ref` into slots [js, js + n), keeping the branch's non-null slot count.
  static void write_slots(unsigned char* br, u64 js, u64 n, u64 ref) {
    u32 count = detail::header(br).count.get();
    for (u64 j = js; j < js + n; ++j) {
      count -= read::slot(br, j) != 0;
      count += ref != 0;
      detail::put64(br + geo::slots_off + 8 * j, ref);
    }
    detail::header(br).count.set(count);
  }
  static void set_summary(unsigned char* br, u64 js, u64 n, u8 marks) {
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
  static u8 branch_marks(const unsigned char* br) {
    u8 marks = 0;
    for (unsigned m = 0; m < xa_mark_count; ++m)
      if (detail::any_bits(br + geo::summary_off + m * geo::fanout / 8, geo::fanout / 8))
        marks |= static_cast<u8>(1u << m);
    return marks;
  }
  static u8 compact_marks(const unsigned char* leaf) {
    u8 marks = 0;
    for (u64 i = 0, n = read::c_count(leaf); i < n; ++i) marks |= read::c_marks(leaf, i);
    return marks;
  }
  /// The marks of whatever slot j of `br` holds.
  u8 child_marks(const unsigned char* br, u64 j) const {
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
  void refresh_slot(unsigned char* br, u64 j) {
    const u64 ref = read::slot(br, j);
    const u64 n = kind(ref) == detail::xa_compact ? u64{1} << read::run_of(ref) : 1;
    set_summary(br, j & ~(n - 1), n, child_marks(br, j));
    detail::header(br).marks = branch_marks(br);
  }
  u8 root_marks() const {
    const u64 ref = rb().root.get();
    return ref == 0 ? 0 : detail::header(node(ref)).marks;
  }
  /// After a change below path[0..depth): entry counts by `delta`, summaries bottom-up.
  void refresh_path(frame* path, unsigned depth, u64 delta) {
    for (unsigned k = depth; k-- > 0;) {
      detail::xa_node_header& h = detail::header(path[k].br);
      h.entries.set(h.entries.get() + delta);
      refresh_slot(path[k].br, path[k].j);
    }
    xarray_root& r = rb();
    r.count.set(r.count.get() + delta);
    r.marks.set(root_marks());
  }

  // -- compact leaves
  static void c_move(unsigned char* dst, u64 di, const unsigned char* src, u64 si, u64 n) {
    std::memmove(dst + geo::keys_off + 8 * di, src + geo::keys_off + 8 * si, 8 * n);
    std::memmove(dst + geo::values_off + geo::value_size * di, src + geo::values_off + geo::value_size * si,
                 geo::value_size * n);
    std::memmove(dst + geo::orders_off + di, src + geo::orders_off + si, n);
    std::memmove(dst + geo::marks_off + di, src + geo::marks_off + si, n);
  }
  static void c_zero(unsigned char* leaf, u64 i, u64 n) {
    std::memset(leaf + geo::keys_off + 8 * i, 0, 8 * n);
    std::memset(leaf + geo::values_off + geo::value_size * i, 0, geo::value_size * n);
    std::memset(leaf + geo::orders_off + i, 0, n);
    std::memset(leaf + geo::marks_off + i, 0, n);
  }
  static void c_set_count(unsigned char* leaf, u64 n) {
    detail::header(leaf).count.set(static_cast<u32>(n));
    detail::header(leaf).entries.set(n);
    detail::header(leaf).marks = compact_marks(leaf);
  }
  /// Records with first index < idx.
  static u64 c_lower(const unsigned char* leaf, u64 idx) { return idx == 0 ? 0 : read::c_upper_bound(leaf, idx - 1); }
  static void c_insert(unsigned char* leaf, u64 index, unsigned o, const Value& v) {
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
  static u64 c_remove(unsigned char* leaf, u64 lo, u64 hi) {
    const u64 n = read::c_count(leaf);
    const u64 p0 = c_lower(leaf, lo), p1 = read::c_upper_bound(leaf, hi);
    if (p1 <= p0) return 0;
    c_move(leaf, p0, leaf, p1, n - p1);
    c_zero(leaf, n - (p1 - p0), p1 - p0);
    c_set_count(leaf, n - (p1 - p0));
    return p1 - p0;
  }

  // -- dense leaves and their side nodes
  u64 side_ref(const unsigned char* br, u64 j) const { return read::side_ref(br, j); }
  /// The side section of slot j, allocating the side node if needed. Errors: out_of_memory.
  result<unsigned char*> ensure_side(unsigned char* br, u64 j) {
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
  void drop_side_if_empty(unsigned char* br, u64 j) {
    const u64 ref = side_ref(br, j);
    if (ref == 0 || detail::any_bits(node(ref) + 64, geo::side_group * geo::side_leaf_bytes)) return;
    free_node(ref);
    detail::put64(br + geo::side_off + 8 * (j / geo::side_group), 0);
  }
  static void set_dense_count(unsigned char* br, u64 j, u64 n) {
    detail::put16(br + geo::dense_count_off + 2 * j, static_cast<u16>(n));
  }
  /// Writes one entry of order o at slot i of a dense leaf (value repeated, tails marked).
  static void d_write(unsigned char* leaf, unsigned char* sec, u64 i, unsigned o, const Value& v, u8 marks) {
    for (u64 k = 0; k < (u64{1} << o); ++k) {
      std::memcpy(leaf + geo::value_size * (i + k), &v, sizeof v);
      if (sec != nullptr) detail::assign_bit(read::side_bitmap(sec, read::tail), i + k, k != 0);
    }
    if (sec != nullptr)
      for (unsigned m = 0; m < xa_mark_count; ++m) detail::assign_bit(read::side_bitmap(sec, m), i, (marks >> m) & 1);
  }
  /// Removes the entries of slot j's dense leaf inside [lo, hi]; returns how many.
  u64 d_remove(unsigned char* br, u64 j, u64 lbase, u64 lo, u64 hi) {
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

  // -- whole subtrees
  void free_subtree(u64 ref, unsigned h) {
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
  void remove_range(u64 lo, u64 hi) {
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

  u64 b_remove(unsigned char* br, unsigned h, u64 base, u64 lo, u64 hi) {
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

  // -- height
  /// Raises the height until the root covers index `last`. Errors: out_of_memory.
  status grow_for(u64 last) {
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
  void shrink() {
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

  // -- insertion
  /// The largest aligned run (at least 2^need slots) of empty slots around j.
  static unsigned free_run(const unsigned char* br, unsigned h, u64 j, unsigned need) {
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
  status insert(u64 index, unsigned o, const Value& v) {
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
  status split_root() {
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
  status split(unsigned char* br, unsigned h, u64 base, u64 j) {
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

  /// The first entry overlapping [first, last]. Complexity: O(H + entries in the range).
  result<entry> overlapping(u64 first, u64 last) const {
    return read::first_in(memory(), root_ref(), root_height(), first, last, -1);
  }

  // -- in-place changes to one entry
  /// Walks to the leaf holding `index`; fills the path. Returns the leaf ref or 0.
  u64 descend(u64 index, frame* path, unsigned& depth) const {
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

  static u64 leaf_base(const frame& f) { return f.base + (f.j << geo::slot_bits(f.h)); }

  void write_value(const entry& e, const Value& v) {
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
  status change_mark(u64 index, xa_mark m, bool on) {
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
  bool mark_plain(u64 index, xa_mark m) {
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

  // -- one-descent paths
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
  /// Walks to the leaf whose range holds `index`. False if none does (no entry there).
  bool locate(u64 index, spot& at) const {
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
  bool reach(u64 index, spot*& at) {
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
  static void count_by(const spot& at, u64 delta) {
    for (unsigned k = 0; k < at.depth; ++k) {
      detail::xa_node_header& h = detail::header(at.path[k].br);
      h.entries.set(h.entries.get() + delta);
    }
    at.root->count.set(at.root->count.get() + delta);
  }
  static void count_down(const spot& at) { count_by(at, ~u64{0}); }
  static void count_up(const spot& at) { count_by(at, 1); }
  /// The leaf below `at` now carries `marks`: rewrites the summary bits upwards while
  /// a branch's own marks change, and the root block's marks at the top.
  void propagate(const spot& at, u8 marks) {
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
  bool store_in_place(u64 index, const Value& v) {
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
  int c_erase_in_place(spot& at, u64 index) {
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
  int d_erase_in_place(spot& at, u64 index) {
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
  static u8 summary_of(const unsigned char* br, u64 j) {
    u8 m = 0;
    for (unsigned k = 0; k < xa_mark_count; ++k) m |= static_cast<u8>(read::summary_bit(br, k, j) << k);
    return m;
  }

  // -- the bulk path
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

  /// Brings the counts up to date with the appends made since the tail hint was taken.
  /// Descends again (the mapping may have changed since): O(H).
  void flush_tail() {
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
  /// Before any other change: counts up to date, the hint dropped.
  void settle() {
    flush_tail();
    tail_.gen = ~u64{0};
  }

  /// Writes entries from `e` on while each is unmarked, of order 0, not the all-zero
  /// value and lands in the open dense leaf after its last entry; returns the first it
  /// did not write. Such a slot is absent (past the last entry) and carries no side
  /// bits; the counts follow at the next other change, at seal() or when the leaf is
  /// left (pending).
  const entry* append_run(const entry* e, const entry* end) {
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

  status append_slow(u64 index, order o, const Value& v) {
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
  bool follows_dense_run(u64 index) const {
    if ((index & (geo::leaf_slots - 1)) != 0 || index == 0) return false;
    spot at;
    if (!locate(index - 1, at) || at.compact()) return false;
    const step& f = at.path[at.depth - 1];
    return read::dense_count(f.br, f.j) >= geo::compact_capacity && read::d_present(at.leaf, geo::leaf_slots - 1);
  }

  /// Creates the branches down to level 1 and a dense leaf holding `v` at `index`, where
  /// the path is free of leaves. False (nothing changed) where a leaf is in the way or a
  /// page is missing: every page is allocated before anything is linked.
  bool open_dense(u64 index, const Value& v) {
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
  status take_tail(u64 last) {
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
  u64 last_index() const {
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

// ---- reader ----------------------------------------------------------------------------

namespace detail {

/// A node page the validation walk has reached: the visited set, in scratch pages only.
struct xa_reached_slot {
  u64 tag;
  u64 pa;
};
static_assert(sizeof(xa_reached_slot) == 16, "slots tile a page");

/// True if the `n` bytes at `p` are all zero (any length, any alignment).
inline bool all_zero(const unsigned char* p, u64 n) {
  for (u64 i = 0; i < n; ++i)
    if (p[i] != 0) return false;
  return true;
}

}  // namespace detail

/// A validated, read-only view of an xarray in place (the next kernel's side).
template <class Value, unsigned PageShift, Memory M>
class xarray_view : public detail::xa_queries<xarray_view<Value, PageShift, M>, Value, PageShift> {
  using geo = detail::xa_geometry<Value, PageShift>;
  using read = detail::xa_read<Value, PageShift>;

 public:
  using entry = xarray_entry<Value>;
  static constexpr const char* structure = "xarray";

  /// Validates the root block at `root` and every node below it. Each page reached (the
  /// root block's included) goes into a visited set in pages from `scratch` (pages of
  /// 2^PageShift bytes) before anything below it is read, so no page is accepted twice:
  /// only a compact leaf's run of 2^r aligned equal slots in one branch shares it, and
  /// that is recognised from the slots. The scratch is returned before attach returns.
  /// Complexity: O(pages reachable from the root) time, each page read once and in
  /// O(page); scratch about 32 bytes per page reached (the table stays at most half full);
  /// neither depends on a count the root claims (its node count only stops the walk early).
  /// Errors (each with the node's address and depth; the root block is depth 0):
  /// misaligned, out_of_bounds, bad_magic, bad_compatible (also another value size),
  /// bad_version, page_size_mismatch, bad_checksum, reserved_nonzero, too_deep,
  /// bad_level, cycle (a page reached twice), bad_count, duplicate (records out of
  /// order or overlapping), out_of_range, budget_exceeded (more pages than the root
  /// counts, or adversarial probing), out_of_memory (scratch).
  template <PageSource Scratch>
  static result<xarray_view> attach(const M& mem, phys_addr root, Scratch& scratch) {
    auto fail = [root](errc c) { return make_error(c, structure, root, 0); };
    if (!page_geometry<PageShift>::is_aligned(root)) return fail(errc::misaligned);
    const auto* page = static_cast<const unsigned char*>(mem.to_virt(root, geo::page));
    if (page == nullptr) return fail(errc::out_of_bounds);
    const auto* r = reinterpret_cast<const xarray_root*>(page);
    if (r->magic.get() != xarray_magic) return fail(errc::bad_magic);
    if (!detail::string_equals(r->compatible, sizeof r->compatible, xarray_compatible) ||
        !detail::is_canonical_string(r->compatible, sizeof r->compatible))
      return fail(errc::bad_compatible);
    if (r->version_major.get() != xarray_version_major) return fail(errc::bad_version);
    if (r->page_shift.get() != PageShift) return fail(errc::page_size_mismatch);
    if (r->value_size.get() != sizeof(Value)) return fail(errc::bad_compatible);
    if (checksum_with_hole(r, sizeof *r, offsetof(xarray_root, checksum)) != r->checksum.get())
      return fail(errc::bad_checksum);
    // The reserved words, the unused mark bits and the rest of the root block's page.
    if (!detail::all_zero(page + offsetof(xarray_root, reserved), sizeof r->reserved) ||
        (r->marks.get() >> xa_mark_count) != 0 || !detail::all_zero(page + sizeof *r, geo::page - sizeof *r))
      return fail(errc::reserved_nonzero);
    const unsigned h = r->height.get();
    if (h > geo::max_height) return fail(errc::too_deep);
    const u64 ref = r->root.get();
    if (ref != 0) {
      const u64 k = ref & detail::xa_kind_mask;  // the root is a branch or a compact leaf
      if ((k != detail::xa_branch && k != detail::xa_compact) || read::run_of(ref) != 0)
        return fail(errc::bad_level);
      if (k == detail::xa_branch && h == 0) return fail(errc::bad_level);
    } else if (h != 0) {
      return fail(errc::bad_level);
    }
    walker<Scratch> w{mem, scratch, r->nodes.get()};
    u64 entries = 0;
    u8 marks = 0;
    status s = w.walk(root, ref, h, entries, marks);
    w.reached.release(scratch);
    if (!s) return s.err();
    if (entries != r->count.get() || marks != r->marks.get() || w.nodes != r->nodes.get() ||
        w.sum != r->address_sum.get() || w.mix != r->address_mix.get())
      return fail(errc::bad_count);
    return xarray_view(mem, root, r);
  }

  /// Claims every page this structure reaches (root block, branches, compact and dense
  /// leaves, side nodes) for page_owner{structure, root()} in `owners`
  /// (kho::page_owners, include/kho/page_owners.hpp). Call on a validated view.
  /// Complexity: O(pages reached). Errors: those of page_owners::claim.
  template <class Owners>
  status claim_pages(Owners& owners) const {
    const page_owner who{structure, root_pa_};
    KHO_TRY(owners.claim(root_pa_, 1, who, Owners::preserve::required));
    if (root_ref() == 0) return {};
    return claim_below(owners, who, root_ref(), root_height());
  }

  phys_addr root() const { return root_pa_; }
  u64 count() const { return root_block_->count.get(); }
  unsigned height() const { return root_block_->height.get(); }
  u64 nodes() const { return root_block_->nodes.get(); }
  u8 marks() const { return static_cast<u8>(root_block_->marks.get()); }
  const xarray_root& root_block() const { return *root_block_; }

  // for xa_queries
  const M& memory() const { return mem_; }
  u64 root_ref() const { return root_block_->root.get(); }
  unsigned root_height() const { return root_block_->height.get(); }

 private:
  xarray_view(const M& mem, phys_addr root, const xarray_root* r) : mem_(mem), root_pa_(root), root_block_(r) {}

  /// The node at `ref` and everything below it (a validated tree: each page once).
  template <class Owners>
  status claim_below(Owners& owners, const page_owner& who, u64 ref, unsigned h) const {
    auto claim = [&](u64 r) {
      return owners.claim(phys_addr{r & ~geo::page_mask}, 1, who, Owners::preserve::required);
    };
    KHO_TRY(claim(ref));
    if ((ref & detail::xa_kind_mask) != detail::xa_branch) return {};
    const unsigned char* br = read::node(mem_, ref);
    if (h == 1)
      for (u64 g = 0; g < geo::side_count; ++g)
        if (const u64 s = detail::get64(br + geo::side_off + 8 * g)) KHO_TRY(claim(s));
    for (u64 j = 0; j < geo::fanout; ++j) {
      const u64 child = read::slot(br, j);
      if (child == 0) continue;
      if ((child & detail::xa_kind_mask) == detail::xa_compact) j |= (u64{1} << read::run_of(child)) - 1;
      KHO_TRY(claim_below(owners, who, child, h - 1));
    }
    return {};
  }

  /// One validation walk: the pages it has reached (a visited set in scratch), their
  /// count and address fingerprint, and the root's node count as an early stop.
  template <class Scratch>
  struct walker {
    const M& mem;
    Scratch& scratch;
    u64 budget;
    detail::probe_table<detail::xa_reached_slot, Scratch, PageShift> reached{};
    u64 nodes = 0, sum = 0, mix = 0;

    status walk(phys_addr root, u64 ref, unsigned h, u64& entries, u8& marks) {
      KHO_TRY(reach(root.value, 0));  // a "node" that is the root block is a cycle
      if (ref == 0) return {};
      if ((ref & detail::xa_kind_mask) == detail::xa_compact)
        return compact(ref, h, 0, geo::cover(h), 1, entries, marks);
      return branch(ref, h, 0, 1, entries, marks);
    }

    /// Puts page `pa` in the visited set; a page already there is a cycle.
    status reach(u64 pa, u32 depth) {
      // 16 probes per page (plus slack for tiny tables): only an adversarial pile-up of
      // collisions stops here, and the work stays linear in the pages reached.
      reached.raise_probe_budget(16 * (reached.size() + 1) + 1024);
      bool inserted = false;
      auto s = reached.insert_unique(scratch, detail::xa_reached_slot{detail::tag_of(pa), pa},
                                     [pa](const detail::xa_reached_slot& e) { return e.pa == pa; }, inserted);
      if (!s) return make_error(s.code(), structure, phys_addr{pa}, depth);
      if (!inserted) return make_error(errc::cycle, structure, phys_addr{pa}, depth);
      return {};
    }

    /// Checks and accounts one node page; nullptr with `err` set on failure.
    const unsigned char* visit(u64 ref, u32 depth, error& err) {
      const u64 pa = ref & ~geo::page_mask;
      auto fail = [&](errc c) {
        err = make_error(c, structure, phys_addr{pa}, depth);
        return nullptr;
      };
      if (((ref & geo::page_mask) >> (detail::xa_run_shift + 5)) != 0) return fail(errc::misaligned);
      if (pa == 0) return fail(errc::out_of_bounds);
      const auto* n = static_cast<const unsigned char*>(mem.to_virt(phys_addr{pa}, geo::page));
      if (n == nullptr) return fail(errc::out_of_bounds);
      if (status s = reach(pa, depth); !s) {
        err = s.err();
        return nullptr;
      }
      if (++nodes > budget) return fail(errc::budget_exceeded);
      sum += pa;
      mix += detail::xa_mix(pa);
      return n;
    }

    static bool position_is(const unsigned char* n, unsigned level, u64 base, unsigned shift) {
      const detail::xa_node_header& h = detail::header(n);
      return h.level == level && h.base.get() == base && h.shift == shift;
    }
    /// The header words documented as zero, and the unused mark bits.
    static bool header_reserved_zero(const unsigned char* n) {
      const detail::xa_node_header& h = detail::header(n);
      return h.reserved0 == 0 && h.reserved1.get() == 0 && (h.marks >> xa_mark_count) == 0 &&
             detail::all_zero(n + offsetof(detail::xa_node_header, reserved), sizeof h.reserved);
    }

    status compact(u64 ref, unsigned level, u64 base, unsigned shift, u32 depth, u64& entries, u8& marks) {
      error err;
      const unsigned char* n = visit(ref, depth, err);
      if (n == nullptr) return err;
      const phys_addr at{ref & ~geo::page_mask};
      auto fail = [&](errc c) { return make_error(c, structure, at, depth); };
      if (detail::header(n).magic.get() != detail::xa_compact_magic) return fail(errc::bad_magic);
      if (!position_is(n, level, base, shift)) return fail(errc::bad_level);
      if (!header_reserved_zero(n)) return fail(errc::reserved_nonzero);
      const u64 count = read::c_count(n);
      if (count == 0 || count > geo::compact_capacity || detail::header(n).entries.get() != count)
        return fail(errc::bad_count);
      // Records past `count` and the bytes after the last array are zero.
      const u64 unused = geo::compact_capacity - count;
      if (!detail::all_zero(n + geo::keys_off + 8 * count, 8 * unused) ||
          !detail::all_zero(n + geo::values_off + geo::value_size * count, geo::value_size * unused) ||
          !detail::all_zero(n + geo::orders_off + count, unused) || !detail::all_zero(n + geo::marks_off + count, unused) ||
          !detail::all_zero(n + geo::compact_end, geo::page - geo::compact_end))
        return fail(errc::reserved_nonzero);
      const u64 last = base + geo::span_mask(shift);
      u8 all = 0;
      for (u64 i = 0; i < count; ++i) {
        const u64 key = read::c_key(n, i);
        const unsigned o = read::c_order(n, i);
        if (o > 63) return fail(errc::out_of_range);
        if ((key & geo::span_mask(o)) != 0) return fail(errc::misaligned);
        if (key < base || key + geo::span_mask(o) > last || key + geo::span_mask(o) < key)
          return fail(errc::out_of_range);
        // Disjoint: the previous record ends before this one begins (touching is fine).
        if (i > 0 && read::c_entry(n, i - 1).last() >= key) return fail(errc::duplicate);
        if (read::c_marks(n, i) >> xa_mark_count) return fail(errc::reserved_nonzero);
        if (detail::is_zero_value(read::c_value(n, i))) return fail(errc::bad_count);
        all |= read::c_marks(n, i);
      }
      if (all != detail::header(n).marks) return fail(errc::bad_count);
      entries += count;
      marks = all;
      return {};
    }

    status dense(u64 ref, const unsigned char* sec, u32 depth, u64& heads, u8& marks) {
      error err;
      const unsigned char* n = visit(ref, depth, err);
      if (n == nullptr) return err;
      auto fail = [&](errc c) { return make_error(c, structure, phys_addr{ref & ~geo::page_mask}, depth); };
      heads = 0;
      marks = 0;
      if (sec == nullptr) {
        for (u64 i = 0; i < geo::leaf_slots; ++i) heads += read::d_present(n, i);
        return {};
      }
      const unsigned char* tails = read::side_bitmap(sec, read::tail);
      for (u64 i = 0; i < geo::leaf_slots;) {
        const bool present = read::d_present(n, i);
        if (!present || detail::test_bit(tails, i)) {
          // absent slots and stray tails carry no bits
          for (unsigned b = 0; b < 4; ++b)
            if (detail::test_bit(read::side_bitmap(sec, b), i)) return fail(errc::bad_count);
          ++i;
          continue;
        }
        u64 len = 1;
        const Value v = read::d_value(n, i);
        while (i + len < geo::leaf_slots && detail::test_bit(tails, i + len)) {
          if (std::memcmp(n + geo::value_size * (i + len), &v, sizeof v) != 0) return fail(errc::bad_count);
          ++len;
        }
        if ((len & (len - 1)) != 0 || (i & (len - 1)) != 0) return fail(errc::misaligned);
        for (unsigned m = 0; m < xa_mark_count; ++m) {
          const unsigned char* bits = read::side_bitmap(sec, m);
          if (detail::test_bit(bits, i)) marks |= static_cast<u8>(1u << m);
          for (u64 k = 1; k < len; ++k)
            if (detail::test_bit(bits, i + k)) return fail(errc::bad_count);
        }
        ++heads;
        i += len;
      }
      return {};
    }

    /// The side nodes of a level-1 branch: checked before the dense leaves read them.
    status sides(const unsigned char* br, unsigned h, u64 base, phys_addr br_at, u32 depth) {
      const unsigned sb = geo::slot_bits(h);
      for (u64 g = 0; g < geo::side_count; ++g) {
        const u64 s = detail::get64(br + geo::side_off + 8 * g);
        if (s == 0) continue;
        const phys_addr at{s & ~geo::page_mask};
        auto fail = [&](errc c) { return make_error(c, structure, at, depth + 1); };
        if (h != 1) return make_error(errc::bad_level, structure, br_at, depth);
        if ((s & geo::page_mask) != 0) return fail(errc::misaligned);  // a side ref has no kind bits
        error err;
        const unsigned char* side = visit(s, depth + 1, err);
        if (side == nullptr) return err;
        const detail::xa_node_header& sh = detail::header(side);
        if (sh.magic.get() != detail::xa_side_magic) return fail(errc::bad_magic);
        if (!position_is(side, 1, base + ((g * geo::side_group) << sb),
                         sb + static_cast<unsigned>(std::countr_zero(geo::side_group))))
          return fail(errc::bad_level);
        if (!header_reserved_zero(side) || sh.marks != 0 || sh.count.get() != 0 || sh.entries.get() != 0 ||
            !detail::all_zero(side + 64 + geo::side_group * geo::side_leaf_bytes,
                              geo::page - 64 - geo::side_group * geo::side_leaf_bytes))
          return fail(errc::reserved_nonzero);
      }
      return {};
    }

    status branch(u64 ref, unsigned h, u64 base, u32 depth, u64& entries, u8& marks) {
      error err;
      const unsigned char* br = visit(ref, depth, err);
      if (br == nullptr) return err;
      const phys_addr at{ref & ~geo::page_mask};
      auto fail = [&](errc c) { return make_error(c, structure, at, depth); };
      if (detail::header(br).magic.get() != detail::xa_branch_magic) return fail(errc::bad_magic);
      if (!position_is(br, h, base, geo::cover(h))) return fail(errc::bad_level);
      if (!header_reserved_zero(br) || !detail::all_zero(br + geo::branch_end, geo::page - geo::branch_end))
        return fail(errc::reserved_nonzero);
      KHO_TRY(sides(br, h, base, at, depth));
      const unsigned sb = geo::slot_bits(h);
      const u64 usable = u64{1} << geo::slot_log(h);
      u64 sum_entries = 0, used = 0;
      u8 all = 0;
      for (u64 j = 0; j < geo::fanout; ++j) {
        const u64 child = read::slot(br, j);
        const u16 dcount = read::dense_count(br, j);
        if (j >= usable || child == 0) {
          if (child != 0 || dcount != 0 || summary(br, j) != 0) return fail(errc::bad_count);
          if (h == 1 && child == 0)
            if (const unsigned char* sec = read::side_section(mem, br, j))
              if (detail::any_bits(sec, geo::side_leaf_bytes)) return fail(errc::bad_count);
          continue;
        }
        const u64 k = child & detail::xa_kind_mask;
        const unsigned run = read::run_of(child);
        const u64 cbase = base + (j << sb);
        u64 below = 0;
        u8 child_marks = 0;
        if (k != detail::xa_compact && run != 0) return fail(errc::bad_level);
        if (k != detail::xa_dense && dcount != 0) return fail(errc::bad_count);
        if (k == detail::xa_compact) {
          // The one page reached from several slots: 2^run aligned slots holding one ref.
          const u64 n = u64{1} << run;
          if (run > geo::slot_log(h) || (j & (n - 1)) != 0) return fail(errc::bad_level);
          for (u64 s = j + 1; s < j + n; ++s)
            if (read::slot(br, s) != child || read::dense_count(br, s) != 0) return fail(errc::bad_level);
          KHO_TRY(compact(child, h, cbase, sb + run, depth + 1, below, child_marks));
          for (u64 s = j; s < j + n; ++s)
            if (summary(br, s) != child_marks) return fail(errc::bad_count);
          if (h == 1)
            for (u64 s = j; s < j + n; ++s)
              if (const unsigned char* sec = read::side_section(mem, br, s))
                if (detail::any_bits(sec, geo::side_leaf_bytes)) return fail(errc::bad_count);
          used += n;
          j += n - 1;
        } else if (k == detail::xa_branch) {
          if (h < 2) return fail(errc::bad_level);
          KHO_TRY(branch(child, h - 1, cbase, depth + 1, below, child_marks));
          if (summary(br, j) != child_marks) return fail(errc::bad_count);
          ++used;
        } else if (k == detail::xa_dense) {
          if (h != 1) return fail(errc::bad_level);
          const u64 pa = child & ~geo::page_mask;
          KHO_TRY(dense(child, read::side_section(mem, br, j), depth + 1, below, child_marks));
          if (below == 0 || below != dcount) return make_error(errc::bad_count, structure, phys_addr{pa}, depth + 1);
          if (summary(br, j) != child_marks) return fail(errc::bad_count);
          ++used;
        } else {
          return fail(errc::bad_level);
        }
        sum_entries += below;
        all |= child_marks;
      }
      if (used != detail::header(br).count.get() || sum_entries != detail::header(br).entries.get() ||
          sum_entries == 0 || all != detail::header(br).marks)
        return fail(errc::bad_count);
      entries += sum_entries;
      marks = all;
      return {};
    }

    static u8 summary(const unsigned char* br, u64 j) {
      u8 m = 0;
      for (unsigned k = 0; k < xa_mark_count; ++k) m |= static_cast<u8>(read::summary_bit(br, k, j) << k);
      return m;
    }
  };

  M mem_;
  phys_addr root_pa_;
  const xarray_root* root_block_;
};

/// Attaches with the Memory and Scratch types deduced: attach_xarray<u64>(mem, root, scratch).
template <class Value, unsigned PageShift = 12, Memory M, PageSource Scratch>
result<xarray_view<Value, PageShift, M>> attach_xarray(const M& mem, phys_addr root, Scratch& scratch) {
  return xarray_view<Value, PageShift, M>::template attach<Scratch>(mem, root, scratch);
}

/// Creates with the source type deduced: make_xarray<u64>(pages).
template <class Value, unsigned PageShift = 12, PageSource Source>
result<xarray<Value, PageShift, Source>> make_xarray(Source& source) {
  return xarray<Value, PageShift, Source>::create(source);
}

}  // namespace kho
