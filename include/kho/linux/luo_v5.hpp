// kho/linux/luo_v5.hpp: Linux's Live Update Orchestrator state, "luo-v5", read and
// written byte for byte.
//
// Upstream: include/linux/kho/abi/luo.h (linux-mm fb2257f1) with the session, file and
// FLB readers of that series; shared/LINUX-FORMATS.md, section 6. kho's own LUO with
// FLB references ("kho-luo-v1") is kho/luo.hpp; this is the kernel's.
//
//   luo_ser (32 B, page aligned; the KHO subtree "LUO", blob-size 32)
//   +----------------+----------------+-------------+----------+
//   | compatible[8]  | liveupdate_num | sessions_pa | flbs_pa  |
//   | "luo-v5\0\0"   | u64            | u64 ---+    | u64 --+  |
//   +----------------+----------------+--------|----+-------|--+
//                                              v            v
//   session blocks (kho/block_list.hpp):       FLB page (one page):
//   [next|count|session 0|session 1|...] -> . [pgcnt=1|count|flb 0|flb 1|...]
//                 | file_set_ser.files
//                 v
//   [next|count|file 0|file 1|...] -> ...
//
//   luo_session_ser (80 B, 51 a 4 KiB block): name[64], files (u64), count (u64)
//   luo_file_ser    (64 B, 63 a 4 KiB block): compatible[48], data, token
//   luo_flb_ser     (64 B, at most 63 in a 4 KiB page): name[48], data, count
//
// Invariants the writer keeps (the kernel's): sessions in creation order, files in
// preservation order; sessions_pa 0 without sessions; an empty session has files 0,
// count 0; the FLB page always exists; each block set at most 10,000 blocks.
//
// Reader (luo_v5_view::attach). The kernel's checks: blob-size >= 32; the compatible
// "luo-v5" (strncmp over 8 bytes); each block set as kho_block_set_restore checks it
// (1 <= count <= entries per block, at most 10,000 blocks, no cycle); a file set holds
// exactly file_set_ser.count files; session names unique (the kernel's O(n^2) scan,
// here O(n) expected with a hash table in scratch). kho's, which the kernel does not
// make: luo_ser and the FLB page page-aligned and inside memory; the compatible's
// bytes after its NUL zero; names and compatibles NUL-terminated and non-empty (bytes
// after the NUL are ignored, as strncmp ignores them); `files == 0` with `count != 0`
// refused (the kernel only warns); tokens unique within a session (the kernel's
// writer refuses duplicates, its reader does not look); FLB pgcnt 1 and count within
// the page; FLB names unique; no block or page reached twice, across all sets.
// Scratch grows with what the walk has visited, never with a count the input claims.
//
// Other root layouts, same sessions, files and FLBs (a luo_version chosen at create /
// attach; shared/LINUX-FORMATS.md section 0):
//   luo-v5;block-v1 (RFC, linux-mm 8c8e7930): compatible[16] = "luo-v5;block-v1\0",
//     liveupdate_num @16, sessions_pa @24, flbs_pa @32 (40 B).
//   feature header (linux-mm 29a75107): luo_feature_hdr (128 B,
//     kho/linux/luo_feature.hpp) instead of the compatible, liveupdate_num @128,
//     sessions_pa @136, flbs_pa @144 (152 B); file records carry the handler's name
//     ("memfd") in the 48-byte field. Bits 0x1 number, 0x2 sessions, 0x4 FLBs; a field
//     whose bit is not active is zero (the writer refuses to drop it: out_of_range).
// luo-v1 (an FDT with fixed arrays) is kho/linux/luo_v1.hpp.
//
// Complexity: writer create_session O(1) expected, preserve_file O(files of the
// session), add_flb O(FLBs); attach O(bytes reachable) time and O(entries + blocks)
// scratch; retrieve and find O(1) expected.
#pragma once

#include <kho/block_list.hpp>
#include <kho/checksum.hpp>
#include <kho/detail/endian.hpp>
#include <kho/detail/fixed_string.hpp>
#include <kho/detail/probe_table.hpp>
#include <kho/linux/luo_feature.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>

