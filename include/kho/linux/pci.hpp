// kho/linux/pci.hpp: Linux's PCI FLB (the list of PCI devices the old kernel kept
// alive across the live update) in its three variants, read and written byte for byte.
//
// Upstream: the PCI live-update series (David Matlack, v1..v6, Nov 2025 - May 2026),
// include/linux/kho/abi/pci.h and drivers/pci/liveupdate.c; shared/LINUX-FORMATS-NEXT.md
// section 5.1. The FLB entry's name picks the variant, its `data` is the pci_ser's phys.
//
//   "pci-v1" / "pci-v2": one allocation of get_order(8 + 8 * max_nr_devices)
//   +----------------+------------+--------+--------+-----+------------------+
//   | max_nr_devices | nr_devices | slot 0 | slot 1 | ... | slot max - 1     |
//   | u32            | u32        | 8 B    |        |     |                  |
//   +----------------+------------+--------+--------+-----+------------------+
//   slot (pci_dev_ser, 8 B): domain u32 @0, bdf u16 @4 (bus << 8 | devfn),
//     v1: padding u16 @6 (zero); v2: refcount u16 @6 (1 = in use, 0 = free).
//
//   "pci" (integer version): pci_ser (16 B, page aligned)
//   +---------+------------+---------+
//   | version | nr_devices | devices |---> KHO block chain (kho/block_list.hpp) of
//   | u32 = 1 | u32        | u64     |     8-byte pci_dev_ser, 510 per 4 KiB block
//   +---------+------------+---------+
//
// Reader (pci_flb_view::attach). The kernel's checks: duplicate keys
// (domain << 16 | bdf) among the used slots fail the retrieve. The kernel reads v2's
// slots without comparing max_nr_devices with its allocation; kho's whole-handover
// check (claim_luo_flb) does: the array must end inside the preserved block at `data`
// (out_of_bounds otherwise), a verdict difference. kho's own, where the kernel has
// none (each written down in docs/format.md):
//   - the structure page aligned and inside memory; nr_devices <= max_nr_devices;
//   - v2: refcount is 0 or 1 (out_of_range: the kernel keeps a slot with refcount 2
//     but never makes its device incoming, and WARNs at finish); a free slot is all
//     zero (unpreserve zeroes it: reserved_nonzero); nr_devices equals the used slots
//     (bad_count: the kernel's finish decrements it per device and would underflow);
//   - v1: the devices are slots [0, nr_devices) (no refcount tells used from free;
//     inferred from the writer), their padding zero; the slots after them are not read;
//   - "pci": version 1 (bad_version otherwise: a number kho does not know is refused,
//     never guessed); the chain holds exactly nr_devices entries (bad_count); its u16
//     at offset 6 is 0 or 1 (the spec does not say which of v1's and v2's meanings
//     the variant keeps; out_of_range otherwise).
// Duplicate keys are found with a hash table in the caller's scratch pages, so the
// check is O(devices) expected, whatever max_nr_devices claims: the array itself must
// lie inside memory first, which bounds the walk by the image.
//
// Complexity: write O(max_nr_devices); attach O(slots) time and O(devices) scratch.
#pragma once

#include <kho/block_list.hpp>
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

inline constexpr const char* pci_v1_name = "pci-v1";
inline constexpr const char* pci_v2_name = "pci-v2";
inline constexpr const char* pci_versioned_name = "pci";  // with pci_ser.version inside
inline constexpr u32 pci_versioned_version = 1;           // PCI_LUO_FLB_VERSION

/// The variants; the numbers are the manifest's versions of family "pci".
enum class pci_variant : u8 { v1 = 1, v2 = 2, versioned = 3 };

constexpr const char* pci_flb_name(pci_variant v) {
  return v == pci_variant::v1 ? pci_v1_name : v == pci_variant::v2 ? pci_v2_name : pci_versioned_name;
}

struct pci_dev_ser {
  detail::le32 domain;    // PCI segment
  detail::le16 bdf;       // bus << 8 | devfn
  detail::le16 refcount;  // v2: 1 in use, 0 free; v1: padding (zero)
};

struct pci_ser {  // pci-v1 / pci-v2, followed by max_nr_devices slots
  detail::le32 max_nr_devices;
  detail::le32 nr_devices;
};

struct pci_ser_versioned {  // "pci"
  detail::le32 version;     // 1; stays at offset 0 in every later version
  detail::le32 nr_devices;
  detail::le64 devices;     // first block of pci_dev_ser, 0 without devices
};

