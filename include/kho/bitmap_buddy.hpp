// kho/bitmap_buddy.hpp: the page allocator's free lists, implied by an order-0 free bitmap.
//
// buddy_model.hpp hands memory over block by block, as __free_pages_memory does: a
// boot with 16.8 M holes pays 61.5 M block steps. Here the state is one bit per page
// frame of a window (1 = free), and the free lists are implied by the bits:
//
//   a block of order k (2^k frames, aligned to 2^k, k <= MaxOrder) is on free list k
//   iff all its frames are free and (k == MaxOrder or its aligned order-k+1 parent
//   is not wholly free)
//
//   frame   0 1 2 3 4 5 6 7 8 9 10             frames outside the window are never free
//   bits    0 0 0 1 1 1 1 1 1 1 0              hole [3, 10)
//   lists   . . . 0 [ 2     ] [1] .            order 0 at 3, order 2 at 4, order 1 at 8
//
// That is exactly what buddy_model / __free_pages_memory produce for a maximal hole
// [s, e) (its blocks are the maximal aligned blocks inside the hole, capped at
// MaxOrder; tests/bitmap_buddy_test.cpp checks the claim block for block, also at the
// window's edges). Touching ranges freed separately merge here, as the buddy
// allocator's own merging would make them; buddy_model keeps them apart.
//
// Storage: the caller lends the words (one bit per frame, little-endian bit order
// within a u64, bit i of word w = frame origin + 64 w + i). The origin is the window's
// start rounded down to 2^max(6, MaxOrder) frames and the words run to its end rounded
// up as far, so every order-MaxOrder block is whole words, aligned; frames of those
// words outside the window stay 0 (words_for() sizes the array).
//
// Counts: free_range, take_range and free_word set or clear whole words; the counts
// per order are computed afterwards by one finishing pass over the words, on the
// first query after a change. Why a finishing pass: whether a block is on a list
// depends on its parent and so on bits that a later call may change (the boot hand-over
// frees the leaf complements first and then takes the busy ranges back), so counts kept
// up to date would be corrected again and again, while one sequential pass reads each
// word once, with a branch for a full or an empty word and about forty ALU operations
// for a mixed one. The pass folds bits pairwise inside a word (f_{k+1} = f_k & f_k >> 2^k
// at multiples of 2^{k+1}) for orders 0..5, then folds the words' "all free" flags the
// same way for orders 6..MaxOrder, summing S_k = blocks of order k wholly free; a list
// holds S_k - 2 S_{k+1} blocks (every wholly free parent takes two wholly free children
// off list k) and list MaxOrder holds S_MaxOrder.
//
//   word    1 1 1 1 1 1 0 1   f_0: 7 frames free      S_0 = 7
//   pairs   1   1   1   0     f_1 = f_0 & f_0 >> 1     S_1 = 3     list 0: 7 - 6 = 1
//   quads   1       0         f_2 = f_1 & f_1 >> 2     S_2 = 1     list 1: 3 - 2 = 1
//
// Invariants: no bit outside [start, end) is set; counts are those of the bits whenever
// they are read (the first read after a change runs the pass, so concurrent readers
// must not share an unsettled bitmap_buddy). Memory: none of its own. Freestanding: no
// heap, no exceptions.
#pragma once

#include <kho/detail/bits.hpp>
#include <kho/detail/endian.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstring>
#include <span>

namespace kho {

/// A page-allocator model whose free lists are implied by an order-0 free bitmap over
/// the page frames [start, end). MaxOrder: MAX_PAGE_ORDER (10: 4 MiB blocks of 4 KiB).
template <unsigned MaxOrder = 10>
class bitmap_buddy {
 public:
  static constexpr unsigned max_order = MaxOrder;
  static_assert(MaxOrder < 58, "a block of every order fits below 2^64 frames");
  static constexpr const char* structure = "bitmap_buddy";
  /// Frames per alignment group: a whole order-MaxOrder block, and at least a word.
  static constexpr unsigned group_shift = MaxOrder > 6 ? MaxOrder : 6;
  static constexpr u64 group = u64{1} << group_shift;

