// kho/block_list.hpp: a list of fixed-size records in a chain of page-sized blocks.
//
// LUO's sessions and files were once kept in fixed arrays, which capped a machine at
// about a thousand sessions and 128 files per session. Linux replaced them with its KHO
// serialization blocks, and this header is byte-compatible with them: a list is a
// chain of blocks of exactly one page, each starting with a packed {next, count}
// header followed by `count` packed entries. Nothing else is on the wire, so the
// overhead is the 16-byte header per block and there is no limit but memory.
//
//   block (PAGE_SIZE bytes, page aligned)
//   +--------+--------+---------+---------+-----+-----------+-------------+
//   | next   | count  | entry 0 | entry 1 | ... | entry c-1 | zero        |
//   | u64 LE | u64 LE |         |         |     |           |             |
//   +--------+--------+---------+---------+-----+-----------+-------------+
//     0        8        16        16+E                       16+c*E  PAGE_SIZE
//   next: physical address of the next block's header, 0 in the last block.
//   capacity per block: (PAGE_SIZE - 16) / sizeof(Entry), e.g. 255 entries of 16
//   bytes, 51 of 80 bytes, 15 of 256 bytes with 4 KiB pages.
//
// Invariants (kept by the writer, checked by attach()):
//   - every block of the chain is page aligned and inside memory;
//   - 1 <= count <= capacity in every block (an empty list has head 0, no block);
//   - no block is reached twice (no cycle), and the walk stays within a block budget;
//   - the writer keeps bytes past the last entry of a block zero (checked only on
//     request, block_tail::zero: Linux's writer does not promise it, see block_tail).
// The writer appends in the tail block and erases by moving the list's last entry
// into the hole, so the order is insertion order wherever nothing was erased.
//
// The chain's link surgery is Boost.Intrusive's linear_slist_algorithms over node
// traits whose "pointers" are physical addresses resolved through the Memory policy;
// the header stays the kernel's {next, count}. Upstream caps a set at 10,000 blocks
// (linux_max_blocks below); kho's reader takes a budget instead and defaults to none.
//
// Validation budget: attach costs O(blocks walked) time (O(bytes walked) when the
// tails are checked) and no scratch at all, whatever the size of memory; a budget
// (max_blocks) caps the walk for callers that know a bound.
//
// Complexity: push_back O(1); erase O(1); clear O(blocks); attach O(blocks);
// iteration O(size + blocks). The writer needs no memory but the blocks and, for
// chains of three blocks or more, a writer-only stack of block addresses (8 bytes per
// block, in pages of its own, never on the wire) that makes erase O(1).
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <boost/intrusive/linear_slist_algorithms.hpp>

#include <cstddef>
#include <cstring>
#include <iterator>
#include <type_traits>

