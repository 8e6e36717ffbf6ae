// kho/page_owners.hpp: one owner per page across a whole handover.
//
// A checksum proves that nothing changed after sealing, not that the old kernel wrote
// a sane graph. Two structures that share a page (a radix leaf that is also the LUO
// root, an xarray leaf reached from two slots, two root entries naming one block)
// validate one by one, and then a write through one corrupts the other after kexec.
// So the next kernel checks the whole handover at once: every page that any
// structure reaches -- roots, blobs, tables, leaves, blocks, nodes -- is claimed here
// by exactly one owner, exactly once, and (with check_preserved) lies in memory the
// preserved-memory map keeps, or the next kernel's page allocator would hand it out
// while a reader still points into it.
//
//   claim(first, n, who)     pages [first, first + n pages) belong to `who`
//                            -> errc::aliased if any of them already has an owner
//                               (error.loc: the new claim; error.other: the owner)
//   check_preserved(map)     every claimed page that must be preserved is
//                            -> errc::not_preserved, naming the owner
//
// An owner is a structure kind (a string literal, as in kho::where) and the physical
// address of that structure's root, so a conflict names both structures precisely.
// Claims that are exempt from the preserved check (the radix tree's own pages, which
// the upstream format never records in itself; the restore reserves them instead)
// say so when they are made.
//
// The table is an open-addressing hash of page frame numbers in scratch pages the
// caller lends (detail::probe_table); nothing is written to preserved memory. It grows
// with what is claimed, so its size is O(pages actually reached), never O(RAM) or a
// count the input claims; the probe budget keeps adversarial collisions linear.
//
// Complexity: claim O(n) expected; check_preserved O(claimed pages * orders * depth).
#pragma once

#include <kho/detail/probe_table.hpp>
#include <kho/memory.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

namespace kho {

/// Who reached a page: the kind of structure and the physical address of its root.
struct page_owner {
  const char* structure = "";
  phys_addr root{};
};

namespace detail {

// 32 bytes: four slots per cache line pair, a power of two so slots tile a page.
struct page_owner_slot {
  u64 tag;
  u64 pfn_and_flags;  // pfn << 1 | exempt from the preserved check
  u64 root;
  const char* structure;
};
static_assert(sizeof(page_owner_slot) == 32, "a 64-bit target: slots tile a page");

}  // namespace detail

/// Claims of pages by structures, in scratch from `Scratch`.
template <PageSource Scratch, unsigned PageShift = 12>
class page_owners {
 public:
  using geometry = page_geometry<PageShift>;

  explicit page_owners(Scratch& scratch) : scratch_(&scratch) {}
  page_owners(const page_owners&) = delete;
  page_owners& operator=(const page_owners&) = delete;
  ~page_owners() { table_.release(*scratch_); }

  /// The scratch pages the claims live in, lent to checks that need a table of their
  /// own (the PCI FLB's duplicate keys, the IOMMU FLB's array pages).
  Scratch& scratch() const { return *scratch_; }

  /// Whether a claimed page must also be preserved (see check_preserved).
  enum class preserve : u8 { required, exempt };

  /// Claims the `pages` pages from `first` for `who`.
  /// Complexity: O(pages) expected.
  /// Errors: misaligned (first not page-aligned), out_of_range (wraps), aliased (a page
  /// already has an owner: loc names `who` and the page, other the first owner),
  /// budget_exceeded (collisions beyond the probe budget), out_of_memory (scratch).
  status claim(phys_addr first, u64 pages, page_owner who, preserve p = preserve::required) {
    if (!geometry::is_aligned(first)) return make_error(errc::misaligned, who.structure, first);
    const u64 pfn0 = first.value >> PageShift;
    if (pages > (~u64{0} >> PageShift) - pfn0 + 1) return make_error(errc::out_of_range, who.structure, first);
    KHO_TRY(table_.reserve(*scratch_, table_.size() + pages));
    table_.raise_probe_budget(probe_allowance(table_.size() + pages));
    for (u64 i = 0; i < pages; ++i) {
      const u64 pfn = pfn0 + i;
      const detail::page_owner_slot slot{detail::tag_of(pfn), pfn << 1 | (p == preserve::exempt),
                                         who.root.value, who.structure};
      bool inserted = false;
      auto s = table_.insert_unique(*scratch_, slot, same_page(pfn), inserted);
      if (!s) return make_error(s.code(), who.structure, phys_addr{pfn << PageShift});
      if (!inserted) return conflict(pfn, who, **s);
    }
    return {};
  }

  /// The owner of the page holding `pa`, if it is claimed.
  const detail::page_owner_slot* find(phys_addr pa) const {
    const u64 pfn = pa.value >> PageShift;
    return table_.find(*scratch_, detail::tag_of(pfn), same_page(pfn));
  }

  /// Checks that every claimed page not exempted is covered by a preserved block of
  /// `map` (anything with is_preserved(phys_addr)).
  /// Complexity: O(claimed pages) calls of is_preserved.
  /// Errors: not_preserved (loc: the owner and the page).
  template <class PreservedMap>
  status check_preserved(const PreservedMap& map) const {
    status result;
    table_.for_each(*scratch_, [&](const detail::page_owner_slot& s) {
      if ((s.pfn_and_flags & 1) != 0) return true;
      const phys_addr page{(s.pfn_and_flags >> 1) << PageShift};
      if (map.is_preserved(page)) return true;
      result = make_error(errc::not_preserved, s.structure, page);
      return false;
    });
    return result;
  }

  /// Pages claimed so far.
  u64 size() const { return table_.size(); }
  /// Scratch bytes in use.
  u64 scratch_bytes() const { return table_.bytes(); }

 private:
  static auto same_page(u64 pfn) {
    return [pfn](const detail::page_owner_slot& s) { return (s.pfn_and_flags >> 1) == pfn; };
  }

  // Linear probing averages about 1.5 probes at load 1/2; 16 per entry (plus slack
  // for tiny tables) turns only an adversarial pile-up into budget_exceeded.
  static constexpr u64 probe_allowance(u64 entries) { return 16 * entries + 1024; }

  status conflict(u64 pfn, page_owner who, const detail::page_owner_slot& first) const {
    error e = make_error(errc::aliased, who.structure, phys_addr{pfn << PageShift});
    e.other = where{first.structure, phys_addr{first.root}, 0};
    return e;
  }

  Scratch* scratch_;
  detail::probe_table<detail::page_owner_slot, Scratch, PageShift> table_;
};

}  // namespace kho
