// kho/linux/iommu.hpp: Linux's IOMMU FLB, "iommu-liveupdate-v1" (with the Intel
// unions) and the variant "iommu-liveupdate" with an integer version (without them),
// read and written byte for byte.
//
// Upstream: samikhawaja/linux include/linux/kho/abi/iommu.h (ef754267; the variant at
// 07a49313) and drivers/iommu/liveupdate.c; shared/LINUX-FORMATS-NEXT.md section 5.2.
// The FLB's `data` is the phys of iommu_flb_ser.
//
//   iommu_flb_ser (24 B; the variant: version u64 = 1 first, 32 B)
//   +-----------+--------------+--------------+
//   | hw head   | domain head  | device head  |   three lists of array pages
//   +-----|-----+------|-------+------|-------+
//         v            v              v
//   array page (one order-0 page): [next u64 | nr_objects u64 | obj 0 | obj 1 | ...]
//   objects packed from offset 16, capacity (PAGE_SIZE - 16) / object size:
//     iommu_domain_ser 37 B (110 a 4 KiB page), iommu_device_ser 56 B (72), variant 40
//     B (102), iommu_hw_ser 112 B (36), variant 24 B (170).
//   Every object starts with {ref_count u32, flags u32 (0x1 DELETED, 0x2 INCOMING)}.
//   device.domain_phys / device.iommu_phys: the phys of a domain / hw object.
//
// The domain object is 37 bytes, so most objects of a page start at odd addresses and
// its restored_domain (a kernel virtual pointer the NEXT kernel writes) sits at offset
// 29: every field here is a byte array read with memcpy (ule<T>), never through a
// typed pointer. restored_domain is shown, never followed.
//
// Reader (iommu_flb_view::attach). The kernel walks every list until next = 0 and takes
// nr_objects as it is. kho, beyond it (verdict differences, docs/format.md):
//   - the three heads nonzero (the writer allocates each list's first page at FLB
//     preserve): missing_dependency; iommu_flb_ser and every array page page-aligned
//     and inside memory; nr_objects <= capacity (bad_count); a page that is not its
//     list's last is full (bad_count: pages are linked only when one fills);
//   - no page reached twice: within a list a cycle (cycle), across lists aliased;
//     at most `max_array_pages` pages in all (budget_exceeded);
//   - per object: flags within 0x3, sign_extend within bit 0 (reserved_nonzero),
//     vasz <= 64, hw type 0 or 1 (out_of_range); an Intel hw object (type 1, v1
//     layout): restored 0 or 1, padding zero, phys_addr (MMIO) nonzero and not inside
//     the image's memory (out_of_range: the model's memory stands for RAM); a type-0
//     hw object's Intel part all zero;
//   - per live (not DELETED) device: iommu_phys names a live hw object and
//     domain_phys (0 = no domain) a live domain object: the address inside an array
//     page of that list (missing_dependency), on an object boundary (misaligned),
//     index < nr_objects (out_of_range), the target not DELETED (missing_dependency);
//   - no two live devices with one (devid, pci_domain_nr), no two live hw objects with
//     one (token, type) (duplicate): the kernel matches on them and takes the first.
// check_references(map) (the whole-handover check): I/O page-table pages named by live
// objects (top_table_phys, root_table, pasid_table) are preserved (not_preserved), and
// claim_io_page_tables claims the page each names for the FLB (the page-table code
// that preserves them was not read, but the FLB is what names them: a page named
// twice, or owned by another structure too, is aliased);
// an Intel MMIO base is not preserved memory (out_of_range). The context tables (the
// 512-bit bitmap says which are preserved) are named inside the root table, which kho
// does not read.
//
// Complexity: attach O(pages + objects) time, O(pages + live devices + hw objects)
// scratch (a hash table lent by the caller, kept until release()).
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/detail/fixed_string.hpp>
#include <kho/detail/probe_table.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstddef>
#include <cstring>
#include <type_traits>