  /// Words the bitmap of [start, end) needs. Complexity: O(1). Errors: none.
  static constexpr u64 words_for(pfn start, pfn end) {
    if (end.value <= start.value) return 0;
    const u64 origin = start.value & ~(group - 1);
    const u64 last = (end.value - 1) | (group - 1);  // the last frame of the last group
    return (last - origin) / 64 + 1;
  }

  /// An empty allocator over [start, end) (nothing free), in `words` (zeroed here).
  /// Complexity: O(words_for(start, end)). Errors: invalid_argument (start > end),
  /// table_full (`words` smaller than words_for(start, end)).
  static result<bitmap_buddy> create(pfn start, pfn end, std::span<u64> words) {
    if (start > end) return make_error(errc::invalid_argument, structure);
    const u64 n = words_for(start, end);
    if (words.size() < n) return make_error(errc::table_full, structure);
    if (n != 0) std::memset(words.data(), 0, n * sizeof(u64));
    return bitmap_buddy(start, end, words.first(n));
  }

  pfn start() const { return pfn{start_}; }
  pfn end() const { return pfn{end_}; }

  /// Frees the frames [s, e) (clipped to the window), whole words at once.
  /// Complexity: O(1 + (e - s) / 64). Errors: none.
  void free_range(pfn s, pfn e) { set_range(s.value, e.value, true); }

  /// Takes the frames [s, e) (clipped to the window) off the free lists: reserved,
  /// preserved or allocated. Complexity: O(1 + (e - s) / 64). Errors: none.
  void take_range(pfn s, pfn e) { set_range(s.value, e.value, false); }

  /// Frees, of the 64 frames from `first` (a multiple of 64), those whose bit is set in
  /// `free_bits` (bit i: frame first + i); frames outside the window are ignored.
  /// Complexity: O(1). Errors: none.
  void free_word(pfn first, u64 free_bits) {
    const u64 f = first.value;
    if (f + 64 <= start_ || f >= end_ || start_ == end_) return;
    free_bits &= edge_mask(f);
    words_[(f - origin_) >> 6] |= free_bits;
    dirty_ = true;
  }

  /// Frees every frame f of [s, e) whose bit is clear in `busy`: little-endian words
  /// whose bit 0 stands for frame s rounded down to 64 (a radix leaf's layout; order-0
  /// leaves complemented go straight in). Frames outside the window are ignored.
  /// Complexity: O(1 + (e - s) / 64). Errors: none.
  void free_where_clear(pfn s, pfn e, const u64* busy) {
    u64 a = s.value, b = e.value;
    const u64 base = a & ~u64{63};
    if (a < start_) a = start_;
    if (b > end_) b = end_;
    if (a >= b) return;
    const u64* src = busy + ((a - base) >> 6);
    u64* dst = words_.data() + ((a - origin_) >> 6);
    const u64 n = ((b - 1) >> 6) - (a >> 6) + 1;  // words touched
    const u64 head = ~u64{0} << (a & 63);
    const u64 tail = ~u64{0} >> (63 - ((b - 1) & 63));
    if (n == 1) {
      dst[0] |= ~detail::to_little(src[0]) & head & tail;
    } else {
      dst[0] |= ~detail::to_little(src[0]) & head;
      for (u64 i = 1; i + 1 < n; ++i) dst[i] |= ~detail::to_little(src[i]);  // the hot loop: vectorizes
      dst[n - 1] |= ~detail::to_little(src[n - 1]) & tail;
    }
    dirty_ = true;
  }

  /// Whether frame f is free. Complexity: O(1). Errors: none (false outside the window).
  bool is_free(pfn f) const {
    if (f.value < start_ || f.value >= end_) return false;
    const u64 i = f.value - origin_;
    return (words_[i >> 6] >> (i & 63)) & 1;
  }

  /// Blocks on order o's free list. Complexity: O(1), or the finishing pass,
  /// O(words), after a change. Errors: none (0 above MaxOrder).
  u64 free_blocks(order o) const {
    settle();
    return o.value <= MaxOrder ? free_[o.value] : 0;
  }
  /// Blocks of every order. Complexity: as free_blocks. Errors: none.
  u64 blocks() const {
    settle();
    u64 n = 0;
    for (u64 c : free_) n += c;
    return n;
  }
  /// Free frames. Complexity: as free_blocks. Errors: none.
  u64 free_pages() const {
    settle();
    return pages_;
  }

