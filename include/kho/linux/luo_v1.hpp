// kho/linux/luo_v1.hpp: Linux's first Live Update Orchestrator layout, "luo-v1" with
// its session node "luo-session-v2": an FDT naming fixed arrays, read and written byte
// for byte.
//
// Upstream: include/linux/kho/abi/luo.h (torvalds cc4adab1), kernel/liveupdate/
// luo_session.c (torvalds 7f790dd2), luo_core.c's FDT setup (index file 5091730175)
// and luo_file.c's fixed file array (LUO_FILE_PGCNT); shared/LINUX-FORMATS.md,
// section 0. docs/format.md draws the bytes.
//
//   KHO subtree "LUO" -> one page holding an FDT (libfdt sequential writer):
//     / { compatible = "luo-v1"; liveupdate-number = <u64, CPU order, 8 bytes>;
//         luo-session { compatible = "luo-session-v2";
//                       luo-session-header = <u64 phys, CPU order, 8 bytes>; }; }
//   session area: 16 pages (one order-4 preserved block)
//     +-------+-----------------+-----------------+---
//     | count | luo_session_ser | luo_session_ser | ...   at most (16 pages - 8) / 80
//     | u64   | 80 B            |                 |       = 819 with 4 KiB pages
//     +-------+-----------------+-----------------+---
//   luo_session_ser.file_set_ser.files -> file area: 2 pages (one order-1 block) of
//     luo_file_ser (64 B), at most 2 pages / 64 = 128 with 4 KiB pages; 0 without files.
//   The session and file records are luo-v5's (kho/linux/luo_v5.hpp). There are no
//   FLBs in this layout.
//
// Reader (luo_v1_view::attach). The kernel's checks: the session node exists, its
// compatible is "luo-session-v2", luo-session-header is 8 bytes; session names unique
// (-EEXIST); `files == 0` with `count != 0` only warns. kho's, which the kernel does
// not make: libfdt's full check of the blob and the root compatible "luo-v1" (the
// kernel checks it too), liveupdate-number 8 bytes, the node found by its exact name,
// the session count within the area (the kernel reads `count` entries unbounded), each
// file count within its area (likewise), `files == 0` with `count != 0` refused, areas
// page aligned and inside memory, names and compatibles NUL-terminated and non-empty,
// tokens unique in a session, and no page of any area reached twice (cycle).
// Complexity: attach O(sessions + files) time, O(sessions + files + pages) scratch.
//
// What luo-v1 cannot carry (the writer refuses, out_of_range + downgrade_refusal):
// FLBs ("flbs"), more sessions than the area holds ("sessions"), more files in a
// session than its area holds ("files", with the session's name).
// Not read: the older session node "luo-session-v1" (torvalds 0153094d), whose header
// differed; its full layout was not in the sources read.
#pragma once

#include <kho/detail/fixed_string.hpp>
#include <kho/detail/probe_table.hpp>
#include <kho/linux/kho_fdt.hpp>
#include <kho/linux/luo_feature.hpp>
#include <kho/linux/luo_v5.hpp>
#include <kho/linux/memblock.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstring>

#include <libfdt.h>