namespace kho::upstream {

// ---- wire layout -------------------------------------------------------------------

inline constexpr const char* luo_v5_compatible = "luo-v5";
inline constexpr const char* luo_v5_subtree = "LUO";  // the KHO root's subnode name
inline constexpr u64 luo_v5_compatible_len = 8;       // ALIGN(sizeof("luo-v5"), 8)
inline constexpr u64 luo_v5_session_name_len = 64;
inline constexpr u64 luo_v5_file_compatible_len = 48;
inline constexpr u64 luo_v5_flb_name_len = 48;
inline constexpr u64 luo_v5_flb_pgcnt = 1;  // LUO_FLB_PGCNT
inline constexpr const char* luo_v5_block_v1_compatible = "luo-v5;block-v1";  // RFC: base ";" sub-version
inline constexpr u64 luo_v5_block_v1_compatible_len = 16;                      // ALIGN(sizeof, 8)

/// The LUO layouts kho reads and writes. v5, v5_block_v1 and feature differ only in
/// what precedes luo_ser's three u64s; v1 is an FDT (kho/linux/luo_v1.hpp); the
/// others are kho/linux/luo_layouts.hpp. The value is the manifest's "luo" version:
/// 1..7 keep the meaning images already carry (3 and 4 are the raw forms, whose
/// luo_ser holds the string itself); 8..12 are the layouts whose string another
/// layout also uses, named with their form.
enum class luo_version : u8 {
  v1 = 1,
  v2 = 2,
  v3 = 3,  // raw, 8-byte compatible "luo-v3"
  v4 = 4,  // raw, 8-byte compatible "luo-v4"
  v5 = 5,
  v5_block_v1 = 6,
  feature = 7,
  v1_flb = 8,           // FDT "luo-v1" with the luo-flb node
  v3_fdt = 9,           // FDT "luo-v3" (LUO-block sessions)
  v4_fdt = 10,          // FDT "luo-v4" (LUO-block sessions and files)
  v3_kho_block_v1 = 11,  // raw, 24-byte compatible
  v4_kho_block_v1 = 12,  // raw, 24-byte compatible
};

/// kho's name of each layout (the manifest's wire name, and what a KHO root's
/// kho,compatible of "LUO" may say). Where one string names two layouts, the FDT one
/// says so.
constexpr const char* luo_version_name(luo_version v) {
  switch (v) {
    case luo_version::v1: return "luo-v1";
    case luo_version::v2: return "luo-v2";
    case luo_version::v3: return "luo-v3";
    case luo_version::v4: return "luo-v4";
    case luo_version::v5: return "luo-v5";
    case luo_version::v5_block_v1: return "luo-v5;block-v1";
    case luo_version::v1_flb: return "luo-v1 (luo-flb)";
    case luo_version::v3_fdt: return "luo-v3 (FDT)";
    case luo_version::v4_fdt: return "luo-v4 (FDT)";
    case luo_version::v3_kho_block_v1: return "luo-v3-kho-block-v1";
    case luo_version::v4_kho_block_v1: return "luo-v4-kho-block-v1";
    case luo_version::feature: break;
  }
  return "luo feature header";  // as manifest.hpp names it
}

struct luo_ser {
  char compatible[luo_v5_compatible_len];
  detail::le64 liveupdate_num;
  detail::le64 sessions_pa;  // first session block, 0 without sessions
  detail::le64 flbs_pa;      // the FLB page
};

/// luo_ser's three u64s, wherever its header puts them.
struct luo_ser_tail {
  detail::le64 liveupdate_num;
  detail::le64 sessions_pa;  // first session block, 0 without sessions
  detail::le64 flbs_pa;      // the FLB page
};

struct luo_ser_block_v1 {
  char compatible[luo_v5_block_v1_compatible_len];
  luo_ser_tail tail;
};

struct luo_ser_feature {
  luo_feature_hdr features;
  luo_ser_tail tail;
};

struct luo_file_set_ser {
  detail::le64 files;  // first file block, 0 without files
  detail::le64 count;
};

struct luo_session_ser {
  char name[luo_v5_session_name_len];
  luo_file_set_ser file_set_ser;
};

struct luo_file_ser {
  char compatible[luo_v5_file_compatible_len];  // the file handler's, e.g. "memfd-v2"
  detail::le64 data;                             // the handler's (memfd: memfd_luo_ser)
  detail::le64 token;
};

struct luo_flb_header_ser {
  detail::le64 pgcnt;  // 1
  detail::le64 count;  // entries that follow
};

struct luo_flb_ser {
  char name[luo_v5_flb_name_len];
  detail::le64 data;   // opaque handle from the FLB's preserve op
  detail::le64 count;  // files that depend on it
};

static_assert(sizeof(luo_ser) == 32);
static_assert(offsetof(luo_ser, liveupdate_num) == 8);
static_assert(offsetof(luo_ser, sessions_pa) == 16);
static_assert(offsetof(luo_ser, flbs_pa) == 24);
static_assert(sizeof(luo_ser_tail) == 24);
static_assert(sizeof(luo_ser_block_v1) == 40 && offsetof(luo_ser_block_v1, tail) == 16);
static_assert(sizeof(luo_ser_feature) == 152 && offsetof(luo_ser_feature, tail) == 128);
static_assert(std::has_unique_object_representations_v<luo_ser_block_v1>);
static_assert(std::has_unique_object_representations_v<luo_ser_feature>);
static_assert(sizeof(luo_file_set_ser) == 16);
static_assert(offsetof(luo_file_set_ser, count) == 8);
static_assert(sizeof(luo_session_ser) == 80);
static_assert(offsetof(luo_session_ser, file_set_ser) == 64);
static_assert(sizeof(luo_file_ser) == 64);
static_assert(offsetof(luo_file_ser, data) == 48);
static_assert(offsetof(luo_file_ser, token) == 56);
static_assert(sizeof(luo_flb_header_ser) == 16);
static_assert(offsetof(luo_flb_header_ser, count) == 8);
static_assert(sizeof(luo_flb_ser) == 64);
static_assert(offsetof(luo_flb_ser, data) == 48);
static_assert(offsetof(luo_flb_ser, count) == 56);
static_assert(std::has_unique_object_representations_v<luo_ser>);
static_assert(std::has_unique_object_representations_v<luo_session_ser>);
static_assert(std::has_unique_object_representations_v<luo_file_ser>);
static_assert(std::has_unique_object_representations_v<luo_flb_header_ser>);
static_assert(std::has_unique_object_representations_v<luo_flb_ser>);
static_assert(block_capacity<luo_session_ser> == 51 && block_capacity<luo_file_ser> == 63);

/// FLB entries in the FLB page: 63 with 4 KiB pages.
template <unsigned PageShift>
inline constexpr u64 luo_v5_flb_capacity =
    (luo_v5_flb_pgcnt * page_geometry<PageShift>::size - sizeof(luo_flb_header_ser)) / sizeof(luo_flb_ser);
static_assert(luo_v5_flb_capacity<12> == 63);

/// Blocks per set: the kernel's cap for the writer and the reader alike.
struct luo_v5_limits {
  u64 max_blocks = linux_max_blocks;
};

/// What the KHO root names: luo_ser's address and the blob size (32).
struct luo_v5_blob {
  phys_addr phys{};
  u64 size = 0;
};

namespace impl {

/// Bytes before luo_ser's three u64s, by layout (0 for v1, which has no luo_ser).
constexpr u64 luo_header_size(luo_version v) {
  return v == luo_version::v5 ? luo_v5_compatible_len
         : v == luo_version::v5_block_v1 ? luo_v5_block_v1_compatible_len
         : v == luo_version::feature ? sizeof(luo_feature_hdr)
                                      : 0;
}
constexpr u64 luo_ser_size(luo_version v) { return luo_header_size(v) + sizeof(luo_ser_tail); }
static_assert(luo_ser_size(luo_version::v5) == sizeof(luo_ser));
static_assert(luo_ser_size(luo_version::v5_block_v1) == sizeof(luo_ser_block_v1));
static_assert(luo_ser_size(luo_version::feature) == sizeof(luo_ser_feature));

/// The writer's record of one session: its entry and its file list's state.
struct luo_v5_session_slot {
  u64 tag;
  u64 entry;
  block_list_state files;
  u64 reserved;
};
static_assert(sizeof(luo_v5_session_slot) == 64);

/// The reader's slots: {tag, a, b, c}, meaning per table.
struct luo_v5_slot {
  u64 tag, a, b, c;
};
struct luo_v5_page_slot {
  u64 tag;  // the page's address (nonzero)
};

/// Tag of a name compared up to its NUL (as strncmp does).
inline u64 luo_v5_name_tag(const char* field, u64 cap) {
  return detail::tag_of(checksum(field, detail::bounded_length(field, cap)));
}
inline bool luo_v5_same_name(const char* a, const char* b, u64 cap) {
  const u64 n = detail::bounded_length(a, cap);
  return n == detail::bounded_length(b, cap) && std::memcmp(a, b, n) == 0;
}
/// A name as the reader accepts it: non-empty and NUL-terminated in its field.
inline bool luo_v5_name_ok(const char* field, u64 cap) {
  const u64 n = detail::bounded_length(field, cap);
  return n != 0 && n != cap;
}
inline u64 luo_v5_file_tag(u64 ordinal, u64 token) { return detail::tag_of(detail::mix64(ordinal ^ detail::mix64(token))); }

/// Inserts `slot` into a reader's table unless an equal key is there (then `repeat`,
/// by default duplicate, at `pa`). The probe budget follows the table's size, so it is linear in what was
/// walked.
template <class Table, class Scratch, class Slot, class Eq>
status luo_insert_once(Table& t, Scratch& scratch, const Slot& slot, Eq&& eq, const char* name, phys_addr pa,
                       u32 depth, errc repeat = errc::duplicate) {
  t.raise_probe_budget(16 * (t.size() + 1) + 1024);
  bool inserted = false;
  auto r = t.insert_unique(scratch, slot, eq, inserted);
  if (!r) return make_error(r.code(), name, pa, depth);
  if (!inserted) return make_error(repeat, name, pa, depth);
  return {};
}

}  // namespace impl

// ---- writer (the old kernel) -------------------------------------------------------

template <PageSource Source, unsigned PageShift = 12>
class luo_v5_writer {
 public:
  using geometry = page_geometry<PageShift>;
  using memory_type = memory_of<Source>;
  static constexpr const char* structure = "luo-v5";
  static constexpr u64 flb_capacity = luo_v5_flb_capacity<PageShift>;

