// kho/handover.hpp: the handover root, the one address the next kernel is given.
//
// The root is one page. It names every preserved structure, says which format each
// is in (a compatible string, as KHO's device tree does: "kho-v2", "luo-v1"), where
// its root block lives, and an XXH64 of that block; the root checksums itself.
//
//   offset  size  field
//   0       64    handover_header  magic, "kho-root-v1", version, page shift,
//                                  state, entry count, generation, checksum
//   64      128   handover_entry[0]  name, compatible, phys, size, checksum,
//                                    flags, deep checksum
//   192     128   handover_entry[1]
//   ...           (page_size - 64) / 128 entries: 31 with 4 KiB pages
//
// Sealing is ordered so that a crash at any point leaves a root the reader refuses
// with a distinct error:
//   state OPEN     -> written, never sealed             -> errc::not_sealed
//   state SEALING  -> checksums being written            -> errc::torn
//   state SEALED   -> published with release ordering    -> checksums verified
//   anything else  -> garbage in the state word          -> errc::torn
// Any change after sealing reopens the root (state OPEN) until the next seal().
//
// The root checksum covers the whole page, tail included; the state word is excluded
// (it is written after it) and the checksum field counts as zero. Entries are dense:
// [0, entry_count); unused entries and the tail are zero.
#pragma once

#include <kho/checksum.hpp>
#include <kho/detail/endian.hpp>
#include <kho/detail/fixed_string.hpp>
#include <kho/memory.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstddef>
#include <cstring>
#include <type_traits>

