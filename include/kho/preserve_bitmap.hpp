// kho/preserve_bitmap.hpp: which pages, of which order, are preserved.
//
// Byte-compatible with Linux's KHO preserved-memory radix tree ("kho-v2" root,
// per-component "radix-v1"). Every node is one page:
//
//   table  PAGE_SIZE/8 little-endian u64 physical addresses of the next level, 0 = absent
//   leaf   PAGE_SIZE*8 bits; bit n is bit n%64 of little-endian u64 word n/64
//
// A block of order o at physical address pa is one bit, at the key
//
//   key(pa, o) = 1 << (64 - PAGE_SHIFT - o)  |  pa >> (PAGE_SHIFT + o)
//                ^ the order bit: one per order    ^ the block's number
//
// The low PAGE_SHIFT+3 key bits pick the bit in a leaf; each higher group of
// PAGE_SHIFT-3 bits picks a table entry, the root consuming the highest group:
//
//   4 KiB pages:  | 63..60 zero | 59..51 | 50..42 | 41..33 | 32..24 | 23..15 | 14..0 |
//                                root      table    table    table    table    leaf
//
// An order-0 key needs 65 - PAGE_SHIFT bits (its order bit is bit 64 - PAGE_SHIFT), so
// depth = ceil((65 - PAGE_SHIFT - (PAGE_SHIFT + 3)) / (PAGE_SHIFT - 3)) + 1: 6 for 4 KiB
// pages, 5 for 16 KiB, 4 for 64 KiB. (The older formula with 64 - PAGE_SHIFT gives 4
// for 16 KiB pages, one key bit short of order 0; upstream fixed it, and so does kho.)
// One 4 KiB leaf covers 2^15 order-0 pages (128 MiB).
//
// Because the order bit sits above the block number, each order owns a contiguous key
// range, and keys ascend with addresses within it: an in-order tree walk yields the
// orders from largest to smallest, each in ascending address order. Walking memory in
// address order is therefore a k-way merge of one cursor per order present; each
// cursor skips absent subtrees whole and zero bitmap words 64 blocks at a time.
//
// Invariants the reader checks (preserve_bitmap_view::attach):
//   - every node address is page-aligned and inside memory, and is reached once
//     (no cycles, no shared subtrees);
//   - no entry leads to keys the format cannot express: every key decodes to an order
//     in [0, 63 - PAGE_SHIFT], so a key of 65 - PAGE_SHIFT bits or more is refused
//     (it would otherwise decode to a negative order);
//   - the depth is exact: the format has no node headers, so a node's level is its
//     distance from the root.
// Validation budget: time O(N * PAGE_SIZE/8 + N log N) and scratch O(N) for the N node
// pages actually reachable from the root, never O(RAM): a visited set in the caller's
// scratch pages refuses the second arrival at any node before its subtree is read.
// Empty nodes are valid (Linux never frees them); this writer frees a leaf when its
// last bit clears, and then every table that empties on the path up (never the root).
//
// With record_own_pages (the default) the writer records the tree's own node pages as
// order-0 blocks, so the map describes its own memory. A leaf that records node pages,
// its own included, therefore only empties when those nodes go: such leaves are kept
// until clear().
#pragma once

#include <kho/checksum.hpp>
#include <kho/detail/bits.hpp>
#include <kho/detail/endian.hpp>
#include <kho/detail/probe_table.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <algorithm>
#include <cstring>
#include <span>
#include <type_traits>

namespace kho {

inline constexpr const char* radix_compatible = "kho-radix-v1";

/// Key and shape arithmetic of the radix tree for one page size.
template <unsigned PageShift>
struct radix_geometry {
  static constexpr unsigned page_shift = PageShift;
  static constexpr u64 page_size = u64{1} << PageShift;
  static constexpr unsigned leaf_bits = PageShift + 3;   // a page of bits
  static constexpr unsigned table_bits = PageShift - 3;  // a page of u64
  static constexpr u64 leaf_words = page_size / 8;
  static constexpr u64 table_entries = page_size / 8;
  static constexpr unsigned key_bits = 65 - PageShift;  // order 0's bit is 64 - PAGE_SHIFT
  static constexpr unsigned depth = (key_bits - leaf_bits + table_bits - 1) / table_bits + 1;
  static constexpr unsigned tree_bits = leaf_bits + (depth - 1) * table_bits;
  static constexpr unsigned max_order = 63 - PageShift;  // a block still fits in 64 bits
  static constexpr u64 key_limit = u64{1} << key_bits;

  static_assert(tree_bits >= key_bits && tree_bits <= 63, "every key has a path");

  /// Key bits a node at `level` spans (level 0 is a leaf).
  static constexpr unsigned span_bits(unsigned level) { return leaf_bits + level * table_bits; }

  static constexpr u64 order_bit(order o) { return u64{1} << (64 - PageShift - o.value); }

