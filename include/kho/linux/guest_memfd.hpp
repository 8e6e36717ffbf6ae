// kho/linux/guest_memfd.hpp: a guest_memfd's live-update state, file
// "guest_memfd_luo_v1" (shared/LINUX-FORMATS-NEXT.md section 4.1).
//
//   guest_memfd_luo_ser (48 B, an order-0 preserved allocation of its own)
//   | size u64 @0 | flags u64 @8 | nr_folios u64 @16 | vm_token u64 @24 | folios kho_vmalloc @32 |
//   guest_memfd_luo_folio_ser (16 B): word 0 = pfn (bits 0..51) | flags << 52, where
//   flag 0x1 is UPTODATE (word bit 52: NOT memfd's 0x2); word 1 = page index.
//
// Checks: flags within 0x3 (MMAP, INIT_SHARED; the kernel's -EOPNOTSUPP); size
// nonzero and page-aligned; the array as record_array.hpp says; per record: flag bits
// other than UPTODATE zero; a pfn of 0 is skipped as the kernel skips it (its index is
// then not checked); otherwise pfn small enough that its address fits 64 bits, index
// below size / PAGE_SIZE (kho's: the kernel does not check, and would add the folio
// past i_size), indices strictly increasing (the writer records in index order; a
// repeat would fail the kernel's page-cache insert). vm_token naming a kvm_vm_luo_v1
// file of the same session, and each folio being a preserved order-0 block, are
// checked by the whole-handover check (luo_handlers.hpp).
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
#include <type_traits>
#include <utility>

namespace kho::upstream {

inline constexpr const char* guest_memfd_compatible = "guest_memfd_luo_v1";
inline constexpr u64 guest_memfd_flag_mmap = 0x1;
inline constexpr u64 guest_memfd_flag_init_shared = 0x2;
inline constexpr u64 guest_memfd_known_flags = 0x3;
inline constexpr u16 guest_memfd_folio_uptodate = 0x1;  // word bit 52
inline constexpr unsigned guest_memfd_pfn_bits = 52;
inline constexpr u64 guest_memfd_pfn_mask = (u64{1} << guest_memfd_pfn_bits) - 1;

struct guest_memfd_luo_ser {
  detail::le64 size;
  detail::le64 flags;
  detail::le64 nr_folios;
  detail::le64 vm_token;
  kho_vmalloc folios;
};
static_assert(sizeof(guest_memfd_luo_ser) == 48);
static_assert(offsetof(guest_memfd_luo_ser, flags) == 8);
static_assert(offsetof(guest_memfd_luo_ser, nr_folios) == 16);
static_assert(offsetof(guest_memfd_luo_ser, vm_token) == 24);
static_assert(offsetof(guest_memfd_luo_ser, folios) == 32);
static_assert(std::has_unique_object_representations_v<guest_memfd_luo_ser>);

/// One folio (always order 0).
struct guest_memfd_folio {
  pfn frame{};
  u64 index = 0;
  u16 flags = guest_memfd_folio_uptodate;
};

/// The file to write.
struct guest_memfd_file {
  u64 size = 0;  // bytes, nonzero, page-aligned
  u64 flags = 0;
  u64 vm_token = 0;  // the LUO token of the VM's kvm_vm_luo_v1 file
  const guest_memfd_folio* folios = nullptr;
  u64 nr_folios = 0;  // in index order
};

/// Writes `file` (structure in its own page, folio array as a vmalloc area when there
/// are folios). Returns the structure's address (luo_file_ser.data).
/// Errors: invalid_argument (flags, size, a pfn 0 or too wide, unknown folio flags,
/// an index past the end or not increasing), out_of_range, out_of_memory.
template <unsigned PageShift = 12, PageSource Source>
result<phys_addr> write_guest_memfd(Source& source, const guest_memfd_file& file) {
  using geometry = page_geometry<PageShift>;
  if ((file.flags & ~guest_memfd_known_flags) != 0 || file.size == 0 || !geometry::is_aligned(phys_addr{file.size}))
    return errc::invalid_argument;
  for (u64 i = 0; i < file.nr_folios; ++i) {
    const guest_memfd_folio& f = file.folios[i];
    if (f.frame.value == 0 || f.frame.value > guest_memfd_pfn_mask || (f.frame.value >> (64 - PageShift)) != 0 ||
        (f.flags & ~guest_memfd_folio_uptodate) != 0 || f.index >= (file.size >> PageShift) ||
        (i > 0 && f.index <= file.folios[i - 1].index))
      return errc::invalid_argument;
  }
  auto array = write_record_array<PageShift>(source, file.nr_folios, [&](u64 i) {
    const guest_memfd_folio& f = file.folios[i];
    return std::pair<u64, u64>{f.frame.value | u64{f.flags} << guest_memfd_pfn_bits, f.index};
  });
  if (!array) return array.err();
  guest_memfd_luo_ser s{};
  s.size.set(file.size);
  s.flags.set(file.flags);
  s.nr_folios.set(file.nr_folios);
  s.vm_token.set(file.vm_token);
  s.folios = *array;
  return write_ser<PageShift>(source, &s, sizeof s);
}

/// A validated guest_memfd_luo_v1 state.
template <Memory M, unsigned PageShift = 12>
class guest_memfd_view {
 public:
  using array_view = record_array_view<M, PageShift>;
  static constexpr const char* structure = "guest_memfd_luo_v1";