namespace kho::upstream {

// ---- wire layout -------------------------------------------------------------------

inline constexpr const char* iommu_v1_name = "iommu-liveupdate-v1";
inline constexpr const char* iommu_versioned_name = "iommu-liveupdate";  // with a u64 version inside
inline constexpr u64 iommu_versioned_version = 1;                        // IOMMU_LUO_FLB_VERSION

/// The variants; the numbers are the manifest's versions of family "iommu".
enum class iommu_variant : u8 { v1 = 1, versioned = 2 };

constexpr const char* iommu_flb_name(iommu_variant v) {
  return v == iommu_variant::v1 ? iommu_v1_name : iommu_versioned_name;
}

inline constexpr u32 iommu_flag_deleted = 0x1;
inline constexpr u32 iommu_flag_incoming = 0x2;
inline constexpr u32 iommu_known_flags = 0x3;
inline constexpr u64 iommu_type_invalid = 0;
inline constexpr u64 iommu_type_intel = 1;

/// A little-endian field at any byte offset: the packed objects put fields at odd
/// addresses, so they are copied out byte by byte, never loaded through a pointer.
template <class T>
struct ule {
  unsigned char bytes[sizeof(T)];
  T get() const {
    T v;
    std::memcpy(&v, bytes, sizeof v);
    return detail::to_little(v);
  }
  void set(T v) {
    v = detail::to_little(v);
    std::memcpy(bytes, &v, sizeof v);
  }
};
using ule32 = ule<u32>;
using ule64 = ule<u64>;

struct iommu_hdr_ser {
  ule32 ref_count;
  ule32 flags;
};

struct iommu_domain_ser {  // 37 B in both variants
  iommu_hdr_ser hdr;
  ule64 top_table_phys;  // I/O page-table root
  ule64 top_level;
  ule32 vasz;
  unsigned char sign_extend;  // a 1-bit bitfield: bit 0
  ule64 restored_domain;      // the next kernel's virtual pointer: opaque
};

struct iommu_device_ser_v1 {  // "iommu-liveupdate-v1": with the Intel part, 56 B
  iommu_hdr_ser hdr;
  ule32 devid;  // bus << 8 | devfn
  ule32 pci_domain_nr;
  ule64 attachment_id;
  ule64 domain_phys;
  ule64 iommu_phys;
  ule64 pasid_table;  // intel
  ule64 max_pasid;    // intel
};

struct iommu_device_ser_versioned {  // "iommu-liveupdate" version 1: no Intel part, 40 B
  iommu_hdr_ser hdr;
  ule32 devid;
  ule32 pci_domain_nr;
  ule64 attachment_id;
  ule64 domain_phys;
  ule64 iommu_phys;
};

struct iommu_hw_ser_v1 {  // "iommu-liveupdate-v1": with the Intel part, 112 B
  iommu_hdr_ser hdr;
  ule64 token;
  ule64 type;
  unsigned char restored;    // intel
  unsigned char padding[7];  // intel
  ule64 phys_addr;           // intel: MMIO register base, not RAM
  ule64 root_table;          // intel: root-entry table
  ule64 context_tables_bitmap[8];
};

struct iommu_hw_ser_versioned {  // "iommu-liveupdate" version 1: 24 B
  iommu_hdr_ser hdr;
  ule64 token;
  ule64 type;
};

struct iommu_array_hdr_ser {
  detail::le64 next_array_phys;  // 0 in a list's last page
  detail::le64 nr_objects;
};

struct iommu_flb_ser {
  detail::le64 iommu_array_phys;
  detail::le64 iommu_domain_array_phys;
  detail::le64 device_array_phys;
};

struct iommu_flb_ser_versioned {
  detail::le64 version;  // 1
  iommu_flb_ser heads;
};

static_assert(sizeof(iommu_hdr_ser) == 8 && offsetof(iommu_hdr_ser, flags) == 4);
static_assert(sizeof(iommu_domain_ser) == 37 && alignof(iommu_domain_ser) == 1);
static_assert(offsetof(iommu_domain_ser, top_table_phys) == 8);
static_assert(offsetof(iommu_domain_ser, top_level) == 16);
static_assert(offsetof(iommu_domain_ser, vasz) == 24);
static_assert(offsetof(iommu_domain_ser, sign_extend) == 28);
static_assert(offsetof(iommu_domain_ser, restored_domain) == 29);
static_assert(sizeof(iommu_device_ser_v1) == 56);
static_assert(offsetof(iommu_device_ser_v1, devid) == 8);
static_assert(offsetof(iommu_device_ser_v1, pci_domain_nr) == 12);
static_assert(offsetof(iommu_device_ser_v1, attachment_id) == 16);
static_assert(offsetof(iommu_device_ser_v1, domain_phys) == 24);
static_assert(offsetof(iommu_device_ser_v1, iommu_phys) == 32);
static_assert(offsetof(iommu_device_ser_v1, pasid_table) == 40);
static_assert(offsetof(iommu_device_ser_v1, max_pasid) == 48);
static_assert(sizeof(iommu_device_ser_versioned) == 40);
static_assert(offsetof(iommu_device_ser_versioned, iommu_phys) == 32);
static_assert(sizeof(iommu_hw_ser_v1) == 112);
static_assert(offsetof(iommu_hw_ser_v1, token) == 8);
static_assert(offsetof(iommu_hw_ser_v1, type) == 16);
static_assert(offsetof(iommu_hw_ser_v1, restored) == 24);
static_assert(offsetof(iommu_hw_ser_v1, padding) == 25);
static_assert(offsetof(iommu_hw_ser_v1, phys_addr) == 32);
static_assert(offsetof(iommu_hw_ser_v1, root_table) == 40);
static_assert(offsetof(iommu_hw_ser_v1, context_tables_bitmap) == 48);
static_assert(sizeof(iommu_hw_ser_versioned) == 24 && offsetof(iommu_hw_ser_versioned, type) == 16);
static_assert(sizeof(iommu_array_hdr_ser) == 16 && offsetof(iommu_array_hdr_ser, nr_objects) == 8);
static_assert(sizeof(iommu_flb_ser) == 24 && offsetof(iommu_flb_ser, device_array_phys) == 16);
static_assert(sizeof(iommu_flb_ser_versioned) == 32 && offsetof(iommu_flb_ser_versioned, heads) == 8);
static_assert(std::has_unique_object_representations_v<iommu_domain_ser>);
static_assert(std::has_unique_object_representations_v<iommu_device_ser_v1>);
static_assert(std::has_unique_object_representations_v<iommu_hw_ser_v1>);
static_assert(std::has_unique_object_representations_v<iommu_flb_ser_versioned>);

/// The three lists, in the order of iommu_flb_ser's heads.
enum class iommu_list : u8 { hw = 0, domain = 1, device = 2 };

/// Bytes of one object of `list` in variant `v`.
constexpr u64 iommu_object_size(iommu_list list, iommu_variant v) {
  return list == iommu_list::domain ? sizeof(iommu_domain_ser)
         : list == iommu_list::device
             ? (v == iommu_variant::v1 ? sizeof(iommu_device_ser_v1) : sizeof(iommu_device_ser_versioned))
             : (v == iommu_variant::v1 ? sizeof(iommu_hw_ser_v1) : sizeof(iommu_hw_ser_versioned));
}

/// Objects an array page holds.
template <unsigned PageShift>
constexpr u64 iommu_capacity(iommu_list list, iommu_variant v) {
  return (page_geometry<PageShift>::size - sizeof(iommu_array_hdr_ser)) / iommu_object_size(list, v);
}
static_assert(iommu_capacity<12>(iommu_list::domain, iommu_variant::v1) == 110);
static_assert(iommu_capacity<12>(iommu_list::device, iommu_variant::v1) == 72);
static_assert(iommu_capacity<12>(iommu_list::hw, iommu_variant::v1) == 36);
static_assert(iommu_capacity<12>(iommu_list::device, iommu_variant::versioned) == 102);
static_assert(iommu_capacity<12>(iommu_list::hw, iommu_variant::versioned) == 170);

/// The variant FLB name `field` (of `cap` bytes) stands for, or 0 if none.
inline iommu_variant iommu_variant_of_name(const char* field, u64 cap) {
  for (iommu_variant v : {iommu_variant::v1, iommu_variant::versioned})
    if (detail::string_equals(field, cap, iommu_flb_name(v))) return v;
  return iommu_variant{0};
}

/// The objects as the writer takes them and the reader hands them back (the Intel
/// fields are zero in the versioned variant). `at` is the object's phys (reader).
struct iommu_hw {
  u32 ref_count = 1, flags = 0;
  u64 token = 0, type = iommu_type_intel;
  u8 restored = 0;
  u64 mmio = 0, root_table = 0;  // intel.phys_addr, intel.root_table
  u64 context_tables_bitmap[8] = {};
  phys_addr at{};
};

struct iommu_domain {
  u32 ref_count = 1, flags = 0;
  u64 top_table_phys = 0, top_level = 0;
  u32 vasz = 0;
  u8 sign_extend = 0;
  u64 restored_domain = 0;  // opaque
  phys_addr at{};
};

struct iommu_device {
  u32 ref_count = 1, flags = 0;
  u32 devid = 0, pci_domain_nr = 0;
  u64 attachment_id = 0, domain_phys = 0, iommu_phys = 0;
  u64 pasid_table = 0, max_pasid = 0;  // intel
  phys_addr at{};
};

namespace impl {

inline iommu_hw read_hw(const unsigned char* p, iommu_variant v, phys_addr at) {
  iommu_hw h{};
  if (v == iommu_variant::v1) {
    iommu_hw_ser_v1 s;
    std::memcpy(&s, p, sizeof s);
    h = {s.hdr.ref_count.get(), s.hdr.flags.get(), s.token.get(), s.type.get(), s.restored,
         s.phys_addr.get(),     s.root_table.get(), {}, at};
    for (int i = 0; i < 8; ++i) h.context_tables_bitmap[i] = s.context_tables_bitmap[i].get();
  } else {
    iommu_hw_ser_versioned s;
    std::memcpy(&s, p, sizeof s);
    h.ref_count = s.hdr.ref_count.get();
    h.flags = s.hdr.flags.get();
    h.token = s.token.get();
    h.type = s.type.get();
    h.at = at;
  }
  return h;
}

inline iommu_domain read_domain(const unsigned char* p, phys_addr at) {
  iommu_domain_ser s;
  std::memcpy(&s, p, sizeof s);
  return {s.hdr.ref_count.get(), s.hdr.flags.get(), s.top_table_phys.get(), s.top_level.get(), s.vasz.get(),
          s.sign_extend,         s.restored_domain.get(), at};
}

inline iommu_device read_device(const unsigned char* p, iommu_variant v, phys_addr at) {
  iommu_device_ser_v1 s{};
  std::memcpy(&s, p, iommu_object_size(iommu_list::device, v));  // the versioned layout is v1's prefix
  iommu_device d{s.hdr.ref_count.get(), s.hdr.flags.get(), s.devid.get(), s.pci_domain_nr.get(),
                 s.attachment_id.get(), s.domain_phys.get(), s.iommu_phys.get(), 0, 0, at};
  if (v == iommu_variant::v1) {
    d.pasid_table = s.pasid_table.get();
    d.max_pasid = s.max_pasid.get();
  }
  return d;
}

}  // namespace impl

// ---- writer ------------------------------------------------------------------------

/// The old kernel's side: iommu_flb_ser and the first page of each list at create(),
/// objects appended, a page linked when the last one fills. Pages come from `Source`
/// (order 0 each, as kho_alloc_preserve(PAGE_SIZE) gives them).
template <PageSource Source, unsigned PageShift = 12>
class iommu_flb_writer {
 public:
  using geometry = page_geometry<PageShift>;

