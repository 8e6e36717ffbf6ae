// kho/xarray/view.hpp: the reader, xarray_view: attach validates every node reached from the root
// block (bounds, cycles, levels, counts, summaries, checksums), then answers the same
// queries as the writer in place; claim_pages names every page it reached.
#pragma once

#include <kho/checksum.hpp>
#include <kho/detail/fixed_string.hpp>
#include <kho/detail/probe_table.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/result.hpp>
#include <kho/xarray/queries.hpp>

#include <cstddef>
#include <cstring>

namespace kho {

// ---- reader

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

}  // namespace kho
