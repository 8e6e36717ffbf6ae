// kho/linux/memfd.hpp: Linux's memfd preservation state, "memfd-v2" (48 bytes, with
// seals and flags), the older "memfd-v1" (40 bytes) and the feature-header layout
// (176 bytes, handler name "memfd"), read and written byte for byte.
//
// Upstream: mm/memfd_luo.c (linux-mm fb2257f1) and the memfd ABI header (memfd-v2:
// index file 3210376446; memfd-v1: torvalds ac2d8102; feature header: linux-mm
// c30cc99c); shared/LINUX-FORMATS.md, section 7. The compatible string (or, with the
// feature header, the handler name) is in the LUO file record (luo_file_ser) whose
// `data` is the physical address of this structure.
//
//   feature layout: luo_feature_hdr (128 B, kho/linux/luo_feature.hpp) @0, then the
//   v2 fields shifted by 128: pos @128, size @136, seals @144, flags @148,
//   nr_folios @152, folios @160 (176 B). Bits: 0x1 seals, 0x2 folios.
//   A downgrade that would drop information (seals or flags to v1, seals or folios to a
//   feature header without the bit) is refused with out_of_range and a
//   downgrade_refusal naming the field; it is never written with the field dropped.
//
//   memfd_luo_ser (v2, 48 B, in its own preserved page)
//   +-----+------+-------+-------+-----------+---------------------------+
//   | pos | size | seals | flags | nr_folios | folios (kho_vmalloc, 16 B) |
//   | u64 | u64  | u32   | u32   | u64       |                     |      |
//   +-----+------+-------+-------+-----------+---------------------|------+
//     0     8      16      20      24          32                  v
//   v1: pos @0, size @8, nr_folios @16, folios @24 (40 B).     folio array (a vmalloc
//                                                              area of order-0 pages)
//   memfd_luo_folio_ser (16 B): word0 = pfn (bits 0..51) | flags << 52, index (u64)
//   flags: 0x1 dirty, 0x2 uptodate (the kernel's writer always sets both; kho's
//   refuses uptodate alone unless told the page may be lost).
//
// Reader (memfd_view::attach): the kernel's checks -- seals within F_SEAL_* (0x3F), the
// folio array restores as a vmalloc area (kho/linux/kho_vmalloc.hpp). kho's: the
// structure page aligned and inside memory; `flags` zero (no bit is defined); with
// nr_folios 0 the vmalloc descriptor all zero; with nr_folios > 0 the area exactly
// ceil(nr_folios * 16 / PAGE_SIZE) pages (nr_folios equals the records the area
// holds); per record: unknown flag bits zero, pfn nonzero and small enough that
// pfn << PAGE_SHIFT fits 64 bits, and indices strictly increasing. The kernel does
// not require increasing indices (it adds each folio to the page cache at its index
// and fails on a duplicate); kho does, because the writer records folios in index
// order, and it makes "no index twice" an O(1)-space check. The kernel skips records
// whose pfn is 0; its writer never writes one, and kho refuses them.
//
// Complexity: write O(nr_folios); attach O(nr_folios + array pages), no scratch.
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/linux/kho_vmalloc.hpp>
#include <kho/linux/luo_feature.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstddef>
#include <cstring>
#include <type_traits>