  /// The key of block (pa, o). Errors: out_of_range (order), misaligned.
  static constexpr errc encode(phys_addr pa, order o, u64& key) {
    if (o.value > max_order) return errc::out_of_range;
    if (!page_geometry<PageShift>::is_aligned(pa, o)) return errc::misaligned;
    key = order_bit(o) | (pa.value >> (PageShift + o.value));
    return errc::ok;
  }

  /// The block a key stands for; false for keys no block has (0 and 1).
  static constexpr bool decode(u64 key, phys_addr& pa, order& o) {
    if (key < 2) return false;
    const unsigned msb = 63 - static_cast<unsigned>(__builtin_clzll(key));
    o = order{64 - PageShift - msb};
    pa = phys_addr{(key ^ (u64{1} << msb)) << (PageShift + o.value)};
    return true;
  }
};

/// How a key names a block: kho's and Linux's preserved-memory map sets the order bit
/// above the block's number (the encoding the header comment describes).
template <unsigned PageShift>
struct order_marker_keys {
  using geo = radix_geometry<PageShift>;
  static constexpr unsigned max_order = geo::max_order;
  static constexpr unsigned key_bits = geo::key_bits;
  static constexpr u64 key_limit = geo::key_limit;
  /// Keys below this stand for no block (0 and 1 have no order bit in range).
  static constexpr u64 first_key = 2;
  static constexpr u64 order_bit(order o) { return geo::order_bit(o); }
  static constexpr errc encode(phys_addr pa, order o, u64& key) { return geo::encode(pa, o, key); }
  static constexpr bool decode(u64 key, phys_addr& pa, order& o) { return geo::decode(key, pa, o); }
  /// The order of a key at or above first_key.
  static constexpr unsigned order_of(u64 key) {
    return 64 - PageShift - (63 - static_cast<unsigned>(__builtin_clzll(key)));
  }
};

/// A tree of the same geometry whose keys are raw page frame numbers (MSHV's tree,
/// LINUX-FORMATS-NEXT.md section 6): no order bit, every key one page, pfn 0 is key 0.
/// The depth stays the geometry's, so the top levels only ever hold slot 0 entries:
/// a pfn has 64 - PAGE_SHIFT bits, fewer than the order-0 key's 65 - PAGE_SHIFT.
template <unsigned PageShift>
struct raw_pfn_keys {
  static constexpr unsigned max_order = 0;
  static constexpr unsigned key_bits = 64 - PageShift;
  static constexpr u64 key_limit = u64{1} << key_bits;
  static constexpr u64 first_key = 0;
  static constexpr u64 order_bit(order) { return 0; }
  static constexpr errc encode(phys_addr pa, order o, u64& key) {
    if (o.value != 0) return errc::out_of_range;
    if (!page_geometry<PageShift>::is_aligned(pa)) return errc::misaligned;
    key = pa.value >> PageShift;
    return errc::ok;
  }
  static constexpr bool decode(u64 key, phys_addr& pa, order& o) {
    if (key >= key_limit) return false;
    pa = phys_addr{key << PageShift};
    o = order{0};
    return true;
  }
  static constexpr unsigned order_of(u64) { return 0; }
};

namespace detail {

inline u64 load_le(const u64* p) { return to_little(*p); }
inline void store_le(u64* p, u64 v) { *p = to_little(v); }

/// Read-side walking shared by writer and view: the nodes are reached through a
/// Memory policy, and every query is a descent or a cursor over the leaves.
template <Memory M, unsigned PageShift, class Keys = order_marker_keys<PageShift>>
class radix_walker {
 public:
  using geo = radix_geometry<PageShift>;
  using keys = Keys;
  static constexpr unsigned orders = Keys::max_order + 1;

  radix_walker() = default;
  // `top`: the root's level. A tree written with the older depth formula (kho-v2 at
  // 16 KiB pages: one level fewer) is the same tree rooted one level lower: its keys
  // all lie under slot 0 of the missing top table.
  radix_walker(const M* mem, phys_addr root, unsigned top = geo::depth - 1) : mem_(mem), root_(root), top_(top) {}

  u64* node(phys_addr pa) const { return static_cast<u64*>(mem_->to_virt(pa, geo::page_size)); }
  phys_addr root() const { return root_; }
  const M& memory() const { return *mem_; }
  void rebind(const M* mem) { mem_ = mem; }

  /// True if block (pa, o) is set.
  bool test(phys_addr pa, order o) const {
    u64 key = 0;
    if (Keys::encode(pa, o, key) != errc::ok) return false;
    const u64* leaf = find_leaf_exact(key);
    return leaf != nullptr && ((load_le(leaf + word_of(key)) >> (key & 63)) & 1);
  }

  /// The leaf holding `key`, or nullptr if a table on the way is absent.
  u64* find_leaf_exact(u64 key) const {
    if (top_ + 1 < geo::depth && (key >> geo::span_bits(top_)) != 0) return nullptr;
    phys_addr pa = root_;
    for (unsigned level = top_; level > 0; --level) {
      const u64 entry = load_le(node(pa) + digit(key, level));
      if (entry == 0) return nullptr;
      pa = phys_addr{entry};
    }
    return node(pa);
  }

