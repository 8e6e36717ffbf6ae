// kho/linux/tmpfs.hpp: a tmpfs mount's and a tmpfs file's live-update state, files
// "tmpfs-mnt-v1" and "tmpfs-file-v1" (shared/LINUX-FORMATS-NEXT.md section 3).
//
//   tmpfs_luo_mnt_ser (16 B): max_blocks u64 @0 (PAGE_SIZE units, 0 unlimited),
//     mode u32 @8 (the root directory's), flags u32 @12 (none defined: 0).
//   tmpfs_luo_file_ser (312 B): mnt_token u64 @0, pos u64 @8, size u64 @16,
//     mode u32 @24 (permission bits), flags u32 @28 (0), nr_folios u64 @32,
//     folios kho_vmalloc @40 of memfd_luo_folio_ser (LF section 7: pfn | flags << 52,
//     DIRTY 0x1, UPTODATE 0x2; u64 index), name char[256] @56.
//
// The kernel's reader and writer were not found (the spec has only the header), so
// the checks are the header's rules and memfd's, as the spec asks: flags zero; a
// file's mode within 07777 (its type is always regular, so no type bits); name one
// path component: nonempty, NUL-terminated inside its 256 bytes, no '/', not "." or
// "..", every byte after the NUL zero; the folio array as record_array.hpp says; per
// record: unknown flag bits zero, pfn nonzero and small enough, indices strictly
// increasing (memfd's rules, memfd.hpp). That mnt_token names a tmpfs-mnt-v1 file of
// the same session, and that each folio is a preserved block, is checked by the
// whole-handover check (luo_handlers.hpp). Each structure is taken to be in a
// preserved allocation of its own, as memfd's is (the spec marks that inferred).
//
// Complexity: write O(nr_folios); attach O(nr_folios + array pages), no scratch.
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/linux/kho_vmalloc.hpp>
#include <kho/linux/memfd.hpp>
#include <kho/linux/record_array.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>

namespace kho::upstream {

inline constexpr const char* tmpfs_mnt_compatible = "tmpfs-mnt-v1";
inline constexpr const char* tmpfs_file_compatible = "tmpfs-file-v1";
inline constexpr u64 tmpfs_name_len = 256;  // NAME_MAX + 1
inline constexpr u32 tmpfs_file_mode_mask = 07777;

struct tmpfs_luo_mnt_ser {
  detail::le64 max_blocks;
  detail::le32 mode;
  detail::le32 flags;
};
static_assert(sizeof(tmpfs_luo_mnt_ser) == 16);
static_assert(offsetof(tmpfs_luo_mnt_ser, flags) == 12);

struct tmpfs_luo_file_ser {
  detail::le64 mnt_token;
  detail::le64 pos;
  detail::le64 size;
  detail::le32 mode;
  detail::le32 flags;
  detail::le64 nr_folios;
  kho_vmalloc folios;
  char name[tmpfs_name_len];
};
static_assert(sizeof(tmpfs_luo_file_ser) == 312);
static_assert(offsetof(tmpfs_luo_file_ser, mode) == 24);
static_assert(offsetof(tmpfs_luo_file_ser, flags) == 28);
static_assert(offsetof(tmpfs_luo_file_ser, nr_folios) == 32);
static_assert(offsetof(tmpfs_luo_file_ser, folios) == 40);
static_assert(offsetof(tmpfs_luo_file_ser, name) == 56);

/// Whether the 256-byte field is a valid name (see the header comment).
// Plain loops, not strlen/memchr: the freestanding build may call only memcpy, memset,
// memmove and memcmp.
inline bool tmpfs_name_ok(const char* field) {
  u64 n = 0;
  while (n < tmpfs_name_len && field[n] != '\0') ++n;
  if (n == 0 || n == tmpfs_name_len) return false;
  for (u64 i = 0; i < n; ++i)
    if (field[i] == '/') return false;
  if ((n == 1 && field[0] == '.') || (n == 2 && field[0] == '.' && field[1] == '.')) return false;
  for (u64 i = n; i < tmpfs_name_len; ++i)
    if (field[i] != '\0') return false;
  return true;
}

// ---- tmpfs-mnt-v1 -------------------------------------------------------------------

struct tmpfs_mount {
  u64 max_blocks = 0;
  u32 mode = 01777;
};

/// Writes a mount. Returns luo_file_ser.data. Errors: out_of_memory.
template <unsigned PageShift = 12, PageSource Source>
result<phys_addr> write_tmpfs_mnt(Source& source, const tmpfs_mount& m) {
  tmpfs_luo_mnt_ser s{};
  s.max_blocks.set(m.max_blocks);
  s.mode.set(m.mode);
  return write_ser<PageShift>(source, &s, sizeof s);
}

template <Memory M, unsigned PageShift = 12>
class tmpfs_mnt_view {
 public:
  static constexpr const char* structure = "tmpfs-mnt-v1";
  /// Errors: misaligned, out_of_bounds, reserved_nonzero (flags, at its address).
  static result<tmpfs_mnt_view> attach(const M& mem, phys_addr ser) {
    tmpfs_mnt_view v(ser);
    KHO_TRY(read_ser<PageShift>(mem, ser, &v.s_, sizeof v.s_, structure));
    if (v.s_.flags.get() != 0)
      return make_error(errc::reserved_nonzero, structure, ser + offsetof(tmpfs_luo_mnt_ser, flags), 0);
    return v;
  }
  template <class Owners>
  status claim_pages(Owners& owners) const {
    return owners.claim(ser_, 1, page_owner{structure, ser_});
  }
  u64 max_blocks() const { return s_.max_blocks.get(); }
  u32 mode() const { return s_.mode.get(); }
  phys_addr address() const { return ser_; }