  /// Allocates iommu_flb_ser and the three first pages. Errors: invalid_argument (not a
  /// variant), out_of_memory.
  static result<iommu_flb_writer> create(Source& source, iommu_variant v = iommu_variant::v1) {
    if (v != iommu_variant::v1 && v != iommu_variant::versioned) return errc::invalid_argument;
    iommu_flb_writer w(source, v);
    auto ser = alloc_zeroed(source, order{0}, geometry::size);
    if (!ser) return ser.err();
    w.ser_ = *ser;
    for (int l = 0; l < 3; ++l) {
      auto page = alloc_zeroed(source, order{0}, geometry::size);
      if (!page) {
        for (int k = 0; k < l; ++k) source.free(w.tail_[k], order{0});
        source.free(*ser, order{0});
        return page.err();
      }
      w.tail_[l] = *page;
    }
    unsigned char* p = w.bytes(*ser, 32);
    if (v == iommu_variant::versioned) {
      reinterpret_cast<iommu_flb_ser_versioned*>(p)->version.set(iommu_versioned_version);
      p += 8;
    }
    auto* heads = reinterpret_cast<iommu_flb_ser*>(p);
    heads->iommu_array_phys.set(w.tail_[0].value);
    heads->iommu_domain_array_phys.set(w.tail_[1].value);
    heads->device_array_phys.set(w.tail_[2].value);
    return w;
  }

