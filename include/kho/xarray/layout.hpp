// kho/xarray/layout.hpp: the wire layout and page geometry of the KHO xarray: the root
// block, the node header, where every byte of a node is, and the entry type.
//
// See kho/xarray.hpp for the picture and the invariants; this file only says where
// every byte is. Nodes are addressed through "refs": a node's physical address with
// its kind in bits 0-1 and, for compact leaves, the log2 of the run of parent slots it
// covers in bits 2-6 (a node is page-aligned, so the low PAGE_SHIFT bits are free).
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/phys.hpp>

#include <bit>
#include <cstddef>
#include <cstring>
#include <type_traits>

namespace kho {

/// One of the three marks an xarray entry carries (the kernel's XA_MARK_0..2).
enum class xa_mark : u8 { mark0 = 0, mark1 = 1, mark2 = 2 };
inline constexpr unsigned xa_mark_count = 3;

namespace detail {

inline constexpr u32 xa_branch_magic = 0x31424158;   // "XAB1"
inline constexpr u32 xa_compact_magic = 0x31434158;  // "XAC1"
inline constexpr u32 xa_side_magic = 0x31534158;     // "XAS1"

enum xa_kind : u64 { xa_null = 0, xa_branch = 1, xa_compact = 2, xa_dense = 3 };
inline constexpr u64 xa_kind_mask = 3;
inline constexpr unsigned xa_run_shift = 2;
inline constexpr u64 xa_run_mask = 31;  // runs up to 2^12 slots (64 KiB pages); 5 bits

/// The 64-byte header of branches, compact leaves and side nodes (dense leaves have none).
struct xa_node_header {
  le32 magic;
  u8 level;     // branch: its level (>= 1); compact leaf: level of the branch it hangs off
  u8 shift;     // log2 of the index range the node covers (<= 64)
  u8 marks;     // bit m: some entry below carries mark m
  u8 reserved0;
  le32 count;   // compact: records; branch: non-null slots; side: 0
  le32 reserved1;
  le64 base;    // first index the node covers
  le64 entries; // branch: entries in the subtree; compact: = count; side: 0
  le64 reserved[4];
};
static_assert(sizeof(xa_node_header) == 64);
static_assert(offsetof(xa_node_header, level) == 4);
static_assert(offsetof(xa_node_header, count) == 8);
static_assert(offsetof(xa_node_header, base) == 16);
static_assert(offsetof(xa_node_header, entries) == 24);
static_assert(std::has_unique_object_representations_v<xa_node_header>);

/// Sizes and offsets for one (Value, PageShift) pair. Every constant is derived from
/// the page size and the value size, so one format serves 4 KiB to 64 KiB pages.
template <class Value, unsigned PageShift>
struct xa_geometry {
  static_assert(std::is_trivially_copyable_v<Value>, "values are copied as bytes");
  static_assert(std::has_unique_object_representations_v<Value>,
                "no padding: the all-zero value means absent and bytes are compared");
  static_assert(sizeof(Value) >= 4 && sizeof(Value) <= 16 && std::has_single_bit(sizeof(Value)),
                "values of 4, 8 or 16 bytes");
  static_assert(PageShift >= 12 && PageShift <= 16, "4 KiB to 64 KiB pages");

  static constexpr u64 page = u64{1} << PageShift;
  static constexpr u64 page_mask = page - 1;
  static constexpr u64 value_size = sizeof(Value);

  // Dense leaf: a page of values and nothing else, so a dense u64 map costs 8 bytes per
  // entry plus its branches (1/256 of that). 512 slots with 4 KiB pages and u64.
  static constexpr unsigned leaf_bits = PageShift - std::countr_zero(sizeof(Value));
  static constexpr u64 leaf_slots = u64{1} << leaf_bits;

  // Branch: 16 bytes of page per slot (8 for the ref, the rest for the mark summary,
  // the dense-leaf counts and the side-node refs). 256 slots with 4 KiB pages.
  static constexpr unsigned branch_bits = PageShift - 4;
  static constexpr u64 fanout = u64{1} << branch_bits;
  static constexpr unsigned max_height = (64 - leaf_bits + branch_bits - 1) / branch_bits;