namespace kho::upstream {

// ---- wire layout -------------------------------------------------------------------

inline constexpr const char* memfd_v2_compatible = "memfd-v2";
inline constexpr const char* memfd_v1_compatible = "memfd-v1";
inline constexpr const char* memfd_handler_name = "memfd";  // the feature layout's file handler

inline constexpr u32 memfd_seal_seal = 0x1;
inline constexpr u32 memfd_seal_shrink = 0x2;
inline constexpr u32 memfd_seal_grow = 0x4;
inline constexpr u32 memfd_seal_write = 0x8;
inline constexpr u32 memfd_seal_future_write = 0x10;
inline constexpr u32 memfd_seal_exec = 0x20;
inline constexpr u32 memfd_known_seals = 0x3f;

inline constexpr u16 memfd_folio_dirty = 0x1;
inline constexpr u16 memfd_folio_uptodate = 0x2;
inline constexpr u16 memfd_folio_known_flags = 0x3;
inline constexpr unsigned memfd_pfn_bits = 52;  // then 12 bits of flags
inline constexpr u64 memfd_pfn_mask = (u64{1} << memfd_pfn_bits) - 1;

struct memfd_luo_folio_ser {
  detail::le64 pfn_flags;  // pfn | flags << 52 (GCC's LSB-first bitfields)
  detail::le64 index;      // page offset of the folio in the file
};

struct memfd_luo_ser_v2 {
  detail::le64 pos;
  detail::le64 size;
  detail::le32 seals;
  detail::le32 flags;  // none defined: zero
  detail::le64 nr_folios;
  kho_vmalloc folios;
};

struct memfd_luo_ser_v1 {
  detail::le64 pos;
  detail::le64 size;
  detail::le64 nr_folios;
  kho_vmalloc folios;
};

static_assert(sizeof(memfd_luo_folio_ser) == 16);
static_assert(offsetof(memfd_luo_folio_ser, index) == 8);
static_assert(std::has_unique_object_representations_v<memfd_luo_folio_ser>);
static_assert(sizeof(memfd_luo_ser_v2) == 48);
static_assert(offsetof(memfd_luo_ser_v2, pos) == 0);
static_assert(offsetof(memfd_luo_ser_v2, size) == 8);
static_assert(offsetof(memfd_luo_ser_v2, seals) == 16);
static_assert(offsetof(memfd_luo_ser_v2, flags) == 20);
static_assert(offsetof(memfd_luo_ser_v2, nr_folios) == 24);
static_assert(offsetof(memfd_luo_ser_v2, folios) == 32);
static_assert(std::has_unique_object_representations_v<memfd_luo_ser_v2>);
static_assert(sizeof(memfd_luo_ser_v1) == 40);
static_assert(offsetof(memfd_luo_ser_v1, size) == 8);
static_assert(offsetof(memfd_luo_ser_v1, nr_folios) == 16);
static_assert(offsetof(memfd_luo_ser_v1, folios) == 24);
static_assert(std::has_unique_object_representations_v<memfd_luo_ser_v1>);

// The feature layout is memfd-v2's fields behind the 128-byte header.
struct memfd_luo_ser_feature {
  luo_feature_hdr features;
  memfd_luo_ser_v2 fields;
};
static_assert(sizeof(memfd_luo_ser_feature) == 176);
static_assert(offsetof(memfd_luo_ser_feature, fields) == 128);
static_assert(std::has_unique_object_representations_v<memfd_luo_ser_feature>);

enum class memfd_version : u8 { v1 = 1, v2 = 2, feature = 3 };

/// The string a LUO file record carries for `v`: its compatible, or the handler name.
constexpr const char* memfd_file_name(memfd_version v) {
  return v == memfd_version::v1 ? memfd_v1_compatible
                                : v == memfd_version::v2 ? memfd_v2_compatible : memfd_handler_name;
}

/// One folio of the file, as the writer takes it and the reader hands it back.
struct memfd_folio {
  pfn frame{};
  u64 index = 0;
  u16 flags = memfd_folio_dirty | memfd_folio_uptodate;
};

/// The file to write.
struct memfd_file {
  u64 pos = 0;
  u64 size = 0;
  u32 seals = 0;              // v2 only
  const memfd_folio* folios = nullptr;
  u64 nr_folios = 0;          // in index order
  u32 flags = 0;              // no bit is defined: zero (v1 cannot carry any)
  // A folio UPTODATE but not DIRTY is clean: the next kernel's shmem may drop it as it
  // would a page whose contents are stored elsewhere, and a memfd's are not. The
  // kernel's writer sets both on every folio; write_memfd refuses a clean folio unless
  // the caller says its contents may be lost (a page that is known to be zero).
  bool clean_folios_may_be_dropped = false;
};

namespace impl {

inline constexpr u64 memfd_ser_size(memfd_version v) {
  return v == memfd_version::v2 ? sizeof(memfd_luo_ser_v2)
         : v == memfd_version::v1 ? sizeof(memfd_luo_ser_v1)
                                  : sizeof(memfd_luo_ser_feature);
}

/// The fields both versions share, read with the version's offsets.
struct memfd_fields {
  u64 pos, size, nr_folios;
  u32 seals, flags;
  kho_vmalloc folios;
};

inline memfd_fields read_memfd(const void* p, memfd_version v) {
  memfd_fields f{};
  if (v == memfd_version::feature) p = &static_cast<const memfd_luo_ser_feature*>(p)->fields;
  if (v != memfd_version::v1) {
    const auto* s = static_cast<const memfd_luo_ser_v2*>(p);
    f = {s->pos.get(), s->size.get(), s->nr_folios.get(), s->seals.get(), s->flags.get(), s->folios};
  } else {
    const auto* s = static_cast<const memfd_luo_ser_v1*>(p);
    f = {s->pos.get(), s->size.get(), s->nr_folios.get(), 0, 0, s->folios};
  }
  return f;
}

}  // namespace impl

/// Pages of the folio array for `nr_folios` records, or 0 if that many cannot exist.
template <unsigned PageShift>
constexpr u64 memfd_array_pages(u64 nr_folios) {
  if (nr_folios > (~u64{0} >> 5)) return 0;
  const u64 bytes = nr_folios * sizeof(memfd_luo_folio_ser);
  return (bytes + page_geometry<PageShift>::size - 1) >> PageShift;
}

// ---- writer ------------------------------------------------------------------------

namespace impl {

// The field `file` has that version `v` (with `masks`) cannot carry, or nullptr.
inline const char* memfd_lost_field(const memfd_file& file, memfd_version v, const feature_masks& masks) {
  if (v == memfd_version::v1) return file.seals != 0 ? "seals" : file.flags != 0 ? "flags" : nullptr;
  if (v != memfd_version::feature) return nullptr;
  if (file.seals != 0 && (masks.active & memfd_feature_seals) == 0) return "seals";
  if (file.nr_folios != 0 && (masks.active & memfd_feature_folios) == 0) return "folios";
  return nullptr;
}

}  // namespace impl

/// Writes `file` as `v`: the structure in a page of its own, the folio records in
/// order-0 pages preserved as a vmalloc area (flags VM_ALLOC, order 0); no area when
/// there are no folios. Returns the structure's address (luo_file_ser.data). `masks`
/// are the feature header's (feature layout only).
/// Complexity: O(nr_folios). Errors: out_of_range with `*refusal` filled (structure,
/// field) when `v` cannot carry a field (seals or flags to v1; seals or folios to a
/// feature header without the bit), or more than 2^32 - 1 array pages;
/// invalid_argument (seals outside 0x3F, flags nonzero for v2 / feature, masks
/// outside feature_masks_ok, a pfn 0 or wider than 52 bits, unknown folio flags, a
/// folio UPTODATE without DIRTY unless clean_folios_may_be_dropped, indices not
/// strictly increasing), out_of_memory.
template <unsigned PageShift = 12, PageSource Source>
result<phys_addr> write_memfd(Source& source, const memfd_file& file, memfd_version v = memfd_version::v2,
                              downgrade_refusal* refusal = nullptr,
                              const feature_masks& masks = memfd_default_features) {
  using geometry = page_geometry<PageShift>;
  if (const char* lost = impl::memfd_lost_field(file, v, masks)) {
    if (refusal != nullptr) {
      refusal->structure = v == memfd_version::v1 ? memfd_v1_compatible : memfd_handler_name;
      refusal->field = lost;
    }
    return make_error(errc::out_of_range, refusal != nullptr ? refusal->structure : "memfd");
  }
  if ((file.seals & ~memfd_known_seals) != 0 || file.flags != 0 ||
      (v == memfd_version::feature && !feature_masks_ok(masks)))
    return errc::invalid_argument;
  for (u64 i = 0; i < file.nr_folios; ++i) {
    const memfd_folio& f = file.folios[i];
    if (f.frame.value == 0 || f.frame.value > memfd_pfn_mask ||
        (f.frame.value >> (64 - PageShift)) != 0 || (f.flags & ~memfd_folio_known_flags) != 0 ||
        (f.flags == memfd_folio_uptodate && !file.clean_folios_may_be_dropped) ||
        (i > 0 && f.index <= file.folios[i - 1].index))
      return errc::invalid_argument;
  }
  if (file.nr_folios != 0 && (memfd_array_pages<PageShift>(file.nr_folios) == 0 ||
                              memfd_array_pages<PageShift>(file.nr_folios) > 0xffffffffu))
    return errc::out_of_range;
  auto ser = alloc_zeroed(source, order{0}, geometry::size);
  if (!ser) return ser.err();
  kho_vmalloc folios{};
  if (file.nr_folios != 0) {
    auto area = vmalloc_writer<Source, PageShift>::create(source, 0, vmalloc_flag_alloc);
    if (!area) {
      source.free(*ser, order{0});
      return area.err();
    }
    constexpr u64 per_page = geometry::size / sizeof(memfd_luo_folio_ser);
    for (u64 i = 0; i < file.nr_folios; i += per_page) {
      auto page = alloc_zeroed(source, order{0}, geometry::size);
      status pushed = page ? area->push(*page) : status(page.err());
      if (!pushed) {
        if (page) source.free(*page, order{0});
        area->abandon(true);
        source.free(*ser, order{0});
        return pushed.err();
      }
      auto* rec = static_cast<memfd_luo_folio_ser*>(source.memory().to_virt(*page, geometry::size));
      for (u64 j = 0; j < per_page && i + j < file.nr_folios; ++j) {
        const memfd_folio& f = file.folios[i + j];
        rec[j].pfn_flags.set(f.frame.value | u64{f.flags} << memfd_pfn_bits);
        rec[j].index.set(f.index);
      }
    }
    folios = area->descriptor();
  }
  void* p = source.memory().to_virt(*ser, impl::memfd_ser_size(v));
  if (v == memfd_version::feature) {
    auto* s = static_cast<memfd_luo_ser_feature*>(p);
    put_feature_hdr(s->features, masks);
    p = &s->fields;
  }
  if (v != memfd_version::v1) {
    auto* s = static_cast<memfd_luo_ser_v2*>(p);
    s->pos.set(file.pos);
    s->size.set(file.size);
    s->seals.set(file.seals);
    s->nr_folios.set(file.nr_folios);
    s->folios = folios;
  } else {
    auto* s = static_cast<memfd_luo_ser_v1*>(p);
    s->pos.set(file.pos);
    s->size.set(file.size);
    s->nr_folios.set(file.nr_folios);
    s->folios = folios;
  }
  return *ser;
}

// ---- reader ------------------------------------------------------------------------

/// A validated memfd state; the folios are read in place from the array.
template <Memory M, unsigned PageShift = 12>
class memfd_view {
 public:
  using geometry = page_geometry<PageShift>;
  using area_view = vmalloc_view<M, PageShift>;
  static constexpr const char* structure = "memfd";

