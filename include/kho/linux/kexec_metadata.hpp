// kho/linux/kexec_metadata.hpp: Linux's "kexec-metadata" KHO subtree, version 1: which
// kernel release wrote the handover and how many kexec boots the machine has made
// since its cold boot.
//
// Upstream: include/linux/kho/abi/kexec_metadata.h (torvalds 40735a68);
// shared/LINUX-FORMATS.md, section 8. A raw blob of 73 packed bytes (not an FDT) in a
// preserved page of its own, named "kexec-metadata" in the KHO root, blob-size 73.
//
//   offset 0        4                                   69            73
//   +---------------+-----------------------------------+-------------+
//   | version u32=1 | previous_release char[65]         | kexec_count |
//   +---------------+-----------------------------------+-------------+
//   packed: kexec_count is a u32 at the unaligned offset 69.
//
// Reader (kexec_metadata_view::attach): the kernel ignores the blob when blob-size is
// under 4 (with a warning), when version is not 1, or when blob-size is under 73; kho
// refuses the same cases with an error. kho's own: the blob page-aligned and inside
// memory, previous_release NUL-terminated within its 65 bytes.
//
// Complexity: write and attach O(1).
#pragma once

#include <kho/detail/fixed_string.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstddef>
#include <cstring>
#include <type_traits>

namespace kho::upstream {

inline constexpr const char* kexec_metadata_subtree = "kexec-metadata";
inline constexpr u32 kexec_metadata_version = 1;
inline constexpr u64 kexec_metadata_release_len = 65;  // __NEW_UTS_LEN + 1

/// Packed upstream, so the u32s are byte arrays here (read and written as LE).
struct kexec_metadata {
  unsigned char version[4];
  char previous_release[kexec_metadata_release_len];
  unsigned char kexec_count[4];
};

static_assert(sizeof(kexec_metadata) == 73 && alignof(kexec_metadata) == 1);
static_assert(offsetof(kexec_metadata, version) == 0);
static_assert(offsetof(kexec_metadata, previous_release) == 4);
static_assert(offsetof(kexec_metadata, kexec_count) == 69);
static_assert(std::has_unique_object_representations_v<kexec_metadata>);

namespace impl {
inline u32 load_le32(const unsigned char* p) {
  return u32{p[0]} | u32{p[1]} << 8 | u32{p[2]} << 16 | u32{p[3]} << 24;
}
inline void store_le32(unsigned char* p, u32 v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
}  // namespace impl

/// What the KHO root names for a subtree: the blob's address and size.
struct kexec_metadata_blob {
  phys_addr phys{};
  u64 size = 0;
};

/// Writes version 1 in a page of its own. Complexity: O(1).
/// Errors: bad_string (release empty or 65 bytes or longer), out_of_memory.
template <unsigned PageShift = 12, PageSource Source>
result<kexec_metadata_blob> write_kexec_metadata(Source& source, const char* release, u32 kexec_count) {
  kexec_metadata m{};
  if (!detail::store_string(m.previous_release, kexec_metadata_release_len, release)) return errc::bad_string;
  impl::store_le32(m.version, kexec_metadata_version);
  impl::store_le32(m.kexec_count, kexec_count);
  auto pa = alloc_zeroed(source, order{0}, page_geometry<PageShift>::size);
  if (!pa) return pa.err();
  std::memcpy(source.memory().to_virt(*pa, sizeof m), &m, sizeof m);
  return kexec_metadata_blob{*pa, sizeof m};
}

/// A validated blob, copied out (73 bytes).
template <unsigned PageShift = 12>
class kexec_metadata_view {
 public:
  using geometry = page_geometry<PageShift>;
  static constexpr const char* structure = "kexec-metadata";

  /// Validates the blob at `pa` of `blob_size` bytes. Errors (all at `pa`, depth 0):
  /// bad_count (blob-size under 4 or under 73), misaligned, out_of_bounds,
  /// bad_version (not 1), bad_string (release without its NUL).
  template <Memory M>
  static result<kexec_metadata_view> attach(const M& mem, phys_addr pa,
                                            u64 blob_size = sizeof(kexec_metadata)) {
    auto fail = [pa](errc c) { return make_error(c, structure, pa, 0); };
    if (blob_size < 4) return fail(errc::bad_count);
    if (!geometry::is_aligned(pa)) return fail(errc::misaligned);
    const auto* v = static_cast<const unsigned char*>(mem.to_virt(pa, 4));
    if (v == nullptr) return fail(errc::out_of_bounds);
    if (impl::load_le32(v) != kexec_metadata_version) return fail(errc::bad_version);
    if (blob_size < sizeof(kexec_metadata)) return fail(errc::bad_count);
    const void* whole = mem.to_virt(pa, sizeof(kexec_metadata));
    if (whole == nullptr) return fail(errc::out_of_bounds);
    kexec_metadata_view view(pa);
    std::memcpy(&view.m_, whole, sizeof view.m_);
    if (detail::bounded_length(view.m_.previous_release, kexec_metadata_release_len) ==
        kexec_metadata_release_len)
      return fail(errc::bad_string);
    return view;
  }

  /// Claims the blob's page for {"kexec-metadata", pa}. Errors: those of Owners::claim.
  template <class Owners>
  status claim_pages(Owners& owners) const {
    return owners.claim(pa_, 1, page_owner{structure, pa_});
  }

  u32 version() const { return impl::load_le32(m_.version); }
  const char* previous_release() const { return m_.previous_release; }
  u32 kexec_count() const { return impl::load_le32(m_.kexec_count); }
  phys_addr address() const { return pa_; }

 private:
  explicit kexec_metadata_view(phys_addr pa) : pa_(pa) {}
  phys_addr pa_;
  kexec_metadata m_{};
};

}  // namespace kho::upstream