  /// Errors: at the structure (depth 0): misaligned, out_of_bounds, reserved_nonzero
  /// (flags), out_of_range (size 0), misaligned (size not page-aligned; at size's
  /// address, depth 0); the array's; at a record (depth 1): reserved_nonzero (flag
  /// bits), out_of_range (pfn too wide; index past size), duplicate (index equal to the
  /// previous), out_of_range (index below the previous).
  /// Complexity: O(nr_folios + array pages).
  static result<guest_memfd_view> attach(const M& mem, phys_addr ser) {
    guest_memfd_luo_ser s{};
    KHO_TRY(read_ser<PageShift>(mem, ser, &s, sizeof s, structure));
    if ((s.flags.get() & ~guest_memfd_known_flags) != 0)
      return make_error(errc::reserved_nonzero, structure, ser + offsetof(guest_memfd_luo_ser, flags), 0);
    if (s.size.get() == 0) return make_error(errc::out_of_range, structure, ser, 0);
    if (!page_geometry<PageShift>::is_aligned(phys_addr{s.size.get()}))
      return make_error(errc::misaligned, structure, ser, 0);
    auto array = array_view::attach(mem, s.folios, s.nr_folios.get(), structure, ser);
    if (!array) return array.err();
    guest_memfd_view v(ser, s, *array);
    const u64 pages = s.size.get() >> PageShift;
    u64 previous = 0;
    bool first = true;
    error bad{};
    v.array_.for_each([&](u64 w0, u64 index, phys_addr at) {
      const u64 frame = w0 & guest_memfd_pfn_mask;
      errc c = errc::ok;
      if (((w0 >> guest_memfd_pfn_bits) & ~u64{guest_memfd_folio_uptodate}) != 0) c = errc::reserved_nonzero;
      else if (frame == 0) return errc::ok;  // skipped, as the kernel skips it
      else if ((frame >> (64 - PageShift)) != 0 || index >= pages) c = errc::out_of_range;
      else if (!first && index == previous) c = errc::duplicate;
      else if (!first && index < previous) c = errc::out_of_range;
      if (c != errc::ok) {
        bad = make_error(c, structure, at, 1);
        return c;
      }
      first = false;
      previous = index;
      return errc::ok;
    });
    if (bad.code != errc::ok) return bad;
    return v;
  }

  /// Calls f(guest_memfd_folio) for every record with a nonzero pfn, in index order.
  template <class F>
  void for_each_folio(F&& f) const {
    array_.for_each([&](u64 w0, u64 w1, phys_addr) {
      if ((w0 & guest_memfd_pfn_mask) != 0)
        f(guest_memfd_folio{pfn{w0 & guest_memfd_pfn_mask}, w1, static_cast<u16>(w0 >> guest_memfd_pfn_bits)});
      return errc::ok;
    });
  }

  /// Claims the structure's page and the folio array; not the folios.
  template <class Owners>
  status claim_pages(Owners& owners) const {
    const page_owner who{structure, ser_};
    KHO_TRY(owners.claim(ser_, 1, who));
    return array_.claim_pages(owners, who);
  }

  u64 size() const { return s_.size.get(); }
  u64 flags() const { return s_.flags.get(); }
  u64 nr_folios() const { return s_.nr_folios.get(); }
  u64 vm_token() const { return s_.vm_token.get(); }
  phys_addr address() const { return ser_; }
  static constexpr unsigned folio_order() { return 0; }

 private:
  guest_memfd_view(phys_addr ser, const guest_memfd_luo_ser& s, const array_view& a) : ser_(ser), s_(s), array_(a) {}
  phys_addr ser_;
  guest_memfd_luo_ser s_;
  array_view array_;
};

template <unsigned PageShift = 12, Memory M>
result<guest_memfd_view<M, PageShift>> attach_guest_memfd(const M& mem, phys_addr ser) {
  return guest_memfd_view<M, PageShift>::attach(mem, ser);
}

}  // namespace kho::upstream