namespace kho {

// ---- wire layout -------------------------------------------------------------------

inline constexpr u64 handover_magic = 0x31544f4f524f484bULL;  // "KHOROOT1" little-endian
inline constexpr const char* handover_compatible = "kho-root-v1";
inline constexpr u16 handover_version_major = 1;
inline constexpr u16 handover_version_minor = 0;

enum class handover_state : u32 {
  open = 0x4e45504f,     // "OPEN"
  sealing = 0x474e4953,  // "SING"
  sealed = 0x4c414553,   // "SEAL"
};

struct handover_header {
  detail::le64 magic;
  char compatible[16];
  detail::le16 version_major;
  detail::le16 version_minor;
  detail::le16 page_shift;
  detail::le16 entry_capacity;
  detail::le32 state;
  detail::le32 entry_count;
  detail::le64 generation;
  detail::le64 checksum;
  detail::le64 reserved;
};

inline constexpr u64 handover_name_len = 32;
inline constexpr u64 handover_compatible_len = 48;

struct handover_entry {
  char name[handover_name_len];              // NUL-terminated, zero-filled
  char compatible[handover_compatible_len];  // NUL-terminated, zero-filled
  detail::le64 phys;                         // the structure's root block
  detail::le64 size;                         // bytes of it covered by `checksum`
  detail::le64 checksum;                     // XXH64 of [phys, phys + size)
  detail::le64 flags;                        // entry_flags
  detail::le64 deep_checksum;                // with entry_flags::deep_checksum: the
                                             // structure's checksum of all it reaches
  detail::le64 reserved;
};

/// Bits of handover_entry::flags. A reader refuses bits it does not know.
enum entry_flags : u64 {
  // deep_checksum holds a checksum the structure defines over everything reachable
  // from its root block (e.g. every node of a radix tree); its reader verifies it.
  entry_deep_checksum = 1,
  entry_known_flags = entry_deep_checksum,
};

static_assert(sizeof(handover_header) == 64);
static_assert(offsetof(handover_header, compatible) == 8);
static_assert(offsetof(handover_header, version_major) == 24);
static_assert(offsetof(handover_header, page_shift) == 28);
static_assert(offsetof(handover_header, state) == 32);
static_assert(offsetof(handover_header, entry_count) == 36);
static_assert(offsetof(handover_header, generation) == 40);
static_assert(offsetof(handover_header, checksum) == 48);
static_assert(sizeof(handover_entry) == 128);
static_assert(offsetof(handover_entry, compatible) == 32);
static_assert(offsetof(handover_entry, phys) == 80);
static_assert(offsetof(handover_entry, size) == 88);
static_assert(offsetof(handover_entry, checksum) == 96);
static_assert(offsetof(handover_entry, flags) == 104);
static_assert(offsetof(handover_entry, deep_checksum) == 112);
static_assert(std::has_unique_object_representations_v<handover_header>);
static_assert(std::has_unique_object_representations_v<handover_entry>);

template <unsigned PageShift>
inline constexpr u64 handover_capacity =
    (page_geometry<PageShift>::size - sizeof(handover_header)) / sizeof(handover_entry);

namespace detail {

template <unsigned PageShift>
struct handover_page {
  handover_header header;
  handover_entry entries[handover_capacity<PageShift>];
};

/// XXH64 of the whole root page (tail included) with the checksum and state fields
/// counted as zero.
template <unsigned PageShift>
u64 root_checksum(const handover_page<PageShift>& page) {
  handover_header h;
  std::memcpy(&h, &page.header, sizeof h);
  h.checksum.set(0);
  h.state.set(0);
  const auto* bytes = reinterpret_cast<const unsigned char*>(&page);
  XXH64_state_t st;
  XXH64_reset(&st, 0);
  XXH64_update(&st, &h, sizeof h);
  XXH64_update(&st, bytes + sizeof h, page_geometry<PageShift>::size - sizeof h);
  return XXH64_digest(&st);
}

inline u32 load_acquire(const detail::le32& field) {
  return detail::to_little(__atomic_load_n(&field.raw, __ATOMIC_ACQUIRE));
}

inline void store_release(detail::le32& field, u32 v) {
  __atomic_store_n(&field.raw, detail::to_little(v), __ATOMIC_RELEASE);
}

}  // namespace detail

/// The points inside seal() where a crash would leave a torn root (for crash injection).
enum class seal_step : u8 { began, entries_checksummed, root_checksummed, published };

/// A step's name, as crash-injection tools spell it.
constexpr const char* seal_step_name(seal_step s) {
  switch (s) {
    case seal_step::began: return "seal-began";
    case seal_step::entries_checksummed: return "seal-entries";
    case seal_step::root_checksummed: return "seal-root";
    case seal_step::published: return "sealed";
  }
  return "seal";
}

// ---- writer ------------------------------------------------------------------------

/// Builds and seals a handover root in a page from `Source`.
template <PageSource Source, unsigned PageShift = 12>
class handover_writer {
 public:
  using geometry = page_geometry<PageShift>;
  using page_type = detail::handover_page<PageShift>;
  static constexpr u64 capacity = handover_capacity<PageShift>;

  /// Allocates and initializes an open root. Errors: out_of_memory.
  static result<handover_writer> create(Source& source, u64 generation = 1) {
    auto pa = alloc_zeroed(source, order{0}, geometry::size);
    if (!pa) return pa.err();
    handover_writer w(source, *pa);
    handover_header& h = w.page().header;
    h.magic.set(handover_magic);
    detail::store_string(h.compatible, sizeof h.compatible, handover_compatible);
    h.version_major.set(handover_version_major);
    h.version_minor.set(handover_version_minor);
    h.page_shift.set(PageShift);
    h.entry_capacity.set(static_cast<u16>(capacity));
    h.generation.set(generation);
    h.state.set(static_cast<u32>(handover_state::open));
    return w;
  }

  /// Adds an entry. Complexity: O(entries).
  /// Errors: bad_string (name or compatible empty or too long), duplicate, table_full,
  /// out_of_bounds ([phys, phys+size) outside memory), aliased (the block overlaps the
  /// root page or another entry's block: the reader would refuse it).
  status add(const char* name, const char* compatible, phys_addr phys, u64 size) {
    if (find_index(name) >= 0) return errc::duplicate;
    if (count() == capacity) return errc::table_full;
    handover_entry e{};
    if (!detail::store_string(e.name, sizeof e.name, name) ||
        !detail::store_string(e.compatible, sizeof e.compatible, compatible))
      return errc::bad_string;
    if (source_->memory().to_virt(phys, size) == nullptr) return errc::out_of_bounds;
    if (shares_bytes(phys, size, -1)) return errc::aliased;
    e.phys.set(phys.value);
    e.size.set(size);
    reopen();
    page().entries[count()] = e;
    page().header.entry_count.set(count() + 1);
    return {};
  }

