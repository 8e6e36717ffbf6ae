// kho/manifest.hpp: which handover formats, at which versions, an image reads and
// writes; the table a live update is qualified against *before* kexec.
//
// After kexec nothing can be undone, so the old image must know, before it seals,
// that the next image reads every structure it is about to hand over. Each image
// carries a manifest: one entry per format family ("kho", "luo", "memfd", kho's own
// "kho-root", ...) with a bit per version it reads and a bit per version it writes,
// plus the feature bits it understands where a family is negotiated by feature
// header rather than by version. A kernel-shim build embeds it in an ELF section of
// its own (KHO_MANIFEST below); tools read it from the executable's file
// (model/elf_section.hpp), and negotiate.hpp picks, per structure, the highest
// version both sides support.
//
//   offset  size  field                      section ".kho_manifest", little-endian
//   0       8     magic "KHOMNFST"
//   8       2     version_major = 1          (a reader refuses other majors)
//   10      2     version_minor = 0          (additive: a reader ignores it)
//   12      2     entry_size = 48            (a later minor may grow entries; the
//   14      2     count                       reader steps by entry_size)
//   16      48    image: NUL-terminated name of the image (its release string)
//   64      48    entry[0]: family char[16], reads u64, writes u64, features u64,
//                           reserved u64 (zero)
//   112     48    entry[1] ...
//
// Invariants a reader checks (the section comes from a file: untrusted): magic,
// major, entry_size >= 48 and 8-aligned, count <= manifest_max_entries and within
// the bytes given, every string NUL-terminated and canonical (zeros after the NUL),
// family names unique, bit 0 of reads/writes clear (versions start at 1), reserved
// zero.
//
// Version numbers are per family and ordered by upstream's chronology, so "highest
// common" means "newest both understand". Where upstream changed layout without
// changing the integer (an RFC's granular string, a feature header replacing the
// compatible string), kho gives that layout the next number; format_versions below
// is the one table of them, and docs/format.md repeats it.
//
// Complexity: parse O(count); lookups O(count).
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/detail/fixed_string.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <type_traits>