  /// XXH64 over every node page in pre-order (root first, children by index): what a
  /// handover entry's deep checksum holds for the tree. Call on validated trees only.
  /// Complexity: O(nodes * page).
  u64 deep_checksum() const {
    XXH64_state_t state;
    XXH64_reset(&state, 0);
    hash_subtree(state, root_, top_);
    return XXH64_digest(&state);
  }

  /// Calls f(pa) for every node page in pre-order, as deep_checksum visits them. Call
  /// on validated trees only (or trees this process wrote). Complexity: O(nodes * page/8).
  template <class F>
  void for_each_node(F&& f) const {
    visit_subtree(f, root_, top_);
  }

  static constexpr u64 digit(u64 key, unsigned level) {
    return (key >> geo::span_bits(level - 1)) & (geo::table_entries - 1);
  }
  static constexpr u64 word_of(u64 key) { return (key & ((u64{1} << geo::leaf_bits) - 1)) >> 6; }

  struct leaf_ref {
    const u64* words = nullptr;
    u64 base = 0;  // key of bit 0
  };

  /// The first leaf at or after the one holding `from` whose range starts before `end`.
  /// Complexity: O(depth + absent entries skipped).
  bool next_leaf(u64 from, u64 end, leaf_ref& out) const {
    if (top_ + 1 < geo::depth && (from >> geo::span_bits(top_)) != 0) return false;
    return next_leaf_in(root_, top_, 0, from, end, out);
  }

  /// Ascending runs of consecutive set bits of one order inside a key window: the unit
  /// of the merged walk. A full bitmap word is one run, not 64 steps.
  /// 24 bytes, because a merge keeps one per order (52 at 4 KiB pages) on the stack and a
  /// kernel frame has 2 KiB: the run's length rides in the bits above the largest key,
  /// the order is the key's top bit, and the walker and the window's end are passed to
  /// next() rather than kept.
  class order_cursor {
   public:
    order_cursor() = default;
    order_cursor(const radix_walker* w, order o, phys_addr from, phys_addr to) {
      const u64 start = Keys::order_bit(o) + (from.value >> (PageShift + o.value));
      const u64 end = window_end(o, to);
      leaf_ref leaf;
      if (start >= end || !w->next_leaf(start, end, leaf)) return;
      const u64 word = start > leaf.base ? (start - leaf.base) >> 6 : 0;
      words_ = leaf.words + word;
      bits_ = load_le(words_);
      if (start > leaf.base) bits_ &= ~u64{0} << ((start - leaf.base) & 63);
      find(w, leaf.base + (word << 6), end);
    }

    bool live() const { return words_ != nullptr; }
    /// The first block of the current run.
    phys_addr head() const {
      return phys_addr{(key() ^ Keys::order_bit(block_order())) << (PageShift + block_order().value)};
    }
    order block_order() const { return order{Keys::order_of(key())}; }
    /// Blocks in the current run (1 to 64).
    u64 run_blocks() const { return (head_ >> run_shift) + 1; }
    /// Bytes of the current run; 0 if it reaches the top of the address space.
    u64 run_bytes() const { return run_blocks() << (PageShift + block_order().value); }
    /// The next run; `to` is the window's end the cursor was made with.
    void next(const radix_walker* w, phys_addr to) { find(w, key() & ~u64{63}, window_end(block_order(), to)); }

   private:
    static constexpr unsigned run_shift = 58;
    static_assert(Keys::key_bits <= run_shift, "keys leave room for the run's length");

    u64 key() const { return head_ & ((u64{1} << run_shift) - 1); }
    // First key past the window that ends at `to`, for order `o`.
    static u64 window_end(order o, phys_addr to) {
      const unsigned shift = PageShift + o.value;
      const u64 last = (to.value >> shift) + ((to.value & ((u64{1} << shift) - 1)) != 0);
      return std::min(Keys::order_bit(o) + last, Keys::key_limit);
    }
    // The next run before `end` from the current word, whose first key is `word_key`;
    // the cursor is done (words_ null) when there is none.
    void find(const radix_walker* w, u64 word_key, u64 end) {
      for (;;) {
        if (bits_ != 0) {
          const unsigned low = static_cast<unsigned>(__builtin_ctzll(bits_));
          const u64 ones = ~(bits_ >> low);  // zero where the run continues
          const unsigned len = ones == 0 ? 64 - low : static_cast<unsigned>(__builtin_ctzll(ones));
          bits_ = len + low >= 64 ? 0 : bits_ & (~u64{0} << (low + len));
          const u64 key = word_key + low;
          if (key >= end) break;
          head_ = key | (std::min<u64>(len, end - key) - 1) << run_shift;
          return;
        }
        word_key += 64;
        if ((word_key & ((u64{1} << geo::leaf_bits) - 1)) != 0) {
          bits_ = load_le(++words_);
          continue;
        }
        leaf_ref leaf;  // the leaf is done: the next one present
        if (word_key >= end || !w->next_leaf(word_key, end, leaf)) break;
        word_key = leaf.base;
        words_ = leaf.words;
        bits_ = load_le(words_);
      }
      words_ = nullptr;
    }