 private:
  explicit tmpfs_mnt_view(phys_addr ser) : ser_(ser) {}
  phys_addr ser_;
  tmpfs_luo_mnt_ser s_{};
};

template <unsigned PageShift = 12, Memory M>
result<tmpfs_mnt_view<M, PageShift>> attach_tmpfs_mnt(const M& mem, phys_addr ser) {
  return tmpfs_mnt_view<M, PageShift>::attach(mem, ser);
}

// ---- tmpfs-file-v1 ------------------------------------------------------------------

struct tmpfs_file {
  u64 mnt_token = 0;
  u64 pos = 0;
  u64 size = 0;
  u32 mode = 0644;
  const char* name = "";
  const memfd_folio* folios = nullptr;  // memfd's records
  u64 nr_folios = 0;                    // in index order
};

/// Writes a file. Returns luo_file_ser.data. Errors: invalid_argument (mode, name, a
/// folio the reader would refuse), out_of_range, out_of_memory.
template <unsigned PageShift = 12, PageSource Source>
result<phys_addr> write_tmpfs_file(Source& source, const tmpfs_file& file) {
  tmpfs_luo_file_ser s{};
  u64 n = 0;
  while (file.name != nullptr && n < tmpfs_name_len && file.name[n] != '\0') ++n;
  if (n >= tmpfs_name_len || (file.mode & ~tmpfs_file_mode_mask) != 0) return errc::invalid_argument;
  std::memcpy(s.name, file.name, n);
  if (!tmpfs_name_ok(s.name)) return errc::invalid_argument;
  for (u64 i = 0; i < file.nr_folios; ++i) {
    const memfd_folio& f = file.folios[i];
    if (f.frame.value == 0 || f.frame.value > memfd_pfn_mask || (f.frame.value >> (64 - PageShift)) != 0 ||
        (f.flags & ~memfd_folio_known_flags) != 0 || (i > 0 && f.index <= file.folios[i - 1].index))
      return errc::invalid_argument;
  }
  auto array = write_record_array<PageShift>(source, file.nr_folios, [&](u64 i) {
    const memfd_folio& f = file.folios[i];
    return std::pair<u64, u64>{f.frame.value | u64{f.flags} << memfd_pfn_bits, f.index};
  });
  if (!array) return array.err();
  s.mnt_token.set(file.mnt_token);
  s.pos.set(file.pos);
  s.size.set(file.size);
  s.mode.set(file.mode);
  s.nr_folios.set(file.nr_folios);
  s.folios = *array;
  return write_ser<PageShift>(source, &s, sizeof s);
}

template <Memory M, unsigned PageShift = 12>
class tmpfs_file_view {
 public:
  using array_view = record_array_view<M, PageShift>;
  static constexpr const char* structure = "tmpfs-file-v1";