namespace kho {

// ---- the families and their versions ------------------------------------------------

inline constexpr u64 manifest_family_len = 16;
inline constexpr u8 manifest_max_version = 63;  // one bit each in a u64, bit 0 unused

/// One version of one family: its number and the string that names it on the wire
/// (a compatible string, or a description where the layout has none).
struct format_version {
  const char* family;
  u8 version;
  const char* wire_name;
  bool feature_header = false;  // negotiated by feature bits as well as by version
};

// Upstream families first (shared/LINUX-FORMATS.md section 0), then kho's own.
inline constexpr format_version format_versions[] = {
    {"kho", 1, "kho-v1"},
    {"kho", 2, "kho-v2"},
    {"kho", 3, "kho-v3"},
    {"kho", 4, "kho-v4"},
    {"kho", 5, "kho-v4;radix-v1;vmalloc-v1"},  // the granular-compatibility RFC
    {"luo", 1, "luo-v1"},
    {"luo", 2, "luo-v2"},
    {"luo", 3, "luo-v3"},
    {"luo", 4, "luo-v4"},
    {"luo", 5, "luo-v5"},
    {"luo", 6, "luo-v5;block-v1"},             // RFC: 16-byte compatible field
    {"luo", 7, "luo feature header", true},          // luo_feature_hdr replaces the string
    // One string, two layouts (LINUX-FORMATS-NEXT.md 1.1): 1, 3 and 4 above are the
    // first ones kho named (luo-v1 without luo-flb; luo-v3 / luo-v4 raw, whose luo_ser
    // holds that string); the other form of each says its form in its name.
    {"luo", 8, "luo-v1 (luo-flb)"},                  // FDT luo-v1 with the luo-flb node
    {"luo", 9, "luo-v3 (FDT)"},                      // FDT + luo_ser, LUO-block sessions
    {"luo", 10, "luo-v4 (FDT)"},                     // FDT + luo_ser, LUO-block sessions and files
    {"luo", 11, "luo-v3-kho-block-v1"},              // raw, 24-byte compatible field
    {"luo", 12, "luo-v4-kho-block-v1"},
    {"memfd", 1, "memfd-v1"},
    {"memfd", 2, "memfd-v2"},
    {"memfd", 3, "memfd feature header", true},
    // -- families of shared/LINUX-FORMATS-NEXT.md: hugetlb, guest_memfd, KVM, tmpfs --
    {"hugetlb", 1, "hugetlb-v1"},                  // an FLB
    {"huge-memfd", 1, "huge-memfd-v1"},
    {"guest_memfd", 1, "guest_memfd_luo_v1"},
    // One string, two layouts (kho/linux/kvm.hpp): the string itself stands for layout
    // A (linux-mm); B (soleen) is only ever known from the reader's configuration.
    {"kvm-vm", 1, "kvm_vm_luo_v1"},
    {"kvm-vm", 2, "kvm_vm_luo_v1 (soleen layout)"},
    {"kvm-vcpu", 1, "kvm_vcpu_luo_v1"},
    {"tmpfs-mnt", 1, "tmpfs-mnt-v1"},
    {"tmpfs-file", 1, "tmpfs-file-v1"},

    // -- families of shared/LINUX-FORMATS-NEXT.md: devices (PCI, IOMMU, iommufd, vfio-pci) --
    {"pci", 1, "pci-v1"},
    {"pci", 2, "pci-v2"},
    {"pci", 3, "pci"},                         // FLB name "pci", pci_ser.version 1 inside
    {"iommu", 1, "iommu-liveupdate-v1"},       // with the Intel unions
    {"iommu", 2, "iommu-liveupdate"},          // iommu_flb_ser.version 1 inside, no Intel unions
    {"iommufd", 1, "iommufd-v1"},
    {"vfio-pci", 1, "vfio-pci-v1"},

    // -- families of shared/LINUX-FORMATS-NEXT.md: MSHV --
    {"mshv", 1, "mshv_kho-v1"},

    {"kexec-metadata", 1, "kexec-metadata-v1"},      // no string on the wire: its u32 version
    {"memblock", 1, "memblock-v1"},
    {"kho-root", 1, "kho-root-v1"},
    {"kho-radix", 1, "kho-radix-v1"},             // the radix tree as a kho-root-v1 entry
    {"kho-xarray", 1, "kho-xarray-v1"},
    {"kho-luo", 1, "kho-luo-v1"},
};

/// The wire name of `version` of `family`, or nullptr if kho knows no such version.
constexpr const char* wire_name_of(const char* family, u8 version) {
  for (const format_version& v : format_versions)
    if (v.version == version && detail::same_string(v.family, family)) return v.wire_name;
  return nullptr;
}

/// The family and version a wire name stands for; nullptr family if kho knows none.
constexpr format_version find_wire_name(const char* wire_name) {
  for (const format_version& v : format_versions)
    if (detail::same_string(v.wire_name, wire_name)) return v;
  return format_version{nullptr, 0, nullptr};
}

/// True if `version` of `family` is negotiated by feature bits too.
constexpr bool is_feature_version(const char* family, u8 version) {
  for (const format_version& v : format_versions)
    if (v.version == version && detail::same_string(v.family, family)) return v.feature_header;
  return false;
}

constexpr u64 version_bit(u8 version) { return version == 0 || version > manifest_max_version ? 0 : u64{1} << version; }

/// The mask of the versions listed.
constexpr u64 version_set(std::initializer_list<u8> vs) {
  u64 m = 0;
  for (u8 v : vs) m |= version_bit(v);
  return m;
}

/// The highest version in `mask`, 0 if none.
constexpr u8 highest_version(u64 mask) {
  for (u8 v = manifest_max_version; v > 0; --v)
    if (mask & version_bit(v)) return v;
  return 0;
}

// ---- wire layout ---------------------------------------------------------------------

inline constexpr u64 manifest_magic = 0x5453464e4d4f484bULL;  // "KHOMNFST" little-endian
inline constexpr u16 manifest_version_major = 1;
inline constexpr u16 manifest_version_minor = 0;
inline constexpr u64 manifest_image_len = 48;
// 64 entries: every family kho knows several times over, and a bound a reader can
// enforce before it trusts `count`.
inline constexpr u16 manifest_max_entries = 64;
inline constexpr const char* manifest_section = ".kho_manifest";

struct manifest_header {
  detail::le64 magic;
  detail::le16 version_major;
  detail::le16 version_minor;
  detail::le16 entry_size;
  detail::le16 count;
  char image[manifest_image_len];
};

struct manifest_entry {
  char family[manifest_family_len];
  detail::le64 reads;     // bit v: reads version v
  detail::le64 writes;    // bit v: can write version v
  detail::le64 features;  // feature bits read, for feature-header versions
  detail::le64 reserved;
};

static_assert(sizeof(manifest_header) == 64);
static_assert(offsetof(manifest_header, entry_size) == 12);
static_assert(offsetof(manifest_header, image) == 16);
static_assert(sizeof(manifest_entry) == 48);
static_assert(offsetof(manifest_entry, reads) == 16);
static_assert(offsetof(manifest_entry, features) == 32);
static_assert(std::is_standard_layout_v<manifest_entry> && std::has_unique_object_representations_v<manifest_entry>);
static_assert(std::has_unique_object_representations_v<manifest_header>);

/// What an image declares for one family, as C++ values.
struct manifest_line {
  const char* family;
  u64 reads;
  u64 writes;
  u64 features = 0;
};

/// The bytes of a manifest of N entries, built at compile time so that a kernel-shim
/// build can place it in its section without running code.
template <u16 N>
struct manifest_image {
  static_assert(N >= 1 && N <= manifest_max_entries);
  manifest_header header;
  manifest_entry entries[N];
};

namespace detail {

constexpr void copy_fixed(char* field, u64 cap, const char* s) {
  for (u64 i = 0; i < cap; ++i) field[i] = 0;
  for (u64 i = 0; i + 1 < cap && s[i] != '\0'; ++i) field[i] = s[i];
}

}  // namespace detail

/// The manifest of an image named `image` that declares `lines`.
template <u16 N>
constexpr manifest_image<N> make_manifest(const char* image, const manifest_line (&lines)[N]) {
  manifest_image<N> m{};
  m.header.magic.set(manifest_magic);
  m.header.version_major.set(manifest_version_major);
  m.header.version_minor.set(manifest_version_minor);
  m.header.entry_size.set(sizeof(manifest_entry));
  m.header.count.set(N);
  detail::copy_fixed(m.header.image, manifest_image_len, image);
  for (u16 i = 0; i < N; ++i) {
    detail::copy_fixed(m.entries[i].family, manifest_family_len, lines[i].family);
    m.entries[i].reads.set(lines[i].reads);
    m.entries[i].writes.set(lines[i].writes);
    m.entries[i].features.set(lines[i].features);
  }
  return m;
}

/// Places `name` (a manifest_image) in the ELF section tools look for. One per image.
/// Clang's AddressSanitizer would pad the section with a redzone (a 208-byte manifest
/// became a 256-byte section): the section must hold the manifest and nothing else.
#if defined(__clang__)
#define KHO_MANIFEST_SECTION [[gnu::used, gnu::section(".kho_manifest"), clang::no_sanitize("address")]]
#else
#define KHO_MANIFEST_SECTION [[gnu::used, gnu::section(".kho_manifest")]]
#endif

// ---- reader --------------------------------------------------------------------------

/// A validated manifest in caller-owned bytes.
class manifest_view {
 public:
  static constexpr const char* structure = "manifest";