  /// Re-points an entry (a structure whose root block moved); drops its deep checksum.
  /// Errors: not_found, out_of_bounds, aliased.
  status update(const char* name, phys_addr phys, u64 size) {
    const int i = find_index(name);
    if (i < 0) return errc::not_found;
    if (source_->memory().to_virt(phys, size) == nullptr) return errc::out_of_bounds;
    if (shares_bytes(phys, size, i)) return errc::aliased;
    reopen();
    page().entries[i].phys.set(phys.value);
    page().entries[i].size.set(size);
    page().entries[i].flags.set(page().entries[i].flags.get() & ~u64{entry_deep_checksum});
    page().entries[i].deep_checksum.set(0);
    return {};
  }

  /// Records a structure-defined checksum of everything the entry reaches, for its
  /// reader to verify (call after the structure's last change, before seal()).
  /// Errors: not_found.
  status set_deep_checksum(const char* name, u64 sum) {
    const int i = find_index(name);
    if (i < 0) return errc::not_found;
    reopen();
    page().entries[i].flags.set(page().entries[i].flags.get() | entry_deep_checksum);
    page().entries[i].deep_checksum.set(sum);
    return {};
  }

  /// Removes an entry, keeping the others in order. Errors: not_found.
  status remove(const char* name) {
    const int i = find_index(name);
    if (i < 0) return errc::not_found;
    reopen();
    const u32 n = count();
    for (u32 j = static_cast<u32>(i); j + 1 < n; ++j) page().entries[j] = page().entries[j + 1];
    page().entries[n - 1] = handover_entry{};
    page().header.entry_count.set(n - 1);
    return {};
  }

  /// Checksums every entry's root block, then the root, then publishes the sealed
  /// state with release ordering. `on_step` sees each step (crash injection).
  /// Complexity: O(sum of entry sizes). Errors: out_of_bounds (an entry's block vanished).
  template <class OnStep>
  status seal(OnStep&& on_step) {
    handover_header& h = page().header;
    detail::store_release(h.state, static_cast<u32>(handover_state::sealing));
    on_step(seal_step::began);
    for (u32 i = 0; i < count(); ++i) {
      handover_entry& e = page().entries[i];
      const void* block = source_->memory().to_virt(phys_addr{e.phys.get()}, e.size.get());
      if (block == nullptr) return errc::out_of_bounds;
      e.checksum.set(checksum(block, e.size.get()));
    }
    on_step(seal_step::entries_checksummed);
    h.checksum.set(detail::root_checksum(page()));
    on_step(seal_step::root_checksummed);
    detail::store_release(h.state, static_cast<u32>(handover_state::sealed));
    on_step(seal_step::published);
    return {};
  }
  status seal() {
    return seal([](seal_step) {});
  }

  phys_addr root() const { return root_; }
  u32 count() const { return page().header.entry_count.get(); }
  bool sealed() const {
    return detail::load_acquire(page().header.state) == static_cast<u32>(handover_state::sealed);
  }

 private:
  handover_writer(Source& source, phys_addr root) : source_(&source), root_(root) {}

  page_type& page() const {
    return *static_cast<page_type*>(source_->memory().to_virt(root_, geometry::size));
  }
  void reopen() { detail::store_release(page().header.state, static_cast<u32>(handover_state::open)); }

  // Whether [phys, phys+size) (an empty block: the byte at phys) overlaps the root page
  // or the block of any entry but `except`.
  bool shares_bytes(phys_addr phys, u64 size, int except) const {
    const u64 last = phys.value + (size ? size - 1 : 0);
    auto overlaps = [&](u64 first2, u64 last2) { return phys.value <= last2 && first2 <= last; };
    if (overlaps(root_.value, root_.value + geometry::size - 1)) return true;
    for (u32 j = 0; j < count(); ++j) {
      const handover_entry& e = page().entries[j];
      const u64 n = e.size.get();
      if (static_cast<int>(j) != except && overlaps(e.phys.get(), e.phys.get() + (n ? n - 1 : 0)))
        return true;
    }
    return false;
  }