namespace kho::upstream {

// ---- wire layout -------------------------------------------------------------------

inline constexpr char luo_v1_compatible[] = "luo-v1";
inline constexpr char luo_v1_number_prop[] = "liveupdate-number";
inline constexpr char luo_v1_session_node[] = "luo-session";
inline constexpr char luo_v1_session_compatible[] = "luo-session-v2";
inline constexpr char luo_v1_session_header_prop[] = "luo-session-header";
inline constexpr unsigned luo_v1_session_order = 4;  // LUO_SESSION_PGCNT = 16 pages
inline constexpr unsigned luo_v1_file_order = 1;     // LUO_FILE_PGCNT = 2 pages

struct luo_v1_session_header {
  detail::le64 count;  // luo_session_ser entries that follow
};
static_assert(sizeof(luo_v1_session_header) == 8);

/// Sessions the area holds: 819 with 4 KiB pages.
template <unsigned PageShift>
inline constexpr u64 luo_v1_session_capacity =
    ((u64{1} << (PageShift + luo_v1_session_order)) - sizeof(luo_v1_session_header)) / sizeof(luo_session_ser);
/// Files a session's area holds: 128 with 4 KiB pages.
template <unsigned PageShift>
inline constexpr u64 luo_v1_file_capacity = (u64{1} << (PageShift + luo_v1_file_order)) / sizeof(luo_file_ser);
static_assert(luo_v1_session_capacity<12> == 819 && luo_v1_file_capacity<12> == 128);

// ---- writer ------------------------------------------------------------------------

/// Writes luo-v1: the FDT page and the session area at create, file areas on a
/// session's first file. Same calls as luo_v5_writer, so a caller can pick either.
template <PageSource Source, unsigned PageShift = 12>
class luo_v1_writer {
 public:
  using geometry = page_geometry<PageShift>;
  static constexpr const char* structure = "luo-v1";
  static constexpr u64 session_capacity = luo_v1_session_capacity<PageShift>;
  static constexpr u64 file_capacity = luo_v1_file_capacity<PageShift>;

  /// Allocates and writes the FDT page and the session area.
  /// Complexity: O(PAGE_SIZE * 16). Errors: out_of_memory, table_full (libfdt).
  static result<luo_v1_writer> create(Source& source, u64 liveupdate_num) {
    auto fdt_pa = alloc_zeroed(source, order{0}, geometry::size);
    if (!fdt_pa) return fdt_pa.err();
    auto area = alloc_zeroed(source, order{luo_v1_session_order}, geometry::size << luo_v1_session_order);
    if (!area) {
      source.free(*fdt_pa, order{0});
      return area.err();
    }
    void* fdt = source.memory().to_virt(*fdt_pa, geometry::size);
    unsigned char num[8], head[8];
    impl::fdt_put_le64(num, liveupdate_num);
    impl::fdt_put_le64(head, area->value);
    int err = fdt_create(fdt, static_cast<int>(geometry::size));
    if (!err) err = fdt_finish_reservemap(fdt);
    if (!err) err = fdt_begin_node(fdt, "");
    if (!err) err = fdt_property(fdt, "compatible", luo_v1_compatible, sizeof luo_v1_compatible);
    if (!err) err = fdt_property(fdt, luo_v1_number_prop, num, 8);
    if (!err) err = fdt_begin_node(fdt, luo_v1_session_node);
    if (!err) err = fdt_property(fdt, "compatible", luo_v1_session_compatible, sizeof luo_v1_session_compatible);
    if (!err) err = fdt_property(fdt, luo_v1_session_header_prop, head, 8);
    if (!err) err = fdt_end_node(fdt);
    if (!err) err = fdt_end_node(fdt);
    if (!err) err = fdt_finish(fdt);
    if (err) {
      source.free(*area, order{luo_v1_session_order});
      source.free(*fdt_pa, order{0});
      return impl::fdt_write_error(err);
    }
    return luo_v1_writer(source, *fdt_pa, *area);
  }

  /// Adds an empty session. Complexity: O(sessions).
  /// Errors: bad_string, already_exists, out_of_range (the area is full; refusal()
  /// names "sessions").
  status create_session(const char* name) {
    luo_session_ser e{};
    if (!detail::store_string(e.name, luo_v5_session_name_len, name)) return errc::bad_string;
    if (find(e.name) != nullptr) return errc::already_exists;
    const u64 n = header().count.get();
    if (n == session_capacity) return refuse("sessions", nullptr);
    entries()[n] = e;
    header().count.set(n + 1);
    return {};
  }

