// kho/linux/kho_fdt.hpp: Linux's KHO root, the flattened device tree a next kernel is
// handed ("kho-v4"), read and written as the kernel does, plus kho's seal.
//
// Upstream: include/linux/kho/abi/kexec_handover.h (linux-mm d3b55a6a) and
// kernel/liveupdate/kexec_handover.c; shared/LINUX-FORMATS.md, section 1. The root is
// one preserved page built with libfdt (the kernel links its own copy):
//
//   / { compatible = "kho-v4";
//       preserved-memory-map = [8 bytes: the radix tree's root page, LE u64];
//       kho,generation = [8 bytes LE]     \  kho's seal: absent in what a stock
//       kho,state      = [4 bytes LE]      > kernel writes, which is read and
//       kho,checksum   = [8 bytes LE]     /  reported as unsealed-by-kho
//       kho,map-xxh64  = [8 bytes LE];   (kho's, optional: the radix tree's deep checksum)
//       <subtree name> { blob-size = [8 bytes LE];  preserved-data = [8 bytes LE];
//                        kho,compatible = "luo-v5";   (kho's, optional)
//                        kho,xxh64 = [8 bytes LE];     (kho's, with the seal)
//                        kho,deep-xxh64 = [8 bytes LE]; };   (optional)
//       ... };
//   The u64 properties are CPU-order (little-endian) copies, not big-endian cells.
//
// The writer makes the calls the kernel makes (fdt_create, the root's two properties,
// fdt_finish; per subtree fdt_open_into, fdt_add_subnode, preserved-data then
// blob-size, fdt_pack), so without kho's properties its page is the kernel's byte for
// byte: libfdt puts the newest subtree first and a new property before older ones.
//
// kho's seal mirrors kho-root-v1 (handover.hpp): state OPEN -> SEALING (each subtree's
// XXH64 written, then the root's) -> SEALED, published with release ordering, so a
// crash at any step leaves a root refused as not_sealed or torn. The root checksum is
// XXH64 of the FDT's totalsize bytes with the values of kho,state and kho,checksum
// counted as zero. Property names under "kho," are ignored by a Linux kernel.
//
// Reader (kho_fdt_view::attach): the header's version at least 17 (libfdt 1.6.1
// crashes on some older ones), then fdt_check_full before any other libfdt call; root
// compatible "kho-v4", or an older root (kho-v1..v3, the granular "kho-v4;radix-v1;
// vmalloc-v1": kho_root_version.hpp), read with that version's properties;
// preserved-memory-map of 8 nonzero bytes (kho-v1: 0 = no chunk); every subtree a
// direct child with preserved-data and blob-size of 8 bytes (kho-v1: fdt, the size
// from the sub-FDT's header; kho-v2: preserved-data, the size from the blob's FDT
// header if it is one, else unknown), its blob inside memory,
// its name unique, its bytes overlapping neither the FDT page nor another blob;
// kho's properties, when present, complete and checked; an unknown "kho," property is
// refused (a newer kho's promise this reader cannot keep). Other properties a newer
// kernel may add are ignored, as the kernel's own reader does.
//
// Complexity: attach O(FDT bytes + subtrees^2 + bytes of the blobs checksummed),
// subtrees bounded by what fits in one page; no scratch.
#pragma once

#include <kho/checksum.hpp>
#include <kho/detail/fixed_string.hpp>
#include <kho/handover.hpp>
#include <kho/linux/kho_root_version.hpp>
#include <kho/linux/memblock.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/result.hpp>

#include <cstring>

#include <libfdt.h>

