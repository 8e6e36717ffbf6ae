// tests/golden_bytes.hpp: spelling out expected bytes by hand, for the golden tests.
#pragma once

#include <kho/phys.hpp>

#include <cstring>
#include <initializer_list>
#include <vector>

namespace kho::test {

using bytes = std::vector<unsigned char>;

/// `text` as a field of `n` bytes, zero-filled.
inline bytes field(const char* text, u64 n) {
  bytes b(n, 0);
  std::memcpy(b.data(), text, std::strlen(text));
  return b;
}

inline bytes cat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

/// A big-endian u32, as device-tree headers and tags are stored.
inline bytes be32(u32 v) {
  return bytes{static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
               static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
}

/// A little-endian u64, as every kho and KHO field is stored.
inline bytes le64(u64 v) {
  bytes b(8);
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
  return b;
}

}  // namespace kho::test