    const u64* words_ = nullptr;  // the current word; null once the window is done
    u64 bits_ = 0;                // its bits not yet passed
    u64 head_ = 0;                // key of the run's first block | (blocks - 1) << run_shift
  };

  /// Calls f(start, size) for every preserved range overlapping [from, to), clipped to
  /// it, ascending, adjacent and overlapping blocks coalesced. f may return false to
  /// stop. `orders_present` is a bit mask of the orders to merge.
  /// Complexity: O(R * k + L * depth + W) for R runs of consecutive blocks, k orders
  /// present, L leaves and W leaf words visited.
  template <class F>
  void for_each_range(u64 orders_present, phys_addr from, phys_addr to, F&& f) const {
    order_cursor cursors[orders];
    unsigned live = 0;
    for (unsigned o = 0; o < orders; ++o) {
      if (!((orders_present >> o) & 1)) continue;
      cursors[live] = order_cursor(this, order{o}, from, to);
      if (cursors[live].live()) ++live;
    }
    u64 start = 0, end = 0;
    bool pending = false;
    auto emit = [&](u64 b_start, u64 b_end) {
      if (pending && b_start <= end) {
        end = std::max(end, b_end);
        return true;
      }
      if (pending && !call(f, start, end)) return false;
      start = b_start;
      end = b_end;
      pending = true;
      return true;
    };
    auto clip_end = [&](const order_cursor& c) {
      const u64 raw_end = c.head().value + c.run_bytes();
      return (raw_end == 0 || raw_end > to.value) ? to.value : raw_end;
    };
    // Most trees hold one or two orders; with one left the merge is a plain scan (and a
    // tree of one order, raw_pfn_keys's, has no merge at all).
    if constexpr (orders > 1) {
      while (live > 1) {
        unsigned min = 0;
        for (unsigned i = 1; i < live; ++i)
          if (cursors[i].head() < cursors[min].head()) min = i;
        order_cursor& c = cursors[min];
        if (!emit(std::max(c.head().value, from.value), clip_end(c))) return;
        c.next(this, to);
        if (!c.live()) c = cursors[--live];
      }
    }
    if (live == 1) {
      for (order_cursor& c = cursors[0]; c.live(); c.next(this, to))
        if (!emit(std::max(c.head().value, from.value), clip_end(c))) return;
    }
    if (pending) call(f, start, end);
  }

  /// Calls f(pa, order) for every block in tree (key) order: largest order first,
  /// ascending address within an order. This is the order Linux restores in.
  template <class F>
  void for_each_block(u64 orders_present, F&& f) const {
    for (unsigned o = orders; o-- > 0;) {
      if (!((orders_present >> o) & 1)) continue;
      const u64 bytes = page_geometry<PageShift>::block_bytes(order{o});
      for (order_cursor c(this, order{o}, phys_addr{0}, phys_addr{~u64{0}}); c.live(); c.next(this, phys_addr{~u64{0}}))
        for (u64 i = 0; i < c.run_blocks(); ++i)
          if (!call_block(f, c.head() + i * bytes, order{o})) return;
    }
  }

 private:
  template <class F>
  static bool call(F& f, u64 start, u64 end) {
    if constexpr (std::is_same_v<decltype(f(phys_addr{}, u64{})), bool>)
      return f(phys_addr{start}, end - start);
    else
      return f(phys_addr{start}, end - start), true;
  }
  template <class F>
  static bool call_block(F& f, phys_addr pa, order o) {
    if constexpr (std::is_same_v<decltype(f(pa, o)), bool>)
      return f(pa, o);
    else
      return f(pa, o), true;
  }

  void hash_subtree(XXH64_state_t& state, phys_addr pa, unsigned level) const {
    const u64* n = node(pa);
    XXH64_update(&state, n, geo::page_size);
    if (level == 0) return;
    for (u64 i = 0; i < geo::table_entries; ++i)
      if (const u64 child = load_le(n + i)) hash_subtree(state, phys_addr{child}, level - 1);
  }

  template <class F>
  void visit_subtree(F& f, phys_addr pa, unsigned level) const {
    f(pa);
    if (level == 0) return;
    const u64* n = node(pa);
    for (u64 i = 0; i < geo::table_entries; ++i)
      if (const u64 child = load_le(n + i)) visit_subtree(f, phys_addr{child}, level - 1);
  }

  bool next_leaf_in(phys_addr table, unsigned level, u64 base, u64 from, u64 end,
                    leaf_ref& out) const {
    const u64* t = node(table);
    const unsigned child_bits = geo::span_bits(level - 1);
    u64 idx = from > base ? (from - base) >> child_bits : 0;
    for (; idx < geo::table_entries; ++idx) {
      const u64 child_base = base + (idx << child_bits);
      if (child_base >= end) return false;
      const u64 entry = load_le(t + idx);
      if (entry == 0) continue;
      if (level == 1) {
        out = leaf_ref{node(phys_addr{entry}), child_base};
        return true;
      }
      if (next_leaf_in(phys_addr{entry}, level - 1, child_base, std::max(from, child_base), end, out))
        return true;
    }
    return false;
  }