namespace kho::upstream {

inline constexpr char kho_fdt_compatible[] = "kho-v4";
inline constexpr const char* kho_fdt_memory_map = "preserved-memory-map";
inline constexpr const char* kho_fdt_data = "preserved-data";
inline constexpr const char* kho_fdt_size = "blob-size";
inline constexpr const char* kho_fdt_generation = "kho,generation";
inline constexpr const char* kho_fdt_state = "kho,state";
inline constexpr const char* kho_fdt_checksum = "kho,checksum";
inline constexpr const char* kho_fdt_map_checksum = "kho,map-xxh64";
inline constexpr const char* kho_fdt_blob_compatible = "kho,compatible";
inline constexpr const char* kho_fdt_blob_checksum = "kho,xxh64";
inline constexpr const char* kho_fdt_blob_deep_checksum = "kho,deep-xxh64";
// Room for kho,compatible's value, NUL included: that of a kho-root-v1 entry.
inline constexpr u64 kho_fdt_compatible_len = handover_compatible_len;

/// One subtree as the root names it. `compatible` is kho's property (nullptr in what a
/// stock kernel wrote); the checksums are valid where their flags say so.
struct kho_subtree {
  const char* name = "";
  phys_addr phys{};
  u64 size = 0;
  // Where `size` comes from: blob-size (kho-v3 on), else the blob's fdt_totalsize
  // (kho-v1, and kho-v2 FDT blobs); false for a kho-v2 blob that is not an FDT, whose
  // size no property records (size is then 0).
  bool size_known = true;
  const char* compatible = nullptr;
  bool has_checksum = false;
  u64 checksum = 0;
  bool has_deep_checksum = false;
  u64 deep_checksum = 0;
};

namespace impl {

inline bool is_kho_property(const char* name) { return detail::starts_with(name, "kho,"); }

// XXH64 of `len` bytes with two 8-or-fewer-byte windows counted as zero (the seal's
// own fields); windows are [off, off + n) and do not overlap.
inline u64 checksum_with_windows(const void* data, u64 len, u64 off1, u64 n1, u64 off2, u64 n2) {
  if (off2 < off1) {
    u64 t = off1;
    off1 = off2;
    off2 = t;
    t = n1;
    n1 = n2;
    n2 = t;
  }
  const auto* b = static_cast<const unsigned char*>(data);
  const unsigned char zero[8] = {};
  XXH64_state_t st;
  XXH64_reset(&st, 0);
  XXH64_update(&st, b, static_cast<size_t>(off1));
  XXH64_update(&st, zero, static_cast<size_t>(n1));
  XXH64_update(&st, b + off1 + n1, static_cast<size_t>(off2 - off1 - n1));
  XXH64_update(&st, zero, static_cast<size_t>(n2));
  XXH64_update(&st, b + off2 + n2, static_cast<size_t>(len - off2 - n2));
  return XXH64_digest(&st);
}

// The value of property `name` of `node` if it is exactly `len` bytes, else nullptr;
// `found` and `right_size` say which check failed.
inline const unsigned char* fixed_prop(const void* fdt, int node, const char* name, int len,
                                       bool& found, bool& right_size) {
  int have = -1;
  const void* v = fdt_getprop(fdt, node, name, &have);
  found = v != nullptr;
  right_size = found && have == len;
  return right_size ? static_cast<const unsigned char*>(v) : nullptr;
}

/// Offset in the blob of root property `name`'s value; -1 when absent.
inline int root_value_offset(const void* fdt, const char* name) {
  int len = 0;
  const void* v = fdt_getprop(fdt, 0, name, &len);
  return v ? static_cast<int>(static_cast<const char*>(v) - static_cast<const char*>(fdt)) : -1;
}

/// XXH64 of the FDT's totalsize bytes with the seal's state and checksum values
/// counted as zero (both properties present).
inline u64 kho_fdt_root_checksum(const void* fdt) {
  const int state = root_value_offset(fdt, kho_fdt_state), sum = root_value_offset(fdt, kho_fdt_checksum);
  return checksum_with_windows(fdt, fdt_totalsize(fdt), static_cast<u64>(state), 4, static_cast<u64>(sum), 8);
}

/// Whether blobs [a, a + an) and [b, b + bn) share a byte; an empty blob stands for the
/// byte at its address (it still names that page).
inline bool blobs_overlap(u64 a, u64 an, u64 b, u64 bn) {
  return a <= b + (bn ? bn - 1 : 0) && b <= a + (an ? an - 1 : 0);
}

/// The length of a node name before its unit address ("LUO@0" -> 3).
constexpr u64 base_name_length(const char* name) {
  u64 n = 0;
  while (name[n] != '\0' && name[n] != '@') ++n;
  return n;
}

/// Whether the kernel, asking for subtree `name`, takes the node called `node_name`:
/// libfdt's fdt_subnode_offset (kho_retrieve_subtree) matches the name itself and,
/// when `name` has no unit address, also "name@unit".
constexpr bool answers_to(const char* node_name, const char* name) {
  if (detail::same_string(node_name, name)) return true;
  const u64 n = base_name_length(name);
  if (name[n] == '@' || base_name_length(node_name) != n || node_name[n] != '@') return false;
  for (u64 i = 0; i < n; ++i)
    if (node_name[i] != name[i]) return false;
  return true;
}

/// Whether two node names agree before their unit addresses: a kernel lookup by that
/// base name would take whichever comes first, so a root holds one of them at most.
constexpr bool same_base_name(const char* a, const char* b) {
  const u64 n = base_name_length(a);
  if (base_name_length(b) != n) return false;
  for (u64 i = 0; i < n; ++i)
    if (a[i] != b[i]) return false;
  return true;
}

/// The root's child the kernel's lookup of `name` finds (answers_to, the first in the
/// FDT's order); -FDT_ERR_NOTFOUND when there is none. Complexity: O(subtrees).
inline int subtree_node(const void* fdt, const char* name) {
  int node;
  fdt_for_each_subnode(node, fdt, 0) {
    int len = 0;
    if (answers_to(fdt_get_name(fdt, node, &len), name)) return node;
  }
  return -FDT_ERR_NOTFOUND;
}

/// The root's child whose base name is `name`'s (same_base_name); -FDT_ERR_NOTFOUND
/// when there is none. Complexity: O(subtrees).
inline int base_name_node(const void* fdt, const char* name) {
  int node;
  fdt_for_each_subnode(node, fdt, 0) {
    int len = 0;
    if (same_base_name(fdt_get_name(fdt, node, &len), name)) return node;
  }
  return -FDT_ERR_NOTFOUND;
}

/// The blob subtree `node` names under root version `v`: its address from the data
/// property (fdt in kho-v1, preserved-data after), its size from blob-size (kho-v3
/// on) or from the blob's own FDT header (kho-v1; kho-v2 when the blob is an FDT).
/// Errors: not_found (a property missing), bad_count (not 8 bytes), bad_fdt (a kho-v1
/// blob that is not an FDT inside memory).
template <Memory M>
errc subtree_extent(const M& mem, const void* fdt, int node, kho_root_version v, u64& phys, u64& size,
                    bool& known) {
  int len = -1;
  const void* d = fdt_getprop(fdt, node, kho_root_data_property(v), &len);
  if (d == nullptr) return errc::not_found;
  if (len != 8) return errc::bad_count;
  phys = fdt_le64(d);
  known = true;
  if (kho_root_has_blob_size(v)) {
    const void* z = fdt_getprop(fdt, node, "blob-size", &len);
    if (z == nullptr) return errc::not_found;
    if (len != 8) return errc::bad_count;
    size = fdt_le64(z);
    return errc::ok;
  }
  // The blob may sit at any byte address: its header is copied out, not referenced as
  // a misaligned fdt_header (UBSan, fuzz_kho_fdt with a sub-FDT at an odd address).
  const void* h = mem.to_virt(phys_addr{phys}, sizeof(fdt_header));
  unsigned char head[8] = {};
  if (h != nullptr) std::memcpy(head, h, sizeof head);
  auto be32 = [&](int at) {
    return u32{head[at]} << 24 | u32{head[at + 1]} << 16 | u32{head[at + 2]} << 8 | u32{head[at + 3]};
  };
  const u64 total = h != nullptr && be32(0) == FDT_MAGIC ? be32(4) : 0;
  if (total >= sizeof(fdt_header) && mem.to_virt(phys_addr{phys}, total) != nullptr) {
    size = total;
    return errc::ok;
  }
  if (v == kho_root_version::v1) return errc::bad_fdt;
  size = 0;
  known = false;
  return errc::ok;
}

/// The map to write for root version `v` given kho's radix root `map` (a tree of
/// radix_geometry::depth levels). Where v's formula gives fewer levels (kho-v2 at
/// 16 KiB pages), the shallower tree is the root's slot-0 subtree: only it can be
/// named, and any other slot (order-0 keys need it) would be lost; an all-zero root
/// stands for itself (an empty tree at any depth). Errors: out_of_range (another slot
/// in use), out_of_bounds (the root outside memory).
template <unsigned PageShift, Memory M>
errc map_for_version(const M& mem, kho_root_version v, phys_addr& map) {
  if (!kho_root_has_radix(v) || kho_root_radix_depth(v, PageShift) >= radix_geometry<PageShift>::depth) return errc::ok;
  const u64* root = static_cast<const u64*>(mem.to_virt(map, u64{1} << PageShift));
  if (root == nullptr) return errc::out_of_bounds;
  for (u64 i = 1; i < radix_geometry<PageShift>::table_entries; ++i)
    if (detail::load_le(root + i) != 0) return errc::out_of_range;
  if (const u64 child = detail::load_le(root)) map = phys_addr{child};
  return errc::ok;
}

inline u32 le32_at(const unsigned char* p) {
  return static_cast<u32>(p[0]) | static_cast<u32>(p[1]) << 8 | static_cast<u32>(p[2]) << 16 |
         static_cast<u32>(p[3]) << 24;
}

}  // namespace impl

// ---- writer ------------------------------------------------------------------------

struct kho_fdt_options {
  // Add kho's seal and per-subtree properties. Off: the page a stock kernel writes.
  bool kho_properties = true;
  u64 generation = 1;
  // The root version written (kho_root_version.hpp): v4 by default; v3 differs only
  // in the string (and the map's depth, which is the caller's tree); v2 drops
  // blob-size; v1 names sub-FDTs by `fdt` and takes a chunk chain as the map
  // (kho_mem_chunks.hpp). `granular` writes "kho-v4;radix-v1;vmalloc-v1" (v4 only).
  kho_root_version version = kho_root_version::v4;
  bool granular = false;
};

/// Why a writer refused to describe something in an older root version: the subtree
/// (empty for the root) and the field that version cannot carry.
struct kho_fdt_refusal {
  char subtree[64] = {};
  const char* field = "";
};

/// Builds the KHO root FDT in one page from `Source` (preserved when `Source`
/// preserves what it hands out, as the kernel's kho_alloc_preserve does).
template <PageSource Source, unsigned PageShift = 12>
class kho_fdt_writer {
 public:
  using geometry = page_geometry<PageShift>;

