// kho/linux/kho_root_version.hpp: which version of Linux's KHO root FDT a compatible
// string names, and what each version can carry.
//
// Upstream went through four root strings (shared/LINUX-FORMATS.md, section 0, and
// docs/format.md "Older KHO roots"):
//
//   version  root compatible            subtree property   blob-size   memory map
//   v1       "kho-v1"                   fdt (sub-FDT)      no          chain of bitmap chunks
//   v2       "kho-v2"                   preserved-data     no          radix, old depth
//   v3       "kho-v3"                   preserved-data     mandatory   radix, depth with +1
//   v4       "kho-v4"                   preserved-data     mandatory   radix, depth with +1
//   v4 gran. "kho-v4;radix-v1;vmalloc-v1"  as v4; the base then ';' and the components'
//                                       own versions, sorted, each once
//
// The radix depth: v2's header computes ceil((64 - PAGE_SHIFT - (PAGE_SHIFT + 3)) /
// (PAGE_SHIFT - 3)) + 1; from v3 on the numerator has a +1 (the order-0 key needs one
// more bit). The two agree for 4 KiB and 64 KiB pages (6 and 4 levels) and differ for
// 16 KiB pages only (4 levels in v2, 5 from v3 on).
//
// Parsing is bounded by the property's length; every function is constexpr.
#pragma once

#include <kho/detail/fixed_string.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

