// kho/linux/kho_vmalloc.hpp: Linux's vmalloc preservation (`struct kho_vmalloc`), read
// and written byte for byte as the "kho-v4" kernel does.
//
// Upstream: include/linux/kho/abi/kexec_handover.h (linux-mm d3b55a6a) and
// kernel/liveupdate/kexec_handover.c (65660710); the snapshot is pinned in
// shared/LINUX-FORMATS.md, section 4. No own compatible string: the root's "kho-v4"
// versions it.
//
// A vmalloc area is a list of 2^order-page units. The user embeds a 16-byte
// descriptor; the unit addresses sit in a chain of one-page chunks:
//
//   kho_vmalloc (16 B)             chunk (PAGE_SIZE, page aligned)
//   +--------+-------+-----+-----+ +--------+---------+---------+-----+------------+
//   | first  | total | flg | ord | | next   | phys[0] | phys[1] | ... | phys[P-2]  |
//   | u64    | u32   | u16 | u16 | | u64    | u64     |         |     |            |
//   +---|----+-------+-----+-----+ +--------+---------+---------+-----+------------+
//       +--> chunk --> chunk --> ... (next = 0 ends)   P = PAGE_SIZE / 8, 511 at 4 KiB
//
// The writer fills a chunk front to back; the moment it holds P-1 entries it links a
// fresh zeroed chunk, so a full chunk is never the last one and an area of exactly
// k*(P-1) units ends with an empty chunk. In a chunk the entries end at the first 0
// or at the end of the chunk.
//
// Reader (vmalloc_view::attach), the kernel's checks: every unit fits (idx + 2^order
// <= total_pages); in the end idx == total_pages. kho's, which the kernel does not
// make: flags within VM_ALLOC | VM_ALLOW_HUGE_VMAP (the kernel's kho_flags_to_vmalloc
// keeps those two bits and drops the rest, so its own flags check never fires and a
// stock kernel accepts unknown bits; kho refuses them as reserved), chunks page aligned and
// inside memory, no chunk reached twice (Brent's cycle check on the walk), units
// aligned to their order and inside memory, entries after a chunk's terminator zero,
// only the last chunk not full, order small enough for total_pages (u32) to count it.
// The cost is O(chunks actually linked): every chunk but the last holds P-1 units
// that count against total_pages, so a chain longer than total_pages/(P-1) + 1 fails
// on the count before it is walked further; the reader needs no scratch.
//
// Complexity: writer push O(1); attach O(chunks * PAGE_SIZE); iteration O(units).
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstddef>
#include <type_traits>

namespace kho::upstream {

// ---- wire layout -------------------------------------------------------------------

inline constexpr u16 vmalloc_flag_alloc = 0x1;       // VM_ALLOC
inline constexpr u16 vmalloc_flag_huge_vmap = 0x2;   // VM_ALLOW_HUGE_VMAP
inline constexpr u16 vmalloc_known_flags = 0x3;

/// The descriptor the user embeds in its own preserved state.
struct kho_vmalloc {
  detail::le64 first;        // physical address of the first chunk, 0: none
  detail::le32 total_pages;  // PAGE_SIZE pages in the area (vm->nr_pages)
  detail::le16 flags;        // vmalloc_flag_*
  detail::le16 order;        // each unit is 2^order pages
};

static_assert(sizeof(kho_vmalloc) == 16);
static_assert(offsetof(kho_vmalloc, first) == 0);
static_assert(offsetof(kho_vmalloc, total_pages) == 8);
static_assert(offsetof(kho_vmalloc, flags) == 12);
static_assert(offsetof(kho_vmalloc, order) == 14);
static_assert(std::has_unique_object_representations_v<kho_vmalloc>);

/// One chunk page: a next link and PAGE_SIZE/8 - 1 unit addresses (511 at 4 KiB).
template <unsigned PageShift>
struct kho_vmalloc_chunk {
  static constexpr u64 entries = page_geometry<PageShift>::size / 8 - 1;
  detail::le64 next;
  detail::le64 phys[entries];
};

static_assert(sizeof(kho_vmalloc_chunk<12>) == 4096 && kho_vmalloc_chunk<12>::entries == 511);
static_assert(sizeof(kho_vmalloc_chunk<14>) == 16384 && sizeof(kho_vmalloc_chunk<16>) == 65536);
static_assert(offsetof(kho_vmalloc_chunk<12>, next) == 0);
static_assert(offsetof(kho_vmalloc_chunk<12>, phys) == 8);
static_assert(std::has_unique_object_representations_v<kho_vmalloc_chunk<12>>);

/// The largest order kho accepts: 2^order pages must be countable in total_pages (u32).
inline constexpr unsigned vmalloc_max_order = 31;

// ---- writer ------------------------------------------------------------------------

/// Builds the chunk chain of an area unit by unit, as kho_preserve_vmalloc does. The
/// units themselves are the caller's (already allocated and, in a kernel, preserved).
template <PageSource Source, unsigned PageShift = 12>
class vmalloc_writer {
 public:
  using geometry = page_geometry<PageShift>;
  using chunk = kho_vmalloc_chunk<PageShift>;
  static constexpr const char* structure = "kho_vmalloc";