namespace kho {

// ---- wire layout -------------------------------------------------------------------

/// The compatible string of a standalone block list in the handover root (upstream's).
inline constexpr const char* block_list_compatible = "block-v1";

/// Upstream's cap on the blocks of one set; kho's reader takes any budget instead.
inline constexpr u64 linux_max_blocks = 10000;

/// No budget but memory: the walk still ends, because cycles are detected.
inline constexpr u64 unlimited_blocks = ~u64{0};

/// What a reader requires of the bytes after a block's last entry.
///   ignore  a bare chain Linux wrote: its serialize rollback (luo_session_serialize's
///           error path) zeroes only the names of the entries it gives back and never
///           lowers a block's count, so a retried freeze can leave stale entry bytes
///           past the last entry; the kernel's own reader never looks at them.
///   zero    a chain kho's writer wrote (it zeroes what erase vacates), or one inside
///           a kho format that documents them as zero: nonzero is reserved_nonzero.
enum class block_tail : u8 { ignore, zero };

struct block_header {
  detail::le64 next;   // physical address of the next block, 0 at the end
  detail::le64 count;  // entries that follow in this block, 1..capacity
};

static_assert(sizeof(block_header) == 16);
static_assert(offsetof(block_header, next) == 0);
static_assert(offsetof(block_header, count) == 8);
static_assert(std::has_unique_object_representations_v<block_header>);

/// Entries of `Entry` in one block: what is left of the page after the header.
template <class Entry, unsigned PageShift = 12>
inline constexpr u64 block_capacity =
    (page_geometry<PageShift>::size - sizeof(block_header)) / sizeof(Entry);

/// What a writer remembers about its list; nothing of it is on the wire but `head`.
/// Trivially copyable, so a container of lists (LUO's sessions) can keep one per list
/// in its own index and lend it to a block_list for each operation.
struct block_list_state {
  phys_addr head{};   // first block, 0 when empty
  phys_addr tail{};   // last block, where push_back writes
  phys_addr spine{};  // top page of the stack of blocks between head and tail
  u64 size = 0;       // entries
  u64 blocks = 0;     // blocks in the chain
};

namespace detail {

/// Entries are trivially copyable records, at most 8-aligned, at least one a block.
template <class Entry, unsigned PageShift>
constexpr bool valid_block_entry = std::is_trivially_copyable_v<Entry> &&
                                   alignof(Entry) <= alignof(block_header) &&
                                   block_capacity<Entry, PageShift> >= 1;

/// A block "pointer" for Boost.Intrusive: a physical address and the Memory that
/// resolves it. Null is address 0, whatever the Memory.
template <Memory M>
struct block_ptr {
  const M* mem = nullptr;
  phys_addr pa{};

  explicit operator bool() const { return pa.value != 0; }
  bool operator!() const { return pa.value == 0; }
  friend bool operator==(const block_ptr& a, const block_ptr& b) { return a.pa == b.pa; }

  /// Only for blocks known to be inside memory (written by us, or validated).
  block_header* header() const {
    return static_cast<block_header*>(mem->to_virt(pa, sizeof(block_header)));
  }
};

/// Node traits: a block's `next` field is the link, stored as a physical address.
template <Memory M>
struct block_node_traits {
  using node = block_header;
  using node_ptr = block_ptr<M>;
  using const_node_ptr = block_ptr<M>;

  static node_ptr get_next(const const_node_ptr& n) {
    return node_ptr{n.mem, phys_addr{n.header()->next.get()}};
  }
  static void set_next(const node_ptr& n, const node_ptr& next) {
    n.header()->next.set(next.pa.value);
  }
};

template <Memory M>
using block_chain = boost::intrusive::linear_slist_algorithms<block_node_traits<M>>;

/// The writer's stack of block addresses (the "spine"): pages laid out like blocks of
/// u64 entries, the newest page first. Never referenced from the wire.
template <PageSource Source, unsigned PageShift>
struct spine {
  using geometry = page_geometry<PageShift>;
  static constexpr u64 per_page = block_capacity<u64, PageShift>;

  static block_header* page(Source& src, phys_addr top) {
    return static_cast<block_header*>(src.memory().to_virt(top, geometry::size));
  }
  static u64* items(block_header* h) { return reinterpret_cast<u64*>(h + 1); }

  static status push(Source& src, phys_addr& top, phys_addr block) {
    block_header* h = top ? page(src, top) : nullptr;
    if (h == nullptr || h->count.get() == per_page) {
      auto pa = alloc_zeroed(src, order{0}, geometry::size);
      if (!pa) return pa.err();
      h = page(src, *pa);
      h->next.set(top.value);
      top = *pa;
    }
    const u64 n = h->count.get();
    items(h)[n] = block.value;
    h->count.set(n + 1);
    return {};
  }

  /// Removes and returns the top address; the stack must not be empty.
  static phys_addr pop(Source& src, phys_addr& top) {
    block_header* h = page(src, top);
    const u64 n = h->count.get() - 1;
    const phys_addr out{items(h)[n]};
    h->count.set(n);
    if (n == 0) {
      const phys_addr below{h->next.get()};
      src.free(top, order{0});
      top = below;
    }
    return out;
  }