  /// Allocates luo_ser (in layout `v`: v5, v5_block_v1 or feature with `masks`) and the
  /// FLB page for the `liveupdate_num`th live update.
  /// Complexity: O(PAGE_SIZE). Errors: invalid_argument (v1, which luo_v1_writer
  /// writes; masks outside feature_masks_ok), out_of_range (liveupdate_num nonzero
  /// while the number bit is not active), out_of_memory.
  static result<luo_v5_writer> create(Source& source, u64 liveupdate_num, const luo_v5_limits& limits = {},
                                      luo_version v = luo_version::v5,
                                      const feature_masks& masks = luo_default_features) {
    if (v == luo_version::v1 || (v == luo_version::feature && !feature_masks_ok(masks)))
      return errc::invalid_argument;
    if (v == luo_version::feature && liveupdate_num != 0 && (masks.active & luo_feature_number) == 0)
      return make_error(errc::out_of_range, luo_version_name(luo_version::feature));
    auto root = alloc_zeroed(source, order{0}, geometry::size);
    if (!root) return root.err();
    auto flbs = alloc_zeroed(source, order{0}, geometry::size);
    if (!flbs) {
      source.free(*root, order{0});
      return flbs.err();
    }
    luo_v5_writer w(source, *root, *flbs, limits, v, masks);
    void* head = source.memory().to_virt(*root, impl::luo_ser_size(v));
    if (v == luo_version::v5) std::memcpy(head, luo_v5_compatible, 6);
    if (v == luo_version::v5_block_v1) std::memcpy(head, luo_v5_block_v1_compatible, 15);
    if (v == luo_version::feature) put_feature_hdr(*static_cast<luo_feature_hdr*>(head), masks);
    luo_ser_tail& r = w.ser();
    r.liveupdate_num.set(liveupdate_num);
    if (w.carries(luo_feature_flbs)) r.flbs_pa.set(flbs->value);
    w.flb_header().pgcnt.set(luo_v5_flb_pgcnt);
    return w;
  }