  /// Preserves a file in `session`. Complexity: O(files of the session).
  /// Errors: bad_string, not_found, already_exists (token), out_of_range (the
  /// session's area is full; refusal() names "files" and the session), out_of_memory.
  status preserve_file(const char* session, const char* compatible, u64 data, u64 token) {
    luo_file_ser f{};
    if (!detail::store_string(f.compatible, luo_v5_file_compatible_len, compatible)) return errc::bad_string;
    f.data.set(data);
    f.token.set(token);
    char field[luo_v5_session_name_len];
    if (!detail::store_string(field, sizeof field, session)) return errc::not_found;
    luo_session_ser* s = find(field);
    if (s == nullptr) return errc::not_found;
    const u64 n = s->file_set_ser.count.get();
    luo_file_ser* files = file_area(*s);
    for (u64 i = 0; i < n; ++i)
      if (files[i].token.get() == token) return errc::already_exists;
    if (n == file_capacity) return refuse("files", s->name);
    if (files == nullptr) {
      auto area = alloc_zeroed(*src_, order{luo_v1_file_order}, geometry::size << luo_v1_file_order);
      if (!area) return area.err();
      s->file_set_ser.files.set(area->value);
      files = file_area(*s);
    }
    files[n] = f;
    s->file_set_ser.count.set(n + 1);
    return {};
  }

  /// luo-v1 has no FLBs: always refused. Errors: out_of_range (refusal() names "flbs").
  status add_flb(const char*, u64, u64) { return refuse("flbs", nullptr); }

  /// What to name in the KHO root (subtree "LUO"): the FDT page and its totalsize.
  luo_v5_blob blob() const {
    return {fdt_pa_, fdt_totalsize(src_->memory().to_virt(fdt_pa_, geometry::size))};
  }
  /// The last refusal (valid after an out_of_range).
  const downgrade_refusal& refusal() const { return refusal_; }
  u64 session_count() const { return header().count.get(); }
  luo_version version() const { return luo_version::v1; }

  /// Frees the FDT page and every area. Complexity: O(sessions).
  void destroy() {
    for (u64 i = 0; i < header().count.get(); ++i)
      if (entries()[i].file_set_ser.files.get() != 0)
        src_->free(phys_addr{entries()[i].file_set_ser.files.get()}, order{luo_v1_file_order});
    src_->free(area_, order{luo_v1_session_order});
    src_->free(fdt_pa_, order{0});
  }

 private:
  luo_v1_writer(Source& source, phys_addr fdt_pa, phys_addr area) : src_(&source), fdt_pa_(fdt_pa), area_(area) {}

  luo_v1_session_header& header() const {
    return *static_cast<luo_v1_session_header*>(src_->memory().to_virt(area_, geometry::size << luo_v1_session_order));
  }
  luo_session_ser* entries() const { return reinterpret_cast<luo_session_ser*>(&header() + 1); }
  luo_file_ser* file_area(const luo_session_ser& s) const {
    const u64 pa = s.file_set_ser.files.get();
    return pa ? static_cast<luo_file_ser*>(src_->memory().to_virt(phys_addr{pa}, geometry::size << luo_v1_file_order))
              : nullptr;
  }
  luo_session_ser* find(const char* field) const {
    for (u64 i = 0; i < header().count.get(); ++i)
      if (impl::luo_v5_same_name(entries()[i].name, field, luo_v5_session_name_len)) return &entries()[i];
    return nullptr;
  }
  error refuse(const char* field, const char* session) {
    refusal_ = {};
    refusal_.structure = structure;
    refusal_.field = field;
    if (session != nullptr) detail::store_string(refusal_.session, sizeof refusal_.session, session);
    return make_error(errc::out_of_range, structure, fdt_pa_);
  }

  Source* src_;
  phys_addr fdt_pa_, area_;
  downgrade_refusal refusal_{};
};

// ---- reader ------------------------------------------------------------------------

/// The next kernel's view of a luo-v1 handover, validated once.
template <Memory M, PageSource Scratch, unsigned PageShift = 12>
class luo_v1_view {
 public:
  using geometry = page_geometry<PageShift>;
  static constexpr const char* structure = "luo-v1";
  static constexpr const char* sessions_structure = "luo-v1-sessions";
  static constexpr const char* files_structure = "luo-v1-files";
  static constexpr u64 session_capacity = luo_v1_session_capacity<PageShift>;
  static constexpr u64 file_capacity = luo_v1_file_capacity<PageShift>;