  /// Validates `len` bytes at `bytes` as a manifest.
  /// Complexity: O(count^2) for the uniqueness check, count <= 64.
  /// Errors: out_of_bounds (shorter than its header or its entries), bad_magic,
  /// bad_version (another major), misaligned (entry_size not a multiple of 8 or under
  /// 48), bad_count (count over 64), bad_string (image or family not a canonical
  /// string), duplicate (a family twice), out_of_range (bit 0 set in reads or writes),
  /// reserved_nonzero. `at` is the byte offset of the fault.
  static result<manifest_view> parse(const void* bytes, u64 len) {
    auto fail = [](errc c, u64 off) { return make_error(c, structure, phys_addr{off}); };
    if (bytes == nullptr || len < sizeof(manifest_header)) return fail(errc::out_of_bounds, 0);
    manifest_header h;
    std::memcpy(&h, bytes, sizeof h);
    if (h.magic.get() != manifest_magic) return fail(errc::bad_magic, 0);
    if (h.version_major.get() != manifest_version_major) return fail(errc::bad_version, 8);
    const u16 step = h.entry_size.get();
    if (step < sizeof(manifest_entry) || step % 8 != 0) return fail(errc::misaligned, 12);
    const u16 count = h.count.get();
    if (count > manifest_max_entries) return fail(errc::bad_count, 14);
    if (len - sizeof h < u64{count} * step) return fail(errc::out_of_bounds, 14);
    if (!detail::is_canonical_string(h.image, manifest_image_len)) return fail(errc::bad_string, 16);
    manifest_view v(static_cast<const unsigned char*>(bytes), step, count);
    for (u16 i = 0; i < count; ++i)
      if (status s = v.check_entry(i); !s) return s.err();
    return v;
  }

