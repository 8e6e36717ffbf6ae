// kho/phys.hpp: physical addresses, page frame numbers, orders and page geometry.
//
// Preserved memory links its nodes by physical address, so the difference between
// "an address", "a page number" and "an order" is the difference between a correct
// walk and a silent corruption. Each is its own type; converting between them goes
// through a page_geometry, which is a template parameter everywhere because kernels
// run with 4 KiB, 16 KiB and 64 KiB pages.
//
//   phys_addr  byte address in physical memory     (u64)
//   pfn        phys_addr >> page_shift             (u64)
//   order      log2 of a block's size in pages     (u8, 0..63)
//
// No operation here allocates, throws or calls a library function.
#pragma once

#include <bit>
#include <compare>
#include <cstddef>
#include <cstdint>

namespace kho {

using u8 = std::uint8_t;
using u16 = std::uint16_t;
using u32 = std::uint32_t;
using u64 = std::uint64_t;

/// A physical byte address. Arithmetic is limited to what walks need: adding a
/// byte offset and measuring a distance.
struct phys_addr {
  u64 value = 0;

  constexpr phys_addr() = default;
  constexpr explicit phys_addr(u64 v) : value(v) {}

  constexpr auto operator<=>(const phys_addr&) const = default;
  constexpr explicit operator bool() const { return value != 0; }

  constexpr phys_addr operator+(u64 bytes) const { return phys_addr{value + bytes}; }
  constexpr u64 operator-(phys_addr other) const { return value - other.value; }
};

/// A page frame number. Only a page_geometry turns it into an address.
struct pfn {
  u64 value = 0;

  constexpr pfn() = default;
  constexpr explicit pfn(u64 v) : value(v) {}

  constexpr auto operator<=>(const pfn&) const = default;
};

/// log2 of a block's size in pages.
struct order {
  u8 value = 0;

  constexpr order() = default;
  constexpr explicit order(unsigned v) : value(static_cast<u8>(v)) {}

  constexpr auto operator<=>(const order&) const = default;
};

/// Page size as a compile-time policy. Shift 12 (4 KiB) is the default; 14 and 16
/// are the other sizes Linux runs with.
template <unsigned PageShift = 12>
struct page_geometry {
  static_assert(PageShift >= 12 && PageShift <= 21, "page sizes from 4 KiB to 2 MiB");

  static constexpr unsigned shift = PageShift;
  static constexpr u64 size = u64{1} << PageShift;
  static constexpr u64 mask = size - 1;

  static constexpr pfn to_pfn(phys_addr pa) { return pfn{pa.value >> shift}; }
  static constexpr phys_addr to_phys(pfn f) { return phys_addr{f.value << shift}; }

  static constexpr bool is_aligned(phys_addr pa) { return (pa.value & mask) == 0; }
  /// True if `pa` is aligned to a block of `o`; orders past the address width never are.
  static constexpr bool is_aligned(phys_addr pa, order o) {
    if (o.value + shift >= 64) return false;
    return (pa.value & ((u64{1} << (o.value + shift)) - 1)) == 0;
  }
  /// Bytes in a block of order `o`; 0 when the block does not fit in 64 bits.
  static constexpr u64 block_bytes(order o) {
    return o.value + shift >= 64 ? 0 : u64{1} << (o.value + shift);
  }
};

/// a + b, unless it wraps: then false and `out` is untouched.
constexpr bool checked_add(u64 a, u64 b, u64& out) {
  return !__builtin_add_overflow(a, b, &out);
}

/// True if [start, start+len) lies inside [lo, hi) without wrapping.
constexpr bool range_within(u64 start, u64 len, u64 lo, u64 hi) {
  u64 end = 0;
  return checked_add(start, len, end) && start >= lo && end <= hi;
}

}  // namespace kho