  /// Adds an empty session. Complexity: O(1) expected.
  /// Errors: bad_string (empty, or 64 bytes or longer), already_exists, table_full
  /// (the set would pass max_blocks blocks), out_of_range (a feature header without
  /// the sessions bit cannot carry one), out_of_memory.
  status create_session(const char* name) {
    if (!carries(luo_feature_sessions)) return make_error(errc::out_of_range, luo_version_name(luo_version::feature));
    luo_session_ser e{};
    if (!detail::store_string(e.name, luo_v5_session_name_len, name)) return errc::bad_string;
    const u64 tag = impl::luo_v5_name_tag(e.name, luo_v5_session_name_len);
    if (find_session(tag, e.name) != nullptr) return errc::already_exists;
    auto list = session_list();
    if (!room(list)) return errc::table_full;
    KHO_TRY(index_.reserve(index_pages(), index_.size() + 1));
    auto at = list.push_back(e);
    if (!at) return at.err();
    sessions_ = list.state();
    ser().sessions_pa.set(sessions_.head.value);
    KHO_TRY(index_.insert(index_pages(), {tag, at->value, {}, 0}));
    return {};
  }

  /// Preserves a file in `session`. Complexity: O(files of the session).
  /// Errors: bad_string (compatible), not_found (session), already_exists (token),
  /// table_full (max_blocks), out_of_memory.
  status preserve_file(const char* session, const char* compatible, u64 data, u64 token) {
    luo_file_ser f{};
    if (!detail::store_string(f.compatible, luo_v5_file_compatible_len, compatible))
      return errc::bad_string;
    f.data.set(data);
    f.token.set(token);
    char field[luo_v5_session_name_len];
    if (!detail::store_string(field, sizeof field, session)) return errc::not_found;
    impl::luo_v5_session_slot* s =
        find_session(impl::luo_v5_name_tag(field, sizeof field), field);
    if (s == nullptr) return errc::not_found;
    file_list files(*src_, s->files);
    for (const luo_file_ser& other : files)
      if (other.token.get() == token) return errc::already_exists;
    if (!room(files)) return errc::table_full;
    auto at = files.push_back(f);
    if (!at) return at.err();
    s->files = files.state();
    luo_session_ser* e = session_list().entry(phys_addr{s->entry});
    e->file_set_ser.files.set(s->files.head.value);
    e->file_set_ser.count.set(s->files.size);
    return {};
  }

  /// Records an FLB with its dependent-file count. Complexity: O(FLBs).
  /// Errors: bad_string, already_exists (name), table_full (the page holds
  /// flb_capacity entries), out_of_range (a feature header without the FLB bit).
  status add_flb(const char* name, u64 data, u64 count) {
    if (!carries(luo_feature_flbs)) return make_error(errc::out_of_range, luo_version_name(luo_version::feature));
    luo_flb_ser b{};
    if (!detail::store_string(b.name, luo_v5_flb_name_len, name)) return errc::bad_string;
    b.data.set(data);
    b.count.set(count);
    luo_flb_header_ser& h = flb_header();
    luo_flb_ser* entries = reinterpret_cast<luo_flb_ser*>(&h + 1);
    const u64 n = h.count.get();
    for (u64 i = 0; i < n; ++i)
      if (impl::luo_v5_same_name(entries[i].name, b.name, luo_v5_flb_name_len))
        return errc::already_exists;
    if (n == flb_capacity) return errc::table_full;
    entries[n] = b;
    h.count.set(n + 1);
    return {};
  }

  /// What to name in the KHO root (subtree "LUO").
  luo_v5_blob blob() const { return {root_, impl::luo_ser_size(v_)}; }
  luo_version version() const { return v_; }
  /// Whether this layout can carry what feature bit `bit` stands for.
  bool carries(u64 bit) const { return v_ != luo_version::feature || (masks_.active & bit) != 0; }