  /// The bitmap (bit i of word w: frame origin() + 64 w + i).
  std::span<const u64> words() const { return words_; }
  pfn origin() const { return pfn{origin_}; }

 private:
  bitmap_buddy(pfn start, pfn end, std::span<u64> words)
      : words_(words), origin_(start.value & ~(group - 1)), start_(start.value), end_(end.value) {}

  /// The bits of the word at frame f (a multiple of 64) that lie inside the window.
  u64 edge_mask(u64 f) const {
    u64 m = ~u64{0};
    if (f < start_) m &= ~u64{0} << (start_ - f);
    if (end_ - f < 64) m &= (u64{1} << (end_ - f)) - 1;
    return m;
  }

  void set_range(u64 a, u64 b, bool set) {
    if (a < start_) a = start_;
    if (b > end_) b = end_;
    if (a >= b) return;
    u64* w = words_.data();
    const u64 i = (a - origin_) >> 6, j = (b - 1 - origin_) >> 6;
    const u64 head = ~u64{0} << ((a - origin_) & 63);
    const u64 tail = ~u64{0} >> (63 - ((b - 1 - origin_) & 63));
    auto apply = [&](u64 k, u64 m) { w[k] = set ? (w[k] | m) : (w[k] & ~m); };
    if (i == j) {
      apply(i, head & tail);
    } else {
      apply(i, head);
      if (j > i + 1) std::memset(w + i + 1, set ? 0xff : 0, (j - i - 1) * sizeof(u64));
      apply(j, tail);
    }
    dirty_ = true;
  }

  // ---- the finishing pass -------------------------------------------------------------

  // Bits at multiples of 2^(j+1): where fold step j leaves the order-(base+j+1) blocks.
  static constexpr u64 pair_mask[6] = {0x5555555555555555ull, 0x1111111111111111ull, 0x0101010101010101ull,
                                       0x0001000100010001ull, 0x0000000100000001ull, 0x1ull};
  // Levels of "wholly free" flags: level l holds one bit per block of order 6 l.
  static constexpr unsigned top_level = MaxOrder / 6;

  /// Adds to sums[base + j] the order-(base + j) blocks wholly free among the 64 (or
  /// fewer, at the top level) order-`base` blocks of `f`; returns whether all 64 are
  /// free (one order-(base + 6) block, counted by the next level).
  static u64 fold(u64 f, unsigned base, u64* sums) {
    for (unsigned j = 0;; ++j) {
      if (j == 6) return f & 1;
      sums[base + j] += detail::popcount64(f);
      if (base + j == MaxOrder) return 0;
      f &= (f >> (1u << j)) & pair_mask[j];
    }
  }

  // Orders counted inside a word: 0..5, or up to MaxOrder if that is lower.
  static constexpr unsigned low_orders = MaxOrder < 6 ? MaxOrder + 1 : 6;
  /// fold() for a word of frames, with the popcounts left as byte counts added into
  /// acc[k] (summed across words; at most 8 per word, so settle() flushes them
  /// into the sums before 32 words could wrap one). The steps of the
  /// SWAR popcount that f_k's sparse bits make moot are skipped: f_1's 2-bit fields
  /// already hold 0 or 1, f_2's nibbles, f_3..f_5's bytes. A mixed word (neither 0
  /// nor all ones) never has f_6 set, so no flag is returned.
  static void fold_low(u64 x, u64* acc) {
    constexpr u64 m1 = 0x5555555555555555ull, m2 = 0x3333333333333333ull, m4 = 0x0f0f0f0f0f0f0f0full;
    u64 a = x - ((x >> 1) & m1);
    a = (a & m2) + ((a >> 2) & m2);
    acc[0] += (a + (a >> 4)) & m4;
    if constexpr (MaxOrder >= 1) {
      const u64 f1 = x & (x >> 1) & pair_mask[0];
      a = (f1 & m2) + ((f1 >> 2) & m2);
      acc[1] += (a + (a >> 4)) & m4;
      if constexpr (MaxOrder >= 2) {
        const u64 f2 = f1 & (f1 >> 2) & pair_mask[1];
        acc[2] += (f2 + (f2 >> 4)) & m4;
        if constexpr (MaxOrder >= 3) {
          const u64 f3 = f2 & (f2 >> 4) & pair_mask[2];
          acc[3] += f3;
          if constexpr (MaxOrder >= 4) {
            const u64 f4 = f3 & (f3 >> 8) & pair_mask[3];
            acc[4] += f4;
            if constexpr (MaxOrder >= 5) acc[5] += f4 & (f4 >> 16) & pair_mask[4];
          }
        }
      }
    }
  }