static_assert(sizeof(pci_dev_ser) == 8);
static_assert(offsetof(pci_dev_ser, bdf) == 4);
static_assert(offsetof(pci_dev_ser, refcount) == 6);
static_assert(std::has_unique_object_representations_v<pci_dev_ser>);
static_assert(sizeof(pci_ser) == 8 && offsetof(pci_ser, nr_devices) == 4);
static_assert(std::has_unique_object_representations_v<pci_ser>);
static_assert(sizeof(pci_ser_versioned) == 16);
static_assert(offsetof(pci_ser_versioned, nr_devices) == 4 && offsetof(pci_ser_versioned, devices) == 8);
static_assert(std::has_unique_object_representations_v<pci_ser_versioned>);
static_assert(block_capacity<pci_dev_ser> == 510);

/// A device as the writer takes it and the reader hands it back.
struct pci_device {
  u32 domain = 0;
  u16 bdf = 0;
};

/// The key the kernel files a preserved device under.
constexpr u64 pci_key(u32 domain, u16 bdf) { return u64{domain} << 16 | bdf; }

/// The variant FLB name `field` (of `cap` bytes) stands for, or 0 if none.
inline pci_variant pci_variant_of_name(const char* field, u64 cap) {
  for (pci_variant v : {pci_variant::v1, pci_variant::v2, pci_variant::versioned})
    if (detail::string_equals(field, cap, pci_flb_name(v))) return v;
  return pci_variant{0};
}

/// Bytes of a v1/v2 pci_ser with `max` slots.
constexpr u64 pci_ser_bytes(u64 max) { return sizeof(pci_ser) + max * sizeof(pci_dev_ser); }

/// The order of the folio kho_alloc_preserve(bytes) gives: get_order(bytes).
template <unsigned PageShift>
constexpr unsigned alloc_order(u64 bytes) {
  unsigned o = 0;
  while (o < 63 - PageShift && (u64{1} << (o + PageShift)) < bytes) ++o;
  return o;
}

// ---- writer ------------------------------------------------------------------------

/// Writes the PCI FLB holding `devices` as variant `v`; returns its address (the
/// FLB's data). v1/v2: one block of get_order(8 + 8 * max) pages, max =
/// max(n, max_nr_devices), devices in slots [0, n) (v2 refcount 1), the rest free;
/// "pci": a page for pci_ser and a KHO block chain (none when n is 0).
/// Complexity: O(max + n). Errors: invalid_argument (max or n above u32; a key twice),
/// out_of_memory.
template <unsigned PageShift = 12, PageSource Source>
result<phys_addr> write_pci_flb(Source& source, const pci_device* devices, u64 n, pci_variant v,
                                u64 max_nr_devices = 0) {
  using geometry = page_geometry<PageShift>;
  const u64 max = n > max_nr_devices ? n : max_nr_devices;
  if (max > 0xffffffffu) return errc::invalid_argument;
  for (u64 i = 0; i < n; ++i)  // the writer's input is the caller's, small: quadratic is fine
    for (u64 j = 0; j < i; ++j)
      if (pci_key(devices[i].domain, devices[i].bdf) == pci_key(devices[j].domain, devices[j].bdf))
        return errc::invalid_argument;
  if (v == pci_variant::versioned) {
    auto ser = alloc_zeroed(source, order{0}, geometry::size);
    if (!ser) return ser.err();
    block_list<pci_dev_ser, Source, PageShift> list(source);
    for (u64 i = 0; i < n; ++i) {
      pci_dev_ser d{};
      d.domain.set(devices[i].domain);
      d.bdf.set(devices[i].bdf);
      if (auto at = list.push_back(d); !at) {
        list.clear();
        source.free(*ser, order{0});
        return at.err();
      }
    }
    auto* s = static_cast<pci_ser_versioned*>(source.memory().to_virt(*ser, sizeof(pci_ser_versioned)));
    s->version.set(pci_versioned_version);
    s->nr_devices.set(static_cast<u32>(n));
    s->devices.set(list.head().value);
    return *ser;
  }
  const u64 bytes = pci_ser_bytes(max);
  const order o{alloc_order<PageShift>(bytes)};
  auto ser = alloc_zeroed(source, o, bytes);
  if (!ser) return ser.err();
  auto* s = static_cast<pci_ser*>(source.memory().to_virt(*ser, bytes));
  s->max_nr_devices.set(static_cast<u32>(max));
  s->nr_devices.set(static_cast<u32>(n));
  auto* slot = reinterpret_cast<pci_dev_ser*>(s + 1);
  for (u64 i = 0; i < n; ++i) {
    slot[i].domain.set(devices[i].domain);
    slot[i].bdf.set(devices[i].bdf);
    slot[i].refcount.set(v == pci_variant::v2 ? 1 : 0);
  }
  return *ser;
}

