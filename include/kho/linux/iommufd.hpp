// kho/linux/iommufd.hpp: Linux's iommufd LUO file state, "iommufd-v1", read and
// written byte for byte.
//
// Upstream: samikhawaja/linux include/linux/kho/abi/iommufd.h (fd339b51) and
// drivers/iommu/iommufd/liveupdate.c; shared/LINUX-FORMATS-NEXT.md section 5.3. The LUO
// file record's `data` is the phys of iommufd_ser.
//
//   iommufd_ser: one allocation of get_order(8 + 24 * nr_hwpts)
//   +----------+------------+------------+-----+
//   | nr_hwpts | hwpt 0     | hwpt 1     | ... |
//   | u64      | 24 B       |            |     |
//   +----------+------------+------------+-----+
//   iommufd_hwpt_ser (24 B): domain_data u64 @0 (the phys of an iommu_domain_ser in
//   the IOMMU FLB, kho/linux/iommu.hpp), token u64 @8 (the HWPT's user token),
//   reclaimed u8 @16 (the next kernel sets it), padding u8[7] @17.
//
// Reader (iommufd_view::attach): the structure page aligned and inside memory, its
// 8 + 24n bytes as well; reclaimed 0 and padding zero (reserved_nonzero: the old
// kernel writes a zeroed folio and only the next kernel sets reclaimed; an entry
// reclaimed in the image means a state kho cannot tell from a torn one). The
// whole-handover check (luo_handlers.hpp) adds: the bytes end inside the preserved
// block at `data` (out_of_bounds), and each nonzero domain_data names a live domain of
// the handover's IOMMU FLB (missing_dependency / misaligned / out_of_range, as
// iommu_flb_view::find says); the kernel only learns of a bad one when the restore
// ioctl finds restored_domain unset (-ENOENT). Tokens are not checked for uniqueness
// (the kernel's restore takes the first non-reclaimed entry with the token).
//
// Complexity: write O(n); attach O(n).
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/linux/pci.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstddef>
#include <cstring>
#include <type_traits>

namespace kho::upstream {

inline constexpr const char* iommufd_v1_compatible = "iommufd-v1";

struct iommufd_hwpt_ser {
  detail::le64 domain_data;  // phys of an iommu_domain_ser in the IOMMU FLB
  detail::le64 token;
  unsigned char reclaimed;  // the next kernel's: zero as written
  unsigned char padding[7];
};

struct iommufd_ser {
  detail::le64 nr_hwpts;  // then nr_hwpts iommufd_hwpt_ser
};

static_assert(sizeof(iommufd_hwpt_ser) == 24);
static_assert(offsetof(iommufd_hwpt_ser, token) == 8);
static_assert(offsetof(iommufd_hwpt_ser, reclaimed) == 16);
static_assert(offsetof(iommufd_hwpt_ser, padding) == 17);
static_assert(std::has_unique_object_representations_v<iommufd_hwpt_ser>);
static_assert(sizeof(iommufd_ser) == 8);

/// One HWPT as the writer takes it and the reader hands it back.
struct iommufd_hwpt {
  u64 domain_data = 0;
  u64 token = 0;
  u8 reclaimed = 0;
};

/// Bytes of an iommufd_ser with `n` HWPTs, or 0 if they cannot be addressed.
constexpr u64 iommufd_bytes(u64 n) {
  return n > (~u64{0} - sizeof(iommufd_ser)) / sizeof(iommufd_hwpt_ser) ? 0
                                                                          : sizeof(iommufd_ser) + n * sizeof(iommufd_hwpt_ser);
}

/// Writes the state of an iommufd with `hwpts` in one allocation of get_order(8 +
/// 24n); returns its phys (the LUO file's data). Complexity: O(n).
/// Errors: invalid_argument (reclaimed nonzero: only the next kernel sets it),
/// out_of_memory.
template <unsigned PageShift = 12, PageSource Source>
result<phys_addr> write_iommufd(Source& source, const iommufd_hwpt* hwpts, u64 n) {
  for (u64 i = 0; i < n; ++i)
    if (hwpts[i].reclaimed != 0) return errc::invalid_argument;
  const u64 bytes = iommufd_bytes(n);
  if (bytes == 0) return errc::invalid_argument;
  auto ser = alloc_zeroed(source, order{alloc_order<PageShift>(bytes)}, bytes);
  if (!ser) return ser.err();
  auto* p = static_cast<unsigned char*>(source.memory().to_virt(*ser, bytes));
  reinterpret_cast<iommufd_ser*>(p)->nr_hwpts.set(n);
  auto* h = reinterpret_cast<iommufd_hwpt_ser*>(p + sizeof(iommufd_ser));
  for (u64 i = 0; i < n; ++i) {
    h[i].domain_data.set(hwpts[i].domain_data);
    h[i].token.set(hwpts[i].token);
  }
  return *ser;
}

/// A validated iommufd state.
template <Memory M, unsigned PageShift = 12>
class iommufd_view {
 public:
  using geometry = page_geometry<PageShift>;
  static constexpr const char* structure = "iommufd";