  /// Appends a hardware object (the Intel part only in v1); returns its phys.
  /// Complexity: O(1). Errors: out_of_memory.
  result<phys_addr> add_hw(const iommu_hw& h) {
    auto at = append(iommu_list::hw);
    if (!at) return at;
    unsigned char* p = bytes(*at, iommu_object_size(iommu_list::hw, v_));
    if (v_ == iommu_variant::v1) {
      iommu_hw_ser_v1 s{};
      put_hdr(s.hdr, h.ref_count, h.flags);
      s.token.set(h.token);
      s.type.set(h.type);
      s.restored = h.restored;
      s.phys_addr.set(h.mmio);
      s.root_table.set(h.root_table);
      for (int i = 0; i < 8; ++i) s.context_tables_bitmap[i].set(h.context_tables_bitmap[i]);
      std::memcpy(p, &s, sizeof s);
    } else {
      iommu_hw_ser_versioned s{};
      put_hdr(s.hdr, h.ref_count, h.flags);
      s.token.set(h.token);
      s.type.set(h.type);
      std::memcpy(p, &s, sizeof s);
    }
    return at;
  }

  /// Appends a domain; returns its phys (what devices and iommufd name).
  /// Complexity: O(1). Errors: out_of_memory.
  result<phys_addr> add_domain(const iommu_domain& d) {
    auto at = append(iommu_list::domain);
    if (!at) return at;
    iommu_domain_ser s{};
    put_hdr(s.hdr, d.ref_count, d.flags);
    s.top_table_phys.set(d.top_table_phys);
    s.top_level.set(d.top_level);
    s.vasz.set(d.vasz);
    s.sign_extend = d.sign_extend;
    s.restored_domain.set(d.restored_domain);
    std::memcpy(bytes(*at, sizeof s), &s, sizeof s);
    return at;
  }

