// bench/linux_xarray_model.hpp: the baseline of xarray_kernel_bench, the kernel's xarray
// (lib/xarray.c, include/linux/xarray.h) reimplemented in userspace for the paths it is
// compared on: xa_load, xa_set_mark, the advanced iterators xas_for_each and
// xas_for_each_marked, and a store (xas_create's descent, without multi-order entries).
//
// What is kept from the kernel, because it decides the speed:
//   * the node: 64 slots (XA_CHUNK_SHIFT 6), shift / offset / count / nr_values bytes,
//     parent and array pointers, a two-pointer list head, three 64-bit mark words:
//     576 bytes, handed out one after another as the xa_node slab cache does;
//   * the entry encoding: a node is a pointer with bits 1:0 = 10 ("internal"), a value
//     has bit 0 set, so every slot read tests for an internal entry as the kernel does;
//   * the walk: xas_next_entry's inlined fast path (the next slot of the same leaf node,
//     bailing out to xas_find on an internal entry, the end of the node or `max`),
//     xas_find climbing through parents by the child's offset, xas_find_marked scanning
//     one mark word per node with find-next-bit, and xas_set_mark setting bits from the
//     leaf up until one was already set;
//   * xa_set_mark and xa_load as the public calls: a spin lock taken and released around
//     each mark (xa_lock is a spinlock: one locked cmpxchg, a plain store to release) and
//     the retry loop of xa_load.
// Left out, because no path measured here reaches it: RCU (read-side is free on a
// non-preemptible kernel), multi-order entries and siblings, the free mark, node
// deletion and shrinking, xas_nomem and error states.
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

namespace linux_model {

using u64 = std::uint64_t;

inline constexpr unsigned chunk_shift = 6;
inline constexpr unsigned chunk_size = 1u << chunk_shift;
inline constexpr u64 chunk_mask = chunk_size - 1;
inline constexpr unsigned max_marks = 3;

struct xa_node {
  unsigned char shift;
  unsigned char offset;
  unsigned char count;
  unsigned char nr_values;
  xa_node* parent;
  void* array;
  void* private_list[2];
  void* slots[chunk_size];
  u64 marks[max_marks];
};
static_assert(sizeof(xa_node) == 576, "the kernel's xa_node on 64-bit");

inline bool is_internal(const void* e) { return (reinterpret_cast<std::uintptr_t>(e) & 3) == 2; }
inline bool is_node(const void* e) { return is_internal(e) && reinterpret_cast<std::uintptr_t>(e) > 4096; }
inline xa_node* to_node(const void* e) { return reinterpret_cast<xa_node*>(reinterpret_cast<std::uintptr_t>(e) - 2); }
inline void* mk_node(xa_node* n) { return reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(n) | 2); }
/// A value entry (xa_mk_value): the low bit set.
inline void* mk_value(u64 v) { return reinterpret_cast<void*>((v << 1) | 1); }
inline u64 to_value(const void* e) { return reinterpret_cast<std::uintptr_t>(e) >> 1; }

/// The slab: 576-byte nodes back to back in 4 KiB pages (7 per page, as kmem_cache packs them).
class node_slab {
 public:
  xa_node* alloc() {
    if (left_ == 0) {
      if (used_ == pages_.size()) pages_.push_back(std::make_unique<page[]>(1));
      next_ = reinterpret_cast<xa_node*>(pages_[used_++].get());
      left_ = 4096 / sizeof(xa_node);
    }
    --left_;
    xa_node* n = next_++;
    *n = xa_node{};
    return n;
  }
  /// Every node freed at once; the pages stay for the next nodes, warm, as a kmem_cache
  /// keeps its slabs (a rebuilt map must not pay the process's page faults).
  void rewind() { used_ = 0, left_ = 0; }

 private:
  struct alignas(4096) page {
    unsigned char bytes[4096];
  };
  std::vector<std::unique_ptr<page[]>> pages_;
  std::size_t used_ = 0;
  xa_node* next_ = nullptr;
  unsigned left_ = 0;
};

