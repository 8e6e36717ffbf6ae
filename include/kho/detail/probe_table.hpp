// kho/detail/probe_table.hpp: an open-addressing hash table in pages from a PageSource.
//
// LUO must find a session by name and a file by (session, token) among millions, and
// detect duplicates when the next kernel attaches, without a heap. This table lives
// in one naturally aligned block of 2^k pages from a PageSource (the writer's own, or
// scratch pages the next kernel lends); it is never referenced from preserved memory.
//
//   block: slot[0] slot[1] ... slot[capacity-1]      capacity = 2^k * PAGE_SIZE / sizeof(Slot)
//   slot:  { u64 tag; ...caller's fields }           tag 0 = free
//
// Linear probing from mix64(tag) & (capacity - 1); the load stays at most 1/2, so a
// lookup probes about 1.5 slots on average. Erase shifts the following run back
// (no tombstones), so a table that churns does not degrade. The tag is the caller's
// hash of the key and must be nonzero; equality of keys is the caller's predicate,
// because slots often hold only the key's address.
//
// Keys read from untrusted memory can be chosen to collide; a probe budget (a
// multiple of the entries) turns such an input into errc::budget_exceeded instead of
// quadratic work.
//
// Complexity: find, insert, erase O(1) expected; growth O(capacity), amortized O(1).
// No pointer to a slot survives an insert or an erase.
#pragma once

#include <kho/memory.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <bit>
#include <type_traits>

namespace kho::detail {

/// splitmix64's finalizer: spreads every input bit over the result.
constexpr u64 mix64(u64 x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

/// A nonzero tag for a 64-bit hash.
constexpr u64 tag_of(u64 hash) { return hash | (u64{1} << 63); }

template <class Slot, PageSource Source, unsigned PageShift = 12>
class probe_table {
  static_assert(std::is_trivially_copyable_v<Slot> && std::is_standard_layout_v<Slot>);
  static_assert(std::has_single_bit(sizeof(Slot)), "slots tile a page");
  static_assert(pages_of_size<Source, PageShift>(), "scratch must come in pages of the reader's size");

 public:
  using geometry = page_geometry<PageShift>;
  static constexpr u64 min_capacity = geometry::size / sizeof(Slot);
  static constexpr u64 unlimited_probes = ~u64{0};

  /// Makes room for `n` entries in total, so that inserts up to then cannot fail.
  /// Complexity: O(capacity) when it grows. Errors: out_of_memory (also for sizes no
  /// page source could hold).
  status reserve(Source& src, u64 n) {
    if (n > (u64{1} << 58) / sizeof(Slot)) return errc::out_of_memory;
    if (n * 2 <= capacity()) return {};
    u64 cap = capacity() ? capacity() : min_capacity;
    while (cap < n * 2) cap *= 2;
    return rehash(src, cap);
  }

  /// The slot whose tag is `tag` and for which `eq(slot)` holds, or nullptr.
  template <class Eq>
  Slot* find(Source& src, u64 tag, Eq&& eq) const {
    if (size_ == 0) return nullptr;
    Slot* s = slots(src);
    for (u64 i = home(tag);; i = (i + 1) & mask_) {
      if (s[i].tag == 0) return nullptr;
      if (s[i].tag == tag && eq(s[i])) return &s[i];
    }
  }

  /// Inserts `slot` (no duplicate check: find first). Grows at load 1/2.
  /// Errors: out_of_memory, budget_exceeded (probe budget spent).
  result<Slot*> insert(Source& src, const Slot& slot) {
    KHO_TRY(reserve(src, size_ + 1));
    Slot* s = slots(src);
    u64 i = home(slot.tag);
    for (; s[i].tag != 0; i = (i + 1) & mask_)
      if (++probes_ > probe_budget_) return errc::budget_exceeded;
    s[i] = slot;
    ++size_;
    return &s[i];
  }

  /// Inserts `slot` unless a slot with the same tag satisfying `eq` is there, which is
  /// returned with `inserted` false. Same errors as insert().
  template <class Eq>
  result<Slot*> insert_unique(Source& src, const Slot& slot, Eq&& eq, bool& inserted) {
    inserted = false;
    KHO_TRY(reserve(src, size_ + 1));
    Slot* s = slots(src);
    u64 i = home(slot.tag);
    for (; s[i].tag != 0; i = (i + 1) & mask_) {
      if (s[i].tag == slot.tag && eq(s[i])) return &s[i];
      if (++probes_ > probe_budget_) return errc::budget_exceeded;
    }
    s[i] = slot;
    ++size_;
    inserted = true;
    return &s[i];
  }

  /// Removes `victim` (a slot of this table) by shifting the run after it back.
  void erase(Source& src, Slot* victim) {
    Slot* s = slots(src);
    u64 hole = static_cast<u64>(victim - s);
    for (u64 j = (hole + 1) & mask_; s[j].tag != 0; j = (j + 1) & mask_) {
      const u64 h = home(s[j].tag);
      // s[j] may move to the hole unless its home lies cyclically in (hole, j].
      const bool stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
      if (stays) continue;
      s[hole] = s[j];
      hole = j;
    }
    s[hole] = Slot{};
    --size_;
  }

  /// Caps the probes of all future inserts at `budget` in total.
  void set_probe_budget(u64 budget) {
    probe_budget_ = budget;
    probes_ = 0;
  }

  /// Moves the cap on all probes so far (not reset) to `budget`: a table that grows
  /// with its input keeps a budget linear in that input.
  void raise_probe_budget(u64 budget) { probe_budget_ = budget; }

  /// Calls f(slot) for every occupied slot, in table order, until f returns false.
  /// Complexity: O(capacity).
  template <class F>
  void for_each(Source& src, F&& f) const {
    if (size_ == 0) return;
    const Slot* s = slots(src);
    for (u64 i = 0; i <= mask_; ++i)
      if (s[i].tag != 0 && !f(s[i])) return;
  }

  /// Returns the block to `src`; the table is empty again.
  void release(Source& src) {
    if (block_) src.free(block_, block_order_);
    *this = probe_table{};
  }

  u64 size() const { return size_; }
  u64 capacity() const { return block_ ? mask_ + 1 : 0; }
  u64 bytes() const { return capacity() * sizeof(Slot); }

 private:
  u64 home(u64 tag) const { return mix64(tag) & mask_; }

  Slot* slots(Source& src) const {
    return static_cast<Slot*>(src.memory().to_virt(block_, capacity() * sizeof(Slot)));
  }

  status rehash(Source& src, u64 cap) {
    const u64 bytes = cap * sizeof(Slot);
    const order o{static_cast<unsigned>(std::countr_zero(bytes >> PageShift))};
    auto pa = alloc_zeroed(src, o, bytes);
    if (!pa) return pa.err();
    probe_table grown;
    grown.block_ = *pa;
    grown.block_order_ = o;
    grown.mask_ = cap - 1;
    grown.probe_budget_ = probe_budget_;
    grown.probes_ = probes_;
    if (block_) {
      Slot* old = slots(src);
      Slot* s = grown.slots(src);
      for (u64 i = 0; i <= mask_; ++i) {
        if (old[i].tag == 0) continue;
        u64 j = grown.home(old[i].tag);
        while (s[j].tag != 0) j = (j + 1) & grown.mask_;
        s[j] = old[i];
      }
      src.free(block_, block_order_);
    }
    grown.size_ = size_;
    *this = grown;
    return {};
  }

  phys_addr block_{};
  order block_order_{};
  u64 mask_ = 0;
  u64 size_ = 0;
  u64 probes_ = 0;
  u64 probe_budget_ = unlimited_probes;
};

}  // namespace kho::detail