  /// Appends a device (domain_phys / iommu_phys as add_domain / add_hw returned them);
  /// returns its phys. Complexity: O(1). Errors: out_of_memory.
  result<phys_addr> add_device(const iommu_device& d) {
    auto at = append(iommu_list::device);
    if (!at) return at;
    iommu_device_ser_v1 s{};
    put_hdr(s.hdr, d.ref_count, d.flags);
    s.devid.set(d.devid);
    s.pci_domain_nr.set(d.pci_domain_nr);
    s.attachment_id.set(d.attachment_id);
    s.domain_phys.set(d.domain_phys);
    s.iommu_phys.set(d.iommu_phys);
    s.pasid_table.set(d.pasid_table);
    s.max_pasid.set(d.max_pasid);
    const u64 size = iommu_object_size(iommu_list::device, v_);
    std::memcpy(bytes(*at, size), &s, size);
    return at;
  }

  /// Sets the DELETED flag of the object at `at` (as add_* returned it); the kernel
  /// never reuses the slot. Errors: none checked: `at` must be this writer's.
  void mark_deleted(phys_addr at) {
    auto* h = reinterpret_cast<iommu_hdr_ser*>(bytes(at, sizeof(iommu_hdr_ser)));
    h->flags.set(h->flags.get() | iommu_flag_deleted);
  }

  /// The FLB's data: iommu_flb_ser's phys.
  phys_addr data() const { return ser_; }
  iommu_variant variant() const { return v_; }

 private:
  iommu_flb_writer(Source& source, iommu_variant v) : source_(&source), v_(v) {}

  unsigned char* bytes(phys_addr pa, u64 n) const {
    return static_cast<unsigned char*>(source_->memory().to_virt(pa, n));
  }
  static void put_hdr(iommu_hdr_ser& h, u32 ref_count, u32 flags) {
    h.ref_count.set(ref_count);
    h.flags.set(flags);
  }

  // The next slot of `list`, linking a fresh page when the tail is full.
  result<phys_addr> append(iommu_list list) {
    const int l = static_cast<int>(list);
    const u64 size = iommu_object_size(list, v_);
    auto* h = reinterpret_cast<iommu_array_hdr_ser*>(bytes(tail_[l], geometry::size));
    if (h->nr_objects.get() == iommu_capacity<PageShift>(list, v_)) {
      auto page = alloc_zeroed(*source_, order{0}, geometry::size);
      if (!page) return page.err();
      h->next_array_phys.set(page->value);
      tail_[l] = *page;
      h = reinterpret_cast<iommu_array_hdr_ser*>(bytes(tail_[l], geometry::size));
    }
    const u64 n = h->nr_objects.get();
    h->nr_objects.set(n + 1);
    return tail_[l] + sizeof(iommu_array_hdr_ser) + n * size;
  }

  Source* source_;
  iommu_variant v_;
  phys_addr ser_{};
  phys_addr tail_[3] = {};
};

// ---- reader ------------------------------------------------------------------------

/// Bounds of the reader.
struct iommu_limits {
  u64 max_array_pages = u64{1} << 20;  // all three lists: 4 GiB of array pages at 4 KiB
};

namespace impl {
// The reader's table: array pages (kind 0: a = page, b = list, c = nr_objects), live
// devices (kind 1: a = devid | pci_domain_nr << 32, c = iommu_live_device) and live hw
// objects (kind 2: a = token, b = type, c = iommu_live_hw).
struct iommu_slot {
  u64 tag, a, b, c;
};
inline constexpr u64 iommu_live_hw = ~u64{0};          // c of a hw object's slot
inline constexpr u64 iommu_live_device = ~u64{0} - 1;  // c of a device's slot (pages: nr_objects)
inline u64 iommu_tag(u64 kind, u64 a, u64 b) {
  return detail::tag_of(detail::mix64(detail::mix64(a ^ kind << 61) ^ b));
}
}  // namespace impl

/// A validated IOMMU FLB. It keeps a table in the caller's scratch pages (its array
/// pages, for find()) until release().
template <Memory M, PageSource Scratch, unsigned PageShift = 12>
class iommu_flb_view {
 public:
  using geometry = page_geometry<PageShift>;
  static constexpr const char* structure = "iommu";

  /// Validates the IOMMU FLB of variant `v` at `ser`.
  /// Errors (structure "iommu"; depth 0 at `ser`, 1 at an array page, 2 at an object):
  /// invalid_argument (not a variant), misaligned, out_of_bounds, bad_version,
  /// missing_dependency (a head 0; a reference to no live object of the right list),
  /// bad_count, cycle, aliased (a page in two lists), budget_exceeded,
  /// reserved_nonzero, out_of_range, duplicate; out_of_memory (scratch).
  /// Complexity: O(pages + objects) time, O(pages + live objects) scratch.
  static result<iommu_flb_view> attach(const M& mem, phys_addr ser, iommu_variant v, Scratch& scratch,
                                       const iommu_limits& limits = {}) {
    iommu_flb_view view(mem, ser, v, scratch);
    if (status s = view.validate(limits); !s) {
      view.release();
      return s.err();
    }
    return view;
  }

