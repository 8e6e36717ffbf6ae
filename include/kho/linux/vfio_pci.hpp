// kho/linux/vfio_pci.hpp: Linux's vfio-pci LUO file state, "vfio-pci-v1", read and
// written byte for byte.
//
// Upstream: the VFIO live-update series v4 (11 May 2026), samikhawaja/linux
// include/linux/kho/abi/vfio_pci.h (d835969e) and drivers/vfio/pci/vfio_pci_liveupdate.c;
// shared/LINUX-FORMATS-NEXT.md section 5.4. The LUO file record's `data` is the phys
// of vfio_pci_core_device_ser, which sits alone in a page (kho_alloc_preserve(5)).
//
//   vfio_pci_core_device_ser (5 B)
//   +---------+------------+-------------+
//   | bdf u16 | domain u16 | reset_works |
//   +---------+------------+-------------+
//     0         2            4
//   bdf = bus << 8 | devfn; domain is the PCI segment in 16 bits (pci_dev_ser has 32).
//
// Reader (vfio_pci_view::attach): the page aligned and inside memory. No field is
// constrained (reset_works: nonzero is true). The whole-handover check
// (luo_handlers.hpp) adds the cross-check the kernel makes implicitly: preserving the
// file preserves the device in the PCI FLB, so a handover with FLBs must have a PCI FLB
// listing (domain, bdf) (missing_dependency otherwise: the next kernel would not treat
// the device as preserved and would reset it under the file). A PCI device on a
// segment above 0xffff cannot be named here at all.
#pragma once

#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstring>

namespace kho::upstream {

inline constexpr const char* vfio_pci_v1_compatible = "vfio-pci-v1";
inline constexpr u64 vfio_pci_ser_size = 5;

/// The device as the writer takes it and the reader hands it back.
struct vfio_pci_device {
  u16 bdf = 0;
  u16 domain = 0;
  u8 reset_works = 0;
};

namespace impl {
// The wire bytes: little-endian u16 bdf @0, u16 domain @2, u8 @4 (packed, 5 bytes).
inline void put_vfio_pci(unsigned char* p, const vfio_pci_device& d) {
  p[0] = static_cast<unsigned char>(d.bdf);
  p[1] = static_cast<unsigned char>(d.bdf >> 8);
  p[2] = static_cast<unsigned char>(d.domain);
  p[3] = static_cast<unsigned char>(d.domain >> 8);
  p[4] = d.reset_works;
}
inline vfio_pci_device get_vfio_pci(const unsigned char* p) {
  return {static_cast<u16>(p[0] | p[1] << 8), static_cast<u16>(p[2] | p[3] << 8), p[4]};
}
}  // namespace impl

/// Writes the device's state in a page of its own; returns its phys (the file's data).
/// Complexity: O(1). Errors: out_of_memory.
template <unsigned PageShift = 12, PageSource Source>
result<phys_addr> write_vfio_pci(Source& source, const vfio_pci_device& dev) {
  auto ser = alloc_zeroed(source, order{0}, vfio_pci_ser_size);
  if (!ser) return ser.err();
  impl::put_vfio_pci(static_cast<unsigned char*>(source.memory().to_virt(*ser, vfio_pci_ser_size)), dev);
  return *ser;
}

/// A validated vfio-pci state.
template <Memory M, unsigned PageShift = 12>
class vfio_pci_view {
 public:
  using geometry = page_geometry<PageShift>;
  static constexpr const char* structure = "vfio-pci";

  /// Errors (structure "vfio-pci", at ser, depth 0): misaligned, out_of_bounds.
  /// Complexity: O(1).
  static result<vfio_pci_view> attach(const M& mem, phys_addr ser) {
    if (!geometry::is_aligned(ser)) return make_error(errc::misaligned, structure, ser, 0);
    const auto* p = static_cast<const unsigned char*>(mem.to_virt(ser, vfio_pci_ser_size));
    if (p == nullptr) return make_error(errc::out_of_bounds, structure, ser, 0);
    return vfio_pci_view(ser, impl::get_vfio_pci(p));
  }

  /// Claims the state's page for {"vfio-pci", ser}. Errors: claim's.
  template <class Owners>
  status claim_pages(Owners& owners) const {
    return owners.claim(ser_, 1, page_owner{structure, ser_});
  }

  const vfio_pci_device& device() const { return dev_; }
  phys_addr address() const { return ser_; }

 private:
  vfio_pci_view(phys_addr ser, const vfio_pci_device& d) : ser_(ser), dev_(d) {}
  phys_addr ser_;
  vfio_pci_device dev_;
};

/// Attaches with the Memory type deduced.
template <unsigned PageShift = 12, Memory M>
result<vfio_pci_view<M, PageShift>> attach_vfio_pci(const M& mem, phys_addr ser) {
  return vfio_pci_view<M, PageShift>::attach(mem, ser);
}

}  // namespace kho::upstream