  static void clear(Source& src, phys_addr& top) {
    while (top) {
      const phys_addr below{page(src, top)->next.get()};
      src.free(top, order{0});
      top = below;
    }
  }
};

/// Walks a chain of blocks, one block at a time; `Value` is Entry or const Entry.
template <class Value, Memory M, unsigned PageShift>
class block_iterator {
 public:
  using value_type = std::remove_const_t<Value>;
  using reference = Value&;
  using pointer = Value*;
  using difference_type = std::ptrdiff_t;
  using iterator_category = std::forward_iterator_tag;

  block_iterator() = default;
  block_iterator(const M* mem, phys_addr block) : mem_(mem) { enter(block); }

  reference operator*() const { return *cur_; }
  pointer operator->() const { return cur_; }
  block_iterator& operator++() {
    if (++cur_ == stop_) enter(next_);
    return *this;
  }
  block_iterator operator++(int) {
    block_iterator old = *this;
    ++*this;
    return old;
  }
  friend bool operator==(const block_iterator& a, const block_iterator& b) {
    return a.cur_ == b.cur_;
  }

  /// Physical address of the current entry.
  phys_addr phys() const {
    return block_ + static_cast<u64>(reinterpret_cast<const unsigned char*>(cur_) -
                                     reinterpret_cast<const unsigned char*>(start_)) +
           sizeof(block_header);
  }

 private:
  void enter(phys_addr block) {
    block_ = block;
    if (!block) {
      cur_ = stop_ = start_ = nullptr;
      return;
    }
    const block_ptr<M> b{mem_, block};
    block_header* h = b.header();
    start_ = cur_ = reinterpret_cast<Value*>(h + 1);
    stop_ = cur_ + h->count.get();
    next_ = block_node_traits<M>::get_next(b).pa;
  }

  const M* mem_ = nullptr;
  phys_addr block_{}, next_{};
  Value* start_ = nullptr;
  Value* cur_ = nullptr;
  Value* stop_ = nullptr;
};

/// The first nonzero byte after a block's `count` entries (its offset in the block),
/// or 0 if every byte to the end of the page is zero. Complexity: O(page).
template <class Entry, unsigned PageShift>
u64 nonzero_tail(const block_header* h, u64 count) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(h);
  for (u64 i = sizeof(block_header) + count * sizeof(Entry); i < page_geometry<PageShift>::size; ++i)
    if (bytes[i] != 0) return i;
  return 0;
}

/// What a validated walk found.
struct chain_stats {
  u64 size = 0;
  u64 blocks = 0;
};

/// Validates the chain at `head`: each block aligned, inside memory, 1 <= count <=
/// capacity, at most `max_blocks` blocks, no cycle (Brent's algorithm: the walk itself
/// is the hare, so detection costs no second pass). `on_block(pa, header, entries)`
/// sees each block once its header is valid and may fail the walk. Errors carry the
/// offending block's address and its position in the chain as depth.
template <class Entry, unsigned PageShift, Memory M, class OnBlock>
result<chain_stats> walk_chain(const M& mem, phys_addr head, u64 max_blocks,
                               const char* structure, OnBlock&& on_block) {
  using geometry = page_geometry<PageShift>;
  constexpr u64 capacity = block_capacity<Entry, PageShift>;
  chain_stats stats;
  phys_addr tortoise = head;
  u64 power = 1, lambda = 0;
  for (phys_addr pa = head; pa;) {
    auto fail = [&](errc c) {
      return make_error(c, structure, pa, static_cast<u32>(stats.blocks));
    };
    if (stats.blocks >= max_blocks) return fail(errc::budget_exceeded);
    if (!geometry::is_aligned(pa)) return fail(errc::misaligned);
    const auto* h = static_cast<const block_header*>(mem.to_virt(pa, geometry::size));
    if (h == nullptr) return fail(errc::out_of_bounds);
    const u64 count = h->count.get();
    if (count == 0 || count > capacity) return fail(errc::bad_count);
    if (status s = on_block(pa, h, reinterpret_cast<const Entry*>(h + 1)); !s) return s.err();
    stats.size += count;
    ++stats.blocks;
    const phys_addr next{h->next.get()};
    if (next && next == tortoise) return make_error(errc::cycle, structure, next,
                                                    static_cast<u32>(stats.blocks));
    if (++lambda == power) {
      tortoise = next;
      power <<= 1;
      lambda = 0;
    }
    pa = next;
  }
  return stats;
}

}  // namespace detail

