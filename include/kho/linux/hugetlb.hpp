// kho/linux/hugetlb.hpp: HugeTLB's live-update state: the FLB "hugetlb-v1" (how many
// huge pages of each hstate arrive preserved) and the file "huge-memfd-v1" (a
// hugetlb-backed memfd and its huge folios). shared/LINUX-FORMATS-NEXT.md section 2.
//
//   hugetlb_ser (37 B, FLB data; an order-0 preserved allocation of its own)
//   +---------------------+---------------------+-----+-----+------------+
//   | hstate 0 (9 B)      | hstate 1            | ... | 3   | nr_hstates |
//   | nr_pages u64, order u8                     |     |     | u8 @36     |
//   +---------------------+---------------------+-----+-----+------------+
//     0                     9                     18    27
//   The 9-byte entries put nr_pages at unaligned offsets: they are read and written
//   through byte copies. Checks (kho's; the kernel has none): nr_hstates <= 4 (the
//   kernel's lookup scans nr_hstates entries and reads past the array otherwise);
//   every valid entry's order plausible (1..hugetlb_max_order, the order plus the page
//   shift under 64) and distinct (the kernel's scan takes the first match, so a
//   second entry of an order is dead); the unused entries all zero (the writer's
//   allocation is zeroed).
//
//   hugemfd_ser (41 B, file data; an order-0 preserved allocation of its own)
//   | size u64 @0 | pos u64 @8 | nr_folios u64 @16 | folios kho_vmalloc @24 | order u8 @40 |
//   (size comes before pos, unlike memfd)
//   hugemfd_folio_ser (16 B): word 0 = pfn (bits 0..51) | reserved (bits 52..63, 0),
//   word 1 = index of the folio in base pages (page-cache index = index >> order).
//
// Checks on a huge-memfd-v1 file (the kernel makes only the first two; the rest are
// kho's, each what the kernel's writer guarantees): order plausible as above (the
// kernel's retrieve fails without such an hstate); the array as record_array.hpp says;
// per folio: reserved bits zero, pfn nonzero, aligned to 2^order pages and small
// enough that its address fits 64 bits; index aligned to 2^order, strictly
// increasing with no overlap (each starts at or after the previous one's end), and
// inside the file (index + 2^order <= size in pages); size a multiple of the huge
// page size (hugetlbfs truncates only to whole huge pages). That each folio is a
// preserved block of exactly the file's order, and that the FLB lists the order, is
// checked by the whole-handover check (luo_handlers.hpp), which sees the memory map
// and the FLBs.
//
// Complexity: write O(nr_folios); attach O(nr_folios + array pages), no scratch.
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/linux/kho_vmalloc.hpp>
#include <kho/linux/record_array.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>