  /// Allocates the page and writes the root: compatible, preserved-memory-map = `map`
  /// and, with kho's properties, an open seal. Errors: out_of_memory, table_full.
  /// Errors also: invalid_argument (granular with a version other than v4, or a
  /// version outside v1..v4); out_of_range / out_of_bounds (impl::map_for_version:
  /// the version's shallower radix tree cannot name `map`'s blocks; loc
  /// "preserved-memory-map", the map, depth 0).
  static result<kho_fdt_writer> create(Source& source, phys_addr map, const kho_fdt_options& opt = {}) {
    if (opt.version < kho_root_version::v1 || opt.version > kho_root_version::v4 ||
        (opt.granular && opt.version != kho_root_version::v4))
      return errc::invalid_argument;
    if (const errc e = impl::map_for_version<PageShift>(source.memory(), opt.version, map); e != errc::ok)
      return make_error(e, kho_fdt_memory_map, map, 0);
    auto pa = alloc_zeroed(source, order{0}, geometry::size);
    if (!pa) return pa.err();
    kho_fdt_writer w(source, *pa, opt.kho_properties, opt.version);
    if (const int err = w.write_root(map, opt); err != 0) {
      source.free(*pa, order{0});
      return impl::fdt_write_error(err);
    }
    return w;
  }

