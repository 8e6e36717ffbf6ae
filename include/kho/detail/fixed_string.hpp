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

/// Two NUL-terminated strings are equal. Only for strings already proven terminated
/// (libfdt's fdt_check_full proves it for a tree's names and strings).
constexpr bool same_string(const char* a, const char* b) {
  while (*a != '\0' && *a == *b) ++a, ++b;
  return *a == *b;
}

/// `s` starts with `prefix` (both NUL-terminated).
constexpr bool starts_with(const char* s, const char* prefix) {
  while (*prefix != '\0' && *s == *prefix) ++s, ++prefix;
  return *prefix == '\0';
}

/// `s` (NUL-terminated) contains `c`.
constexpr bool contains_char(const char* s, char c) {
  for (; *s != '\0'; ++s)
    if (*s == c) return true;
  return false;
}

}  // namespace kho::detail