namespace kho::upstream {

// ---- wire layout -------------------------------------------------------------------

inline constexpr const char* hugetlb_flb_name = "hugetlb-v1";
inline constexpr const char* huge_memfd_compatible = "huge-memfd-v1";
inline constexpr u8 hugetlb_max_hstates = 4;  // HUGETLB_SER_MAX_HSTATES, fixed by the ABI
// The largest order kho believes: 16 GiB pages at 4 KiB base pages (arm64 with 64 KiB
// base pages has 16 GiB at order 18). A larger value is not a page size any
// architecture has.
inline constexpr u8 hugetlb_max_order = 30;
inline constexpr unsigned hugetlb_pfn_bits = 52;
inline constexpr u64 hugetlb_pfn_mask = (u64{1} << hugetlb_pfn_bits) - 1;

// Byte arrays: a 9-byte entry makes nr_pages land on unaligned offsets.
struct hugetlb_hstate_ser {
  unsigned char nr_pages[8];  // u64 little-endian
  u8 order;
};
struct hugetlb_ser {
  hugetlb_hstate_ser hstates[hugetlb_max_hstates];
  u8 nr_hstates;
};
static_assert(sizeof(hugetlb_hstate_ser) == 9 && alignof(hugetlb_hstate_ser) == 1);
static_assert(offsetof(hugetlb_hstate_ser, order) == 8);
static_assert(sizeof(hugetlb_ser) == 37);
static_assert(offsetof(hugetlb_ser, nr_hstates) == 36);

// The 41-byte wire structure with its natural alignment: 7 bytes of padding follow
// `order` in memory here, never on the wire (hugemfd_ser_size bytes are copied).
struct hugemfd_ser {
  detail::le64 size;
  detail::le64 pos;
  detail::le64 nr_folios;
  kho_vmalloc folios;
  u8 order;
};
inline constexpr u64 hugemfd_ser_size = 41;
static_assert(offsetof(hugemfd_ser, size) == 0);
static_assert(offsetof(hugemfd_ser, pos) == 8);
static_assert(offsetof(hugemfd_ser, nr_folios) == 16);
static_assert(offsetof(hugemfd_ser, folios) == 24);
static_assert(offsetof(hugemfd_ser, order) == 40);
static_assert(offsetof(hugemfd_ser, order) + 1 == hugemfd_ser_size);

/// One hstate: its order and the huge pages of it that arrive preserved.
struct hugetlb_hstate {
  u8 order = 0;
  u64 nr_pages = 0;
};

/// Whether `o` can be a huge page order with 2^PageShift-byte base pages.
template <unsigned PageShift>
constexpr bool hugetlb_order_plausible(u64 o) {
  return o >= 1 && o <= hugetlb_max_order && o + PageShift < 64;
}

// ---- hugetlb-v1 (FLB) ----------------------------------------------------------------

/// Writes the FLB state: one entry per hstate, in the order given. Returns the
/// structure's address (luo_flb_ser.data). Errors: invalid_argument (more than 4
/// hstates, an implausible or repeated order), out_of_memory.
template <unsigned PageShift = 12, PageSource Source>
result<phys_addr> write_hugetlb_flb(Source& source, const hugetlb_hstate* hstates, u64 count) {
  if (count > hugetlb_max_hstates) return errc::invalid_argument;
  hugetlb_ser s{};
  for (u64 i = 0; i < count; ++i) {
    if (!hugetlb_order_plausible<PageShift>(hstates[i].order)) return errc::invalid_argument;
    for (u64 j = 0; j < i; ++j)
      if (hstates[j].order == hstates[i].order) return errc::invalid_argument;
    const u64 le = detail::to_little(hstates[i].nr_pages);
    std::memcpy(s.hstates[i].nr_pages, &le, 8);
    s.hstates[i].order = hstates[i].order;
  }
  s.nr_hstates = static_cast<u8>(count);
  return write_ser<PageShift>(source, &s, sizeof s);
}

/// A validated hugetlb-v1 FLB state.
template <Memory M, unsigned PageShift = 12>
class hugetlb_flb_view {
 public:
  static constexpr const char* structure = "hugetlb-v1";

  /// Errors (structure "hugetlb-v1", at the structure, depth 0; an entry's check at the
  /// entry's address, depth 1): misaligned, out_of_bounds, out_of_range (nr_hstates
  /// above 4; an implausible order), duplicate (an order twice), reserved_nonzero (an
  /// unused entry not zero). Complexity: O(1).
  static result<hugetlb_flb_view> attach(const M& mem, phys_addr ser) {
    hugetlb_flb_view v(ser);
    KHO_TRY(read_ser<PageShift>(mem, ser, &v.s_, sizeof v.s_, structure));
    auto fail = [&](errc c, u64 i) { return make_error(c, structure, ser + i * sizeof(hugetlb_hstate_ser), 1); };
    if (v.s_.nr_hstates > hugetlb_max_hstates)
      return make_error(errc::out_of_range, structure, ser + offsetof(hugetlb_ser, nr_hstates), 0);
    for (u64 i = 0; i < hugetlb_max_hstates; ++i) {
      const hugetlb_hstate_ser& e = v.s_.hstates[i];
      if (i >= v.s_.nr_hstates) {
        const hugetlb_hstate_ser zero{};
        if (std::memcmp(&e, &zero, sizeof zero) != 0) return fail(errc::reserved_nonzero, i);
        continue;
      }
      if (!hugetlb_order_plausible<PageShift>(e.order)) return fail(errc::out_of_range, i);
      for (u64 j = 0; j < i; ++j)
        if (v.s_.hstates[j].order == e.order) return fail(errc::duplicate, i);
    }
    return v;
  }