  /// Frees every block, the FLB page, luo_ser and the index. Complexity: O(blocks).
  void destroy() {
    auto list = session_list();
    for (auto it = list.begin(); it != list.end(); ++it) {
      const luo_session_ser& e = *it;
      impl::luo_v5_session_slot* s =
          find_session(impl::luo_v5_name_tag(e.name, luo_v5_session_name_len), e.name);
      file_list(*src_, s->files).clear();
    }
    list.clear();
    index_.release(index_pages());
    src_->free(flbs_, order{0});
    src_->free(root_, order{0});
    sessions_ = {};
  }

  /// Returns the writer's index pages and keeps what was written (the handover is
  /// complete); the writer must not be used afterwards. Complexity: O(1).
  void release_index() { index_.release(index_pages()); }

  u64 session_count() const { return sessions_.size; }
  phys_addr root() const { return root_; }

 private:
  using session_list_type = block_list<luo_session_ser, Source, PageShift>;
  using file_list = block_list<luo_file_ser, Source, PageShift>;

  luo_v5_writer(Source& source, phys_addr root, phys_addr flbs, const luo_v5_limits& limits, luo_version v,
                const feature_masks& masks)
      : src_(&source), root_(root), flbs_(flbs), limits_(limits), v_(v), masks_(masks) {}

  luo_ser_tail& ser() const { return *phys_to<luo_ser_tail>(src_->memory(), root_ + impl::luo_header_size(v_)); }
  luo_flb_header_ser& flb_header() const {
    return *static_cast<luo_flb_header_ser*>(src_->memory().to_virt(flbs_, geometry::size));
  }
  session_list_type session_list() const { return session_list_type(*src_, sessions_); }

  // One more entry fits without passing the block cap.
  template <class List>
  bool room(const List& list) const {
    return list.size() < list.blocks() * List::per_block || list.blocks() < limits_.max_blocks;
  }

  impl::luo_v5_session_slot* find_session(u64 tag, const char* field) const {
    const session_list_type list = session_list();
    return index_.find(index_pages(), tag, [&](const impl::luo_v5_session_slot& s) {
      return impl::luo_v5_same_name(list.entry(phys_addr{s.entry})->name, field,
                                      luo_v5_session_name_len);
    });
  }

  // The session index is the writer's bookkeeping, never part of the handover: where
  // the source preserves what it lends (a preserving_page_source), the index takes its
  // pages from the source beneath, so it leaves no preserved page that no structure
  // references (a stock kernel would keep such a page reserved for good).
  static auto& index_pages_of(Source& source) {
    if constexpr (requires { source.inner(); }) return source.inner();
    else return source;
  }
  using index_source = std::remove_reference_t<decltype(index_pages_of(std::declval<Source&>()))>;
  index_source& index_pages() const { return index_pages_of(*src_); }

  Source* src_;
  phys_addr root_, flbs_;
  luo_v5_limits limits_;
  luo_version v_;
  feature_masks masks_;
  block_list_state sessions_{};
  detail::probe_table<impl::luo_v5_session_slot, index_source, PageShift> index_{};
};

// ---- reader (the next kernel) ------------------------------------------------------

/// The next kernel's view: validated once; then sessions are retrieved by name and
/// files by token, each at most once. The bookkeeping lives in hash tables in pages
/// from `Scratch`; preserved memory stays as the old kernel wrote it.
template <Memory M, PageSource Scratch, unsigned PageShift = 12>
class luo_v5_view {
 public:
  using geometry = page_geometry<PageShift>;
  using session_view = block_list_view<luo_session_ser, M, PageShift>;
  using file_view = block_list_view<luo_file_ser, M, PageShift>;
  static constexpr const char* structure = "luo-v5";
  static constexpr const char* sessions_structure = "luo-v5-sessions";
  static constexpr const char* files_structure = "luo-v5-files";
  static constexpr const char* flbs_structure = "luo-v5-flbs";
  static constexpr u64 flb_capacity = luo_v5_flb_capacity<PageShift>;

  /// Validates the luo_ser at `root` (a blob of `blob_size` bytes) and everything it
  /// reaches, and indexes it in `scratch`. Errors name the structure ("luo-v5",
  /// "luo-v5-sessions", "luo-v5-files", "luo-v5-flbs"), the block, entry or page at
  /// fault and the depth (0 luo_ser, 1 a session or FLB, 2 a file):
  /// bad_count (blob under 32 bytes; a block's count; a set's file count; FLB pgcnt or
  /// count), misaligned, out_of_bounds, bad_compatible, reserved_nonzero (bytes after
  /// the compatible's NUL), budget_exceeded (a set over max_blocks), cycle (a block or
  /// page reached twice), bad_string, duplicate (session name, token in a session,
  /// FLB name), out_of_memory (scratch).
  /// Complexity: O(bytes reachable) time, O(entries + blocks) scratch.
  /// `version` picks the root layout (v5, v5_block_v1, feature; detect_luo_version
  /// reads it from the bytes). The feature header adds: bad_version (a required bit
  /// outside luo_features_supported), bad_compatible (active outside supp),
  /// reserved_nonzero (reserved words; a field whose bit is not active is nonzero);
  /// v1 is refused with bad_compatible (luo_v1_view reads it).
  static result<luo_v5_view> attach(const M& mem, phys_addr root, Scratch& scratch,
                                    u64 blob_size = sizeof(luo_ser), const luo_v5_limits& limits = {},
                                    luo_version version = luo_version::v5) {
    luo_v5_view v(mem, root, scratch);
    v.version_ = version;
    if (status s = v.validate(blob_size, limits); !s) {
      v.release();
      return s.err();
    }
    return v;
  }