  /// Gives the table back to the scratch source; the view is unusable after.
  void release() { table_.release(*scratch_); }

  /// f(iommu_hw / iommu_domain / iommu_device) for every object, DELETED ones too, in
  /// list order. Complexity: O(objects + pages).
  template <class F>
  void for_each_hw(F&& f) const {
    for_each_object(iommu_list::hw, [&](const unsigned char* p, phys_addr at) { f(impl::read_hw(p, v_, at)); });
  }
  template <class F>
  void for_each_domain(F&& f) const {
    for_each_object(iommu_list::domain, [&](const unsigned char* p, phys_addr at) { f(impl::read_domain(p, at)); });
  }
  template <class F>
  void for_each_device(F&& f) const {
    for_each_object(iommu_list::device,
                    [&](const unsigned char* p, phys_addr at) { f(impl::read_device(p, v_, at)); });
  }

  /// Checks that `pa` is a live object of `list`; returns its index in its page.
  /// Complexity: O(1) expected. Errors (structure "iommu", at pa, depth 2):
  /// missing_dependency (not in a page of `list`, or DELETED), misaligned (not on an
  /// object boundary), out_of_range (index >= nr_objects).
  result<u64> find(iommu_list list, phys_addr pa) const {
    auto fail = [pa](errc c) { return make_error(c, structure, pa, 2); };
    const phys_addr page{pa.value & ~geometry::mask};
    const u64 tag = impl::iommu_tag(0, page.value, 0);
    const impl::iommu_slot* s =
        table_.find(*scratch_, tag, [&](const impl::iommu_slot& x) { return x.a == page.value && x.c < impl::iommu_live_device; });
    if (s == nullptr || s->b != static_cast<u64>(list)) return fail(errc::missing_dependency);
    const u64 off = pa - page, size = iommu_object_size(list, v_);
    if (off < sizeof(iommu_array_hdr_ser) || (off - sizeof(iommu_array_hdr_ser)) % size != 0)
      return fail(errc::misaligned);
    const u64 index = (off - sizeof(iommu_array_hdr_ser)) / size;
    if (index >= s->c) return fail(errc::out_of_range);
    const auto* h = static_cast<const iommu_hdr_ser*>(mem_.to_virt(pa, sizeof(iommu_hdr_ser)));
    if ((h->flags.get() & iommu_flag_deleted) != 0) return fail(errc::missing_dependency);
    return index;
  }

  /// Claims iommu_flb_ser's page and every array page for {"iommu", ser}.
  /// Complexity: O(pages). Errors: claim's.
  template <class Owners>
  status claim_pages(Owners& owners) const {
    const page_owner who{structure, ser_};
    KHO_TRY(owners.claim(ser_, 1, who));
    status s;
    for (int l = 0; l < 3 && s; ++l)
      for_each_page(static_cast<iommu_list>(l), [&](phys_addr page, u64) {
        if (s) s = owners.claim(page, 1, who);
      });
    return s;
  }

  /// Claims the page of each I/O page table a live object names (a domain's top table,
  /// an Intel unit's root table, a device's PASID table) for the IOMMU FLB: whoever
  /// preserved it, the FLB is what names it, so a page two objects name, or one a
  /// structure also owns, has two owners (aliased). Run after check_references, which
  /// proves them preserved. Complexity: O(objects). Errors: claim's.
  template <class Owners>
  status claim_io_page_tables(Owners& owners) const {
    const page_owner who{structure, ser_};
    status s;
    auto claim = [&](u64 pa) {
      if (s && pa != 0) s = owners.claim(phys_addr{pa & ~geometry::mask}, 1, who);
    };
    for_each_domain([&](const iommu_domain& d) {
      if ((d.flags & iommu_flag_deleted) == 0) claim(d.top_table_phys);
    });
    for_each_hw([&](const iommu_hw& h) {
      if ((h.flags & iommu_flag_deleted) == 0 && h.type == iommu_type_intel) claim(h.root_table);
    });
    for_each_device([&](const iommu_device& d) {
      if ((d.flags & iommu_flag_deleted) == 0) claim(d.pasid_table);
    });
    return s;
  }