  /// Validates the memfd state of version `v` at `ser` and its folio array.
  /// Errors: at `ser` (structure "memfd", depth 0): misaligned, out_of_bounds,
  /// bad_version / bad_compatible / reserved_nonzero (feature header:
  /// check_feature_hdr against memfd_features_supported; seals or folios nonzero while
  /// their bit is not active), out_of_range (seals), reserved_nonzero (flags; a
  /// descriptor with no folios),
  /// bad_count (area size disagrees with nr_folios); from the area (structure
  /// "kho_vmalloc"): see vmalloc_view::attach; at a record (structure "memfd", its
  /// address, depth 1): reserved_nonzero (flag bits), out_of_range (pfn 0 or too
  /// wide; an index below the previous one), duplicate (an index equal to the
  /// previous one). Complexity: O(nr_folios + array pages), no scratch.
  static result<memfd_view> attach(const M& mem, phys_addr ser, memfd_version v = memfd_version::v2) {
    memfd_view view(mem, ser, v);
    if (status s = view.validate(); !s) return s.err();
    return view;
  }

  /// Calls f(memfd_folio) for every record, in index order. Complexity: O(nr_folios).
  template <class F>
  void for_each_folio(F&& f) const {
    if (!has_area_) return;
    u64 left = f_.nr_folios;
    area_.for_each_unit([&](phys_addr unit, u64) {
      for_records(unit, left, [&](const memfd_luo_folio_ser& r, phys_addr) {
        f(memfd_folio{pfn{r.pfn_flags.get() & memfd_pfn_mask}, r.index.get(),
                      static_cast<u16>(r.pfn_flags.get() >> memfd_pfn_bits)});
        return errc::ok;
      });
    });
  }