  /// The session named `name`, without retrieving it. Errors: not_found.
  result<const luo_session_ser*> find_session(const char* name) const {
    const impl::luo_v5_slot* s = session_slot(name);
    if (s == nullptr) return errc::not_found;
    return at<luo_session_ser>(s->b);
  }

  /// Retrieves session `name`, exactly once. Complexity: O(1) expected.
  /// Errors: not_found, already_retrieved.
  result<const luo_session_ser*> retrieve_session(const char* name) {
    impl::luo_v5_slot* s = session_slot(name);
    if (s == nullptr) return make_error(errc::not_found, structure, root_);
    if (s->c != 0) return make_error(errc::already_retrieved, sessions_structure, phys_addr{s->b}, 1);
    s->c = 1;
    return at<luo_session_ser>(s->b);
  }

  /// Retrieves the file `token` of a retrieved session, exactly once.
  /// Complexity: O(1) expected. Errors: not_found (no such session, session not
  /// retrieved, no such token), already_retrieved.
  result<const luo_file_ser*> retrieve_file(const char* session, u64 token) {
    const impl::luo_v5_slot* s = session_slot(session);
    if (s == nullptr || s->c == 0) return make_error(errc::not_found, structure, root_);
    impl::luo_v5_slot* f = file_slot(s->a, token);
    if (f == nullptr) return make_error(errc::not_found, structure, root_);
    if (f->c != 0) return make_error(errc::already_retrieved, files_structure, phys_addr{f->b}, 2);
    f->c = 1;
    return at<luo_file_ser>(f->b);
  }

  /// True once the session / file was retrieved. Errors: not_found.
  result<bool> session_retrieved(const char* name) const {
    const impl::luo_v5_slot* s = session_slot(name);
    if (s == nullptr) return errc::not_found;
    return s->c != 0;
  }
  result<bool> file_retrieved(const char* session, u64 token) const {
    const impl::luo_v5_slot* s = session_slot(session);
    const impl::luo_v5_slot* f = s ? file_slot(s->a, token) : nullptr;
    if (f == nullptr) return errc::not_found;
    return f->c != 0;
  }

  /// The FLB named `name`. Complexity: O(1) expected. Errors: not_found.
  result<const luo_flb_ser*> find_flb(const char* name) const {
    char field[luo_v5_flb_name_len];
    if (!detail::store_string(field, sizeof field, name)) return errc::not_found;
    const impl::luo_v5_slot* b = flb_names_.find(
        *scratch_, impl::luo_v5_name_tag(field, sizeof field), [&](const impl::luo_v5_slot& o) {
          return impl::luo_v5_same_name(at<luo_flb_ser>(o.a)->name, field, luo_v5_flb_name_len);
        });
    if (b == nullptr) return errc::not_found;
    return at<luo_flb_ser>(b->a);
  }

  session_view sessions() const {
    return session_view::unchecked(mem_, phys_addr{r_->sessions_pa.get()}, session_count_, 0);
  }
  file_view files(const luo_session_ser& e) const {
    return file_view::unchecked(mem_, phys_addr{e.file_set_ser.files.get()},
                                e.file_set_ser.count.get(), 0);
  }
  /// The FLB entries, flb_count() of them.
  const luo_flb_ser* flbs() const {
    return flb_count_ ? reinterpret_cast<const luo_flb_ser*>(flb_header() + 1) : nullptr;
  }

  /// Claims luo_ser's page, every session and file block and the FLB page for
  /// {"luo-v5", root}. Complexity: O(blocks). Errors: those of Owners::claim.
  template <class Owners>
  status claim_pages(Owners& owners) const {
    const page_owner who{structure, root_};
    KHO_TRY(owners.claim(phys_addr{root_.value & ~geometry::mask}, 1, who));
    status s;
    sessions().for_each_block([&](phys_addr block, const luo_session_ser* e, u64 n) {
      if (s) s = owners.claim(block, 1, who);
      for (u64 i = 0; i < n && s; ++i)
        files(e[i]).for_each_block([&](phys_addr fb, const luo_file_ser*, u64) {
          if (s) s = owners.claim(fb, 1, who);
        });
    });
    if (s && r_->flbs_pa.get() != 0) s = owners.claim(phys_addr{r_->flbs_pa.get()}, 1, who);
    return s;
  }

  u64 liveupdate_num() const { return r_->liveupdate_num.get(); }
  luo_version version() const { return version_; }
  u64 session_count() const { return session_count_; }
  u64 file_count() const { return file_count_; }
  u64 flb_count() const { return flb_count_; }
  u64 block_count() const { return blocks_; }
  phys_addr root() const { return root_; }
  const M& memory() const { return mem_; }
  /// Scratch bytes the indexes hold.
  u64 scratch_bytes() const { return sessions_.bytes() + files_.bytes() + flb_names_.bytes(); }

