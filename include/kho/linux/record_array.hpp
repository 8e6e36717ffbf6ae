// kho/linux/record_array.hpp: an array of 16-byte records (two little-endian u64
// words) kept in a kho_vmalloc area, as huge-memfd-v1, guest_memfd_luo_v1,
// kvm_vm_luo_v1 (layout A) and tmpfs-file-v1 store their folios or attributes.
//
// Every one of those formats writes the array the way memfd does (LF section 7): the
// records packed from the start of order-0 pages, the pages preserved as a vmalloc
// area (flags VM_ALLOC, order 0), no area at all (a zero descriptor) when there are no
// records. The reader here holds each format to that: with 0 records the descriptor is
// all zero; otherwise the area is exactly ceil(n * 16 / PAGE_SIZE) pages, so the count
// equals what the area holds and no record is read from outside it. What a record
// means is the format's: it walks them with for_each, which stops at the first error.
//
// Complexity: attach O(array pages + chunks); for_each O(records); no scratch.
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/linux/kho_vmalloc.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstring>
#include <utility>

namespace kho::upstream {

/// One record: two u64 words (word 0 usually pfn | flags << 52, word 1 an index).
struct record16 {
  detail::le64 word0;
  detail::le64 word1;
};
static_assert(sizeof(record16) == 16);

/// Pages of an array of `n` records, or 0 if that many cannot exist (or n is 0).
template <unsigned PageShift>
constexpr u64 record_array_pages(u64 n) {
  if (n > (~u64{0} >> 5)) return 0;
  return (n * sizeof(record16) + page_geometry<PageShift>::size - 1) >> PageShift;
}

/// A validated record array (or none, for 0 records).
template <Memory M, unsigned PageShift = 12>
class record_array_view {
 public:
  using geometry = page_geometry<PageShift>;
  using area_view = vmalloc_view<M, PageShift>;

  /// Validates `d` as the array of `n` records of the structure `structure` at `ser`.
  /// Errors: at `ser` (depth 0): reserved_nonzero (n 0 with a nonzero descriptor),
  /// bad_count (the area's size is not the records'); the area's (vmalloc_view::attach).
  static result<record_array_view> attach(const M& mem, const kho_vmalloc& d, u64 n, const char* structure,
                                          phys_addr ser) {
    record_array_view v(mem, n);
    if (n == 0) {
      const kho_vmalloc zero{};
      if (std::memcmp(&d, &zero, sizeof zero) != 0) return make_error(errc::reserved_nonzero, structure, ser, 0);
      return v;
    }
    const u64 pages = record_array_pages<PageShift>(n);
    if (pages == 0 || pages != d.total_pages.get()) return make_error(errc::bad_count, structure, ser, 0);
    auto area = area_view::attach(mem, d);
    if (!area) return area.err();
    v.area_ = *area;
    v.has_area_ = true;
    return v;
  }

  /// An empty array (0 records).
  static record_array_view none(const M& mem) { return record_array_view(mem, 0); }

  /// Calls g(word0, word1, the record's address) -> errc for every record in order;
  /// returns the first error g gives (errc::ok when none).
  template <class G>
  errc for_each(G&& g) const {
    if (!has_area_) return errc::ok;
    u64 left = n_;
    errc result = errc::ok;
    area_.for_each_unit([&](phys_addr unit, u64) {
      if (result != errc::ok) return;
      const u64 bytes = geometry::size << area_.unit_order();
      const auto* rec = static_cast<const record16*>(mem_.to_virt(unit, bytes));
      for (u64 i = 0; i < bytes / sizeof(record16) && left > 0; ++i, --left) {
        result = g(rec[i].word0.get(), rec[i].word1.get(), unit + i * sizeof(record16));
        if (result != errc::ok) return;
      }
    });
    return result;
  }

  /// Claims the area's chunk and record pages for `who`.
  template <class Owners>
  status claim_pages(Owners& owners, page_owner who) const {
    return has_area_ ? area_.claim_pages(owners, who) : status{};
  }

  u64 size() const { return n_; }

 private:
  record_array_view(const M& mem, u64 n) : mem_(mem), n_(n), area_(area_view::unchecked(mem, kho_vmalloc{})) {}

  M mem_;
  u64 n_;
  area_view area_;
  bool has_area_ = false;
};

/// Writes `n` records, record i being get(i) -> {word0, word1}, into order-0 pages
/// preserved as a vmalloc area (VM_ALLOC, order 0); a zero descriptor when n is 0.
/// Errors: out_of_range (more than 2^32 - 1 pages), out_of_memory. Nothing is left
/// allocated on error.
template <unsigned PageShift, PageSource Source, class Get>
result<kho_vmalloc> write_record_array(Source& source, u64 n, Get&& get) {
  using geometry = page_geometry<PageShift>;
  if (n == 0) return kho_vmalloc{};
  const u64 pages = record_array_pages<PageShift>(n);
  if (pages == 0 || pages > 0xffffffffu) return errc::out_of_range;
  auto area = vmalloc_writer<Source, PageShift>::create(source, 0, vmalloc_flag_alloc);
  if (!area) return area.err();
  constexpr u64 per_page = geometry::size / sizeof(record16);
  for (u64 i = 0; i < n; i += per_page) {
    auto page = alloc_zeroed(source, order{0}, geometry::size);
    status pushed = page ? area->push(*page) : status(page.err());
    if (!pushed) {
      if (page) source.free(*page, order{0});
      area->abandon(true);
      return pushed.err();
    }
    auto* rec = static_cast<record16*>(source.memory().to_virt(*page, geometry::size));
    for (u64 j = 0; j < per_page && i + j < n; ++j) {
      const auto [w0, w1] = get(i + j);
      rec[j].word0.set(w0);
      rec[j].word1.set(w1);
    }
  }
  return area->descriptor();
}

/// Copies `bytes` bytes at `pa` into `out` (a structure whose wire size is not a
/// multiple of its alignment is read this way, never through a cast pointer).
/// Errors: misaligned (not page-aligned: every such structure is a preserved
/// allocation of its own), out_of_bounds.
template <unsigned PageShift, Memory M>
status read_ser(const M& mem, phys_addr pa, void* out, u64 bytes, const char* structure) {
  if (!page_geometry<PageShift>::is_aligned(pa)) return make_error(errc::misaligned, structure, pa, 0);
  const void* p = mem.to_virt(pa, bytes);
  if (p == nullptr) return make_error(errc::out_of_bounds, structure, pa, 0);
  std::memcpy(out, p, bytes);
  return {};
}

/// Allocates a zeroed page for a structure of `bytes` and copies `in` there.
template <unsigned PageShift, PageSource Source>
result<phys_addr> write_ser(Source& source, const void* in, u64 bytes) {
  auto pa = alloc_zeroed(source, order{0}, page_geometry<PageShift>::size);
  if (!pa) return pa.err();
  std::memcpy(source.memory().to_virt(*pa, bytes), in, bytes);
  return *pa;
}

}  // namespace kho::upstream