class xarray {
 public:
  /// Builds the path to `index` (xas_create: a taller root first, then nodes going down)
  /// and stores a value entry there.
  void store(u64 index, u64 value) {
    while (index > max_index()) grow();
    void** slot = &head_;
    xa_node* parent = nullptr;
    unsigned shift = head_shift();
    unsigned char offset = 0;
    while (is_node(*slot)) {
      xa_node* n = to_node(*slot);
      offset = static_cast<unsigned char>((index >> n->shift) & chunk_mask);
      if (n->shift == 0) {
        if (n->slots[offset] == nullptr) ++n->count, ++n->nr_values;
        n->slots[offset] = mk_value(value);
        return;
      }
      slot = &n->slots[offset];
      parent = n;
      shift = n->shift - chunk_shift;
      if (*slot == nullptr) {
        xa_node* c = slab_.alloc();
        ++node_count_;
        c->shift = static_cast<unsigned char>(shift);
        c->offset = offset;
        c->parent = parent;
        c->array = this;
        *slot = mk_node(c);
        ++parent->count;
      }
    }
    if (*slot == nullptr && head_ == nullptr && index == 0) {
      head_ = mk_value(value);  // a lone entry at 0 lives in the head, as in the kernel
      return;
    }
    std::abort();  // unreachable for the shapes built here
  }

  /// xa_store of a value: the same walk under the xa_lock, as the public call takes it.
  void locked_store(u64 index, u64 value) {
    lock();
    store(index, value);
    unlock();
  }

  /// xa_load: descend by the index's chunks, retrying on a retry entry.
  void* load(u64 index) const {
    for (;;) {
      void* entry = head_;
      if (is_node(entry)) {
        if (index > max_index()) return nullptr;
        do {
          const xa_node* n = to_node(entry);
          entry = n->slots[(index >> n->shift) & chunk_mask];
          if (n->shift == 0) break;
        } while (is_node(entry));
      } else if (index != 0) {
        return nullptr;
      }
      if (!is_retry(entry)) return entry;
    }
  }

  /// xa_set_mark: under the lock, load then set the mark from the leaf upwards.
  void set_mark(u64 index, unsigned mark) {
    lock();
    xa_node* node = nullptr;
    unsigned offset = 0;
    if (walk_to(index, node, offset)) {
      while (node != nullptr) {
        u64& word = node->marks[mark];
        const u64 bit = u64{1} << offset;
        if (word & bit) break;
        word |= bit;
        offset = node->offset;
        node = node->parent;
      }
      if (node == nullptr) head_marks_ |= 1u << mark;
    }
    unlock();
  }

  /// The state of an advanced walk (xa_state): node, offset within it, index.
  struct state {
    const xarray* xa;
    xa_node* node;  // nullptr = restart (before the first find)
    unsigned offset;
    u64 index;
    bool bounds = false;
  };
  state begin(u64 index) const { return state{this, nullptr, 0, index}; }

  /// xas_find: the first present entry at or after the state's index, up to `max`.
  static void* find(state& xas, u64 max) {
    if (xas.bounds || xas.index > max) return nullptr;
    if (xas.node == nullptr) {  // a restart: load the index, stop there if present
      void* head = xas.xa->head_;
      if (!is_node(head)) {
        xas.bounds = true;
        return xas.index == 0 ? head : nullptr;
      }
      if (xas.index > xas.xa->max_index()) return nullptr;
      void* entry = head;
      do {
        xas.node = to_node(entry);
        xas.offset = static_cast<unsigned>((xas.index >> xas.node->shift) & chunk_mask);
        entry = xas.node->slots[xas.offset];
      } while (xas.node->shift != 0 && is_node(entry));
      if (entry != nullptr && !is_node(entry)) return entry;
    } else if (xas.node->shift == 0 && xas.offset != (xas.index & chunk_mask)) {
      xas.offset = static_cast<unsigned>(((xas.index - 1) & chunk_mask) + 1);
    }
    next_offset(xas);
    while (xas.node != nullptr && xas.index <= max) {
      if (xas.offset == chunk_size) {
        xas.offset = xas.node->offset + 1u;  // the index already carried into the parent's digit
        xas.node = xas.node->parent;
        continue;
      }
      void* entry = xas.node->slots[xas.offset];
      if (is_node(entry)) {
        xas.node = to_node(entry);
        xas.offset = 0;
        continue;
      }
      if (entry != nullptr) return entry;
      next_offset(xas);
    }
    xas.bounds = true;
    return nullptr;
  }

  /// xas_next_entry: the inlined fast path of xas_for_each.
  static void* next_entry(state& xas, u64 max) {
    xa_node* node = xas.node;
    if (node == nullptr || node->shift != 0 || xas.offset != (xas.index & chunk_mask)) [[unlikely]]
      return find(xas, max);
    void* entry;
    do {
      if (xas.index >= max) [[unlikely]]
        return find(xas, max);
      if (xas.offset == chunk_mask) [[unlikely]]
        return find(xas, max);
      entry = node->slots[xas.offset + 1];
      if (is_internal(entry)) [[unlikely]]
        return find(xas, max);
      ++xas.offset;
      ++xas.index;
    } while (entry == nullptr);
    return entry;
  }