  // Side node: marks 0-2 and the "tail" bit (slot continues a multi-order entry) of the
  // dense leaves of `side_group` consecutive slots of a level-1 branch; 8 leaves per
  // page with 4 KiB pages and u64. Allocated only where a dense leaf has a mark or range.
  static constexpr u64 side_bitmap_bytes = leaf_slots / 8;
  static constexpr u64 side_leaf_bytes = 4 * side_bitmap_bytes;
  static constexpr u64 side_group = std::bit_floor((page - 64) / side_leaf_bytes);
  static constexpr u64 side_count = fanout / side_group;

  // Compact leaf: sorted (first index, order, marks, value) records in separate arrays,
  // so the binary search touches keys only. 224 records with 4 KiB pages and u64.
  static constexpr u64 compact_capacity = (page - 64) / (8 + value_size + 2);

  // Branch offsets.
  static constexpr u64 summary_words = fanout / 64;  // per mark
  static constexpr u64 summary_off = 64;
  static constexpr u64 dense_count_off = summary_off + xa_mark_count * fanout / 8;
  static constexpr u64 side_off = dense_count_off + 2 * fanout;
  static constexpr u64 slots_off = side_off + 8 * side_count;
  static constexpr u64 branch_end = slots_off + 8 * fanout;
  static_assert(branch_end <= page);

  // Compact-leaf offsets.
  static constexpr u64 keys_off = 64;
  static constexpr u64 values_off = keys_off + 8 * compact_capacity;
  static constexpr u64 orders_off = values_off + value_size * compact_capacity;
  static constexpr u64 marks_off = orders_off + compact_capacity;
  static constexpr u64 compact_end = marks_off + compact_capacity;
  static_assert(compact_end <= page);
  static_assert(side_group >= 1 && side_count >= 1 && leaf_slots <= 65535 + 1);

