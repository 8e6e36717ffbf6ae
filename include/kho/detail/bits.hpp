// kho/detail/bits.hpp: bit counting that a freestanding build can link.
//
// Without -mpopcnt, __builtin_popcountll becomes a call to libgcc's __popcountdi2,
// which a kernel-shim build does not have. The SWAR count below is branch-free and
// compiles to a handful of instructions everywhere.
#pragma once

#include <kho/phys.hpp>

namespace kho::detail {

constexpr unsigned popcount64(u64 x) {
  x = x - ((x >> 1) & 0x5555555555555555ULL);
  x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
  return static_cast<unsigned>((x * 0x0101010101010101ULL) >> 56);
}

}  // namespace kho::detail