  u64 nr_hstates() const { return s_.nr_hstates; }
  /// Entry i < nr_hstates().
  hugetlb_hstate hstate(u64 i) const {
    u64 le = 0;
    std::memcpy(&le, s_.hstates[i].nr_pages, 8);
    return {s_.hstates[i].order, detail::to_little(le)};
  }
  /// The preserved pages of order `o`, or nullopt-like {false} when no entry has it.
  bool find(u8 o, u64& nr_pages) const {
    for (u64 i = 0; i < s_.nr_hstates; ++i)
      if (s_.hstates[i].order == o) return nr_pages = hstate(i).nr_pages, true;
    return false;
  }

  template <class Owners>
  status claim_pages(Owners& owners) const {
    return owners.claim(ser_, 1, page_owner{structure, ser_});
  }
  phys_addr address() const { return ser_; }

 private:
  explicit hugetlb_flb_view(phys_addr ser) : ser_(ser) {}
  phys_addr ser_;
  hugetlb_ser s_{};
};

template <unsigned PageShift = 12, Memory M>
result<hugetlb_flb_view<M, PageShift>> attach_hugetlb_flb(const M& mem, phys_addr ser) {
  return hugetlb_flb_view<M, PageShift>::attach(mem, ser);
}

// ---- huge-memfd-v1 (file) -----------------------------------------------------------

/// One huge folio: its head frame and its index in base pages.
struct huge_folio {
  pfn frame{};
  u64 index = 0;
};

/// The file to write.
struct huge_memfd_file {
  u64 size = 0;  // bytes, a multiple of the huge page size
  u64 pos = 0;
  u8 order = 9;  // the hstate's
  const huge_folio* folios = nullptr;
  u64 nr_folios = 0;  // in index order
};

namespace impl {

// The first problem of folio `f` following one that ended at base page `clear_from`
// (0 for the first) in a file of `file_pages` base pages and huge order `o`, or ok.
template <unsigned PageShift>
errc huge_folio_problem(u64 frame, u64 index, unsigned o, u64 clear_from, u64 file_pages) {
  const u64 mask = (u64{1} << o) - 1;
  if (frame == 0 || frame > hugetlb_pfn_mask || (frame >> (64 - PageShift)) != 0) return errc::out_of_range;
  if ((frame & mask) != 0 || (index & mask) != 0) return errc::misaligned;
  if (index < clear_from) return errc::already_exists;
  if (index > file_pages || file_pages - index < (u64{1} << o)) return errc::out_of_range;
  return errc::ok;
}

}  // namespace impl

/// Writes `file`: the structure in a page of its own, the folio records as a vmalloc
/// area (none when there are no folios). Returns the structure's address
/// (luo_file_ser.data). Errors: invalid_argument (implausible order, size not whole
/// huge pages, a folio the reader would refuse), out_of_range, out_of_memory.
template <unsigned PageShift = 12, PageSource Source>
result<phys_addr> write_huge_memfd(Source& source, const huge_memfd_file& file) {
  if (!hugetlb_order_plausible<PageShift>(file.order)) return errc::invalid_argument;
  const u64 huge_bytes = u64{1} << (file.order + PageShift);
  if ((file.size & (huge_bytes - 1)) != 0) return errc::invalid_argument;
  u64 clear_from = 0;
  for (u64 i = 0; i < file.nr_folios; ++i) {
    const huge_folio& f = file.folios[i];
    if (impl::huge_folio_problem<PageShift>(f.frame.value, f.index, file.order, clear_from, file.size >> PageShift) !=
        errc::ok)
      return errc::invalid_argument;
    clear_from = f.index + (u64{1} << file.order);
  }
  auto array = write_record_array<PageShift>(source, file.nr_folios, [&](u64 i) {
    return std::pair<u64, u64>{file.folios[i].frame.value, file.folios[i].index};
  });
  if (!array) return array.err();
  hugemfd_ser s{};
  s.size.set(file.size);
  s.pos.set(file.pos);
  s.nr_folios.set(file.nr_folios);
  s.folios = *array;
  s.order = file.order;
  return write_ser<PageShift>(source, &s, hugemfd_ser_size);
}

/// A validated huge-memfd-v1 state.
template <Memory M, unsigned PageShift = 12>
class huge_memfd_view {
 public:
  using array_view = record_array_view<M, PageShift>;
  static constexpr const char* structure = "huge-memfd-v1";