template <class Entry, Memory M, unsigned PageShift>
class block_list_view;

// ---- writer ------------------------------------------------------------------------

/// The writer: appends, erases and frees blocks from `Source`. The object is a handle
/// (trivially copyable state plus the source); preserved blocks are never freed behind
/// the caller's back, only by erase() and clear().
template <class Entry, PageSource Source, unsigned PageShift = 12>
class block_list {
  static_assert(detail::valid_block_entry<Entry, PageShift>);

 public:
  using geometry = page_geometry<PageShift>;
  using memory_type = memory_of<Source>;
  using iterator = detail::block_iterator<Entry, memory_type, PageShift>;
  static constexpr u64 per_block = block_capacity<Entry, PageShift>;
  static constexpr const char* structure = "block_list";

  /// An empty list, or the list a previous handle left in `state`.
  explicit block_list(Source& source, const block_list_state& state = {})
      : source_(&source), state_(state) {}

  /// Turns a validated view back into a writer (the next kernel adopting a list).
  /// Complexity: O(blocks). Errors: out_of_memory (the writer-only stack).
  static result<block_list> adopt(Source& source,
                                  const block_list_view<Entry, memory_type, PageShift>& view) {
    block_list w(source);
    const memory_type& mem = source.memory();
    for (detail::block_ptr<memory_type> b{&mem, view.head()}; b; b = node_traits::get_next(b)) {
      if (w.state_.blocks >= 2) {
        if (status s = detail::spine<Source, PageShift>::push(source, w.state_.spine,
                                                             w.state_.tail);
            !s) {
          detail::spine<Source, PageShift>::clear(source, w.state_.spine);
          return s.err();
        }
      }
      if (!w.state_.head) w.state_.head = b.pa;
      w.state_.tail = b.pa;
      ++w.state_.blocks;
    }
    w.state_.size = view.size();
    return w;
  }

  /// Appends `e`; returns the entry's physical address.
  /// Complexity: O(1). Errors: out_of_memory.
  result<phys_addr> push_back(const Entry& e) {
    block_header* t = state_.tail ? header(state_.tail) : nullptr;
    if (t == nullptr || t->count.get() == per_block) {
      auto pa = alloc_zeroed(*source_, order{0}, geometry::size);
      if (!pa) return pa.err();
      if (state_.blocks >= 2) {
        if (status s = detail::spine<Source, PageShift>::push(*source_, state_.spine,
                                                             state_.tail);
            !s) {
          source_->free(*pa, order{0});
          return s.err();
        }
      }
      const node_ptr fresh{&mem(), *pa};
      chain::init(fresh);
      if (state_.head)
        chain::link_after(node_ptr{&mem(), state_.tail}, fresh);
      else
        state_.head = *pa;
      state_.tail = *pa;
      ++state_.blocks;
      t = header(*pa);
    }
    const u64 n = t->count.get();
    const phys_addr at = slot(state_.tail, n);
    std::memcpy(entry(at), &e, sizeof(Entry));
    t->count.set(n + 1);
    ++state_.size;
    return at;
  }