  /// Names the blob [phys, phys + size) as subtree `name`; `compatible` (kho's
  /// property, written only with kho's properties) names its format.
  /// Complexity: O(FDT bytes + subtrees). Errors: bad_string (name empty or with a
  /// '/'; compatible empty or too long), duplicate (a name alike before the unit
  /// address, as the view refuses), out_of_bounds (blob outside memory), aliased (overlaps the FDT page or another blob),
  /// table_full (the page is full), out_of_range (the root's version cannot describe
  /// the blob: kho-v1 names only FDTs, and neither kho-v1 nor kho-v2 records a size,
  /// so a blob whose size is not its FDT header's totalsize would lose it; loc: the
  /// field, the blob, depth 1; refusal() names the subtree and the field).
  status add(const char* name, phys_addr phys, u64 size, const char* compatible = nullptr) {
    if (name == nullptr || name[0] == '\0' || detail::contains_char(name, '/')) return errc::bad_string;
    const u64 clen = compatible ? detail::bounded_length(compatible, kho_fdt_compatible_len) : 0;
    if (compatible != nullptr && (clen == 0 || clen == kho_fdt_compatible_len)) return errc::bad_string;
    if (impl::base_name_node(fdt(), name) >= 0) return errc::duplicate;
    if (source_->memory().to_virt(phys, size ? size : 1) == nullptr) return errc::out_of_bounds;
    KHO_TRY(check_describable(name, phys, size));
    if (overlaps_any(phys, size)) return errc::aliased;
    reopen();
    unsigned char data[8], bytes[8];
    impl::fdt_put_le64(data, phys.value);
    impl::fdt_put_le64(bytes, size);
    int err = fdt_open_into(fdt(), fdt(), static_cast<int>(geometry::size));
    const int node = err ? err : fdt_add_subnode(fdt(), 0, name);
    err = node < 0 ? node : fdt_setprop(fdt(), node, kho_root_data_property(version_), data, 8);
    if (!err && kho_root_has_blob_size(version_)) err = fdt_setprop(fdt(), node, kho_fdt_size, bytes, 8);
    if (!err && kho_ && compatible != nullptr)
      err = fdt_setprop(fdt(), node, kho_fdt_blob_compatible, compatible, static_cast<int>(clen + 1));
    const unsigned char unsealed[8] = {};  // the seal writes it in place
    if (!err && kho_) err = fdt_setprop(fdt(), node, kho_fdt_blob_checksum, unsealed, 8);
    if (err != 0 && node >= 0) fdt_del_node(fdt(), node);
    fdt_pack(fdt());
    return err ? impl::fdt_write_error(err) : status{};
  }

  /// Removes subtree `name` (the kernel's kho_remove_subtree). Errors: not_found.
  status remove(const char* name) {
    const int node = impl::subtree_node(fdt(), name);
    if (node < 0) return errc::not_found;
    reopen();
    fdt_del_node(fdt(), node);
    fdt_pack(fdt());
    return {};
  }

  /// Records a structure-defined checksum of everything subtree `name` reaches, for
  /// its reader to verify. Errors: not_found, invalid_argument (no kho properties),
  /// table_full.
  status set_deep_checksum(const char* name, u64 sum) {
    if (!kho_) return errc::invalid_argument;
    if (impl::subtree_node(fdt(), name) < 0) return errc::not_found;
    reopen();
    int err = fdt_open_into(fdt(), fdt(), static_cast<int>(geometry::size));
    const int node = impl::subtree_node(fdt(), name);
    unsigned char v[8];
    impl::fdt_put_le64(v, sum);
    if (!err) err = fdt_setprop(fdt(), node, kho_fdt_blob_deep_checksum, v, 8);
    fdt_pack(fdt());
    return err ? impl::fdt_write_error(err) : status{};
  }

  /// Records the preserved-memory map's deep checksum (preserve_bitmap::deep_checksum)
  /// for the whole-handover check to verify: the map itself carries no checksum.
  /// Call after the map's last change. Errors: invalid_argument (no kho properties),
  /// table_full.
  status set_memory_map_checksum(u64 sum) {
    if (!kho_) return errc::invalid_argument;
    reopen();
    unsigned char v[8];
    impl::fdt_put_le64(v, sum);
    int err = fdt_open_into(fdt(), fdt(), static_cast<int>(geometry::size));
    if (!err) err = fdt_setprop(fdt(), 0, kho_fdt_map_checksum, v, 8);
    fdt_pack(fdt());
    return err ? impl::fdt_write_error(err) : status{};
  }

