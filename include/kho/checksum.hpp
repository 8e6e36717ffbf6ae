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
// GCC 12 at -O2/-O3 inlines XXH64_update into callers that pass constant lengths and
// then warns (-Warray-bounds) about xxHash's branches that are dead for those
// lengths: the tail memcpy of `bEnd - p` bytes (always < 32, but the range it infers
// is [.., 4071]) into the 32-byte state buffer, and `bEnd - 32` formed for an 8-byte
// input. Calling XXH64_update through a wrapper GCC may not specialize (noipa)
// silences it too, but every call site (root, LUO blocks, radix nodes, any future
// one) would have to remember it, and it would stop the inlining the hash relies on.
// So the warning is off for statements located in xxhash.h only; kho's own code keeps
// it, and xxHash is only ever built here with XXH_INLINE_ALL.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#include <xxhash.h>
#pragma GCC diagnostic pop

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
