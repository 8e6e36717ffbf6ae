// kho/checksum.hpp: XXH64 over preserved bytes.
//
// Both kernels must compute the same checksum, and Linux has xxh64 (lib/xxhash.c)
// but not XXH3, so XXH64 with seed 0 it is. xxHash is used header-only
// (XXH_INLINE_ALL): every function is static inline and nothing is linked, which keeps
// kernel-shim builds free of library symbols.
#pragma once

#include <kho/phys.hpp>

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#ifndef XXH_NO_XXH3
#define XXH_NO_XXH3  // the kernel has no XXH3; don't compile it
#endif
#include <xxhash.h>

namespace kho {

/// XXH64 (seed 0) of `len` bytes. Complexity: O(len).
inline u64 checksum(const void* data, u64 len) {
  return XXH64(data, static_cast<size_t>(len), 0);
}

/// XXH64 of a byte range with the 8-byte checksum field at `hole` counted as zero:
/// a structure can then store its own checksum inside the bytes it covers.
inline u64 checksum_with_hole(const void* data, u64 len, u64 hole) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  XXH64_state_t state;
  XXH64_reset(&state, 0);
  XXH64_update(&state, bytes, static_cast<size_t>(hole));
  const unsigned char zero[8] = {};
  XXH64_update(&state, zero, sizeof zero);
  XXH64_update(&state, bytes + hole + 8, static_cast<size_t>(len - hole - 8));
  return XXH64_digest(&state);
}

}  // namespace kho