  /// Removes the entry at `at` by moving the list's last entry into it, and frees the
  /// tail block if that empties it. Returns where the moved entry came from (`at`
  /// itself when `at` was the last entry) so that an index can follow the move.
  /// `at` must be an entry of this list. Complexity: O(1).
  /// Errors: invalid_argument (empty list, or `at` is not an entry slot in use).
  result<phys_addr> erase(phys_addr at) {
    if (state_.size == 0) return errc::invalid_argument;
    const phys_addr block{at.value & ~geometry::mask};
    const u64 offset = at - block;
    if (offset < sizeof(block_header) || (offset - sizeof(block_header)) % sizeof(Entry) != 0)
      return errc::invalid_argument;
    if ((offset - sizeof(block_header)) / sizeof(Entry) >= header(block)->count.get())
      return errc::invalid_argument;

    block_header* t = header(state_.tail);
    const u64 n = t->count.get() - 1;
    const phys_addr last = slot(state_.tail, n);
    if (last != at) std::memcpy(entry(at), entry(last), sizeof(Entry));
    std::memset(entry(last), 0, sizeof(Entry));
    t->count.set(n);
    --state_.size;
    if (n == 0) drop_tail();
    return last;
  }

  /// Frees every block (and the writer-only stack). Complexity: O(blocks).
  void clear() {
    detail::spine<Source, PageShift>::clear(*source_, state_.spine);
    for (node_ptr b{&mem(), state_.head}; b;) {
      const node_ptr next = node_traits::get_next(b);
      source_->free(b.pa, order{0});
      b = next;
    }
    state_ = {};
  }

  /// The entry at `at`, for reading or updating in place; `at` must be an entry of
  /// this list (as push_back or an iterator's phys() returned it).
  Entry* entry(phys_addr at) const {
    return static_cast<Entry*>(mem().to_virt(at, sizeof(Entry)));
  }

  iterator begin() const { return iterator(&mem(), state_.head); }
  iterator end() const { return iterator(); }

  u64 size() const { return state_.size; }
  u64 blocks() const { return state_.blocks; }
  bool empty() const { return state_.size == 0; }
  phys_addr head() const { return state_.head; }
  const block_list_state& state() const { return state_; }

 private:
  using node_traits = detail::block_node_traits<memory_type>;
  using node_ptr = detail::block_ptr<memory_type>;
  using chain = detail::block_chain<memory_type>;

  const memory_type& mem() const { return source_->memory(); }
  block_header* header(phys_addr block) const { return node_ptr{&mem(), block}.header(); }
  static phys_addr slot(phys_addr block, u64 i) {
    return block + sizeof(block_header) + i * sizeof(Entry);
  }

  // The tail block is empty: unlink and free it; its predecessor becomes the tail.
  void drop_tail() {
    const phys_addr gone = state_.tail;
    if (state_.blocks == 1) {
      state_.head = state_.tail = phys_addr{};
    } else {
      const phys_addr before = state_.blocks == 2
                                   ? state_.head
                                   : detail::spine<Source, PageShift>::pop(*source_, state_.spine);
      chain::unlink_after(node_ptr{&mem(), before});
      state_.tail = before;
    }
    --state_.blocks;
    source_->free(gone, order{0});
  }

  Source* source_;
  block_list_state state_;
};

// ---- reader ------------------------------------------------------------------------

/// A validated, read-only view of a chain; iteration after attach() is unchecked.
template <class Entry, Memory M, unsigned PageShift = 12>
class block_list_view {
  static_assert(detail::valid_block_entry<Entry, PageShift>);

 public:
  using geometry = page_geometry<PageShift>;
  using iterator = detail::block_iterator<const Entry, M, PageShift>;
  static constexpr u64 per_block = block_capacity<Entry, PageShift>;
  static constexpr const char* structure = "block_list";