// ---- reader ------------------------------------------------------------------------

namespace impl {
struct pci_key_slot {
  u64 tag;
  u64 key;
};
}  // namespace impl

/// A validated PCI FLB.
template <Memory M, unsigned PageShift = 12>
class pci_flb_view {
 public:
  using geometry = page_geometry<PageShift>;
  static constexpr const char* structure = "pci";

  /// Validates the PCI FLB of variant `v` at `ser`; `scratch` lends pages for the
  /// duplicate check (given back before returning).
  /// Errors (structure "pci"; at `ser`, depth 0, or at a slot / entry, depth 1):
  /// invalid_argument (v not a variant), misaligned, out_of_bounds, bad_version,
  /// bad_count (nr_devices above max, or unequal to the used slots / entries),
  /// out_of_range (a refcount outside {0, 1}), reserved_nonzero (v1 padding, a free v2
  /// slot), duplicate (a key twice), the block chain's errors (structure
  /// "block_list"), out_of_memory / budget_exceeded (scratch).
  /// Complexity: O(slots) time, O(devices) scratch.
  template <PageSource Scratch>
  static result<pci_flb_view> attach(const M& mem, phys_addr ser, pci_variant v, Scratch& scratch) {
    pci_flb_view view(mem, ser, v);
    detail::probe_table<impl::pci_key_slot, Scratch, PageShift> keys;
    status s = view.validate(keys, scratch);
    keys.release(scratch);
    if (!s) return s.err();
    return view;
  }

  /// Calls f(pci_device) for every device in use, in slot (or chain) order.
  /// Complexity: O(slots).
  template <class F>
  void for_each_device(F&& f) const {
    for_each_slot([&](const pci_dev_ser& d, phys_addr) {
      if (in_use(d)) f(pci_device{d.domain.get(), d.bdf.get()});
      return errc::ok;
    });
  }

  /// Whether a device with this domain and bdf is in use. Complexity: O(slots).
  bool contains(u32 domain, u16 bdf) const {
    bool found = false;
    for_each_device([&](const pci_device& d) { found = found || (d.domain == domain && d.bdf == bdf); });
    return found;
  }

  /// Claims the pages read for {"pci", ser}: v1/v2 the pages the slot array spans;
  /// "pci" the pci_ser page and every block. Complexity: O(pages). Errors: claim's.
  template <class Owners>
  status claim_pages(Owners& owners) const {
    const page_owner who{structure, ser_};
    if (v_ != pci_variant::versioned)
      return owners.claim(ser_, (pci_ser_bytes(max_) + geometry::size - 1) >> PageShift, who);
    KHO_TRY(owners.claim(ser_, 1, who));
    return chain().claim_chain(owners, who);
  }

  pci_variant variant() const { return v_; }
  phys_addr address() const { return ser_; }
  u32 nr_devices() const { return nr_; }
  u32 max_nr_devices() const { return max_; }  // v1/v2; for "pci", nr_devices
  /// Bytes of the v1/v2 allocation that the slots need (what must be preserved).
  u64 bytes() const { return v_ == pci_variant::versioned ? sizeof(pci_ser_versioned) : pci_ser_bytes(max_); }

 private:
  pci_flb_view(const M& mem, phys_addr ser, pci_variant v) : mem_(mem), ser_(ser), v_(v) {}

  bool in_use(const pci_dev_ser& d) const { return v_ == pci_variant::v2 ? d.refcount.get() != 0 : true; }

  block_list_view<pci_dev_ser, M, PageShift> chain() const {
    return block_list_view<pci_dev_ser, M, PageShift>::unchecked(mem_, head_, nr_, blocks_);
  }