  /// Errors: at the structure (depth 0): misaligned, out_of_bounds, out_of_range (order),
  /// misaligned (size not whole huge pages; at size's address); the array's
  /// (record_array_view); at a record (depth 1): reserved_nonzero, out_of_range (pfn 0
  /// or too wide; past the file's end), misaligned (pfn or index not aligned to the
  /// order), already_exists (overlaps the previous folio or comes before it).
  /// Complexity: O(nr_folios + array pages).
  static result<huge_memfd_view> attach(const M& mem, phys_addr ser) {
    hugemfd_ser s{};
    KHO_TRY(read_ser<PageShift>(mem, ser, &s, hugemfd_ser_size, structure));
    if (!hugetlb_order_plausible<PageShift>(s.order))
      return make_error(errc::out_of_range, structure, ser + offsetof(hugemfd_ser, order), 0);
    if ((s.size.get() & ((u64{1} << (s.order + PageShift)) - 1)) != 0)
      return make_error(errc::misaligned, structure, ser, 0);
    auto array = array_view::attach(mem, s.folios, s.nr_folios.get(), structure, ser);
    if (!array) return array.err();
    huge_memfd_view v(ser, s, *array);
    u64 clear_from = 0;
    error bad{};
    v.array_.for_each([&](u64 w0, u64 w1, phys_addr at) {
      errc c = (w0 >> hugetlb_pfn_bits) != 0 ? errc::reserved_nonzero
                                              : impl::huge_folio_problem<PageShift>(w0, w1, s.order, clear_from,
                                                                                     s.size.get() >> PageShift);
      if (c != errc::ok) bad = make_error(c, structure, at, 1);
      clear_from = w1 + (u64{1} << s.order);
      return c;
    });
    if (bad.code != errc::ok) return bad;
    return v;
  }

  /// Calls f(huge_folio) for every folio in index order.
  template <class F>
  void for_each_folio(F&& f) const {
    array_.for_each([&](u64 w0, u64 w1, phys_addr) {
      f(huge_folio{pfn{w0 & hugetlb_pfn_mask}, w1});
      return errc::ok;
    });
  }

  /// Claims the structure's page and the folio array for {"huge-memfd-v1", ser}; not
  /// the folios (the whole-handover check claims each folio's head).
  template <class Owners>
  status claim_pages(Owners& owners) const {
    const page_owner who{structure, ser_};
    KHO_TRY(owners.claim(ser_, 1, who));
    return array_.claim_pages(owners, who);
  }

  u64 size() const { return s_.size.get(); }
  u64 pos() const { return s_.pos.get(); }
  u64 nr_folios() const { return s_.nr_folios.get(); }
  unsigned folio_order() const { return s_.order; }
  phys_addr address() const { return ser_; }

 private:
  huge_memfd_view(phys_addr ser, const hugemfd_ser& s, const array_view& a) : ser_(ser), s_(s), array_(a) {}
  phys_addr ser_;
  hugemfd_ser s_;
  array_view array_;
};

template <unsigned PageShift = 12, Memory M>
result<huge_memfd_view<M, PageShift>> attach_huge_memfd(const M& mem, phys_addr ser) {
  return huge_memfd_view<M, PageShift>::attach(mem, ser);
}

}  // namespace kho::upstream