  const M* mem_ = nullptr;
  phys_addr root_{};
  unsigned top_ = geo::depth - 1;
};

/// The queries writer and view share, over the walker and per-order counts that
/// Derived exposes as walk() and order_counts().
template <class Derived, unsigned PageShift, class Keys = order_marker_keys<PageShift>>
class radix_queries {
 public:
  static constexpr unsigned orders = Keys::max_order + 1;

  /// True if a preserved block of any order covers `pa`. Complexity: O(orders * depth).
  bool is_preserved(phys_addr pa) const {
    for (unsigned o = 0; o < orders; ++o) {
      if (counts()[o] == 0) continue;
      const u64 mask = page_geometry<PageShift>::block_bytes(order{o}) - 1;
      if (self().walk().test(phys_addr{pa.value & ~mask}, order{o})) return true;
    }
    return false;
  }
  /// True if exactly block (pa, o) is preserved. Complexity: O(depth).
  bool contains(phys_addr pa, order o) const { return self().walk().test(pa, o); }

  u64 count(order o) const { return o.value < orders ? counts()[o.value] : 0; }
  u64 total() const {
    u64 n = 0;
    for (unsigned o = 0; o < orders; ++o) n += counts()[o];
    return n;
  }

  /// Every preserved range in ascending address order, coalesced; see radix_walker.
  template <class F>
  void for_each_range(F&& f) const {
    self().walk().for_each_range(orders_present(), phys_addr{0}, phys_addr{~u64{0}}, f);
  }
  template <class F>
  void for_each_range(phys_addr from, phys_addr to, F&& f) const {
    self().walk().for_each_range(orders_present(), from, to, f);
  }
  /// Every block in tree order (largest order first).
  template <class F>
  void for_each_block(F&& f) const {
    self().walk().for_each_block(orders_present(), f);
  }
  /// XXH64 of every node page: what a handover entry's deep checksum holds.
  /// Complexity: O(nodes * page).
  u64 deep_checksum() const { return self().walk().deep_checksum(); }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
  const u64* counts() const { return self().order_counts(); }
  u64 orders_present() const {
    u64 mask = 0;
    for (unsigned o = 0; o < orders; ++o)
      if (counts()[o] != 0) mask |= u64{1} << o;
    return mask;
  }
};

}  // namespace detail

template <Memory M, unsigned PageShift, class Keys>
class preserve_bitmap_view;

// ---- writer ------------------------------------------------------------------------

/// The old kernel's side: preserve and unpreserve blocks, allocating nodes from Source.
/// `Keys`: how a key names a block (order_marker_keys, the preserved-memory map; or
/// raw_pfn_keys, a tree of single pages keyed by their frame number).
template <PageSource Source, unsigned PageShift = 12, class Keys = order_marker_keys<PageShift>>
class preserve_bitmap
    : public detail::radix_queries<preserve_bitmap<Source, PageShift, Keys>, PageShift, Keys> {
 public:
  using geometry = radix_geometry<PageShift>;
  using keys = Keys;
  using memory_type = memory_of<Source>;
  using walker = detail::radix_walker<memory_type, PageShift, Keys>;
  static constexpr unsigned orders = Keys::max_order + 1;

  /// An empty tree: one root table. Errors: out_of_memory.
  static result<preserve_bitmap> create(Source& source, bool record_own_pages = true) {
    auto root = alloc_zeroed(source, order{0}, geometry::page_size);
    if (!root) return root.err();
    preserve_bitmap tree(source, *root, record_own_pages);
    tree.nodes_ = 1;
    if (record_own_pages) {
      tree.pending_record_[tree.records_++] = *root;
      KHO_TRY(tree.settle());
    }
    return tree;
  }

  /// Continues writing a tree the previous kernel left, in place (after validation).
  /// Nodes it allocates from now on come from `source`.
  template <Memory M>
  static preserve_bitmap adopt(const preserve_bitmap_view<M, PageShift, Keys>& view, Source& source,
                               bool record_own_pages = true) {
    preserve_bitmap tree(source, view.root(), record_own_pages);
    for (unsigned o = 0; o < orders; ++o) tree.counts_[o] = view.count(order{o});
    tree.nodes_ = view.node_count();
    return tree;
  }

  /// Marks block (pa, o) preserved. Complexity: O(depth), plus node allocation.
  /// Errors: out_of_range (order or key beyond the format), misaligned, already_exists,
  /// out_of_memory.
  status preserve(phys_addr pa, order o) {
    KHO_TRY(set(pa, o));
    return settle();
  }

  /// Clears block (pa, o), freeing nodes that empty. Complexity: O(depth * page/8).
  /// Errors: out_of_range, misaligned, not_found.
  status unpreserve(phys_addr pa, order o) {
    KHO_TRY(clear_bit(pa, o));
    return settle();
  }

  /// Pages the tree itself occupies.
  u64 node_count() const { return nodes_; }
  phys_addr root() const { return root_; }
  bool records_own_pages() const { return record_own_pages_; }

  /// Switches to another mapping of the same physical memory.
  void rebind() { walker_ = walker(&source_->memory(), root_); }

  /// Frees every node but the root and empties it. Complexity: O(nodes * page/8).
  void clear() {
    u64* root = walker_.node(root_);
    free_children(root, geometry::depth - 1);
    std::memset(root, 0, geometry::page_size);
    for (u64& c : counts_) c = 0;
    nodes_ = 1;
    if (record_own_pages_) {
      pending_record_[records_++] = root_;
      (void)settle();
    }
  }

 private:
  friend class detail::radix_queries<preserve_bitmap, PageShift, Keys>;
  const walker& walk() const { return walker_; }
  const u64* order_counts() const { return counts_; }

  preserve_bitmap(Source& source, phys_addr root, bool record_own_pages)
      : source_(&source),
        root_(root),
        walker_(&source.memory(), root),
        record_own_pages_(record_own_pages) {}

  status set(phys_addr pa, order o) {
    u64 key = 0;
    if (errc e = Keys::encode(pa, o, key); e != errc::ok) return e;
    u64* t = walker_.node(root_);
    for (unsigned level = geometry::depth - 1; level > 0; --level) {
      u64* slot = t + walker::digit(key, level);
      u64 child = detail::load_le(slot);
      if (child == 0) {
        auto fresh = alloc_node();
        if (!fresh) return fresh.err();
        child = fresh->value;
        detail::store_le(slot, child);
      }
      t = walker_.node(phys_addr{child});
    }
    u64* word = t + walker::word_of(key);
    const u64 bit = u64{1} << (key & 63);
    const u64 w = detail::load_le(word);
    if (w & bit) return errc::already_exists;
    detail::store_le(word, w | bit);
    ++counts_[o.value];
    return {};
  }

  status clear_bit(phys_addr pa, order o) {
    u64 key = 0;
    if (errc e = Keys::encode(pa, o, key); e != errc::ok) return e;
    u64* path[geometry::depth];  // path[level] = node at that level
    phys_addr path_pa[geometry::depth];
    path[geometry::depth - 1] = walker_.node(root_);
    path_pa[geometry::depth - 1] = root_;
    for (unsigned level = geometry::depth - 1; level > 0; --level) {
      const u64 child = detail::load_le(path[level] + walker::digit(key, level));
      if (child == 0) return errc::not_found;
      path_pa[level - 1] = phys_addr{child};
      path[level - 1] = walker_.node(phys_addr{child});
    }
    u64* word = path[0] + walker::word_of(key);
    const u64 bit = u64{1} << (key & 63);
    const u64 w = detail::load_le(word);
    if (!(w & bit)) return errc::not_found;
    detail::store_le(word, w & ~bit);
    --counts_[o.value];
    for (unsigned level = 0; level + 1 < geometry::depth && is_empty(path[level]); ++level) {
      detail::store_le(path[level + 1] + walker::digit(key, level + 1), 0);
      free_node(path_pa[level]);
    }
    return {};
  }

  static bool is_empty(const u64* node) {
    for (u64 i = 0; i < geometry::table_entries; ++i)
      if (node[i] != 0) return false;
    return true;
  }

  result<phys_addr> alloc_node() {
    if (record_own_pages_ && records_ == pending_capacity) return errc::table_full;
    auto pa = alloc_zeroed(*source_, order{0}, geometry::page_size);
    if (!pa) return pa.err();
    ++nodes_;
    if (record_own_pages_) pending_record_[records_++] = *pa;
    return *pa;
  }

  void free_node(phys_addr pa) {
    source_->free(pa, order{0});
    --nodes_;
    if (record_own_pages_ && unrecords_ < pending_capacity) pending_unrecord_[unrecords_++] = pa;
  }

  void free_children(u64* table, unsigned level) {
    for (u64 i = 0; i < geometry::table_entries; ++i) {
      const u64 child = detail::load_le(table + i);
      if (child == 0) continue;
      if (level > 1) free_children(walker_.node(phys_addr{child}), level - 1);
      source_->free(phys_addr{child}, order{0});
    }
  }

  // Records node pages allocated and unrecords node pages freed by the last operation.
  // Each may allocate or free further nodes; the lists drain because every node is
  // recorded once and a record needs at most depth-1 new nodes.
  status settle() {
    status result{};
    while (records_ > 0 || unrecords_ > 0) {
      if (records_ > 0) {
        const phys_addr pa = pending_record_[--records_];
        if (status s = set(pa, order{0}); !s && result.ok()) result = s;
      } else {
        const phys_addr pa = pending_unrecord_[--unrecords_];
        if (status s = clear_bit(pa, order{0}); !s && result.ok()) result = s;
      }
    }
    return result;
  }

  // A record allocates at most depth-1 nodes and each is recorded in turn: 64 pending
  // entries cover chains far deeper than any tree reaches.
  static constexpr unsigned pending_capacity = 64;

  Source* source_ = nullptr;
  phys_addr root_{};
  walker walker_{};
  u64 counts_[orders]{};
  u64 nodes_ = 0;
  bool record_own_pages_ = true;
  phys_addr pending_record_[pending_capacity]{};
  phys_addr pending_unrecord_[pending_capacity]{};
  unsigned records_ = 0, unrecords_ = 0;
};

// ---- reader ------------------------------------------------------------------------

namespace detail {

/// One visited node page of a radix tree being validated (tag: its page frame, with
/// tag_of's high bit, so the tag alone identifies the page).
struct radix_node_slot {
  u64 tag;
};

}  // namespace detail

/// The next kernel's side: a tree validated once, then queried without further checks.
/// The view keeps `nodes` (the sorted list of the tree's own pages) for nodes(),
/// for_each_node() and claim_pages().
/// `Keys` as for preserve_bitmap: the same walk and checks read either key encoding.
template <Memory M, unsigned PageShift = 12, class Keys = order_marker_keys<PageShift>>
class preserve_bitmap_view
    : public detail::radix_queries<preserve_bitmap_view<M, PageShift, Keys>, PageShift, Keys> {
 public:
  using geometry = radix_geometry<PageShift>;
  using keys = Keys;
  using walker = detail::radix_walker<M, PageShift, Keys>;
  static constexpr unsigned orders = Keys::max_order + 1;
  static constexpr const char* structure = "radix";

  /// Validates the whole tree at `root`. Every node is entered at most once: a visited
  /// set of node pages, in pages lent by `scratch` (a PageSource) and returned to it
  /// before attach returns, refuses a node reached a second time *before* its subtree
  /// is read, so a tree whose slots all name one child (a DAG of six pages standing
  /// for 512^5 paths) is refused after six pages, at the repeated node. The node
  /// addresses are recorded in `nodes`, sorted; it must outlive the view, and its size
  /// caps the node count (a caller may size it by memory: only node_count() slots are
  /// ever written).
  /// Complexity: O(N * page/8 + N log N) time for the N node pages reachable, whatever
  /// the size of memory; scratch O(N) (at most 32 bytes a node: 8-byte slots at load
  /// 1/2 or more after growth), with a probe budget of 16 a node against collisions.
  /// Errors (loc: "radix", the node, its depth from the root): misaligned,
  /// out_of_bounds, out_of_range (a table entry whose keys start at or above
  /// Keys::key_limit, at the table; bits for keys below Keys::first_key, at the leaf), cycle (a
  /// node reached twice, ancestor or not: at the node, with the depth it was reached
  /// at the second time), budget_exceeded (more nodes than `nodes` holds, or scratch
  /// probes beyond the budget), out_of_memory (scratch exhausted).
  /// `depth`: the tree's levels, leaf included; geometry::depth unless the tree was
  /// written with an older formula giving fewer (kho_root_radix_depth), in which case
  /// it is read as the deeper tree's slot-0 subtree. Errors also: invalid_argument
  /// (depth 0 or above geometry::depth).
  template <PageSource Scratch>
  static result<preserve_bitmap_view> attach(const M& mem, phys_addr root, Scratch& scratch,
                                             std::span<u64> nodes, unsigned depth = geometry::depth) {
    if (depth == 0 || depth > geometry::depth) return errc::invalid_argument;
    preserve_bitmap_view v(mem, root, nodes);
    v.top_ = depth - 1;
    detail::probe_table<detail::radix_node_slot, Scratch, PageShift> seen;
    const status s = v.validate(seen, scratch, root, v.top_, 0);
    seen.release(scratch);
    if (!s) return s.err();
    std::sort(nodes.data(), nodes.data() + v.nodes_);
    v.walker_ = walker(&v.mem_, root, v.top_);
    return v;
  }

  preserve_bitmap_view(const preserve_bitmap_view& o)
      : mem_(o.mem_), root_(o.root_), nodes_list_(o.nodes_list_), nodes_(o.nodes_), top_(o.top_),
        walker_(&mem_, root_, top_) {
    std::memcpy(counts_, o.counts_, sizeof counts_);
  }
  preserve_bitmap_view& operator=(const preserve_bitmap_view&) = delete;

  u64 node_count() const { return nodes_; }
  phys_addr root() const { return root_; }
  const M& memory() const { return mem_; }

  /// The tree's own pages, ascending: a reader of a Linux-written tree (which does
  /// not record them) must treat them as busy too.
  template <class F>
  void for_each_node(F&& f) const {
    for (u64 i = 0; i < nodes_; ++i) f(phys_addr{nodes_list_[i]});
  }
  std::span<const u64> nodes() const { return {nodes_list_.data(), nodes_}; }

  /// Claims every page this structure reaches (every table and leaf page) for
  /// page_owner{structure, root()} in `owners` (kho::page_owners). The claims are
  /// preserve::exempt: the upstream format never records the tree's own pages in the
  /// tree, and kho's restore (restore_naive / restore_linear reserve nodes()) and the
  /// hole finder (nodes() as busy pages) treat them as busy without that record.
  /// Call on a validated view.
  /// Complexity: O(pages reached). Errors: those of page_owners::claim.
  template <class Owners>
  status claim_pages(Owners& owners) const {
    for (u64 i = 0; i < nodes_; ++i)
      KHO_TRY(owners.claim(phys_addr{nodes_list_[i]}, 1, page_owner{structure, root_},
                           Owners::preserve::exempt));
    return {};
  }

 private:
  friend class detail::radix_queries<preserve_bitmap_view, PageShift, Keys>;
  const walker& walk() const { return walker_; }
  const u64* order_counts() const { return counts_; }

  preserve_bitmap_view(const M& mem, phys_addr root, std::span<u64> nodes)
      : mem_(mem), root_(root), nodes_list_(nodes) {}

  status fail(errc e, phys_addr at, unsigned level) const {
    return make_error(e, structure, at, top_ - level);
  }

  // Probes allowed per visited node: linear probing averages about 1.5 at load 1/2,
  // so only crafted collisions come near; the slack covers tiny tables.
  static constexpr u64 probe_allowance(u64 nodes) { return 16 * nodes + 1024; }

  // Depth-first. A node is checked and entered in the visited set before anything
  // under it is read: a pointer back to an ancestor and a second path to a subtree
  // are both caught where the repeated node is reached, before they multiply work.
  template <class Seen, class Scratch>
  status validate(Seen& seen, Scratch& scratch, phys_addr pa, unsigned level, u64 base) {
    if (!page_geometry<PageShift>::is_aligned(pa)) return fail(errc::misaligned, pa, level);
    const u64* node = static_cast<const u64*>(mem_.to_virt(pa, geometry::page_size));
    if (node == nullptr) return fail(errc::out_of_bounds, pa, level);
    seen.raise_probe_budget(probe_allowance(seen.size() + 1));
    bool fresh = false;
    auto slot = seen.insert_unique(scratch, {detail::tag_of(pa.value >> PageShift)},
                                   [](const detail::radix_node_slot&) { return true; }, fresh);
    if (!slot) return fail(slot.code(), pa, level);
    if (!fresh) return fail(errc::cycle, pa, level);
    if (nodes_ == nodes_list_.size()) return fail(errc::budget_exceeded, pa, level);
    nodes_list_[nodes_++] = pa.value;
    if (level == 0) return count_leaf(node, base, pa);
    const unsigned child_bits = geometry::span_bits(level - 1);
    for (u64 i = 0; i < geometry::table_entries; ++i) {
      const u64 child = detail::load_le(node + i);
      if (child == 0) continue;
      const u64 child_base = base + (i << child_bits);
      if (child_base >= Keys::key_limit) return fail(errc::out_of_range, pa, level);
      KHO_TRY(validate(seen, scratch, phys_addr{child}, level - 1, child_base));
    }
    return {};
  }

  status count_leaf(const u64* leaf, u64 base, phys_addr pa) {
    for (u64 w = 0; w < geometry::leaf_words; ++w) {
      u64 bits = detail::load_le(leaf + w);
      if (bits == 0) continue;
      const u64 word_key = base + (w << 6);
      if constexpr (Keys::first_key > 0)
        if (word_key == 0 && (bits & ((u64{1} << Keys::first_key) - 1)) != 0)
          return fail(errc::out_of_range, pa, 0);
      if (word_key >= 64) {  // one order for the whole word
        order o{};
        phys_addr ignored{};
        Keys::decode(word_key, ignored, o);
        counts_[o.value] += detail::popcount64(bits);
        continue;
      }
      for (; bits != 0; bits &= bits - 1) {
        order o{};
        phys_addr ignored{};
        Keys::decode(word_key + static_cast<u64>(__builtin_ctzll(bits)), ignored, o);
        ++counts_[o.value];
      }
    }
    return {};
  }

  M mem_;
  phys_addr root_;
  std::span<u64> nodes_list_;
  u64 nodes_ = 0;
  unsigned top_ = geometry::depth - 1;
  u64 counts_[orders]{};
  walker walker_{};
};

/// Attaches with the Memory type deduced (the preserved-memory map's key encoding).
template <unsigned PageShift = 12, Memory M, PageSource Scratch>
result<preserve_bitmap_view<M, PageShift>> attach_preserve_bitmap(const M& mem, phys_addr root,
                                                                  Scratch& scratch,
                                                                  std::span<u64> nodes,
                                                                  unsigned depth = radix_geometry<PageShift>::depth) {
  return preserve_bitmap_view<M, PageShift>::template attach<Scratch>(mem, root, scratch, nodes, depth);
}

}  // namespace kho
