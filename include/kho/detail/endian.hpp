// kho/detail/endian.hpp: little-endian wire fields.
//
// Every field in preserved memory is little-endian whatever the host is, so that an
// image written on one machine reads the same on another and in docs/format.md.
// le<T> stores the wire bytes and converts on access; on little-endian hosts the
// conversion is the identity and compiles away.
#pragma once

#include <kho/phys.hpp>

#include <bit>
#include <type_traits>

namespace kho::detail {

template <class T>
constexpr T to_little(T v) {
  static_assert(std::is_unsigned_v<T>);
  if constexpr (std::endian::native == std::endian::little || sizeof(T) == 1) {
    return v;
  } else if constexpr (sizeof(T) == 2) {
    return __builtin_bswap16(v);
  } else if constexpr (sizeof(T) == 4) {
    return __builtin_bswap32(v);
  } else {
    return __builtin_bswap64(v);
  }
}

/// A little-endian unsigned field of a wire struct.
template <class T>
struct le {
  T raw;

  constexpr T get() const { return to_little(raw); }
  constexpr void set(T v) { raw = to_little(v); }
};

using le16 = le<u16>;
using le32 = le<u32>;
using le64 = le<u64>;

static_assert(sizeof(le64) == 8 && alignof(le64) == 8);
static_assert(std::is_trivially_copyable_v<le64> && std::is_standard_layout_v<le64>);

}  // namespace kho::detail