  /// Returns the scratch pages; the view must not be used afterwards.
  void release() {
    sessions_.release(*scratch_);
    files_.release(*scratch_);
    flb_names_.release(*scratch_);
  }

 private:
  // sessions_: {tag, ordinal, entry, retrieved}; files_: {tag, session ordinal, entry,
  // retrieved}; flb_names_: {tag, entry, -, -}.
  using slot_table = detail::probe_table<impl::luo_v5_slot, Scratch, PageShift>;
  using page_table = detail::probe_table<impl::luo_v5_page_slot, Scratch, PageShift>;

  luo_v5_view(const M& mem, phys_addr root, Scratch& scratch)
      : mem_(mem), scratch_(&scratch), root_(root) {}

  template <class T>
  const T* at(u64 pa) const {
    return static_cast<const T*>(mem_.to_virt(phys_addr{pa}, sizeof(T)));
  }
  const luo_flb_header_ser* flb_header() const { return at<luo_flb_header_ser>(r_->flbs_pa.get()); }

  impl::luo_v5_slot* session_slot(const char* name) const {
    char field[luo_v5_session_name_len];
    if (!detail::store_string(field, sizeof field, name)) return nullptr;
    return sessions_.find(*scratch_, impl::luo_v5_name_tag(field, sizeof field),
                          [&](const impl::luo_v5_slot& o) {
      return impl::luo_v5_same_name(at<luo_session_ser>(o.b)->name, field, luo_v5_session_name_len);
    });
  }
  impl::luo_v5_slot* file_slot(u64 ordinal, u64 token) const {
    return files_.find(*scratch_, impl::luo_v5_file_tag(ordinal, token),
                       [&](const impl::luo_v5_slot& o) {
      return o.a == ordinal && at<luo_file_ser>(o.b)->token.get() == token;
    });
  }

  template <class Table, class Slot, class Eq>
  status add(Table& t, const Slot& slot, Eq&& eq, const char* name, phys_addr pa, u32 depth) {
    return impl::luo_insert_once(t, *scratch_, slot, eq, name, pa, depth);
  }

  // The bytes before luo_ser's three u64s, as layout version_ has them.
  errc check_header(const void* head) const {
    if (version_ == luo_version::feature) {
      const auto& h = *static_cast<const luo_feature_hdr*>(head);
      if (const errc c = check_feature_hdr(h, luo_features_supported); c != errc::ok) return c;
      const u64 active = h.active.get();
      const luo_ser_tail& t = *reinterpret_cast<const luo_ser_tail*>(&h + 1);
      if (((active & luo_feature_number) == 0 && t.liveupdate_num.get() != 0) ||
          ((active & luo_feature_sessions) == 0 && t.sessions_pa.get() != 0) ||
          ((active & luo_feature_flbs) == 0 && t.flbs_pa.get() != 0))
        return errc::reserved_nonzero;
      return errc::ok;
    }
    const bool block = version_ == luo_version::v5_block_v1;
    const char* want = block ? luo_v5_block_v1_compatible : luo_v5_compatible;
    const u64 len = impl::luo_header_size(version_);
    const char* c = static_cast<const char*>(head);
    if (!detail::string_equals(c, len, want)) return errc::bad_compatible;
    for (u64 i = detail::bounded_length(want, len); i < len; ++i)
      if (c[i] != 0) return errc::reserved_nonzero;
    return errc::ok;
  }

  status validate(u64 blob_size, const luo_v5_limits& limits) {
    auto fail = [this](errc c) { return make_error(c, structure, root_, 0); };
    if (version_ == luo_version::v1) return fail(errc::bad_compatible);
    const u64 need = impl::luo_ser_size(version_);
    if (blob_size < need) return fail(errc::bad_count);
    if (!geometry::is_aligned(root_)) return fail(errc::misaligned);
    const void* head = mem_.to_virt(root_, need);
    if (head == nullptr) return fail(errc::out_of_bounds);
    if (const errc c = check_header(head); c != errc::ok) return fail(c);
    r_ = at<luo_ser_tail>(root_.value + impl::luo_header_size(version_));

    page_table visited;
    status s = walk(limits, visited);
    visited.release(*scratch_);
    return s;
  }

  // Visits a page once; a second visit is a cycle at `pa`.
  status visit(page_table& visited, phys_addr pa, const char* name, u32 depth) {
    visited.raise_probe_budget(16 * (visited.size() + 1) + 1024);
    bool inserted = false;
    auto r = visited.insert_unique(*scratch_, {pa.value}, [](auto&) { return true; }, inserted);
    if (!r) return make_error(r.code(), name, pa, depth);
    if (!inserted) return make_error(errc::cycle, name, pa, depth);
    return {};
  }

  // One block set: the kernel's checks, each block visited once across all sets, and
  // `entry_ok(entry, its address)` for every entry.
  template <class Entry, class EntryOk>
  result<detail::chain_stats> chain(phys_addr head, u64 max_blocks, page_table& visited,
                                    const char* name, u32 depth, EntryOk&& entry_ok) {
    auto stats = detail::walk_chain<Entry, PageShift>(
        mem_, head, max_blocks, name,
        [&](phys_addr pa, const block_header* h, const Entry* entries) -> status {
          KHO_TRY(visit(visited, pa, name, depth));
          for (u64 i = 0; i < h->count.get(); ++i)
            KHO_TRY(entry_ok(entries[i], pa + sizeof(block_header) + i * sizeof(Entry)));
          return {};
        });
    if (!stats) {
      error e = stats.err();
      e.loc.depth = depth;
      return e;
    }
    blocks_ += stats->blocks;
    return stats;
  }

