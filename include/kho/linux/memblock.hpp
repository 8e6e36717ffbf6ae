// kho/linux/memblock.hpp: Linux's "memblock" KHO subtree: the named `reserve_mem=`
// regions that keep their physical address across kexec, as a one-page device tree.
//
// Upstream: include/linux/kho/abi/memblock.h (torvalds c17ee635) and mm/memblock.c;
// shared/LINUX-FORMATS.md, section 8. The blob is a flattened device tree (built and
// read with libfdt; the kernel links its own copy) in one preserved page, named
// "memblock" in the KHO root with blob-size = fdt_totalsize.
//
//   / { compatible = "memblock-v1";
//       <region name> { compatible = "reserve-mem-v1";
//                       start = [8 bytes, little-endian u64];
//                       size  = [8 bytes, little-endian u64]; };
//       ... };
//   start and size are CPU-order u64s copied into the property (fdt_property of a
//   u64), not big-endian cells, despite the header's example.
//
// Reader (memblock_view::attach): version at least 17, fdt_check_full on the blob before any other libfdt
// call (the blob is untrusted); root compatible "memblock-v1"; each child compatible
// "reserve-mem-v1" with `start` and `size` of exactly 8 bytes. kho's own: the blob
// page-aligned, inside memory and at most one page (the kernel writes one page), each
// region page-aligned, non-empty and not wrapping (the kernel preserves it as
// size >> PAGE_SHIFT pages from start), region names unique.
//
// Complexity: write O(regions); attach O(blob bytes + regions^2) with regions bounded
// by what fits in one page (the name check compares pairs); no scratch.
#pragma once

#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstring>

#include <libfdt.h>

namespace kho::upstream {

inline constexpr const char* memblock_subtree = "memblock";
inline constexpr char memblock_compatible[] = "memblock-v1";
inline constexpr char reserve_mem_compatible[] = "reserve-mem-v1";

/// One named region, as the writer takes it and the reader hands it back.
struct reserve_mem_region {
  const char* name = "";
  phys_addr start{};
  u64 size = 0;
};

/// What the KHO root names for the subtree: the FDT page and fdt_totalsize.
struct memblock_blob {
  phys_addr phys{};
  u64 size = 0;
};

namespace impl {

/// libfdt's error for "out of room" is a full table; anything else a bad argument.
inline errc fdt_write_error(int err) {
  return err == -FDT_ERR_NOSPACE ? errc::table_full : errc::invalid_argument;
}

inline u64 fdt_le64(const void* p) {
  const auto* b = static_cast<const unsigned char*>(p);
  u64 v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | b[i];
  return v;
}
inline void fdt_put_le64(unsigned char* b, u64 v) {
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
}

// A node name (len bytes, no NUL among them) equals the C string `name`; stops at
// name's NUL, so a shorter name is never read past.
inline bool same_name(const char* s, int len, const char* name) {
  for (int i = 0; i < len; ++i)
    if (name[i] != s[i]) return false;
  return name[len] == '\0';
}

// libfdt's full check of an untrusted tree, behind a gate on the header's version:
// libfdt 1.6.1 (bookworm's) dereferences NULL inside fdt_check_full on some trees of
// version below 16 (names as full paths), and below 17 its offset checks skip
// size_dt_struct. libfdt's writers (the kernel's, kho's) write version 17, so an
// older one is refused before libfdt reads past the header.
inline int fdt_check_untrusted(const void* fdt, u64 size) {
  if (size < sizeof(fdt_header) || fdt_magic(fdt) != FDT_MAGIC || fdt_version(fdt) < 17)
    return -FDT_ERR_BADVERSION;
  return fdt_check_full(fdt, static_cast<size_t>(size));
}

}  // namespace impl

/// Writes the regions as a one-page FDT, in the order given.
/// Complexity: O(regions). Errors: invalid_argument (empty name; libfdt refused),
/// table_full (does not fit one page), out_of_memory.
template <unsigned PageShift = 12, PageSource Source>
result<memblock_blob> write_memblock(Source& source, const reserve_mem_region* regions, u64 n) {
  constexpr u64 page = page_geometry<PageShift>::size;
  auto pa = alloc_zeroed(source, order{0}, page);
  if (!pa) return pa.err();
  void* fdt = source.memory().to_virt(*pa, page);
  auto put = [&]() -> int {
    int err = fdt_create(fdt, static_cast<int>(page));
    if (!err) err = fdt_finish_reservemap(fdt);
    if (!err) err = fdt_begin_node(fdt, "");
    if (!err) err = fdt_property(fdt, "compatible", memblock_compatible, sizeof memblock_compatible);
    for (u64 i = 0; i < n && !err; ++i) {
      if (regions[i].name == nullptr || regions[i].name[0] == '\0') return -FDT_ERR_BADVALUE;
      unsigned char start[8], size[8];
      impl::fdt_put_le64(start, regions[i].start.value);
      impl::fdt_put_le64(size, regions[i].size);
      err = fdt_begin_node(fdt, regions[i].name);
      if (!err) err = fdt_property(fdt, "compatible", reserve_mem_compatible, sizeof reserve_mem_compatible);
      if (!err) err = fdt_property(fdt, "start", start, 8);
      if (!err) err = fdt_property(fdt, "size", size, 8);
      if (!err) err = fdt_end_node(fdt);
    }
    if (!err) err = fdt_end_node(fdt);
    if (!err) err = fdt_finish(fdt);
    return err;
  };
  if (const int err = put(); err != 0) {
    source.free(*pa, order{0});
    return impl::fdt_write_error(err);
  }
  return memblock_blob{*pa, fdt_totalsize(fdt)};
}

/// A validated memblock FDT; regions are read from it in place.
template <Memory M, unsigned PageShift = 12>
class memblock_view {
 public:
  using geometry = page_geometry<PageShift>;
  static constexpr const char* structure = "memblock";