  /// Validates the chain at `head` (0: an empty list). With block_tail::zero, every
  /// byte after a block's last entry must be zero as well.
  /// Complexity: O(blocks) (O(bytes) with block_tail::zero); no scratch: Brent's cycle
  /// detection needs two addresses.
  /// Errors (at the offending block; depth is its position in the chain): misaligned,
  /// out_of_bounds, bad_count (0 or more than per_block), cycle, budget_exceeded (more
  /// than `max_blocks` blocks), reserved_nonzero (block_tail::zero: at the first nonzero
  /// byte after the last entry).
  static result<block_list_view> attach(const M& mem, phys_addr head,
                                        u64 max_blocks = unlimited_blocks,
                                        block_tail tail = block_tail::ignore) {
    u64 position = 0;
    auto stats = detail::walk_chain<Entry, PageShift>(
        mem, head, max_blocks, structure,
        [&](phys_addr pa, const block_header* h, const Entry*) -> status {
          const u64 at = position++;
          if (tail == block_tail::ignore) return {};
          if (const u64 off = detail::nonzero_tail<Entry, PageShift>(h, h->count.get()))
            return make_error(errc::reserved_nonzero, structure, pa + off, static_cast<u32>(at));
          return {};
        });
    if (!stats) return stats.err();
    return block_list_view(mem, head, stats->size, stats->blocks);
  }

  /// A view of a chain that an enclosing structure's attach() has already validated
  /// (LUO's file lists). Nothing is checked: never use it on untrusted memory.
  static block_list_view unchecked(const M& mem, phys_addr head, u64 size, u64 blocks) {
    return block_list_view(mem, head, size, blocks);
  }

  iterator begin() const { return iterator(&mem_, head_); }
  iterator end() const { return iterator(); }

  /// Calls f(block address, first entry, count) for each block: the fastest walk, as
  /// the inner loop runs over a plain array. Complexity: O(size + blocks).
  template <class F>
  void for_each_block(F&& f) const {
    using node_ptr = detail::block_ptr<M>;
    for (node_ptr b{&mem_, head_}; b; b = detail::block_node_traits<M>::get_next(b)) {
      const block_header* h = b.header();
      f(b.pa, reinterpret_cast<const Entry*>(h + 1), h->count.get());
    }
  }

  u64 size() const { return size_; }
  u64 blocks() const { return blocks_; }
  bool empty() const { return size_ == 0; }
  phys_addr head() const { return head_; }
  const M& memory() const { return mem_; }

  /// Claims every block of the chain for page_owner{structure, head()} in `owners`
  /// (kho::page_owners); blocks must also be preserved. Call on a validated view.
  /// Complexity: O(pages reached) = O(blocks). Errors: those of page_owners::claim.
  template <class Owners>
  status claim_pages(Owners& owners) const {
    return claim_chain(owners, page_owner{structure, head_});
  }

  /// The same, for a chain that is part of a bigger structure: claims as `who`.
  template <class Owners>
  status claim_chain(Owners& owners, page_owner who) const {
    using node_ptr = detail::block_ptr<M>;
    for (node_ptr b{&mem_, head_}; b; b = detail::block_node_traits<M>::get_next(b))
      KHO_TRY(owners.claim(b.pa, 1, who));
    return {};
  }

 private:
  block_list_view(const M& mem, phys_addr head, u64 size, u64 blocks)
      : mem_(mem), head_(head), size_(size), blocks_(blocks) {}

  M mem_;
  phys_addr head_;
  u64 size_;
  u64 blocks_;
};

/// Attaches with the Memory type deduced.
template <class Entry, unsigned PageShift = 12, Memory M>
result<block_list_view<Entry, M, PageShift>> attach_block_list(const M& mem, phys_addr head,
                                                               u64 max_blocks = unlimited_blocks,
                                                               block_tail tail = block_tail::ignore) {
  return block_list_view<Entry, M, PageShift>::attach(mem, head, max_blocks, tail);
}

}  // namespace kho
