// kho/linux/liveupdate_versions.hpp: the ".liveupdate_versions" section of a vmlinux,
// the list of LUO compatibles a kernel can read, for userspace to compare two kernels
// before kexec (the kernel never reads it).
//
// shared/LINUX-FORMATS-NEXT.md, section 7 (an RFC, not merged). The section's bytes,
// in the target's byte order (little-endian on x86-64 and arm64):
//
//   offset 0       4          8                    8 + 48      8 + 48 N
//   +--------------+----------+--------------------+---- ... ---+
//   | magic u32    | version  | versions[0]        | versions[N-1]
//   | 0x4c565550   | u32 = 1  | char[48], NUL-ter- |            |
//   | "PUVL" bytes |          | minated, zero-     |            |
//   +--------------+----------+ padded, no gaps ---+------------+
//   N = (size - 8) / 48
//
// Entries: the compatible of every file handler declared with the RFC's macro, plus
// the LUO core's compatible (e.g. "luo-v1"). FLB names are NOT listed, so their
// absence says nothing. Order is link order; duplicates may occur (reported, allowed).
//
// A later variant, ".liveupdate_features", shares the magic with other entries; the
// two are told apart by section name (the caller's), never by these bytes.
//
// Reader (parse_liveupdate_versions), checks of kho's choosing (the kernel has no
// reader): at least the 8-byte header, magic, version 1, (size - 8) % 48 == 0, a NUL
// inside each entry, and each entry zero after its NUL (zero-padded: anything else is
// not what the linker script's input can produce, kho is stricter). Complexity: O(size)
// to validate; the view copies nothing.
#pragma once

#include <kho/detail/fixed_string.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstring>

namespace kho::upstream {

inline constexpr const char* liveupdate_versions_section = ".liveupdate_versions";
inline constexpr const char* liveupdate_features_section = ".liveupdate_features";
inline constexpr u32 liveupdate_versions_magic = 0x4c565550;  // "LVUP" as a LE u32
inline constexpr u32 liveupdate_versions_version = 1;
inline constexpr u64 liveupdate_versions_header = 8;
inline constexpr u64 liveupdate_version_len = 48;

/// A validated section: its entries in section order.
class liveupdate_versions_view {
 public:
  static constexpr const char* structure = "liveupdate_versions";

  /// Validates the section's `size` bytes at `bytes`. Errors (structure
  /// "liveupdate_versions", at = the byte offset in the section): bad_count (under 8
  /// bytes, or size - 8 not a multiple of 48; at 0), bad_magic (at 0), bad_version (at
  /// 4), bad_string (an entry without its NUL, or empty; at the entry),
  /// reserved_nonzero (a byte after an entry's NUL; at the entry).
  static result<liveupdate_versions_view> parse(const unsigned char* bytes, u64 size) {
    auto fail = [](errc c, u64 at) { return make_error(c, structure, phys_addr{at}, 0); };
    if (size < liveupdate_versions_header) return fail(errc::bad_count, 0);
    if (load_le32(bytes) != liveupdate_versions_magic) return fail(errc::bad_magic, 0);
    if (load_le32(bytes + 4) != liveupdate_versions_version) return fail(errc::bad_version, 4);
    if ((size - liveupdate_versions_header) % liveupdate_version_len != 0) return fail(errc::bad_count, 0);
    const u64 n = (size - liveupdate_versions_header) / liveupdate_version_len;
    for (u64 i = 0; i < n; ++i) {
      const u64 at = liveupdate_versions_header + i * liveupdate_version_len;
      const char* e = reinterpret_cast<const char*>(bytes + at);
      const u64 len = detail::bounded_length(e, liveupdate_version_len);
      if (len == liveupdate_version_len || len == 0) return fail(errc::bad_string, at);
      for (u64 j = len; j < liveupdate_version_len; ++j)
        if (e[j] != 0) return fail(errc::reserved_nonzero, at);
    }
    return liveupdate_versions_view(bytes, n);
  }

  u64 size() const { return n_; }
  /// Entry i (NUL-terminated, i < size()).
  const char* entry(u64 i) const {
    return reinterpret_cast<const char*>(bytes_ + liveupdate_versions_header + i * liveupdate_version_len);
  }
  /// Whether `name` is listed. Complexity: O(entries).
  bool lists(const char* name) const {
    for (u64 i = 0; i < n_; ++i)
      if (detail::same_string(entry(i), name)) return true;
    return false;
  }
  /// Entries that repeat an earlier one. Complexity: O(entries^2), entries being few.
  u64 duplicates() const {
    u64 d = 0;
    for (u64 i = 0; i < n_; ++i)
      for (u64 j = 0; j < i; ++j)
        if (detail::same_string(entry(i), entry(j))) {
          ++d;
          break;
        }
    return d;
  }

 private:
  liveupdate_versions_view(const unsigned char* bytes, u64 n) : bytes_(bytes), n_(n) {}
  static u32 load_le32(const unsigned char* p) {
    return u32{p[0]} | u32{p[1]} << 8 | u32{p[2]} << 16 | u32{p[3]} << 24;
  }

  const unsigned char* bytes_;
  u64 n_;
};

/// Writes a section of `n` entries into `out` (room for 8 + 48 n bytes), as the
/// linker would lay it out. Errors: bad_string (an entry empty or 48 bytes or longer).
inline status write_liveupdate_versions(unsigned char* out, const char* const* names, u64 n) {
  std::memset(out, 0, liveupdate_versions_header + n * liveupdate_version_len);
  for (int i = 0; i < 4; ++i) {
    out[i] = static_cast<unsigned char>(liveupdate_versions_magic >> (8 * i));
    out[4 + i] = static_cast<unsigned char>(liveupdate_versions_version >> (8 * i));
  }
  for (u64 i = 0; i < n; ++i)
    if (!detail::store_string(reinterpret_cast<char*>(out + liveupdate_versions_header + i * liveupdate_version_len),
                              liveupdate_version_len, names[i]))
      return errc::bad_string;
  return {};
}

}  // namespace kho::upstream