  /// Re-points preserved-memory-map (the radix root moved, or kho-v1's chunk chain was
  /// written); drops its deep checksum. Errors: those of impl::map_for_version.
  status set_memory_map(phys_addr map) {
    if (const errc e = impl::map_for_version<PageShift>(source_->memory(), version_, map); e != errc::ok)
      return make_error(e, kho_fdt_memory_map, map, 0);
    reopen();
    unsigned char v[8];
    impl::fdt_put_le64(v, map.value);
    fdt_setprop_inplace(fdt(), 0, kho_fdt_memory_map, v, 8);
    if (kho_) fdt_delprop(fdt(), 0, kho_fdt_map_checksum);
    return {};
  }

  /// Checksums every subtree's blob, then the root, then publishes SEALED with
  /// release ordering; `on_step` sees each step (crash injection). Without kho's
  /// properties there is nothing to seal (a stock kernel seals nothing).
  /// Complexity: O(FDT bytes + blob bytes). Errors: out_of_bounds (a blob vanished).
  template <class OnStep>
  status seal(OnStep&& on_step) {
    if (!kho_) return {};
    store_state(handover_state::sealing);
    on_step(seal_step::began);
    int node;
    fdt_for_each_subnode(node, fdt(), 0) {
      u64 phys = 0, size = 0;
      bool known = false;
      if (impl::subtree_extent(source_->memory(), fdt(), node, version_, phys, size, known) != errc::ok)
        return errc::out_of_bounds;
      const void* blob = source_->memory().to_virt(phys_addr{phys}, size ? size : 1);
      if (blob == nullptr) return errc::out_of_bounds;
      unsigned char v[8];
      impl::fdt_put_le64(v, checksum(blob, size));
      fdt_setprop_inplace(fdt(), node, kho_fdt_blob_checksum, v, 8);
    }
    on_step(seal_step::entries_checksummed);
    unsigned char sum[8];
    impl::fdt_put_le64(sum, impl::kho_fdt_root_checksum(fdt()));
    fdt_setprop_inplace(fdt(), 0, kho_fdt_checksum, sum, 8);
    on_step(seal_step::root_checksummed);
    store_state(handover_state::sealed);
    on_step(seal_step::published);
    return {};
  }
  status seal() {
    return seal([](seal_step) {});
  }

  phys_addr root() const { return pa_; }
  kho_root_version version() const { return version_; }
  /// The subtree and field of the last out_of_range refusal of add().
  const kho_fdt_refusal& refusal() const { return refusal_; }
  /// What kho_data.fdt_size carries: the page, as the kernel passes it.
  static constexpr u64 size() { return geometry::size; }
  bool sealed() const {
    return kho_ && __atomic_load_n(state_word(), __ATOMIC_ACQUIRE) ==
                       detail::to_little(static_cast<u32>(handover_state::sealed));
  }

 private:
  kho_fdt_writer(Source& source, phys_addr pa, bool kho, kho_root_version v)
      : source_(&source), pa_(pa), kho_(kho), version_(v) {}

  // kho-v1 and kho-v2 record no size: only an FDT whose header gives back `size` can
  // be described without losing it, and kho-v1's property names only FDTs.
  status check_describable(const char* name, phys_addr phys, u64 size) {
    if (kho_root_has_blob_size(version_)) return {};
    const void* h = size >= sizeof(fdt_header) ? source_->memory().to_virt(phys, size) : nullptr;
    const bool is_fdt = h != nullptr && fdt_magic(h) == FDT_MAGIC;
    if (is_fdt && fdt_totalsize(h) == size) return {};
    const char* field = version_ == kho_root_version::v1 && !is_fdt ? "fdt" : kho_fdt_size;
    refusal_ = kho_fdt_refusal{};
    refusal_.field = field;
    for (u64 i = 0; i + 1 < sizeof refusal_.subtree && name[i] != '\0'; ++i) refusal_.subtree[i] = name[i];
    return make_error(errc::out_of_range, field, phys, 1);
  }

  void* fdt() const { return source_->memory().to_virt(pa_, geometry::size); }

  int write_root(phys_addr map, const kho_fdt_options& opt) {
    void* f = fdt();
    unsigned char v[8];
    impl::fdt_put_le64(v, map.value);
    int err = fdt_create(f, static_cast<int>(geometry::size));
    if (!err) err = fdt_finish_reservemap(f);
    if (!err) err = fdt_begin_node(f, "");
    kho_root_compat c;
    c.version = opt.version;
    c.granular = opt.granular;
    const char* compatible = kho_root_compatible(c);
    // fdt_property_string would call strlen, which a kernel-shim build does not link.
    const int clen = static_cast<int>(detail::bounded_length(compatible, kho_root_compatible_max + 1)) + 1;
    if (!err) err = fdt_property(f, "compatible", compatible, clen);
    if (!err) err = fdt_property(f, kho_fdt_memory_map, v, 8);
    if (!err && kho_) {
      unsigned char gen[8], state[4] = {}, zero[8] = {};
      impl::fdt_put_le64(gen, opt.generation);
      impl::fdt_put_le64(v, static_cast<u64>(handover_state::open));
      std::memcpy(state, v, 4);
      err = fdt_property(f, kho_fdt_generation, gen, 8);
      if (!err) err = fdt_property(f, kho_fdt_state, state, 4);
      if (!err) err = fdt_property(f, kho_fdt_checksum, zero, 8);
    }
    if (!err) err = fdt_end_node(f);
    if (!err) err = fdt_finish(f);
    return err;
  }