  /// Validates the LUO FDT at `fdt_pa` (`blob_size` bytes, at most a page) and the
  /// areas it names. Errors (structure, address, depth): at the FDT ("luo-v1", 0):
  /// misaligned, out_of_bounds, bad_count (blob size; a property of the wrong width),
  /// bad_fdt, bad_compatible (root or session node), not_found (no luo-session node
  /// or property); at the session area ("luo-v1-sessions", its address, 1):
  /// misaligned, out_of_bounds, bad_count (count over capacity), cycle; at a session
  /// (its address, 1): bad_string, duplicate, bad_count (files 0 with a count, count
  /// over capacity), misaligned / out_of_bounds / cycle (its file area); at a file
  /// ("luo-v1-files", its address, 2): bad_string, duplicate (token); out_of_memory.
  /// Complexity: O(sessions + files) time and scratch.
  static result<luo_v1_view> attach(const M& mem, phys_addr fdt_pa, Scratch& scratch,
                                    u64 blob_size = page_geometry<PageShift>::size) {
    luo_v1_view v(mem, fdt_pa, scratch);
    if (status s = v.validate(blob_size); !s) {
      v.release();
      return s.err();
    }
    return v;
  }

  u64 liveupdate_num() const { return number_; }
  u64 session_count() const { return header_->count.get(); }
  u64 file_count() const { return file_count_; }
  luo_version version() const { return luo_version::v1; }
  phys_addr root() const { return fdt_pa_; }

  /// The sessions, session_count() of them, in the area's order.
  const luo_session_ser* sessions() const { return reinterpret_cast<const luo_session_ser*>(header_ + 1); }
  /// The files of `s`, s.file_set_ser.count of them; nullptr without files.
  const luo_file_ser* files(const luo_session_ser& s) const {
    const u64 pa = s.file_set_ser.files.get();
    return pa ? static_cast<const luo_file_ser*>(mem_.to_virt(phys_addr{pa}, geometry::size << luo_v1_file_order))
              : nullptr;
  }
  /// Session `name`, without retrieving it. Complexity: O(1) expected. Errors: not_found.
  result<const luo_session_ser*> find_session(const char* name) const {
    const impl::luo_v5_slot* s = session_slot(name);
    if (s == nullptr) return errc::not_found;
    return at<luo_session_ser>(s->a);
  }

  /// Retrieves session `name`, exactly once (as luo_v5_view does).
  /// Complexity: O(1) expected. Errors: not_found, already_retrieved.
  result<const luo_session_ser*> retrieve_session(const char* name) {
    impl::luo_v5_slot* s = session_slot(name);
    if (s == nullptr) return make_error(errc::not_found, structure, fdt_pa_);
    if (s->c != 0) return make_error(errc::already_retrieved, sessions_structure, phys_addr{s->a}, 1);
    s->c = 1;
    return at<luo_session_ser>(s->a);
  }

  /// Retrieves file `token` of a retrieved session, exactly once.
  /// Complexity: O(1) expected. Errors: not_found (no such session, not retrieved, no
  /// such token), already_retrieved.
  result<const luo_file_ser*> retrieve_file(const char* session, u64 token) {
    const impl::luo_v5_slot* s = session_slot(session);
    if (s == nullptr || s->c == 0) return make_error(errc::not_found, structure, fdt_pa_);
    const u64 ordinal = s->b;
    impl::luo_v5_slot* f = tokens_.find(*scratch_, impl::luo_v5_file_tag(ordinal, token),
                                        [&](const impl::luo_v5_slot& o) {
      return o.a == ordinal && at<luo_file_ser>(o.b)->token.get() == token;
    });
    if (f == nullptr) return make_error(errc::not_found, structure, fdt_pa_);
    if (f->c != 0) return make_error(errc::already_retrieved, files_structure, phys_addr{f->b}, 2);
    f->c = 1;
    return at<luo_file_ser>(f->b);
  }