  int find_index(const char* name) const {
    for (u32 i = 0; i < count(); ++i)
      if (detail::string_equals(page().entries[i].name, handover_name_len, name))
        return static_cast<int>(i);
    return -1;
  }

  Source* source_;
  phys_addr root_;
};

// ---- reader ------------------------------------------------------------------------

/// A validated, read-only view of a sealed root. Lookups need no further checks.
template <Memory M, unsigned PageShift = 12>
class handover_view {
 public:
  using geometry = page_geometry<PageShift>;
  using page_type = detail::handover_page<PageShift>;
  static constexpr u64 capacity = handover_capacity<PageShift>;
  static constexpr const char* structure = "handover";

  /// Validates the root page at `root` and every entry's block checksum. This is the
  /// root alone: the structures behind the entries, and who owns which page, are
  /// checked by attach_handover (kho/handover_check.hpp), which calls this first.
  /// Complexity: O(entries^2 + page + sum of entry sizes).
  /// Errors: misaligned, out_of_bounds, bad_magic, bad_compatible, bad_version,
  /// page_size_mismatch, not_sealed, torn, bad_checksum, bad_count, bad_string,
  /// duplicate (a name twice), aliased (an entry's block overlaps the root page or
  /// another entry's block; error.other names the first), reserved_nonzero (the
  /// header's or an entry's reserved field, a deep checksum without its flag, or a
  /// byte past the last entry).
  static result<handover_view> attach(const M& mem, phys_addr root) {
    auto fail = [root](errc c, u32 depth = 0) { return make_error(c, structure, root, depth); };
    if (!geometry::is_aligned(root)) return fail(errc::misaligned);
    const auto* page = static_cast<const page_type*>(mem.to_virt(root, geometry::size));
    if (page == nullptr) return fail(errc::out_of_bounds);
    const handover_header& h = page->header;
    if (h.magic.get() != handover_magic) return fail(errc::bad_magic);
    if (!detail::string_equals(h.compatible, sizeof h.compatible, handover_compatible))
      return fail(errc::bad_compatible);
    if (h.version_major.get() != handover_version_major) return fail(errc::bad_version);
    if (h.page_shift.get() != PageShift) return fail(errc::page_size_mismatch);
    switch (static_cast<handover_state>(detail::load_acquire(h.state))) {
      case handover_state::sealed: break;
      case handover_state::open: return fail(errc::not_sealed);
      default: return fail(errc::torn);
    }
    if (detail::root_checksum(*page) != h.checksum.get()) return fail(errc::bad_checksum);
    if (h.entry_capacity.get() != capacity || h.entry_count.get() > capacity)
      return fail(errc::bad_count);
    if (h.reserved.get() != 0) return make_error(errc::reserved_nonzero, structure, root + offsetof(handover_header, reserved));
    for (u32 i = 0; i < h.entry_count.get(); ++i) {
      if (status s = validate_entry(mem, *page, root, i); !s) {
        error e = s.err();
        e.loc = where{structure, root + offset_of_entry(i), 1};
        return e;
      }
    }
    if (const u64 stale = first_nonzero_after_entries(*page); stale != 0)
      return make_error(errc::reserved_nonzero, structure, root + stale, 1);
    return handover_view(mem, root, page);
  }

  u32 size() const { return page_->header.entry_count.get(); }
  u64 generation() const { return page_->header.generation.get(); }
  u16 version_minor() const { return page_->header.version_minor.get(); }
  phys_addr root() const { return root_; }
  const handover_entry& operator[](u32 i) const { return page_->entries[i]; }
  const handover_entry* begin() const { return page_->entries; }
  const handover_entry* end() const { return page_->entries + size(); }

  /// The entry named `name`. Complexity: O(entries). Errors: not_found.
  result<const handover_entry*> find(const char* name) const {
    for (const handover_entry& e : *this)
      if (detail::string_equals(e.name, handover_name_len, name)) return &e;
    return make_error(errc::not_found, structure, root_);
  }