  u32* state_word() const {
    // FDT property values are 4-byte aligned: the word can be stored atomically.
    return reinterpret_cast<u32*>(static_cast<char*>(fdt()) + impl::root_value_offset(fdt(), kho_fdt_state));
  }
  void store_state(handover_state s) {
    __atomic_store_n(state_word(), detail::to_little(static_cast<u32>(s)), __ATOMIC_RELEASE);
  }
  void reopen() {
    if (kho_) store_state(handover_state::open);
  }

  bool overlaps_any(phys_addr phys, u64 size) const {
    if (impl::blobs_overlap(phys.value, size, pa_.value, geometry::size)) return true;
    int node;
    fdt_for_each_subnode(node, fdt(), 0) {
      u64 p = 0, n = 0;
      bool known = false;
      if (impl::subtree_extent(source_->memory(), fdt(), node, version_, p, n, known) != errc::ok) continue;
      if (impl::blobs_overlap(phys.value, size, p, n)) return true;
    }
    return false;
  }

  Source* source_;
  phys_addr pa_;
  bool kho_;
  kho_root_version version_;
  kho_fdt_refusal refusal_{};
};

// ---- reader ------------------------------------------------------------------------

/// A validated view of a KHO root FDT. The FDT is read where it lies: in memory at its
/// physical address, or in a caller's buffer (an FDT saved from debugfs), in which
/// case it owns no page of memory.
template <Memory M, unsigned PageShift = 12>
class kho_fdt_view {
 public:
  using geometry = page_geometry<PageShift>;
  static constexpr const char* structure = "kho-fdt";

  /// Validates the root FDT at `pa`, `size` bytes (kho_data.fdt_size: a page).
  /// Errors at `pa` (depth 0): misaligned, out_of_range (size over a page),
  /// out_of_bounds, then those of attach_bytes.
  static result<kho_fdt_view> attach(const M& mem, phys_addr pa, u64 size = geometry::size) {
    auto fail = [pa](errc c) { return make_error(c, structure, pa, 0); };
    if (!geometry::is_aligned(pa)) return fail(errc::misaligned);
    if (size > geometry::size) return fail(errc::out_of_range);
    const void* fdt = mem.to_virt(pa, size);
    if (fdt == nullptr || size == 0) return fail(errc::out_of_bounds);
    return attach_bytes(mem, fdt, size, pa);
  }

  /// Validates the FDT in [fdt, fdt + size), which lies at `pa` in memory (zero: it
  /// lies outside memory, in a caller's buffer). Errors at pa (depth 0; at a subtree:
  /// pa + its node offset, depth 1):
  /// bad_fdt (a version below 17; libfdt refuses the blob; a subtree with children;
  /// a kho-v1 subtree that names no FDT), bad_compatible / bad_version / bad_string /
  /// duplicate (the root compatible: parse_kho_root_compatible's code),
  /// not_found (no preserved-memory-map, or it is zero; a subtree without
  /// preserved-data or blob-size), bad_count (one of those not 8 bytes; a kho
  /// property of the wrong size), not_sealed / torn / bad_checksum (kho's seal;
  /// not_sealed also for kho checksums under a root without the seal),
  /// reserved_nonzero (an unknown kho property), bad_string (kho,compatible),
  /// bad_count also for a kho-v2 blob of unknown size under kho's seal,
  /// duplicate (a name twice, or two names alike before their unit addresses, such
  /// as "LUO@0" and "LUO": the kernel would read the first for both), out_of_bounds
  /// (a blob outside memory), aliased (a blob overlaps the FDT's page or another blob;
  /// error.other names the first).
  static result<kho_fdt_view> attach_bytes(const M& mem, const void* fdt, u64 size, phys_addr pa = {}) {
    kho_fdt_view v(mem, fdt, pa);
    if (status s = v.validate(size); !s) return s.err();
    return v;
  }

  /// Calls f(kho_subtree) for every subtree, in the FDT's order. Complexity: O(subtrees).
  template <class F>
  void for_each(F&& f) const {
    int node;
    fdt_for_each_subnode(node, fdt_, 0) f(subtree(node));
  }

  /// Subtree `name` as the kernel's kho_retrieve_subtree finds it: the node called
  /// `name` or, for a name without a unit address, "name@unit" (libfdt's
  /// fdt_subnode_offset). attach refused roots in which two nodes share a base name,
  /// so there is one candidate at most. Complexity: O(subtrees). Errors: not_found.
  result<kho_subtree> find(const char* name) const {
    const int node = impl::subtree_node(fdt_, name);
    if (node < 0) return errc::not_found;
    return subtree(node);
  }