  /// Validates the FDT at `pa` of `blob_size` bytes. Errors at `pa` (depth 0):
  /// misaligned, out_of_range (blob over one page), out_of_bounds, bad_fdt (a version
  /// below 17, libfdt's fdt_check_full refuses it, or totalsize exceeds blob-size),
  /// bad_compatible; at a
  /// region (address pa + its node offset, depth 1): bad_compatible, not_found (no
  /// `start` or `size`), bad_count (a property not 8 bytes), misaligned (start or size
  /// not page multiples), out_of_range (empty or wrapping), duplicate (name).
  static result<memblock_view> attach(const M& mem, phys_addr pa, u64 blob_size) {
    memblock_view v(mem, pa, blob_size);
    if (status s = v.validate(); !s) return s.err();
    return v;
  }

  /// Calls f(reserve_mem_region) for every region in tree order. Complexity: O(regions).
  template <class F>
  void for_each_region(F&& f) const {
    const void* fdt = blob();
    int node;
    fdt_for_each_subnode(node, fdt, 0) f(region(fdt, node));
  }

  /// The region named exactly `name`. Complexity: O(regions * name length).
  /// Errors: not_found.
  result<reserve_mem_region> find(const char* name) const {
    // Not fdt_subnode_offset: it also matches "name" to a node "name@unit", which may
    // come first, and names are unique only as exact strings.
    const void* fdt = blob();
    int node;
    fdt_for_each_subnode(node, fdt, 0) {
      int len = 0;
      const char* s = fdt_get_name(fdt, node, &len);
      if (s != nullptr && impl::same_name(s, len, name)) return region(fdt, node);
    }
    return errc::not_found;
  }

  /// Claims the FDT page for {"memblock", pa}; the regions are payload.
  /// Errors: those of Owners::claim.
  template <class Owners>
  status claim_pages(Owners& owners) const {
    return owners.claim(pa_, 1, page_owner{structure, pa_});
  }

  u64 count() const { return count_; }
  phys_addr address() const { return pa_; }
  u64 blob_size() const { return size_; }

 private:
  memblock_view(const M& mem, phys_addr pa, u64 size) : mem_(mem), pa_(pa), size_(size) {}

  const void* blob() const { return mem_.to_virt(pa_, size_); }

  static reserve_mem_region region(const void* fdt, int node) {
    int len = 0;
    reserve_mem_region r;
    r.name = fdt_get_name(fdt, node, &len);
    r.start = phys_addr{impl::fdt_le64(fdt_getprop(fdt, node, "start", &len))};
    r.size = impl::fdt_le64(fdt_getprop(fdt, node, "size", &len));
    return r;
  }

  status validate() {
    auto fail = [this](errc c) { return make_error(c, structure, pa_, 0); };
    if (!geometry::is_aligned(pa_)) return fail(errc::misaligned);
    if (size_ > geometry::size) return fail(errc::out_of_range);
    const void* fdt = blob();
    if (fdt == nullptr || size_ == 0) return fail(errc::out_of_bounds);
    if (impl::fdt_check_untrusted(fdt, size_) != 0) return fail(errc::bad_fdt);
    if (fdt_node_check_compatible(fdt, 0, memblock_compatible) != 0) return fail(errc::bad_compatible);
    int node;
    fdt_for_each_subnode(node, fdt, 0) {
      KHO_TRY(check_region(fdt, node));
      ++count_;
    }
    if (node != -FDT_ERR_NOTFOUND) return fail(errc::bad_fdt);
    return {};
  }

  status check_region(const void* fdt, int node) {
    auto fail = [&](errc c) { return make_error(c, structure, pa_ + static_cast<u64>(node), 1); };
    if (fdt_node_check_compatible(fdt, node, reserve_mem_compatible) != 0) return fail(errc::bad_compatible);
    int slen = -1, zlen = -1;
    const void* start = fdt_getprop(fdt, node, "start", &slen);
    const void* size = fdt_getprop(fdt, node, "size", &zlen);
    if (start == nullptr || size == nullptr) return fail(errc::not_found);
    if (slen != 8 || zlen != 8) return fail(errc::bad_count);
    const u64 s = impl::fdt_le64(start), z = impl::fdt_le64(size);
    if ((s & geometry::mask) != 0 || (z & geometry::mask) != 0) return fail(errc::misaligned);
    u64 end = 0;
    if (z == 0 || !checked_add(s, z, end)) return fail(errc::out_of_range);
    int len = 0;
    const char* name = fdt_get_name(fdt, node, &len);
    int other;
    fdt_for_each_subnode(other, fdt, 0) {
      if (other >= node) break;
      int olen = 0;
      const char* oname = fdt_get_name(fdt, other, &olen);
      if (olen == len && std::memcmp(oname, name, static_cast<size_t>(len)) == 0)
        return fail(errc::duplicate);
    }
    return {};
  }

  M mem_;
  phys_addr pa_;
  u64 size_;
  u64 count_ = 0;
};

/// Attaches with the Memory type deduced.
template <unsigned PageShift = 12, Memory M>
result<memblock_view<M, PageShift>> attach_memblock(const M& mem, phys_addr pa, u64 blob_size) {
  return memblock_view<M, PageShift>::attach(mem, pa, blob_size);
}

}  // namespace kho::upstream