  u16 size() const { return count_; }
  u16 version_minor() const { return header().version_minor.get(); }
  const char* image() const { return reinterpret_cast<const char*>(base_ + offsetof(manifest_header, image)); }

  /// Entry i, copied out (the bytes need not be aligned).
  manifest_entry entry(u16 i) const {
    manifest_entry e;
    std::memcpy(&e, base_ + sizeof(manifest_header) + u64{i} * step_, sizeof e);
    return e;
  }

  /// The entry of `family`, or an all-zero entry (reads and writes nothing).
  manifest_entry find(const char* family) const {
    for (u16 i = 0; i < count_; ++i) {
      manifest_entry e = entry(i);
      if (detail::string_equals(e.family, manifest_family_len, family)) return e;
    }
    return manifest_entry{};
  }

  u64 reads(const char* family) const { return find(family).reads.get(); }
  u64 writes(const char* family) const { return find(family).writes.get(); }
  u64 features(const char* family) const { return find(family).features.get(); }

 private:
  manifest_view(const unsigned char* base, u16 step, u16 count) : base_(base), step_(step), count_(count) {}

  manifest_header header() const {
    manifest_header h;
    std::memcpy(&h, base_, sizeof h);
    return h;
  }

  status check_entry(u16 i) const {
    const u64 off = sizeof(manifest_header) + u64{i} * step_;
    auto fail = [off](errc c, u64 field) { return make_error(c, structure, phys_addr{off + field}); };
    const manifest_entry e = entry(i);
    if (!detail::is_canonical_string(e.family, manifest_family_len)) return fail(errc::bad_string, 0);
    if ((e.reads.get() | e.writes.get()) & 1) return fail(errc::out_of_range, 16);
    if (e.reserved.get() != 0) return fail(errc::reserved_nonzero, 40);
    for (u16 j = 0; j < i; ++j)
      if (std::memcmp(entry(j).family, e.family, manifest_family_len) == 0) return fail(errc::duplicate, 0);
    return {};
  }

  const unsigned char* base_;
  u16 step_;
  u16 count_;
};

}  // namespace kho