  /// xas_find_marked (advance = false on the first call, true after a hit).
  static void* find_marked(state& xas, u64 max, unsigned mark, bool advance) {
    if (xas.bounds || xas.index > max) return nullptr;
    if (xas.node == nullptr) {
      void* head = xas.xa->head_;
      if (!is_node(head)) {
        xas.bounds = true;
        return xas.index == 0 && (xas.xa->head_marks_ >> mark & 1) ? head : nullptr;
      }
      if (xas.index > xas.xa->max_index()) return nullptr;
      xas.node = to_node(head);
      xas.offset = static_cast<unsigned>(xas.index >> xas.node->shift);
      advance = false;
    }
    while (xas.index <= max) {
      if (xas.offset == chunk_size) {
        xas.offset = xas.node->offset + 1u;
        xas.node = xas.node->parent;
        if (xas.node == nullptr) break;
        advance = false;
        continue;
      }
      unsigned offset = xas.offset + (advance ? 1u : 0u);
      const u64 word = offset < chunk_size ? xas.node->marks[mark] & (~u64{0} << offset) : 0;
      offset = word != 0 ? static_cast<unsigned>(std::countr_zero(word)) : chunk_size;
      if (offset > xas.offset) {
        advance = false;
        move_index(xas, offset);
        if (xas.index - 1 >= max) break;
        xas.offset = offset;
        if (offset == chunk_size) continue;
      }
      void* entry = xas.node->slots[xas.offset];
      if (entry == nullptr) continue;
      if (!is_node(entry)) return entry;
      xas.node = to_node(entry);
      xas.offset = static_cast<unsigned>((xas.index >> xas.node->shift) & chunk_mask);
    }
    xas.bounds = true;
    return nullptr;
  }

  u64 nodes_bytes() const { return node_count_ * sizeof(xa_node); }

  /// Empties the map; its nodes' memory is kept for the next stores (node_slab::rewind).
  void clear() {
    head_ = nullptr;
    head_marks_ = 0;
    node_count_ = 0;
    slab_.rewind();
  }

 private:
  static bool is_retry(const void* e) { return reinterpret_cast<std::uintptr_t>(e) == 256 + 2; }
  unsigned head_shift() const { return is_node(head_) ? to_node(head_)->shift : 0; }
  u64 max_index() const {
    if (!is_node(head_)) return 0;
    const unsigned bits = to_node(head_)->shift + chunk_shift;
    return bits >= 64 ? ~u64{0} : (u64{1} << bits) - 1;
  }
  /// xas_expand: a new root above the old one (or the first node).
  void grow() {
    xa_node* n = slab_.alloc();
    ++node_count_;
    n->array = this;
    if (is_node(head_)) {
      xa_node* old = to_node(head_);
      n->shift = static_cast<unsigned char>(old->shift + chunk_shift);
      n->slots[0] = head_;
      n->count = 1;
      for (unsigned m = 0; m < max_marks; ++m)
        if (old->marks[m] != 0) n->marks[m] = 1;
      old->parent = n;
      old->offset = 0;
    } else if (head_ != nullptr) {
      n->slots[0] = head_;
      n->count = n->nr_values = 1;
    }
    head_ = mk_node(n);
  }
  static void move_index(state& xas, unsigned offset) {
    const unsigned shift = xas.node->shift;
    xas.index &= ~(chunk_mask << shift);
    xas.index += u64{offset} << shift;
  }
  static void next_offset(state& xas) {
    ++xas.offset;
    move_index(xas, xas.offset);
  }
  bool walk_to(u64 index, xa_node*& node, unsigned& offset) const {
    void* entry = head_;
    if (!is_node(entry) || index > max_index()) return false;
    do {
      node = to_node(entry);
      offset = static_cast<unsigned>((index >> node->shift) & chunk_mask);
      entry = node->slots[offset];
    } while (node->shift != 0 && is_node(entry));
    return entry != nullptr;
  }
  void lock() {
    unsigned expected = 0;
    while (!lock_.compare_exchange_weak(expected, 1, std::memory_order_acquire)) expected = 0;
  }
  void unlock() { lock_.store(0, std::memory_order_release); }

  void* head_ = nullptr;
  unsigned head_marks_ = 0;
  std::atomic<unsigned> lock_{0};
  node_slab slab_;
  u64 node_count_ = 0;
};

}  // namespace linux_model