  status walk(const luo_v5_limits& limits, page_table& visited) {
    KHO_TRY(visit(visited, root_, structure, 0));
    u64 ordinal = 0;
    auto sessions = chain<luo_session_ser>(
        phys_addr{r_->sessions_pa.get()}, limits.max_blocks, visited, sessions_structure, 1,
        [&](const luo_session_ser& e, phys_addr pa) -> status {
          if (!impl::luo_v5_name_ok(e.name, luo_v5_session_name_len))
            return make_error(errc::bad_string, sessions_structure, pa, 1);
          return add(sessions_, impl::luo_v5_slot{impl::luo_v5_name_tag(e.name, luo_v5_session_name_len),
                                                    ordinal++, pa.value, 0},
                     [&](const impl::luo_v5_slot& o) {
                       return impl::luo_v5_same_name(at<luo_session_ser>(o.b)->name, e.name,
                                                       luo_v5_session_name_len);
                     },
                     sessions_structure, pa, 1);
        });
    if (!sessions) return sessions.err();
    session_count_ = sessions->size;

    ordinal = 0;
    const session_view all = this->sessions();  // iterators point into it
    for (auto it = all.begin(); it != all.end(); ++it, ++ordinal) {
      const u64 head = it->file_set_ser.files.get(), claimed = it->file_set_ser.count.get();
      auto files = chain<luo_file_ser>(
          phys_addr{head}, limits.max_blocks, visited, files_structure, 2,
          [&](const luo_file_ser& f, phys_addr pa) -> status {
            if (!impl::luo_v5_name_ok(f.compatible, luo_v5_file_compatible_len))
              return make_error(errc::bad_string, files_structure, pa, 2);
            const u64 token = f.token.get();
            return add(files_, impl::luo_v5_slot{impl::luo_v5_file_tag(ordinal, token), ordinal, pa.value, 0},
                       [&](const impl::luo_v5_slot& o) {
                         return o.a == ordinal && at<luo_file_ser>(o.b)->token.get() == token;
                       },
                       files_structure, pa, 2);
          });
      if (!files) return files.err();
      if (files->size != claimed) return make_error(errc::bad_count, sessions_structure, it.phys(), 1);
      file_count_ += files->size;
    }
    return check_flbs(visited);
  }

  status check_flbs(page_table& visited) {
    const phys_addr page{r_->flbs_pa.get()};
    if (!page) return {};
    auto fail = [&](errc c) { return make_error(c, flbs_structure, page, 1); };
    if (!geometry::is_aligned(page)) return fail(errc::misaligned);
    if (mem_.to_virt(page, geometry::size) == nullptr) return fail(errc::out_of_bounds);
    KHO_TRY(visit(visited, page, flbs_structure, 1));
    const luo_flb_header_ser* h = flb_header();
    if (h->pgcnt.get() != luo_v5_flb_pgcnt || h->count.get() > flb_capacity) return fail(errc::bad_count);
    const auto* e = reinterpret_cast<const luo_flb_ser*>(h + 1);
    for (u64 i = 0; i < h->count.get(); ++i) {
      const phys_addr pa = page + sizeof(luo_flb_header_ser) + i * sizeof(luo_flb_ser);
      if (!impl::luo_v5_name_ok(e[i].name, luo_v5_flb_name_len))
        return make_error(errc::bad_string, flbs_structure, pa, 1);
      KHO_TRY(add(flb_names_, impl::luo_v5_slot{impl::luo_v5_name_tag(e[i].name, luo_v5_flb_name_len), pa.value, 0, 0},
                  [&](const impl::luo_v5_slot& o) {
                    return impl::luo_v5_same_name(at<luo_flb_ser>(o.a)->name, e[i].name, luo_v5_flb_name_len);
                  },
                  flbs_structure, pa, 1));
    }
    flb_count_ = h->count.get();
    return {};
  }

  M mem_;
  Scratch* scratch_;
  phys_addr root_;
  const luo_ser_tail* r_ = nullptr;
  luo_version version_ = luo_version::v5;
  u64 session_count_ = 0, file_count_ = 0, flb_count_ = 0, blocks_ = 0;
  slot_table sessions_{}, files_{}, flb_names_{};
};

/// Attaches with the Memory and Scratch types deduced.
template <unsigned PageShift = 12, Memory M, PageSource Scratch>
result<luo_v5_view<M, Scratch, PageShift>> attach_luo_v5(const M& mem, phys_addr root, Scratch& scratch,
                                                         u64 blob_size = sizeof(luo_ser),
                                                         const luo_v5_limits& limits = {},
                                                         luo_version version = luo_version::v5) {
  return luo_v5_view<M, Scratch, PageShift>::attach(mem, root, scratch, blob_size, limits, version);
}

}  // namespace kho::upstream