  /// Errors: at the structure (depth 0): misaligned, out_of_bounds, reserved_nonzero
  /// (flags; mode bits above 07777: at the field's address), bad_string (name, at
  /// the name's address); the array's; at a record (depth 1): reserved_nonzero,
  /// out_of_range (pfn 0 or too wide; index below the previous), duplicate.
  static result<tmpfs_file_view> attach(const M& mem, phys_addr ser) {
    tmpfs_file_view v(mem, ser);
    KHO_TRY(read_ser<PageShift>(mem, ser, &v.s_, sizeof v.s_, structure));
    if (v.s_.flags.get() != 0)
      return make_error(errc::reserved_nonzero, structure, ser + offsetof(tmpfs_luo_file_ser, flags), 0);
    if ((v.s_.mode.get() & ~tmpfs_file_mode_mask) != 0)
      return make_error(errc::reserved_nonzero, structure, ser + offsetof(tmpfs_luo_file_ser, mode), 0);
    if (!tmpfs_name_ok(v.s_.name))
      return make_error(errc::bad_string, structure, ser + offsetof(tmpfs_luo_file_ser, name), 0);
    auto array = array_view::attach(mem, v.s_.folios, v.s_.nr_folios.get(), structure, ser);
    if (!array) return array.err();
    v.array_ = *array;
    u64 previous = 0;
    bool first = true;
    error bad{};
    v.array_.for_each([&](u64 w0, u64 index, phys_addr at) {
      const u64 frame = w0 & memfd_pfn_mask;
      errc c = errc::ok;
      if (((w0 >> memfd_pfn_bits) & ~u64{memfd_folio_known_flags}) != 0) c = errc::reserved_nonzero;
      else if (frame == 0 || (frame >> (64 - PageShift)) != 0) c = errc::out_of_range;
      else if (!first && index == previous) c = errc::duplicate;
      else if (!first && index < previous) c = errc::out_of_range;
      if (c != errc::ok) {
        bad = make_error(c, structure, at, 1);
        return c;
      }
      first = false;
      previous = index;
      return errc::ok;
    });
    if (bad.code != errc::ok) return bad;
    return v;
  }

  template <class F>
  void for_each_folio(F&& f) const {
    array_.for_each([&](u64 w0, u64 w1, phys_addr) {
      f(memfd_folio{pfn{w0 & memfd_pfn_mask}, w1, static_cast<u16>(w0 >> memfd_pfn_bits)});
      return errc::ok;
    });
  }
  template <class Owners>
  status claim_pages(Owners& owners) const {
    const page_owner who{structure, ser_};
    KHO_TRY(owners.claim(ser_, 1, who));
    return array_.claim_pages(owners, who);
  }

  u64 mnt_token() const { return s_.mnt_token.get(); }
  u64 pos() const { return s_.pos.get(); }
  u64 size() const { return s_.size.get(); }
  u32 mode() const { return s_.mode.get(); }
  u64 nr_folios() const { return s_.nr_folios.get(); }
  const char* name() const { return s_.name; }  // NUL-terminated (checked)
  phys_addr address() const { return ser_; }

 private:
  tmpfs_file_view(const M& mem, phys_addr ser) : ser_(ser), array_(array_view::none(mem)) {}
  phys_addr ser_;
  tmpfs_luo_file_ser s_{};
  array_view array_;
};

template <unsigned PageShift = 12, Memory M>
result<tmpfs_file_view<M, PageShift>> attach_tmpfs_file(const M& mem, phys_addr ser) {
  return tmpfs_file_view<M, PageShift>::attach(mem, ser);
}

}  // namespace kho::upstream