  /// Validates the state at `ser`. Errors (structure "iommufd"; depth 0 at ser, 1 at
  /// an entry): misaligned, out_of_bounds, reserved_nonzero (reclaimed, padding).
  /// Complexity: O(n).
  static result<iommufd_view> attach(const M& mem, phys_addr ser) {
    auto fail = [ser](errc c) { return make_error(c, structure, ser, 0); };
    if (!geometry::is_aligned(ser)) return fail(errc::misaligned);
    const auto* s = static_cast<const iommufd_ser*>(mem.to_virt(ser, sizeof(iommufd_ser)));
    if (s == nullptr) return fail(errc::out_of_bounds);
    const u64 n = s->nr_hwpts.get(), bytes = iommufd_bytes(n);
    if (bytes == 0 || mem.to_virt(ser, bytes) == nullptr) return fail(errc::out_of_bounds);
    iommufd_view view(mem, ser, n);
    const iommufd_hwpt_ser* h = view.entries();
    for (u64 i = 0; i < n; ++i) {
      bool zero = h[i].reclaimed == 0;
      for (unsigned char b : h[i].padding) zero = zero && b == 0;
      if (!zero) return make_error(errc::reserved_nonzero, structure, view.entry_at(i), 1);
    }
    return view;
  }

  /// f(iommufd_hwpt, its phys) for every entry. Complexity: O(n).
  template <class F>
  void for_each_hwpt(F&& f) const {
    const iommufd_hwpt_ser* h = entries();
    for (u64 i = 0; i < n_; ++i) f(iommufd_hwpt{h[i].domain_data.get(), h[i].token.get(), h[i].reclaimed}, entry_at(i));
  }

  /// Claims the pages the state spans for {"iommufd", ser}. Errors: claim's.
  template <class Owners>
  status claim_pages(Owners& owners) const {
    return owners.claim(ser_, (bytes() + geometry::size - 1) >> PageShift, page_owner{structure, ser_});
  }

  u64 nr_hwpts() const { return n_; }
  u64 bytes() const { return iommufd_bytes(n_); }
  phys_addr address() const { return ser_; }

 private:
  iommufd_view(const M& mem, phys_addr ser, u64 n) : mem_(mem), ser_(ser), n_(n) {}
  const iommufd_hwpt_ser* entries() const {
    return reinterpret_cast<const iommufd_hwpt_ser*>(static_cast<const unsigned char*>(mem_.to_virt(ser_, bytes())) +
                                                     sizeof(iommufd_ser));
  }
  phys_addr entry_at(u64 i) const { return ser_ + sizeof(iommufd_ser) + i * sizeof(iommufd_hwpt_ser); }

  M mem_;
  phys_addr ser_;
  u64 n_;
};

/// Attaches with the Memory type deduced.
template <unsigned PageShift = 12, Memory M>
result<iommufd_view<M, PageShift>> attach_iommufd(const M& mem, phys_addr ser) {
  return iommufd_view<M, PageShift>::attach(mem, ser);
}

}  // namespace kho::upstream