  /// log2 of the index range below a node at level h (0 = a dense leaf's range).
  static constexpr unsigned cover(unsigned h) {
    const u64 c = leaf_bits + u64{h} * branch_bits;
    return c >= 64 ? 64 : static_cast<unsigned>(c);
  }
  /// log2 of the index range behind one slot of a branch at level h >= 1.
  static constexpr unsigned slot_bits(unsigned h) { return leaf_bits + (h - 1) * branch_bits; }
  /// log2 of the slots in use at level h: fewer than fanout at the top, where the
  /// 64-bit index runs out (128 of 256 at level 7 with 4 KiB pages and u64).
  static constexpr unsigned slot_log(unsigned h) { return cover(h) - slot_bits(h); }
  /// The lowest height whose range holds `last`.
  static constexpr unsigned height_for(u64 last) {
    unsigned h = 0;
    while (cover(h) < 64 && (last >> cover(h)) != 0) ++h;
    return h;
  }
  /// 2^bits - 1 without the undefined shift at 64.
  static constexpr u64 span_mask(unsigned bits) { return bits >= 64 ? ~u64{0} : (u64{1} << bits) - 1; }
};

// ---- raw node access ------------------------------------------------------------------
// Nodes are byte arrays reached through the Memory policy; these read and write their
// fields with memcpy so that no alignment or aliasing assumption leaks in.

inline xa_node_header& header(unsigned char* node) { return *reinterpret_cast<xa_node_header*>(node); }
inline const xa_node_header& header(const unsigned char* node) {
  return *reinterpret_cast<const xa_node_header*>(node);
}
/// A little-endian unsigned field at any byte offset.
template <class T>
T get_le(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return to_little(v);
}
template <class T>
void put_le(unsigned char* p, T v) {
  v = to_little(v);
  std::memcpy(p, &v, sizeof v);
}
inline u64 get64(const unsigned char* p) { return get_le<u64>(p); }
inline void put64(unsigned char* p, u64 v) { put_le<u64>(p, v); }
inline u16 get16(const unsigned char* p) { return get_le<u16>(p); }
inline void put16(unsigned char* p, u16 v) { put_le<u16>(p, v); }
inline bool test_bit(const unsigned char* bitmap, u64 n) {
  return (get64(bitmap + (n / 64) * 8) >> (n % 64)) & 1;
}
inline void assign_bit(unsigned char* bitmap, u64 n, bool on) {
  unsigned char* w = bitmap + (n / 64) * 8;
  const u64 bit = u64{1} << (n % 64);
  put64(w, on ? (get64(w) | bit) : (get64(w) & ~bit));
}
/// Clears bits [first, last] of a bitmap.
inline void clear_bits(unsigned char* bitmap, u64 first, u64 last) {
  for (u64 n = first; n <= last; ++n) assign_bit(bitmap, n, false);
}
inline bool any_bits(const unsigned char* p, u64 bytes) {
  for (u64 i = 0; i < bytes; i += 8)
    if (get64(p + i) != 0) return true;
  return false;
}

template <class Value>
bool is_zero_value(const Value& v) {
  unsigned char zero[sizeof(Value)] = {};
  return std::memcmp(&v, zero, sizeof(Value)) == 0;
}

/// Sum and mixed sum of node addresses: a fingerprint of the node set, kept by the
/// writer in the root and compared by attach as a cheap consistency check. It is no
/// proof of a tree (a hostile writer recomputes it for any graph); attach's visited set
/// is. splitmix64's finalizer as the mix.
inline u64 xa_mix(u64 x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace detail

// ---- the root block --------------------------------------------------------------------

inline constexpr u64 xarray_magic = 0x31525241584f484bULL;  // "KHOXARR1" little-endian
inline constexpr const char* xarray_compatible = "kho-xarray-v1";
inline constexpr u16 xarray_version_major = 1;
inline constexpr u16 xarray_version_minor = 0;

/// What a handover entry points at: the whole state of one xarray.
struct xarray_root {
  detail::le64 magic;
  char compatible[16];           // "kho-xarray-v1", NUL-padded
  detail::le16 version_major;
  detail::le16 version_minor;
  detail::le16 page_shift;
  detail::le16 value_size;
  detail::le32 height;           // the root node covers [0, 2^cover(height))
  detail::le32 marks;            // bit m: some entry carries mark m
  detail::le64 root;             // ref of the root node (0: empty)
  detail::le64 count;            // entries (a multi-order entry counts once)
  detail::le64 nodes;            // node pages, the root block excluded
  detail::le64 address_sum;      // sum of node addresses, mod 2^64
  detail::le64 address_mix;      // sum of xa_mix(node address), mod 2^64
  detail::le64 checksum;         // XXH64 of these 128 bytes, this field counted as zero
  detail::le64 reserved[5];
};
static_assert(sizeof(xarray_root) == 128);
static_assert(offsetof(xarray_root, compatible) == 8);
static_assert(offsetof(xarray_root, version_major) == 24);
static_assert(offsetof(xarray_root, page_shift) == 28);
static_assert(offsetof(xarray_root, value_size) == 30);
static_assert(offsetof(xarray_root, height) == 32);
static_assert(offsetof(xarray_root, root) == 40);
static_assert(offsetof(xarray_root, count) == 48);
static_assert(offsetof(xarray_root, nodes) == 56);
static_assert(offsetof(xarray_root, address_sum) == 64);
static_assert(offsetof(xarray_root, checksum) == 80);
static_assert(std::has_unique_object_representations_v<xarray_root>);

/// One entry: `value` at every index of [index, index + 2^span).
template <class Value>
struct xarray_entry {
  u64 index = 0;
  order span{};
  u8 marks = 0;  // bit m: mark m
  Value value{};

  u64 last() const { return index + ((u64{1} << span.value) - 1); }
  bool marked(xa_mark m) const { return (marks >> static_cast<unsigned>(m)) & 1; }
};

}  // namespace kho
