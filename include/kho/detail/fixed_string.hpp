// kho/detail/fixed_string.hpp: NUL-terminated strings in fixed-size wire fields.
//
// Names and compatible strings live in char arrays of fixed size inside preserved
// pages. A reader must never run past the array looking for a NUL, so every function
// here is bounded by the array size; none calls strlen (a kernel-shim build must not
// pull it in).
#pragma once

#include <kho/phys.hpp>

#include <cstring>

namespace kho::detail {

/// Length of `s` up to `cap`; `cap` means no NUL within the field.
constexpr u64 bounded_length(const char* s, u64 cap) {
  u64 n = 0;
  while (n < cap && s[n] != '\0') ++n;
  return n;
}

/// True if the field holds a non-empty string, its NUL, and zeros after it (so that
/// no stale bytes hide behind the terminator and checksums are canonical).
inline bool is_canonical_string(const char* field, u64 cap) {
  const u64 n = bounded_length(field, cap);
  if (n == 0 || n == cap) return false;
  for (u64 i = n; i < cap; ++i)
    if (field[i] != '\0') return false;
  return true;
}

/// Copies `src` (NUL-terminated, read up to `cap` bytes) into `field`, zero-filling the
/// rest. False if it does not fit with its NUL or is empty.
inline bool store_string(char* field, u64 cap, const char* src) {
  const u64 n = bounded_length(src, cap);
  if (n == 0 || n == cap) return false;
  std::memset(field, 0, cap);
  std::memcpy(field, src, n);
  return true;
}

/// `field` (bounded by `cap`) equals the NUL-terminated `s`.
inline bool string_equals(const char* field, u64 cap, const char* s) {
  const u64 n = bounded_length(field, cap);
  if (bounded_length(s, n + 1) != n) return false;
  return std::memcmp(field, s, n) == 0;
}

}  // namespace kho::detail