  /// What the objects name outside the FLB, against the preserved-memory map: the
  /// page-table pages of live objects preserved, an Intel MMIO base not.
  /// Complexity: O(objects) map lookups. Errors: not_preserved, out_of_range (at the
  /// object, depth 2).
  template <class Map>
  status check_references(const Map& map) const {
    status s;
    auto need = [&](u64 pa, phys_addr at) {
      if (s && pa != 0 && !map.is_preserved(phys_addr{pa})) s = make_error(errc::not_preserved, structure, at, 2);
    };
    for_each_domain([&](const iommu_domain& d) {
      if ((d.flags & iommu_flag_deleted) == 0) need(d.top_table_phys, d.at);
    });
    for_each_hw([&](const iommu_hw& h) {
      if ((h.flags & iommu_flag_deleted) != 0 || h.type != iommu_type_intel) return;
      need(h.root_table, h.at);
      if (s && h.mmio != 0 && map.is_preserved(phys_addr{h.mmio & ~geometry::mask}))
        s = make_error(errc::out_of_range, structure, h.at, 2);
    });
    for_each_device([&](const iommu_device& d) {
      if ((d.flags & iommu_flag_deleted) == 0) need(d.pasid_table, d.at);
    });
    return s;
  }

  iommu_variant variant() const { return v_; }
  phys_addr address() const { return ser_; }
  phys_addr head(iommu_list list) const { return heads_[static_cast<int>(list)]; }
  u64 pages() const { return pages_; }

 private:
  iommu_flb_view(const M& mem, phys_addr ser, iommu_variant v, Scratch& scratch)
      : mem_(mem), ser_(ser), v_(v), scratch_(&scratch) {}

  // f(page, nr_objects) for the pages of a validated list.
  template <class F>
  void for_each_page(iommu_list list, F&& f) const {
    for (phys_addr pa = heads_[static_cast<int>(list)]; pa;) {
      const auto* h = static_cast<const iommu_array_hdr_ser*>(mem_.to_virt(pa, geometry::size));
      f(pa, h->nr_objects.get());
      pa = phys_addr{h->next_array_phys.get()};
    }
  }

  // g(object bytes, object phys) for the objects of a validated list.
  template <class G>
  void for_each_object(iommu_list list, G&& g) const {
    const u64 size = iommu_object_size(list, v_);
    for_each_page(list, [&](phys_addr page, u64 n) {
      const auto* p = static_cast<const unsigned char*>(mem_.to_virt(page, geometry::size));
      for (u64 i = 0; i < n; ++i) {
        const u64 off = sizeof(iommu_array_hdr_ser) + i * size;
        g(p + off, page + off);
      }
    });
  }

  template <class Eq>
  status insert(const impl::iommu_slot& slot, Eq&& eq, errc repeat, phys_addr at, u32 depth) {
    table_.raise_probe_budget(16 * (table_.size() + 1) + 1024);
    bool inserted = false;
    auto r = table_.insert_unique(*scratch_, slot, eq, inserted);
    if (!r) return make_error(r.code(), structure, at, depth);
    if (!inserted) {
      // An array page seen before: in the same list a cycle, else two lists share it.
      if (repeat == errc::cycle && (*r)->b != slot.b) repeat = errc::aliased;
      return make_error(repeat, structure, at, depth);
    }
    return {};
  }

  status walk_list(iommu_list list, const iommu_limits& limits) {
    const u64 capacity = iommu_capacity<PageShift>(list, v_);
    u32 depth = 1;
    for (phys_addr pa = heads_[static_cast<int>(list)]; pa;) {
      auto fail = [&](errc c) { return make_error(c, structure, pa, depth); };
      if (pages_ >= limits.max_array_pages) return fail(errc::budget_exceeded);
      if (!geometry::is_aligned(pa)) return fail(errc::misaligned);
      const auto* h = static_cast<const iommu_array_hdr_ser*>(mem_.to_virt(pa, geometry::size));
      if (h == nullptr) return fail(errc::out_of_bounds);
      const u64 n = h->nr_objects.get();
      const phys_addr next{h->next_array_phys.get()};
      if (n > capacity || (next && n != capacity)) return fail(errc::bad_count);
      const u64 key = pa.value;
      KHO_TRY(insert({impl::iommu_tag(0, key, 0), key, static_cast<u64>(list), n},
                     [key](const impl::iommu_slot& x) { return x.a == key && x.c < impl::iommu_live_device; }, errc::cycle, pa, depth));
      ++pages_;
      pa = next;
    }
    return {};
  }