  /// Claims the structure's page and the folio array (chunks and record pages) for
  /// {"memfd", ser}; not the folios, which are the file's data.
  /// Complexity: O(array pages). Errors: those of Owners::claim.
  template <class Owners>
  status claim_pages(Owners& owners) const {
    const page_owner who{structure, ser_};
    KHO_TRY(owners.claim(ser_, 1, who));
    return has_area_ ? area_.claim_pages(owners, who) : status{};
  }

  u64 pos() const { return f_.pos; }
  u64 size() const { return f_.size; }
  u32 seals() const { return f_.seals; }
  u32 flags() const { return f_.flags; }
  u64 nr_folios() const { return f_.nr_folios; }
  memfd_version version() const { return v_; }
  phys_addr address() const { return ser_; }

 private:
  memfd_view(const M& mem, phys_addr ser, memfd_version v)
      : mem_(mem), ser_(ser), v_(v), area_(area_view::unchecked(mem, kho_vmalloc{})) {}

  // Calls g(record, its address) for the records of one array page, at most `left`;
  // stops at the first error g returns.
  template <class G>
  errc for_records(phys_addr unit, u64& left, G&& g) const {
    constexpr u64 per_page = geometry::size / sizeof(memfd_luo_folio_ser);
    const u64 pages = u64{1} << area_.unit_order();
    const auto* rec = static_cast<const memfd_luo_folio_ser*>(mem_.to_virt(unit, geometry::size * pages));
    for (u64 i = 0; i < per_page * pages && left > 0; ++i, --left)
      if (const errc c = g(rec[i], unit + i * sizeof(memfd_luo_folio_ser)); c != errc::ok) return c;
    return errc::ok;
  }