namespace kho::upstream {

enum class kho_root_version : u8 { v1 = 1, v2, v3, v4 };

/// What a root compatible string says: the base version and, in the granular form,
/// the components' versions (0: not listed).
struct kho_root_compat {
  kho_root_version version = kho_root_version::v4;
  bool granular = false;
  u8 radix = 0;
  u8 vmalloc = 0;
};

// The longest string this reader accepts, NUL excluded: "kho-v4;radix-v1;vmalloc-v1"
// is 26; room for a few more components' worth before it is called malformed.
inline constexpr u64 kho_root_compatible_max = 63;
inline constexpr const char* kho_root_compatible_structure = "kho-compatible";

/// The root compatible string of a base version.
constexpr const char* kho_root_compatible(kho_root_version v) {
  switch (v) {
    case kho_root_version::v1: return "kho-v1";
    case kho_root_version::v2: return "kho-v2";
    case kho_root_version::v3: return "kho-v3";
    case kho_root_version::v4: return "kho-v4";
  }
  return "";
}

/// The granular form kho writes (the components upstream's RFC lists, sorted).
inline constexpr const char kho_root_granular_compatible[] = "kho-v4;radix-v1;vmalloc-v1";

/// Name of the subtree property holding the blob's physical address.
constexpr const char* kho_root_data_property(kho_root_version v) {
  return v == kho_root_version::v1 ? "fdt" : "preserved-data";
}
/// Whether subtrees carry blob-size (from v3 on).
constexpr bool kho_root_has_blob_size(kho_root_version v) { return v >= kho_root_version::v3; }
/// Whether preserved-memory-map names a radix tree (v2 on) or a chunk chain (v1).
constexpr bool kho_root_has_radix(kho_root_version v) { return v >= kho_root_version::v2; }

/// Levels of the radix tree, leaf included, as the version's header computes them.
constexpr unsigned kho_root_radix_depth(kho_root_version v, unsigned page_shift) {
  const unsigned key = 64 - page_shift + (v >= kho_root_version::v3 ? 1 : 0);
  const unsigned leaf = page_shift + 3, table = page_shift - 3;
  return (key - leaf + table - 1) / table + 1;
}
static_assert(kho_root_radix_depth(kho_root_version::v2, 12) == 6 &&
              kho_root_radix_depth(kho_root_version::v3, 12) == 6);
static_assert(kho_root_radix_depth(kho_root_version::v2, 14) == 4 &&
              kho_root_radix_depth(kho_root_version::v3, 14) == 5);
static_assert(kho_root_radix_depth(kho_root_version::v2, 16) == 4 &&
              kho_root_radix_depth(kho_root_version::v4, 16) == 4);

namespace impl {

constexpr error compat_error(errc c, u64 offset, u32 token) {
  return make_error(c, kho_root_compatible_structure, phys_addr{offset}, token);
}

// "<name>-v<digits>" in s[0, n): the version number (1..255), else 0.
constexpr u32 token_version(const char* s, u64 n, u64& name_len) {
  u64 dash = n;
  for (u64 i = 0; i + 1 < n; ++i)
    if (s[i] == '-' && s[i + 1] == 'v') dash = i;
  if (dash == 0 || dash >= n || dash + 2 >= n) return 0;
  u32 v = 0;
  for (u64 i = dash + 2; i < n; ++i) {
    if (s[i] < '0' || s[i] > '9' || v > 25) return 0;
    v = v * 10 + static_cast<u32>(s[i] - '0');
  }
  if (s[dash + 2] == '0' || v == 0 || v > 255) return 0;  // no leading zero, no "v0"
  name_len = dash;
  return v;
}

constexpr bool same_prefix(const char* s, u64 n, const char* word) {
  u64 i = 0;
  for (; i < n; ++i)
    if (word[i] != s[i] || word[i] == '\0') return false;
  return word[i] == '\0';
}

// Bytewise "a < b" of two tokens, as a sorted list compares them.
constexpr int compare_tokens(const char* a, u64 an, const char* b, u64 bn) {
  for (u64 i = 0; i < an && i < bn; ++i)
    if (a[i] != b[i]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[i]) ? -1 : 1;
  return an == bn ? 0 : (an < bn ? -1 : 1);
}

}  // namespace impl

/// Parses a root compatible string of at most `cap` bytes (a property's length).
/// Complexity: O(length). Errors (loc: "kho-compatible", at = byte offset of the
/// offending token, depth = its index): bad_string (no NUL within cap, empty, longer
/// than kho_root_compatible_max, a token not "<name>-v<n>", components unsorted),
/// bad_compatible (a base other than "kho", a component other than radix and
/// vmalloc, components after a base other than v4), bad_version (kho-v0 or above
/// v4, a component version other than 1), duplicate (a component twice).
/// The constexpr core writes `out` and returns the error (code ok on success);
/// parse_kho_root_compatible wraps it in a result.
constexpr error parse_kho_root_compatible_into(const char* s, u64 cap, kho_root_compat& out) {
  const u64 len = detail::bounded_length(s, cap);
  if (len == cap || len == 0 || len > kho_root_compatible_max) return impl::compat_error(errc::bad_string, 0, 0);
  out = kho_root_compat{};
  u64 start = 0, prev = 0, prev_len = 0;
  for (u32 token = 0; start <= len; ++token) {
    u64 end = start;
    while (end < len && s[end] != ';') ++end;
    const char* t = s + start;
    const u64 n = end - start;
    u64 name_len = 0;
    const u32 v = impl::token_version(t, n, name_len);
    if (v == 0) return impl::compat_error(errc::bad_string, start, token);
    if (token == 0) {
      if (!impl::same_prefix(t, name_len, "kho")) return impl::compat_error(errc::bad_compatible, start, 0);
      if (v > 4) return impl::compat_error(errc::bad_version, start, 0);
      out.version = static_cast<kho_root_version>(v);
    } else {
      if (out.version != kho_root_version::v4) return impl::compat_error(errc::bad_compatible, start, token);
      if (token > 1) {
        const int c = impl::compare_tokens(s + prev, prev_len, t, n);
        if (c > 0) return impl::compat_error(errc::bad_string, start, token);
      }
      u8* slot = impl::same_prefix(t, name_len, "radix")     ? &out.radix
                 : impl::same_prefix(t, name_len, "vmalloc") ? &out.vmalloc
                                                             : nullptr;
      if (slot == nullptr) return impl::compat_error(errc::bad_compatible, start, token);
      if (*slot != 0) return impl::compat_error(errc::duplicate, start, token);
      if (v != 1) return impl::compat_error(errc::bad_version, start, token);
      *slot = static_cast<u8>(v);
      out.granular = true;
    }
    prev = start;
    prev_len = n;
    start = end + 1;
  }
  return error{};
}

inline result<kho_root_compat> parse_kho_root_compatible(const char* s, u64 cap) {
  kho_root_compat out;
  const error e = parse_kho_root_compatible_into(s, cap, out);
  if (e.code != errc::ok) return e;
  return out;
}

namespace impl {
constexpr errc parse_code(const char* s) {
  kho_root_compat c;
  return parse_kho_root_compatible_into(s, 64, c).code;
}
constexpr bool parses_as(const char* s, kho_root_version v, bool granular) {
  kho_root_compat c;
  return parse_kho_root_compatible_into(s, 64, c).code == errc::ok && c.version == v && c.granular == granular;
}
}  // namespace impl

static_assert(impl::parses_as("kho-v1", kho_root_version::v1, false));
static_assert(impl::parses_as(kho_root_granular_compatible, kho_root_version::v4, true));
static_assert(impl::parse_code("kho-v4;vmalloc-v1;radix-v1") == errc::bad_string);
static_assert(impl::parse_code("kho-v4;radix-v1;radix-v1") == errc::duplicate);
static_assert(impl::parse_code("kho-v4;block-v1") == errc::bad_compatible);
static_assert(impl::parse_code("kho-v5") == errc::bad_version);
static_assert(impl::parse_code("kho-v3;radix-v1") == errc::bad_compatible);

/// The string kho writes for `c`: the base's, or the granular form.
constexpr const char* kho_root_compatible(const kho_root_compat& c) {
  return c.granular ? kho_root_granular_compatible : kho_root_compatible(c.version);
}

}  // namespace kho::upstream