  status validate(const iommu_limits& limits) {
    auto fail = [this](errc c) { return make_error(c, structure, ser_, 0); };
    if (v_ != iommu_variant::v1 && v_ != iommu_variant::versioned) return fail(errc::invalid_argument);
    if (!geometry::is_aligned(ser_)) return fail(errc::misaligned);
    const u64 size = v_ == iommu_variant::v1 ? sizeof(iommu_flb_ser) : sizeof(iommu_flb_ser_versioned);
    const auto* p = static_cast<const unsigned char*>(mem_.to_virt(ser_, size));
    if (p == nullptr) return fail(errc::out_of_bounds);
    if (v_ == iommu_variant::versioned) {
      if (reinterpret_cast<const iommu_flb_ser_versioned*>(p)->version.get() != iommu_versioned_version)
        return fail(errc::bad_version);
      p += 8;
    }
    const auto* heads = reinterpret_cast<const iommu_flb_ser*>(p);
    heads_[0] = phys_addr{heads->iommu_array_phys.get()};
    heads_[1] = phys_addr{heads->iommu_domain_array_phys.get()};
    heads_[2] = phys_addr{heads->device_array_phys.get()};
    for (const phys_addr h : heads_)
      if (!h) return fail(errc::missing_dependency);
    for (int l = 0; l < 3; ++l) KHO_TRY(walk_list(static_cast<iommu_list>(l), limits));

    error bad{};
    auto stop = [&](errc c, phys_addr at) {
      if (bad.code == errc::ok) bad = make_error(c, structure, at, 2);
    };
    for_each_domain([&](const iommu_domain& d) {
      if (bad.code != errc::ok) return;
      if ((d.flags & ~iommu_known_flags) != 0 || (d.sign_extend & ~1u) != 0) stop(errc::reserved_nonzero, d.at);
      else if (d.vasz > 64) stop(errc::out_of_range, d.at);
    });
    for_each_hw([&](const iommu_hw& h) {
      if (bad.code != errc::ok) return;
      if ((h.flags & ~iommu_known_flags) != 0) return stop(errc::reserved_nonzero, h.at);
      if (h.type > iommu_type_intel) return stop(errc::out_of_range, h.at);
      if (v_ == iommu_variant::v1) {
        iommu_hw_ser_v1 s;
        std::memcpy(&s, mem_.to_virt(h.at, sizeof s), sizeof s);
        if (h.type == iommu_type_invalid) {
          const iommu_hw_ser_v1 zero{};
          if (std::memcmp(&s.restored, &zero.restored, sizeof s - offsetof(iommu_hw_ser_v1, restored)) != 0)
            return stop(errc::reserved_nonzero, h.at);
        } else {
          for (unsigned char b : s.padding)
            if (b != 0) return stop(errc::reserved_nonzero, h.at);
          if (h.restored > 1) return stop(errc::out_of_range, h.at);
          // The register base is MMIO: zero, or inside the image's memory (its RAM), is
          // not a register block.
          if (h.mmio == 0 || mem_.to_virt(phys_addr{h.mmio}, 1) != nullptr) return stop(errc::out_of_range, h.at);
          if (!geometry::is_aligned(phys_addr{h.root_table})) return stop(errc::misaligned, h.at);
        }
      }
      if ((h.flags & iommu_flag_deleted) != 0) return;
      const u64 token = h.token, type = h.type;
      if (status s = insert({impl::iommu_tag(2, token, type), token, type, impl::iommu_live_hw},
                            [&](const impl::iommu_slot& x) { return x.a == token && x.b == type && x.c == impl::iommu_live_hw; },
                            errc::duplicate, h.at, 2);
          !s)
        bad = s.err();
    });
    if (bad.code != errc::ok) return bad;
    for_each_device([&](const iommu_device& d) {
      if (bad.code != errc::ok) return;
      if ((d.flags & ~iommu_known_flags) != 0) return stop(errc::reserved_nonzero, d.at);
      if (!geometry::is_aligned(phys_addr{d.pasid_table})) return stop(errc::misaligned, d.at);
      if ((d.flags & iommu_flag_deleted) != 0) return;
      if (d.iommu_phys == 0) return stop(errc::missing_dependency, d.at);
      if (auto i = find(iommu_list::hw, phys_addr{d.iommu_phys}); !i) return stop(i.code(), d.at);
      if (d.domain_phys != 0)
        if (auto i = find(iommu_list::domain, phys_addr{d.domain_phys}); !i) return stop(i.code(), d.at);
      const u64 key = u64{d.devid} | u64{d.pci_domain_nr} << 32;
      if (status s = insert({impl::iommu_tag(1, key, 0), key, 0, impl::iommu_live_device},
                            [&](const impl::iommu_slot& x) { return x.a == key && x.c == impl::iommu_live_device; },
                            errc::duplicate, d.at, 2);
          !s)
        bad = s.err();
    });
    if (bad.code != errc::ok) return bad;
    return {};
  }

  M mem_;
  phys_addr ser_;
  iommu_variant v_;
  Scratch* scratch_;
  detail::probe_table<impl::iommu_slot, Scratch, PageShift> table_;
  phys_addr heads_[3] = {};
  u64 pages_ = 0;
};

/// Attaches with the Memory type deduced.
template <unsigned PageShift = 12, Memory M, PageSource Scratch>
result<iommu_flb_view<M, Scratch, PageShift>> attach_iommu_flb(const M& mem, phys_addr ser, iommu_variant v,
                                                               Scratch& scratch, const iommu_limits& limits = {}) {
  return iommu_flb_view<M, Scratch, PageShift>::attach(mem, ser, v, scratch, limits);
}

}  // namespace kho::upstream