  status validate() {
    auto fail = [this](errc c) { return make_error(c, structure, ser_, 0); };
    if (!geometry::is_aligned(ser_)) return fail(errc::misaligned);
    const void* p = mem_.to_virt(ser_, impl::memfd_ser_size(v_));
    if (p == nullptr) return fail(errc::out_of_bounds);
    f_ = impl::read_memfd(p, v_);
    if (v_ == memfd_version::feature) {
      const luo_feature_hdr& h = static_cast<const memfd_luo_ser_feature*>(p)->features;
      if (const errc c = check_feature_hdr(h, memfd_features_supported); c != errc::ok) return fail(c);
      const u64 active = h.active.get();
      if ((active & memfd_feature_seals) == 0 && f_.seals != 0) return fail(errc::reserved_nonzero);
      if ((active & memfd_feature_folios) == 0 && f_.nr_folios != 0) return fail(errc::reserved_nonzero);
    }
    if ((f_.seals & ~memfd_known_seals) != 0) return fail(errc::out_of_range);
    if (f_.flags != 0) return fail(errc::reserved_nonzero);
    if (f_.nr_folios == 0) {
      const kho_vmalloc zero{};
      return std::memcmp(&f_.folios, &zero, sizeof zero) == 0 ? status{} : fail(errc::reserved_nonzero);
    }
    const u64 pages = memfd_array_pages<PageShift>(f_.nr_folios);
    if (pages == 0 || pages != f_.folios.total_pages.get()) return fail(errc::bad_count);
    auto area = area_view::attach(mem_, f_.folios);
    if (!area) return area.err();
    area_ = *area;
    has_area_ = true;

    u64 left = f_.nr_folios, previous = 0;
    bool first = true;
    error bad{};
    area_.for_each_unit([&](phys_addr unit, u64) {
      if (bad.code != errc::ok) return;
      for_records(unit, left, [&](const memfd_luo_folio_ser& r, phys_addr at) {
        const u64 word = r.pfn_flags.get(), frame = word & memfd_pfn_mask, index = r.index.get();
        errc c = errc::ok;
        if (((word >> memfd_pfn_bits) & ~u64{memfd_folio_known_flags}) != 0) c = errc::reserved_nonzero;
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
    });
    if (bad.code != errc::ok) return bad;
    return {};
  }

  M mem_;
  phys_addr ser_;
  memfd_version v_;
  impl::memfd_fields f_{};
  area_view area_;
  bool has_area_ = false;
};

/// Attaches with the Memory type deduced.
template <unsigned PageShift = 12, Memory M>
result<memfd_view<M, PageShift>> attach_memfd(const M& mem, phys_addr ser,
                                              memfd_version v = memfd_version::v2) {
  return memfd_view<M, PageShift>::attach(mem, ser, v);
}

}  // namespace kho::upstream