  /// Starts an area of 2^order-page units, allocating its first chunk (the kernel
  /// allocates it even for an empty area).
  /// Complexity: O(PAGE_SIZE). Errors: invalid_argument (unknown flags, order above
  /// vmalloc_max_order), out_of_memory.
  static result<vmalloc_writer> create(Source& source, unsigned unit_order,
                                       u16 flags = vmalloc_flag_alloc) {
    if ((flags & ~vmalloc_known_flags) != 0 || unit_order > vmalloc_max_order)
      return errc::invalid_argument;
    auto pa = alloc_zeroed(source, order{0}, geometry::size);
    if (!pa) return pa.err();
    return vmalloc_writer(source, *pa, unit_order, flags);
  }

  /// Appends the unit at `unit`; a chunk that becomes full links a new zeroed chunk
  /// at once. Complexity: O(1) (O(PAGE_SIZE) when a chunk is added).
  /// Errors: invalid_argument (0 or not aligned to the unit), out_of_range (the area
  /// would pass 2^32 - 1 pages), out_of_memory.
  status push(phys_addr unit) {
    if (!unit || !geometry::is_aligned(unit, order{order_})) return errc::invalid_argument;
    if (((units_ + 1) << order_) > u64{0xffffffff}) return errc::out_of_range;
    chunk* c = at(tail_);
    c->phys[fill_].set(unit.value);
    ++units_;
    if (++fill_ == chunk::entries) {
      auto pa = alloc_zeroed(*src_, order{0}, geometry::size);
      if (!pa) {
        c->phys[--fill_].set(0);
        --units_;
        return pa.err();
      }
      c->next.set(pa->value);
      tail_ = *pa;
      fill_ = 0;
      ++chunks_;
    }
    return {};
  }

  /// The descriptor to embed. Complexity: O(1).
  kho_vmalloc descriptor() const {
    kho_vmalloc d{};
    d.first.set(first_.value);
    d.total_pages.set(static_cast<u32>(units_ << order_));
    d.flags.set(flags_);
    d.order.set(static_cast<u16>(order_));
    return d;
  }

  /// Frees the chunks, and the units too if `free_units` (an error path that owns
  /// them). Complexity: O(chunks + units).
  void abandon(bool free_units = false) {
    for (phys_addr pa = first_; pa;) {
      const chunk* c = at(pa);
      for (u64 i = 0; free_units && i < chunk::entries && c->phys[i].get() != 0; ++i)
        src_->free(phys_addr{c->phys[i].get()}, order{order_});
      const phys_addr next{c->next.get()};
      src_->free(pa, order{0});
      pa = next;
    }
    first_ = tail_ = phys_addr{};
    units_ = fill_ = chunks_ = 0;
  }

  u64 units() const { return units_; }
  u64 chunks() const { return chunks_; }

 private:
  vmalloc_writer(Source& source, phys_addr first, unsigned unit_order, u16 flags)
      : src_(&source), first_(first), tail_(first), order_(unit_order), flags_(flags) {}

  chunk* at(phys_addr pa) const {
    return static_cast<chunk*>(src_->memory().to_virt(pa, geometry::size));
  }

  Source* src_;
  phys_addr first_, tail_;
  unsigned order_;
  u16 flags_;
  u64 units_ = 0, fill_ = 0, chunks_ = 1;
};

// ---- reader ------------------------------------------------------------------------

/// A validated area: its units, in order, with the page index each starts at.
template <Memory M, unsigned PageShift = 12>
class vmalloc_view {
 public:
  using geometry = page_geometry<PageShift>;
  using chunk = kho_vmalloc_chunk<PageShift>;
  static constexpr const char* structure = "kho_vmalloc";

  /// Validates the area `d` describes (see the header comment for the checks).
  /// Errors carry structure "kho_vmalloc", the chunk (or the chunk entry, for a unit)
  /// at fault and the chunk's position in the chain as depth: reserved_nonzero
  /// (unknown flags; a nonzero entry after the terminator), out_of_range (order;
  /// idx + 2^order > total_pages), misaligned, out_of_bounds, cycle, bad_count (a
  /// chunk not full that is not the last; fewer pages than total_pages).
  /// Complexity: O(chunks * PAGE_SIZE) time, no scratch.
  static result<vmalloc_view> attach(const M& mem, const kho_vmalloc& d) {
    vmalloc_view v(mem, d);
    if (status s = v.validate(); !s) return s.err();
    return v;
  }