  /// Claims the FDT page, the session area and every file area for {"luo-v1", FDT}.
  /// Complexity: O(sessions). Errors: those of Owners::claim.
  template <class Owners>
  status claim_pages(Owners& owners) const {
    const page_owner who{structure, fdt_pa_};
    KHO_TRY(owners.claim(fdt_pa_, 1, who));
    KHO_TRY(owners.claim(area_, u64{1} << luo_v1_session_order, who));
    for (u64 i = 0; i < session_count(); ++i) {
      const u64 pa = sessions()[i].file_set_ser.files.get();
      if (pa != 0) KHO_TRY(owners.claim(phys_addr{pa}, u64{1} << luo_v1_file_order, who));
    }
    return {};
  }

  /// Returns the scratch pages; the view must not be used afterwards.
  void release() {
    names_.release(*scratch_);
    tokens_.release(*scratch_);
  }

 private:
  using slot_table = detail::probe_table<impl::luo_v5_slot, Scratch, PageShift>;
  using page_table = detail::probe_table<impl::luo_v5_page_slot, Scratch, PageShift>;

  luo_v1_view(const M& mem, phys_addr fdt_pa, Scratch& scratch) : mem_(mem), scratch_(&scratch), fdt_pa_(fdt_pa) {}

  template <class T>
  const T* at(u64 pa) const {
    return static_cast<const T*>(mem_.to_virt(phys_addr{pa}, sizeof(T)));
  }

  // names_: {tag, entry, ordinal, retrieved}; tokens_: {tag, session ordinal, entry,
  // retrieved}.
  impl::luo_v5_slot* session_slot(const char* name) const {
    char field[luo_v5_session_name_len];
    if (!detail::store_string(field, sizeof field, name)) return nullptr;
    return names_.find(*scratch_, impl::luo_v5_name_tag(field, sizeof field), [&](const impl::luo_v5_slot& o) {
      return impl::luo_v5_same_name(at<luo_session_ser>(o.a)->name, field, luo_v5_session_name_len);
    });
  }

  template <class Table, class Slot, class Eq>
  status add(Table& t, const Slot& slot, Eq&& eq, const char* name, phys_addr pa, u32 depth) {
    return impl::luo_insert_once(t, *scratch_, slot, eq, name, pa, depth);
  }

  // Records the `pages` pages at `pa` (aligned, inside memory); one seen before is a
  // cycle, reported at `at`.
  status area(page_table& visited, phys_addr pa, u64 pages, const char* name, phys_addr at, u32 depth) {
    if (!geometry::is_aligned(pa)) return make_error(errc::misaligned, name, at, depth);
    if (mem_.to_virt(pa, pages << PageShift) == nullptr) return make_error(errc::out_of_bounds, name, at, depth);
    for (u64 i = 0; i < pages; ++i)
      KHO_TRY(impl::luo_insert_once(visited, *scratch_, impl::luo_v5_page_slot{pa.value + (i << PageShift)},
                                    [](auto&) { return true; }, name, at, depth, errc::cycle));
    return {};
  }

  // The FDT: libfdt's check, then the properties the kernel reads.
  status read_fdt(u64 blob_size) {
    auto fail = [this](errc c) { return make_error(c, structure, fdt_pa_, 0); };
    if (!geometry::is_aligned(fdt_pa_)) return fail(errc::misaligned);
    if (blob_size < sizeof(fdt_header) || blob_size > geometry::size) return fail(errc::bad_count);
    const void* fdt = mem_.to_virt(fdt_pa_, blob_size);
    if (fdt == nullptr) return fail(errc::out_of_bounds);
    if (impl::fdt_check_untrusted(fdt, blob_size) != 0) return fail(errc::bad_fdt);
    if (fdt_node_check_compatible(fdt, 0, luo_v1_compatible) != 0) return fail(errc::bad_compatible);
    bool found = false, right = false;
    const unsigned char* num = impl::fixed_prop(fdt, 0, luo_v1_number_prop, 8, found, right);
    if (!found) return fail(errc::not_found);
    if (!right) return fail(errc::bad_count);
    number_ = impl::fdt_le64(num);
    const int node = impl::subtree_node(fdt, luo_v1_session_node);
    if (node < 0) return fail(errc::not_found);
    if (fdt_node_check_compatible(fdt, node, luo_v1_session_compatible) != 0) return fail(errc::bad_compatible);
    const unsigned char* head = impl::fixed_prop(fdt, node, luo_v1_session_header_prop, 8, found, right);
    if (!found) return fail(errc::not_found);
    if (!right) return fail(errc::bad_count);
    area_ = phys_addr{impl::fdt_le64(head)};
    return {};
  }