  /// The sum of the 8 byte counters of a (each at most 255).
  static u64 sum_bytes(u64 a) {
    a = (a & 0x00ff00ff00ff00ffull) + ((a >> 8) & 0x00ff00ff00ff00ffull);
    return (a * 0x0001000100010001ull) >> 48;
  }

  // Words per pass of the inner loop: one group (its all-free flags make one flag word
  // for fold), at most 64; 16 when MaxOrder < 6 (no flags).
  static constexpr u64 group_words = group / 64;
  static constexpr u64 chunk = MaxOrder < 6 ? 16 : (group_words < 64 ? group_words : 64);

  void settle() const {
    if (!dirty_) return;
    u64 sums[MaxOrder + 1] = {};
    u64 bytes[low_orders] = {};      // fold_low's byte counters
    u64 acc[top_level + 1] = {};     // level l's flags gathered so far (levels 2 and up)
    unsigned fill[top_level + 1] = {};
    u64 full_words = 0;
    unsigned pending = 0;  // words in the byte counters
    auto push = [&](u64 flag) {  // one order-12 flag into level 2, carried upwards
      for (unsigned l = 2; l <= top_level; ++l) {
        acc[l] |= flag << fill[l];
        const unsigned width = l < top_level ? 64u : 1u << (MaxOrder - 6 * top_level);
        if (++fill[l] < width) return;
        flag = fold(acc[l], 6 * l, sums);
        acc[l] = 0;
        fill[l] = 0;
      }
    };
    const u64* w = words_.data();
    const u64 n = words_.size();
    for (u64 i = 0; i < n; i += chunk) {
      const u64 m = n - i < chunk ? n - i : chunk;
      u64 flags = 0;  // bit j: word i + j wholly free
      for (u64 s = 0; s < m; s += 16) {
        const u64 t = m - s < 16 ? m - s : 16;
        for (u64 j = s; j < s + t; ++j) {
          // Most words of a boot map are mixed, or (sparse maps) full: either branch is
          // predictable, and a full or an empty word needs no fold.
          const u64 x = w[i + j];
          if (x == ~u64{0}) {
            ++full_words;
            flags |= u64{1} << j;
          } else if (x != 0) {
            fold_low(x, bytes);
          }
        }
        pending += static_cast<unsigned>(t);
        if (pending >= 16) {  // at most 31 words: no byte counter wraps
          for (unsigned k = 0; k < low_orders; ++k) sums[k] += sum_bytes(bytes[k]), bytes[k] = 0;
          pending = 0;
        }
      }
      if constexpr (MaxOrder >= 6) {
        const u64 up = fold(flags, 6, sums);  // orders 6..min(11, MaxOrder)
        if constexpr (top_level >= 2) push(up);
      }
    }
    for (unsigned k = 0; k < low_orders; ++k) sums[k] += sum_bytes(bytes[k]) + (full_words << (6 - k));
    for (unsigned k = 0; k < MaxOrder; ++k) free_[k] = sums[k] - 2 * sums[k + 1];
    free_[MaxOrder] = sums[MaxOrder];
    pages_ = sums[0];
    dirty_ = false;
  }

  std::span<u64> words_;
  u64 origin_, start_, end_;
  mutable u64 free_[MaxOrder + 1]{};
  mutable u64 pages_ = 0;
  mutable bool dirty_ = false;
};

}  // namespace kho