  /// Claims the FDT's page for {"kho-fdt", pa}, unless it lies outside memory.
  template <class Owners>
  status claim_pages(Owners& owners) const {
    return pa_ ? owners.claim(pa_, 1, page_owner{structure, pa_}) : status{};
  }

  /// The preserved-memory map: a radix root (kho-v2 on) or the first chunk of a
  /// kho-v1 chain (0: none).
  phys_addr memory_map() const { return map_; }
  kho_root_version version() const { return compat_.version; }
  /// The parsed root compatible (granular components included).
  const kho_root_compat& compat() const { return compat_; }
  /// Whether kho's seal is present (and verified); false for what a stock kernel wrote.
  bool kho_sealed() const { return sealed_; }
  /// kho,map-xxh64, if the seal carries it: what the map's deep_checksum() must be.
  bool has_memory_map_checksum() const { return has_map_checksum_; }
  u64 memory_map_checksum() const { return map_checksum_; }
  u64 generation() const { return generation_; }
  u64 count() const { return count_; }
  phys_addr address() const { return pa_; }
  const void* blob() const { return fdt_; }
  const M& memory() const { return mem_; }

 private:
  kho_fdt_view(const M& mem, const void* fdt, phys_addr pa) : mem_(mem), fdt_(fdt), pa_(pa) {}

  error fail(errc c, int node = 0) const {
    return make_error(c, structure, pa_ + static_cast<u64>(node), node ? 1 : 0);
  }

  status validate(u64 size) {
    if (impl::fdt_check_untrusted(fdt_, size) != 0) return fail(errc::bad_fdt);
    KHO_TRY(check_compatible());
    bool found = false, sized = false;
    const unsigned char* map = impl::fixed_prop(fdt_, 0, kho_fdt_memory_map, 8, found, sized);
    if (!found) return fail(errc::not_found);
    if (!sized) return fail(errc::bad_count);
    map_ = phys_addr{impl::fdt_le64(map)};
    // kho-v1's kernel writes 0 until kexec time and reads 0 as "no chunk"; a radix
    // root always exists.
    if (!map_ && kho_root_has_radix(compat_.version)) return fail(errc::not_found);
    KHO_TRY(check_seal());
    int node;
    fdt_for_each_subnode(node, fdt_, 0) {
      KHO_TRY(check_subtree(node));
      ++count_;
    }
    if (node != -FDT_ERR_NOTFOUND) return fail(errc::bad_fdt);
    return {};
  }

  // The root's compatible is a string list (fdt_node_check_compatible matches any
  // member): the first member this reader parses decides; if none does, the first
  // member's error, at the root.
  status check_compatible() {
    int len = -1;
    const char* list = static_cast<const char*>(fdt_getprop(fdt_, 0, "compatible", &len));
    if (list == nullptr || len <= 0) return fail(errc::bad_compatible);
    error first{};
    for (int off = 0; off < len;) {
      const u64 n = detail::bounded_length(list + off, static_cast<u64>(len - off));
      const error e = parse_kho_root_compatible_into(list + off, static_cast<u64>(len - off), compat_);
      if (e.code == errc::ok) return {};
      if (off == 0) first = e;
      off += static_cast<int>(n) + 1;
    }
    compat_ = kho_root_compat{};
    return fail(first.code);
  }

  status check_seal() {
    bool any = false;
    for (int p = fdt_first_property_offset(fdt_, 0); p >= 0; p = fdt_next_property_offset(fdt_, p)) {
      const char* name = nullptr;
      int len = 0;
      fdt_getprop_by_offset(fdt_, p, &name, &len);
      if (name == nullptr || !impl::is_kho_property(name)) continue;
      if (!detail::same_string(name, kho_fdt_generation) && !detail::same_string(name, kho_fdt_state) &&
          !detail::same_string(name, kho_fdt_checksum) && !detail::same_string(name, kho_fdt_map_checksum))
        return fail(errc::reserved_nonzero);
      any = true;
    }
    if (!any) return {};
    bool f1, s1, f2, s2, f3, s3;
    const unsigned char* gen = impl::fixed_prop(fdt_, 0, kho_fdt_generation, 8, f1, s1);
    const unsigned char* state = impl::fixed_prop(fdt_, 0, kho_fdt_state, 4, f2, s2);
    const unsigned char* sum = impl::fixed_prop(fdt_, 0, kho_fdt_checksum, 8, f3, s3);
    if (!f1 || !f2 || !f3) return fail(errc::not_found);
    if (!s1 || !s2 || !s3) return fail(errc::bad_count);
    const u32 s = impl::le32_at(state);
    if (s == static_cast<u32>(handover_state::open)) return fail(errc::not_sealed);
    if (s != static_cast<u32>(handover_state::sealed)) return fail(errc::torn);
    if (impl::kho_fdt_root_checksum(fdt_) != impl::fdt_le64(sum)) return fail(errc::bad_checksum);
    generation_ = impl::fdt_le64(gen);
    sealed_ = true;
    int len = -1;
    if (const void* m = fdt_getprop(fdt_, 0, kho_fdt_map_checksum, &len)) {
      if (len != 8) return fail(errc::bad_count);
      has_map_checksum_ = true;
      map_checksum_ = impl::fdt_le64(m);
    }
    return {};
  }