  // g(slot, its address) for every slot the variant reads: v1 [0, nr), v2 [0, max),
  // "pci" the chain's entries; stops at the first error.
  template <class G>
  errc for_each_slot(G&& g) const {
    if (v_ == pci_variant::versioned) {
      errc c = errc::ok;
      chain().for_each_block([&](phys_addr block, const pci_dev_ser* e, u64 count) {
        for (u64 i = 0; i < count && c == errc::ok; ++i)
          c = g(e[i], block + sizeof(block_header) + i * sizeof(pci_dev_ser));
      });
      return c;
    }
    const u64 slots = v_ == pci_variant::v1 ? nr_ : max_;
    if (slots == 0) return errc::ok;  // no array to map: it may end where memory does
    const auto* s = static_cast<const pci_dev_ser*>(mem_.to_virt(ser_ + sizeof(pci_ser), slots * sizeof(pci_dev_ser)));
    for (u64 i = 0; i < slots; ++i)
      if (const errc c = g(s[i], ser_ + sizeof(pci_ser) + i * sizeof(pci_dev_ser)); c != errc::ok) return c;
    return errc::ok;
  }

  template <class Table, class Scratch>
  status validate(Table& keys, Scratch& scratch) {
    auto fail = [this](errc c) { return make_error(c, structure, ser_, 0); };
    if (v_ != pci_variant::v1 && v_ != pci_variant::v2 && v_ != pci_variant::versioned)
      return fail(errc::invalid_argument);
    if (!geometry::is_aligned(ser_)) return fail(errc::misaligned);
    if (v_ == pci_variant::versioned) {
      const auto* s = static_cast<const pci_ser_versioned*>(mem_.to_virt(ser_, sizeof(pci_ser_versioned)));
      if (s == nullptr) return fail(errc::out_of_bounds);
      if (s->version.get() != pci_versioned_version) return fail(errc::bad_version);
      nr_ = max_ = s->nr_devices.get();
      head_ = phys_addr{s->devices.get()};
      auto list = attach_block_list<pci_dev_ser, PageShift>(mem_, head_);
      if (!list) return list.err();
      if (list->size() != nr_) return fail(errc::bad_count);
      blocks_ = list->blocks();
    } else {
      const auto* s = static_cast<const pci_ser*>(mem_.to_virt(ser_, sizeof(pci_ser)));
      if (s == nullptr) return fail(errc::out_of_bounds);
      max_ = s->max_nr_devices.get();
      nr_ = s->nr_devices.get();
      if (mem_.to_virt(ser_, pci_ser_bytes(max_)) == nullptr) return fail(errc::out_of_bounds);
      if (nr_ > max_) return fail(errc::bad_count);
    }
    KHO_TRY(keys.reserve(scratch, nr_ < 4096 ? nr_ : 4096));  // grows with what is found, not with nr_
    u64 used = 0;
    error bad{};
    for_each_slot([&](const pci_dev_ser& d, phys_addr at) {
      auto stop = [&](errc c) {
        bad = make_error(c, structure, at, 1);
        return c;
      };
      const u16 word = d.refcount.get();
      if (v_ == pci_variant::v1 && word != 0) return stop(errc::reserved_nonzero);
      if (word > 1) return stop(errc::out_of_range);
      if (v_ == pci_variant::v2 && word == 0) {
        if (d.domain.get() != 0 || d.bdf.get() != 0) return stop(errc::reserved_nonzero);
        return errc::ok;
      }
      ++used;
      const u64 key = pci_key(d.domain.get(), d.bdf.get());
      keys.raise_probe_budget(16 * (keys.size() + 1) + 1024);
      bool inserted = false;
      auto r = keys.insert_unique(scratch, impl::pci_key_slot{detail::tag_of(detail::mix64(key)), key},
                                  [key](const impl::pci_key_slot& k) { return k.key == key; }, inserted);
      if (!r) return stop(r.code());
      if (!inserted) return stop(errc::duplicate);
      return errc::ok;
    });
    if (bad.code != errc::ok) return bad;
    if (used != nr_) return fail(errc::bad_count);
    return {};
  }

  M mem_;
  phys_addr ser_;
  pci_variant v_;
  u32 nr_ = 0, max_ = 0;
  phys_addr head_{};
  u64 blocks_ = 0;
};

/// Attaches with the Memory type deduced.
template <unsigned PageShift = 12, Memory M, PageSource Scratch>
result<pci_flb_view<M, PageShift>> attach_pci_flb(const M& mem, phys_addr ser, pci_variant v, Scratch& scratch) {
  return pci_flb_view<M, PageShift>::attach(mem, ser, v, scratch);
}

}  // namespace kho::upstream