  status validate(u64 blob_size) {
    KHO_TRY(read_fdt(blob_size));
    page_table visited;
    status s = walk(visited);
    visited.release(*scratch_);
    return s;
  }

  status walk(page_table& visited) {
    KHO_TRY(area(visited, fdt_pa_, 1, structure, fdt_pa_, 0));
    KHO_TRY(area(visited, area_, u64{1} << luo_v1_session_order, sessions_structure, area_, 1));
    header_ = at<luo_v1_session_header>(area_.value);
    if (header_->count.get() > session_capacity) return make_error(errc::bad_count, sessions_structure, area_, 1);
    for (u64 i = 0; i < header_->count.get(); ++i) {
      const phys_addr pa = area_ + sizeof(luo_v1_session_header) + i * sizeof(luo_session_ser);
      const luo_session_ser& e = sessions()[i];
      if (!impl::luo_v5_name_ok(e.name, luo_v5_session_name_len))
        return make_error(errc::bad_string, sessions_structure, pa, 1);
      KHO_TRY(add(names_, impl::luo_v5_slot{impl::luo_v5_name_tag(e.name, luo_v5_session_name_len), pa.value, i, 0},
                  [&](const impl::luo_v5_slot& o) {
                    return impl::luo_v5_same_name(at<luo_session_ser>(o.a)->name, e.name, luo_v5_session_name_len);
                  },
                  sessions_structure, pa, 1));
      KHO_TRY(walk_files(visited, e, i, pa));
    }
    return {};
  }

  status walk_files(page_table& visited, const luo_session_ser& e, u64 ordinal, phys_addr at_session) {
    const u64 head = e.file_set_ser.files.get(), n = e.file_set_ser.count.get();
    if (head == 0) return n == 0 ? status{} : make_error(errc::bad_count, sessions_structure, at_session, 1);
    if (n > file_capacity) return make_error(errc::bad_count, sessions_structure, at_session, 1);
    KHO_TRY(area(visited, phys_addr{head}, u64{1} << luo_v1_file_order, sessions_structure, at_session, 1));
    const luo_file_ser* f = files(e);
    for (u64 j = 0; j < n; ++j) {
      const phys_addr pa{head + j * sizeof(luo_file_ser)};
      if (!impl::luo_v5_name_ok(f[j].compatible, luo_v5_file_compatible_len))
        return make_error(errc::bad_string, files_structure, pa, 2);
      const u64 token = f[j].token.get();
      KHO_TRY(add(tokens_, impl::luo_v5_slot{impl::luo_v5_file_tag(ordinal, token), ordinal, pa.value, 0},
                  [&](const impl::luo_v5_slot& o) {
                    return o.a == ordinal && at<luo_file_ser>(o.b)->token.get() == token;
                  },
                  files_structure, pa, 2));
    }
    file_count_ += n;
    return {};
  }

  M mem_;
  Scratch* scratch_;
  phys_addr fdt_pa_, area_{};
  const luo_v1_session_header* header_ = nullptr;
  u64 number_ = 0, file_count_ = 0;
  slot_table names_{}, tokens_{};
};

/// Attaches with the Memory and Scratch types deduced.
template <unsigned PageShift = 12, Memory M, PageSource Scratch>
result<luo_v1_view<M, Scratch, PageShift>> attach_luo_v1(const M& mem, phys_addr fdt_pa, Scratch& scratch,
                                                         u64 blob_size = page_geometry<PageShift>::size) {
  return luo_v1_view<M, Scratch, PageShift>::attach(mem, fdt_pa, scratch, blob_size);
}

}  // namespace kho::upstream