  status check_subtree(int node) {
    if (fdt_first_subnode(fdt_, node) != -FDT_ERR_NOTFOUND) return fail(errc::bad_fdt, node);
    u64 phys = 0, size = 0;
    bool known = false;
    if (const errc e = impl::subtree_extent(mem_, fdt_, node, compat_.version, phys, size, known); e != errc::ok)
      return fail(e, node);
    KHO_TRY(check_kho_properties(node));
    const kho_subtree t = subtree(node);
    const void* blob = mem_.to_virt(t.phys, t.size ? t.size : 1);
    if (blob == nullptr) return fail(errc::out_of_bounds, node);
    // kho's checksum covers a size the root must know.
    if (sealed_ && !t.size_known) return fail(errc::bad_count, node);
    KHO_TRY(check_unique(node, t));
    if (sealed_ && t.checksum != checksum(blob, t.size)) return fail(errc::bad_checksum, node);
    return {};
  }

  status check_kho_properties(int node) {
    for (int p = fdt_first_property_offset(fdt_, node); p >= 0; p = fdt_next_property_offset(fdt_, p)) {
      const char* name = nullptr;
      int len = 0;
      const void* v = fdt_getprop_by_offset(fdt_, p, &name, &len);
      if (name == nullptr || !impl::is_kho_property(name)) continue;
      if (detail::same_string(name, kho_fdt_blob_compatible)) {
        // One NUL-terminated string, nothing after it, that fits a kho-root-v1 entry.
        const u64 n = len > 0 ? static_cast<u64>(len) : 0;
        const char* s = static_cast<const char*>(v);
        if (n < 2 || n > kho_fdt_compatible_len || s[n - 1] != '\0' || detail::bounded_length(s, n) != n - 1)
          return fail(errc::bad_string, node);
        continue;
      }
      if (!detail::same_string(name, kho_fdt_blob_checksum) && !detail::same_string(name, kho_fdt_blob_deep_checksum))
        return fail(errc::reserved_nonzero, node);
      if (len != 8) return fail(errc::bad_count, node);
      if (!sealed_) return fail(errc::not_sealed, node);
    }
    int len = 0;
    if (sealed_ && fdt_getprop(fdt_, node, kho_fdt_blob_checksum, &len) == nullptr)
      return fail(errc::not_found, node);
    return {};
  }

  // Names are unique up to their unit addresses (the kernel's lookup ignores them)
  // and blobs disjoint from the FDT's page and from each other: O(subtrees) per
  // subtree, and a page holds at most a few hundred.
  status check_unique(int node, const kho_subtree& t) const {
    if (pa_ && impl::blobs_overlap(t.phys.value, t.size, pa_.value, geometry::size)) {
      error e = fail(errc::aliased, node);
      e.other = where{structure, pa_, 0};
      return e;
    }
    int other;
    fdt_for_each_subnode(other, fdt_, 0) {
      if (other >= node) break;
      const kho_subtree o = subtree(other);
      if (impl::same_base_name(o.name, t.name)) return fail(errc::duplicate, node);
      if (impl::blobs_overlap(t.phys.value, t.size, o.phys.value, o.size)) {
        error e = fail(errc::aliased, node);
        e.other = where{structure, pa_ + static_cast<u64>(other), 1};
        return e;
      }
    }
    return {};
  }

  kho_subtree subtree(int node) const {
    int len = 0;
    kho_subtree t;
    t.name = fdt_get_name(fdt_, node, &len);
    u64 phys = 0;
    impl::subtree_extent(mem_, fdt_, node, compat_.version, phys, t.size, t.size_known);
    t.phys = phys_addr{phys};
    t.compatible = static_cast<const char*>(fdt_getprop(fdt_, node, kho_fdt_blob_compatible, &len));
    if (const void* s = fdt_getprop(fdt_, node, kho_fdt_blob_checksum, &len); s && len == 8) {
      t.has_checksum = true;
      t.checksum = impl::fdt_le64(s);
    }
    if (const void* s = fdt_getprop(fdt_, node, kho_fdt_blob_deep_checksum, &len); s && len == 8) {
      t.has_deep_checksum = true;
      t.deep_checksum = impl::fdt_le64(s);
    }
    return t;
  }

  M mem_;
  const void* fdt_;
  phys_addr pa_;
  kho_root_compat compat_{};
  phys_addr map_{};
  u64 generation_ = 0;
  u64 map_checksum_ = 0;
  u64 count_ = 0;
  bool sealed_ = false;
  bool has_map_checksum_ = false;
};

/// Attaches with the Memory type deduced.
template <unsigned PageShift = 12, Memory M>
result<kho_fdt_view<M, PageShift>> attach_kho_fdt(const M& mem, phys_addr pa,
                                                  u64 size = page_geometry<PageShift>::size) {
  return kho_fdt_view<M, PageShift>::attach(mem, pa, size);
}

}  // namespace kho::upstream