  /// The first entry at index >= `from` whose compatible string is `compatible`.
  /// Complexity: O(entries). Errors: not_found.
  result<const handover_entry*> find_compatible(const char* compatible, u32 from = 0) const {
    for (u32 i = from; i < size(); ++i)
      if (detail::string_equals(page_->entries[i].compatible, handover_compatible_len, compatible))
        return &page_->entries[i];
    return make_error(errc::not_found, structure, root_);
  }

  const M& memory() const { return mem_; }

 private:
  handover_view(const M& mem, phys_addr root, const page_type* page)
      : mem_(mem), root_(root), page_(page) {}

  static constexpr u64 offset_of_entry(u32 i) {
    return sizeof(handover_header) + u64{i} * sizeof(handover_entry);
  }

  // The bytes an entry names, as [first, last] so that a block ending at 2^64 is
  // representable; an empty block still names the byte at `phys` (two entries may not
  // share a structure, even an empty one).
  struct span {
    u64 first, last;
    bool overlaps(span o) const { return first <= o.last && o.first <= last; }
  };
  static span span_of(const handover_entry& e) {
    const u64 size = e.size.get();
    return {e.phys.get(), e.phys.get() + (size ? size - 1 : 0)};
  }

  // An entry is well-formed, its block is in memory and checksums, and it shares no byte
  // with the root page or with an earlier entry (two names for one structure would
  // give it two readers, each with its own retrieve-once state). O(i) per entry.
  static status validate_entry(const M& mem, const page_type& page, phys_addr root, u32 i) {
    const handover_entry& e = page.entries[i];
    if (!detail::is_canonical_string(e.name, handover_name_len) ||
        !detail::is_canonical_string(e.compatible, handover_compatible_len))
      return errc::bad_string;
    if ((e.flags.get() & ~u64{entry_known_flags}) != 0) return errc::bad_version;
    if (e.reserved.get() != 0) return errc::reserved_nonzero;
    if ((e.flags.get() & entry_deep_checksum) == 0 && e.deep_checksum.get() != 0)
      return errc::reserved_nonzero;
    for (u32 j = 0; j < i; ++j)
      if (std::memcmp(page.entries[j].name, e.name, handover_name_len) == 0) return errc::duplicate;
    const void* block = mem.to_virt(phys_addr{e.phys.get()}, e.size.get());
    if (block == nullptr) return errc::out_of_bounds;
    const span mine = span_of(e);
    if (mine.overlaps({root.value, root.value + geometry::size - 1})) {
      error err = make_error(errc::aliased);
      err.other = where{structure, root, 0};
      return err;
    }
    for (u32 j = 0; j < i; ++j) {
      if (!mine.overlaps(span_of(page.entries[j]))) continue;
      error err = make_error(errc::aliased);
      err.other = where{structure, root + offset_of_entry(j), 1};
      return err;
    }
    if (checksum(block, e.size.get()) != e.checksum.get()) return errc::bad_checksum;
    return {};
  }

  // Unused entries and the page's tail are zero (the writer never leaves bytes there;
  // a nonzero byte is either a writer bug or smuggled data). Returns the offset of the
  // first nonzero byte past the last entry, or 0.
  static u64 first_nonzero_after_entries(const page_type& page) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(&page);
    for (u64 off = offset_of_entry(page.header.entry_count.get()); off < geometry::size; ++off)
      if (bytes[off] != 0) return off;
    return 0;
  }

  M mem_;
  phys_addr root_;
  const page_type* page_;
};

/// Attaches the root page alone, with the Memory type deduced. The structures behind
/// the entries are not checked: use attach_handover (kho/handover_check.hpp), which
/// also checks them and who owns which page, unless you check them yourself.
template <unsigned PageShift = 12, Memory M>
result<handover_view<M, PageShift>> attach_handover_root(const M& mem, phys_addr root) {
  return handover_view<M, PageShift>::attach(mem, root);
}

}  // namespace kho