  /// A view of an area an enclosing structure has already validated (or written).
  /// Nothing is checked: never use it on untrusted memory.
  static vmalloc_view unchecked(const M& mem, const kho_vmalloc& d) { return vmalloc_view(mem, d); }

  /// Calls f(unit address, index of its first page) for every unit in order.
  /// Complexity: O(units + chunks).
  template <class F>
  void for_each_unit(F&& f) const {
    u64 idx = 0;
    for (phys_addr pa = first(); pa;) {
      const chunk* c = at(pa);
      for (u64 i = 0; i < chunk::entries && c->phys[i].get() != 0; ++i, idx += unit_pages())
        f(phys_addr{c->phys[i].get()}, idx);
      pa = phys_addr{c->next.get()};
    }
  }

  /// Claims every chunk page and every unit's pages for `who` (by default this area,
  /// named by its first chunk). Complexity: O(chunks + total_pages).
  /// Errors: those of Owners::claim (aliased, ...).
  template <class Owners>
  status claim_pages(Owners& owners, page_owner who) const {
    for (phys_addr pa = first(); pa; pa = phys_addr{at(pa)->next.get()})
      KHO_TRY(owners.claim(pa, 1, who));
    status s;
    for_each_unit([&](phys_addr unit, u64) {
      if (s) s = owners.claim(unit, unit_pages(), who);
    });
    return s;
  }
  template <class Owners>
  status claim_pages(Owners& owners) const {
    return claim_pages(owners, page_owner{structure, first()});
  }

  phys_addr first() const { return phys_addr{d_.first.get()}; }
  u64 total_pages() const { return d_.total_pages.get(); }
  u16 flags() const { return d_.flags.get(); }
  unsigned unit_order() const { return d_.order.get(); }
  u64 unit_pages() const { return u64{1} << unit_order(); }
  u64 units() const { return total_pages() >> unit_order(); }
  u64 chunks() const { return chunks_; }
  const kho_vmalloc& descriptor() const { return d_; }
  const M& memory() const { return mem_; }

 private:
  vmalloc_view(const M& mem, const kho_vmalloc& d) : mem_(mem), d_(d) {}

  const chunk* at(phys_addr pa) const {
    return static_cast<const chunk*>(mem_.to_virt(pa, geometry::size));
  }

  status validate() {
    auto fail = [](errc c, phys_addr at, u64 depth) {
      return make_error(c, structure, at, static_cast<u32>(depth));
    };
    if ((flags() & ~vmalloc_known_flags) != 0) return fail(errc::reserved_nonzero, first(), 0);
    if (d_.order.get() > vmalloc_max_order) return fail(errc::out_of_range, first(), 0);
    const u64 total = total_pages(), step = unit_pages();
    const u64 unit_bytes = geometry::block_bytes(order{unit_order()});
    u64 idx = 0;
    phys_addr tortoise = first();
    u64 power = 1, lambda = 0;
    bool previous_full = true;
    for (phys_addr pa = first(); pa; ++chunks_) {
      if (!previous_full) return fail(errc::bad_count, pa, chunks_);
      if (!geometry::is_aligned(pa)) return fail(errc::misaligned, pa, chunks_);
      const chunk* c = at(pa);
      if (c == nullptr) return fail(errc::out_of_bounds, pa, chunks_);
      u64 i = 0;
      for (; i < chunk::entries && c->phys[i].get() != 0; ++i) {
        const phys_addr unit{c->phys[i].get()};
        const phys_addr slot = pa + 8 + 8 * i;
        if (idx + step > total) return fail(errc::out_of_range, slot, chunks_);
        if (!geometry::is_aligned(unit, order{unit_order()})) return fail(errc::misaligned, slot, chunks_);
        if (mem_.to_virt(unit, unit_bytes) == nullptr) return fail(errc::out_of_bounds, slot, chunks_);
        idx += step;
      }
      for (u64 j = i; j < chunk::entries; ++j)
        if (c->phys[j].get() != 0) return fail(errc::reserved_nonzero, pa + 8 + 8 * j, chunks_);
      previous_full = i == chunk::entries;
      const phys_addr next{c->next.get()};
      if (next && next == tortoise) return fail(errc::cycle, next, chunks_ + 1);
      if (++lambda == power) {
        tortoise = next;
        power <<= 1;
        lambda = 0;
      }
      pa = next;
    }
    if (idx != total) return fail(errc::bad_count, first(), 0);
    return {};
  }

  M mem_;
  kho_vmalloc d_;
  u64 chunks_ = 0;
};

/// Attaches with the Memory type deduced.
template <unsigned PageShift = 12, Memory M>
result<vmalloc_view<M, PageShift>> attach_vmalloc(const M& mem, const kho_vmalloc& d) {
  return vmalloc_view<M, PageShift>::attach(mem, d);
}

}  // namespace kho::upstream
