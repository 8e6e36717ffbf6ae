// kho/linux/luo_layouts.hpp: the LUO layouts between luo-v1 and luo-v5, read and
// written byte for byte: luo-v1 with its luo-flb node, luo-v2, luo-v3 and luo-v4 in
// their FDT form (on LUO blocks), luo-v3 and luo-v4 raw, luo-v3-kho-block-v1 and
// luo-v4-kho-block-v1 (shared/LINUX-FORMATS-NEXT.md sections 1.1-1.8).
//
// Every one of them carries the same records as luo-v5 (luo_session_ser 80 B,
// luo_file_ser 64 B, the FLB page of luo_flb_ser); they differ in three places, so one
// descriptor (luo_layout) says which, and one reader and one writer serve all eight:
//
//   root    FDT page (compatible, then either luo-v1's nodes luo-session / luo-flb
//           or luo-abi-header -> a 24-B luo_ser of three u64s), or a raw luo_ser
//           whose compatible field is 8 B ("luo-v3", "luo-v4") or 24 B
//           ("luo-vN-kho-block-v1"), followed by the same three u64s
//   sessions  array: 16 pages (order 4), {count u64} then luo_session_ser, <= 819
//             LUO blocks: 8 KiB (order 1) {next, count} then 102 sessions
//             KHO blocks: one page {next, count} then 51 sessions (LF section 5)
//   files     array: 2 pages (order 1) of luo_file_ser, no header, <= 128
//             LUO blocks: 8 KiB, 127 files; KHO blocks: one page, 63 files
//
//   layout                 form  compatible             sessions    files
//   luo-v1 (luo-flb)       FDT   "luo-v1" + luo-flb     array       array
//   luo-v2                 FDT   "luo-v2"               array       array
//   luo-v3 (FDT)           FDT   "luo-v3"               LUO blocks  array
//   luo-v4 (FDT)           FDT   "luo-v4"               LUO blocks  LUO blocks
//   luo-v3                 raw   "luo-v3" [8]           array       array
//   luo-v3-kho-block-v1    raw   [24]                   KHO blocks  array
//   luo-v4                 raw   "luo-v4" [8]           KHO blocks  array
//   luo-v4-kho-block-v1    raw   [24]                   KHO blocks  KHO blocks
//
// LUO blocks differ from KHO blocks in more than size: the kernel's reader accepts a
// block with count 0 (skipped) and only refuses count > per block; it first walks the
// chain with Floyd's check (more than 10,000 blocks: "too long"; a loop: "cyclic").
//
// Reader (luo_layout_view::attach). The kernel's checks: the root compatible (FDT:
// fdt_node_check_compatible; raw: strncmp over the whole field, blob-size >= luo_ser);
// liveupdate-number / luo-session-header / luo-flb-header / luo-abi-header present and
// 8 bytes; the node compatibles "luo-session-v2" and "luo-flb-v1"; a missing luo-flb
// node is not_found (the kernel's -ENOENT); the block rules above (KHO blocks: LF
// section 5). kho's, which the kernel does not make: libfdt's full check of the FDT;
// luo_ser, areas and blocks page aligned and inside memory; bytes after the raw
// compatible's NUL zero; the session count within its area and each array's file count
// within its area (the kernel reads `count` entries unbounded); a file chain holding
// exactly file_set_ser.count files; `files == 0` with `count != 0` refused; names and
// compatibles NUL-terminated and non-empty; session names, tokens within a session and
// FLB names unique; FLB pgcnt 1 and count within the page (the kernel does not bound
// it); no page reached twice across every structure (cycle).
// Complexity: attach O(bytes reachable) time, O(entries + pages) scratch.
//
// Writer (write_luo_layout): the whole content at once, the kernel's allocations
// (FDT page, 24-B luo_ser in its own page, order-4 session array, order-1 file arrays
// and LUO blocks, order-0 KHO blocks, one FLB page that always exists). Refuses with
// out_of_range + downgrade_refusal what an array cannot hold ("sessions"; "files" with
// the session); table_full past 63 FLBs or 10,000 blocks in a chain.
#pragma once

#include <kho/block_list.hpp>
#include <kho/detail/fixed_string.hpp>
#include <kho/detail/probe_table.hpp>
#include <kho/linux/kho_fdt.hpp>
#include <kho/linux/luo_feature.hpp>
#include <kho/linux/luo_v1.hpp>
#include <kho/linux/luo_v5.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstring>

#include <libfdt.h>

namespace kho::upstream {

// ---- wire layout -------------------------------------------------------------------

inline constexpr char luo_flb_node[] = "luo-flb";
inline constexpr char luo_flb_node_compatible[] = "luo-flb-v1";
inline constexpr char luo_flb_header_prop[] = "luo-flb-header";
inline constexpr char luo_abi_header_prop[] = "luo-abi-header";
inline constexpr unsigned luo_block_order = 1;  // LUO_BLOCK_PGCNT = 2 pages
inline constexpr u64 luo_block_max = 10000;     // the kernel's chain length limit
inline constexpr u64 luo_kho_block_compatible_len = 24;  // ALIGN(sizeof("luo-vN-kho-block-v1"), 8)

/// How one set of entries is stored.
enum class luo_storage : u8 { array, luo_blocks, kho_blocks };
enum class luo_form : u8 { fdt, raw };

/// One layout: its form, its compatible and where it keeps sessions and files.
struct luo_layout {
  luo_version version;
  luo_form form;
  const char* compatible;  // the FDT root's compatible, or the raw field's string
  u64 compatible_len;      // raw: the field's width; FDT: 0
  bool abi_header;         // FDT: luo-abi-header -> luo_ser (else luo-v1's nodes)
  luo_storage sessions, files;
};

inline constexpr luo_layout luo_layouts[] = {
    {luo_version::v1_flb, luo_form::fdt, "luo-v1", 0, false, luo_storage::array, luo_storage::array},
    {luo_version::v2, luo_form::fdt, "luo-v2", 0, true, luo_storage::array, luo_storage::array},
    {luo_version::v3_fdt, luo_form::fdt, "luo-v3", 0, true, luo_storage::luo_blocks, luo_storage::array},
    {luo_version::v4_fdt, luo_form::fdt, "luo-v4", 0, true, luo_storage::luo_blocks, luo_storage::luo_blocks},
    {luo_version::v3, luo_form::raw, "luo-v3", luo_v5_compatible_len, false, luo_storage::array,
     luo_storage::array},
    {luo_version::v3_kho_block_v1, luo_form::raw, "luo-v3-kho-block-v1", luo_kho_block_compatible_len, false,
     luo_storage::kho_blocks, luo_storage::array},
    {luo_version::v4, luo_form::raw, "luo-v4", luo_v5_compatible_len, false, luo_storage::kho_blocks,
     luo_storage::array},
    {luo_version::v4_kho_block_v1, luo_form::raw, "luo-v4-kho-block-v1", luo_kho_block_compatible_len, false,
     luo_storage::kho_blocks, luo_storage::kho_blocks},
};

/// The descriptor of `v`, or nullptr for the layouts of luo_v1.hpp / luo_v5.hpp.
constexpr const luo_layout* luo_layout_of(luo_version v) {
  for (const luo_layout& l : luo_layouts)
    if (l.version == v) return &l;
  return nullptr;
}

/// Bytes of a raw luo_ser: the compatible field and three u64s (32 or 48).
constexpr u64 luo_raw_ser_size(const luo_layout& l) { return l.compatible_len + sizeof(luo_ser_tail); }
static_assert(luo_raw_ser_size(*luo_layout_of(luo_version::v3)) == 32);
static_assert(luo_raw_ser_size(*luo_layout_of(luo_version::v4_kho_block_v1)) == 48);

/// Pages of one block or array of `s`, and the entries it holds (header excluded).
template <unsigned PageShift>
constexpr u64 luo_storage_pages(luo_storage s, bool sessions) {
  return s == luo_storage::kho_blocks ? 1
         : s == luo_storage::luo_blocks ? u64{1} << luo_block_order
         : sessions ? u64{1} << luo_v1_session_order
                    : u64{1} << luo_v1_file_order;
}
template <unsigned PageShift>
constexpr u64 luo_storage_capacity(luo_storage s, bool sessions) {
  const u64 bytes = luo_storage_pages<PageShift>(s, sessions) << PageShift;
  const u64 entry = sessions ? sizeof(luo_session_ser) : sizeof(luo_file_ser);
  if (s == luo_storage::array) return (bytes - (sessions ? sizeof(luo_v1_session_header) : 0)) / entry;
  return (bytes - sizeof(block_header)) / entry;
}
static_assert(luo_storage_capacity<12>(luo_storage::luo_blocks, true) == 102);
static_assert(luo_storage_capacity<12>(luo_storage::luo_blocks, false) == 127);
static_assert(luo_storage_capacity<12>(luo_storage::kho_blocks, true) == 51);
static_assert(luo_storage_capacity<12>(luo_storage::kho_blocks, false) == 63);
static_assert(luo_storage_capacity<12>(luo_storage::array, true) == 819);
static_assert(luo_storage_capacity<12>(luo_storage::array, false) == 128);

// ---- entries, however stored -------------------------------------------------------

/// The entries of one validated set: an array (`n` entries from `first`) or a chain of
/// blocks of `pages` pages from `head` whose counts sum to `n` (empty blocks skipped).
/// Nothing is checked: only views over validated memory hand these out.
template <class Entry, Memory M, unsigned PageShift = 12>
class luo_entries {
 public:
  static luo_entries array(const M& mem, phys_addr first, u64 n) { return {mem, first, n, 0}; }
  static luo_entries chain(const M& mem, phys_addr head, u64 pages, u64 n) { return {mem, head, n, pages}; }

  class iterator {
   public:
    const Entry& operator*() const { return *entry(); }
    const Entry* operator->() const { return entry(); }
    iterator& operator++() {
      --left_;
      if (++i_ == in_block_ && r_->pages_ != 0 && left_ != 0) {
        block_ = phys_addr{header()->next.get()};
        settle();
      }
      return *this;
    }
    bool operator==(const iterator& o) const { return left_ == o.left_; }
    bool operator!=(const iterator& o) const { return left_ != o.left_; }
    /// The entry's physical address.
    phys_addr phys() const { return block_ + base() + i_ * sizeof(Entry); }

   private:
    friend class luo_entries;
    iterator(const luo_entries* r, u64 left) : r_(r), block_(r->head_), left_(left) {
      if (r_->pages_ == 0) in_block_ = left_;
      else if (left_ != 0) settle();
    }
    u64 base() const { return r_->pages_ ? sizeof(block_header) : 0; }
    const block_header* header() const {
      return static_cast<const block_header*>(r_->mem_.to_virt(block_, sizeof(block_header)));
    }
    const Entry* entry() const { return static_cast<const Entry*>(r_->mem_.to_virt(phys(), sizeof(Entry))); }
    // Moves to the first block from block_ that holds an entry.
    void settle() {
      i_ = 0;
      while ((in_block_ = header()->count.get()) == 0) block_ = phys_addr{header()->next.get()};
    }
    const luo_entries* r_;
    phys_addr block_;
    u64 i_ = 0, in_block_ = 0, left_;
  };

  iterator begin() const { return iterator(this, n_); }
  iterator end() const { return iterator(this, 0); }
  u64 size() const { return n_; }

  /// Calls f(block address, pages) for the array or every block, empty ones included.
  template <class F>
  void for_each_block(F&& f) const {
    if (pages_ == 0) return;
    for (phys_addr b = head_; b;) {
      f(b, pages_);
      b = phys_addr{static_cast<const block_header*>(mem_.to_virt(b, sizeof(block_header)))->next.get()};
    }
  }

 private:
  luo_entries(const M& mem, phys_addr head, u64 n, u64 pages) : mem_(mem), head_(head), n_(n), pages_(pages) {}
  M mem_;
  phys_addr head_;
  u64 n_, pages_;
};

// ---- reader ------------------------------------------------------------------------

/// The next kernel's view of one of the layouts of luo_layouts, validated once.
template <Memory M, PageSource Scratch, unsigned PageShift = 12>
class luo_layout_view {
 public:
  using geometry = page_geometry<PageShift>;
  using session_range = luo_entries<luo_session_ser, M, PageShift>;
  using file_range = luo_entries<luo_file_ser, M, PageShift>;
  static constexpr const char* sessions_structure = "luo-sessions";
  static constexpr const char* files_structure = "luo-files";
  static constexpr const char* flbs_structure = "luo-flbs";
  static constexpr u64 flb_capacity = luo_v5_flb_capacity<PageShift>;

  /// Validates the LUO blob at `pa` (`blob_size` bytes) as layout `version` and
  /// everything it reaches. Errors (structure, address, depth): at the root (the
  /// layout's name, 0): invalid_argument (a version this view does not read),
  /// misaligned, out_of_bounds, bad_count (blob size, a property of the wrong width),
  /// bad_fdt, bad_compatible (root, luo-session or luo-flb node; raw field),
  /// reserved_nonzero (raw field after its NUL), not_found (a node or property; the
  /// luo-flb node is the kernel's -ENOENT); at luo_ser ("luo_ser" of the layout, 0):
  /// misaligned, out_of_bounds; at a set ("luo-sessions" / "luo-files", the block or
  /// area, 1 / 2): misaligned, out_of_bounds, bad_count (a block's count over its
  /// capacity, a KHO block's count 0, an array's count over its area, a chain's total
  /// not file_set_ser.count, files 0 with a count), budget_exceeded (over 10,000
  /// blocks), cycle (a loop, or any page reached twice); at an entry: bad_string,
  /// duplicate; at the FLB page ("luo-flbs", 1): misaligned, out_of_bounds, bad_count,
  /// bad_string, duplicate; out_of_memory (scratch).
  static result<luo_layout_view> attach(const M& mem, phys_addr pa, Scratch& scratch, u64 blob_size,
                                        luo_version version) {
    luo_layout_view v(mem, pa, scratch);
    v.layout_ = luo_layout_of(version);
    if (v.layout_ == nullptr) return make_error(errc::invalid_argument, luo_version_name(version), pa, 0);
    if (status s = v.validate(blob_size); !s) {
      v.release();
      return s.err();
    }
    return v;
  }

  const luo_layout& layout() const { return *layout_; }
  luo_version version() const { return layout_->version; }
  const char* structure() const { return luo_version_name(layout_->version); }
  u64 liveupdate_num() const { return number_; }
  u64 session_count() const { return session_count_; }
  u64 file_count() const { return file_count_; }
  u64 flb_count() const { return flb_count_; }
  /// LUO or KHO blocks in every chain (arrays are not counted).
  u64 block_count() const { return blocks_; }
  phys_addr root() const { return root_; }

  session_range sessions() const {
    if (layout_->sessions == luo_storage::array)
      return session_range::array(mem_, sessions_pa_ + sizeof(luo_v1_session_header), session_count_);
    return session_range::chain(mem_, sessions_pa_, luo_storage_pages<PageShift>(layout_->sessions, true),
                                session_count_);
  }
  file_range files(const luo_session_ser& s) const {
    const phys_addr head{s.file_set_ser.files.get()};
    const u64 n = s.file_set_ser.count.get();
    if (layout_->files == luo_storage::array) return file_range::array(mem_, head, head ? n : 0);
    return file_range::chain(mem_, head, luo_storage_pages<PageShift>(layout_->files, false), n);
  }
  /// The FLB entries, flb_count() of them (nullptr without).
  const luo_flb_ser* flbs() const {
    if (flb_count_ == 0) return nullptr;
    return static_cast<const luo_flb_ser*>(
        mem_.to_virt(flbs_pa_ + sizeof(luo_flb_header_ser), flb_count_ * sizeof(luo_flb_ser)));
  }

  /// Claims what the kernel preserves for this layout, for {its name, root}: the FDT
  /// page, luo_ser's page, the session array or every session block, every file array
  /// or block, the FLB page. Complexity: O(blocks + sessions).
  template <class Owners>
  status claim_pages(Owners& owners) const {
    const page_owner who{structure(), root_};
    status s = owners.claim(root_, 1, who);
    if (s && ser_pa_ && ser_pa_ != root_) s = owners.claim(ser_pa_, 1, who);
    auto claim_set = [&](const auto& range, luo_storage kind, phys_addr head, bool sessions) {
      if (!s || !head) return;
      if (kind == luo_storage::array) s = owners.claim(head, luo_storage_pages<PageShift>(kind, sessions), who);
      else range.for_each_block([&](phys_addr b, u64 pages) {
        if (s) s = owners.claim(b, pages, who);
      });
    };
    const session_range all = sessions();
    claim_set(all, layout_->sessions, sessions_pa_, true);
    for (const luo_session_ser& e : all)
      claim_set(files(e), layout_->files, phys_addr{e.file_set_ser.files.get()}, false);
    if (s && flbs_pa_) s = owners.claim(flbs_pa_, 1, who);
    return s;
  }

  /// Returns the scratch pages; the view must not be used afterwards.
  void release() {
    names_.release(*scratch_);
    tokens_.release(*scratch_);
    flb_names_.release(*scratch_);
  }

 private:
  using slot_table = detail::probe_table<impl::luo_v5_slot, Scratch, PageShift>;
  using page_table = detail::probe_table<impl::luo_v5_page_slot, Scratch, PageShift>;

  luo_layout_view(const M& mem, phys_addr pa, Scratch& scratch) : mem_(mem), scratch_(&scratch), root_(pa) {}

  template <class T>
  const T* at(u64 pa) const {
    return static_cast<const T*>(mem_.to_virt(phys_addr{pa}, sizeof(T)));
  }
  error fail(errc c, phys_addr pa = {}, u32 depth = 0) const {
    return make_error(c, structure(), pa ? pa : root_, depth);
  }

  // Records pages [pa, pa + pages) as reached (aligned, inside memory); a page
  // reached before is a cycle, reported at `at`.
  status area(page_table& visited, phys_addr pa, u64 pages, const char* name, phys_addr at, u32 depth) {
    if (!geometry::is_aligned(pa)) return make_error(errc::misaligned, name, at, depth);
    if (mem_.to_virt(pa, pages << PageShift) == nullptr) return make_error(errc::out_of_bounds, name, at, depth);
    for (u64 i = 0; i < pages; ++i)
      KHO_TRY(impl::luo_insert_once(visited, *scratch_, impl::luo_v5_page_slot{pa.value + (i << PageShift)},
                                    [](auto&) { return true; }, name, at, depth, errc::cycle));
    return {};
  }

  // 8 bytes of property `name` of `node` into `out`.
  status prop64(const void* fdt, int node, const char* name, u64& out) const {
    bool found = false, right = false;
    const unsigned char* v = impl::fixed_prop(fdt, node, name, 8, found, right);
    if (!found) return fail(errc::not_found);
    if (!right) return fail(errc::bad_count);
    out = impl::fdt_le64(v);
    return {};
  }
  // Child node `name` with compatible `compatible`; missing is not_found.
  result<int> node(const void* fdt, const char* name, const char* compatible) const {
    const int n = impl::subtree_node(fdt, name);
    if (n < 0) return fail(errc::not_found);
    if (fdt_node_check_compatible(fdt, n, compatible) != 0) return fail(errc::bad_compatible);
    return n;
  }

  status read_fdt(u64 blob_size) {
    if (!geometry::is_aligned(root_)) return fail(errc::misaligned);
    if (blob_size < sizeof(fdt_header) || blob_size > geometry::size) return fail(errc::bad_count);
    const void* fdt = mem_.to_virt(root_, blob_size);
    if (fdt == nullptr) return fail(errc::out_of_bounds);
    if (impl::fdt_check_untrusted(fdt, blob_size) != 0) return fail(errc::bad_fdt);
    if (fdt_node_check_compatible(fdt, 0, layout_->compatible) != 0) return fail(errc::bad_compatible);
    if (!layout_->abi_header) {
      u64 v = 0;
      KHO_TRY(prop64(fdt, 0, luo_v1_number_prop, number_));
      auto s = node(fdt, luo_v1_session_node, luo_v1_session_compatible);
      if (!s) return s.err();
      KHO_TRY(prop64(fdt, *s, luo_v1_session_header_prop, v));
      sessions_pa_ = phys_addr{v};
      auto f = node(fdt, luo_flb_node, luo_flb_node_compatible);
      if (!f) return f.err();
      KHO_TRY(prop64(fdt, *f, luo_flb_header_prop, v));
      flbs_pa_ = phys_addr{v};
      return {};
    }
    u64 ser = 0;
    KHO_TRY(prop64(fdt, 0, luo_abi_header_prop, ser));
    ser_pa_ = phys_addr{ser};
    // luo_ser is its own kho_alloc_preserve(24): page aligned (kho's check).
    if (!geometry::is_aligned(ser_pa_)) return fail(errc::misaligned, ser_pa_);
    return read_tail(ser_pa_);
  }

  status read_tail(phys_addr pa) {
    const auto* t = at<luo_ser_tail>(pa.value);
    if (t == nullptr) return fail(errc::out_of_bounds, pa);
    number_ = t->liveupdate_num.get();
    sessions_pa_ = phys_addr{t->sessions_pa.get()};
    flbs_pa_ = phys_addr{t->flbs_pa.get()};
    return {};
  }

  status read_raw(u64 blob_size) {
    const u64 need = luo_raw_ser_size(*layout_);
    if (blob_size < need) return fail(errc::bad_count);
    if (!geometry::is_aligned(root_)) return fail(errc::misaligned);
    const char* c = static_cast<const char*>(mem_.to_virt(root_, need));
    if (c == nullptr) return fail(errc::out_of_bounds);
    if (!detail::string_equals(c, layout_->compatible_len, layout_->compatible)) return fail(errc::bad_compatible);
    for (u64 i = detail::bounded_length(layout_->compatible, layout_->compatible_len); i < layout_->compatible_len; ++i)
      if (c[i] != 0) return fail(errc::reserved_nonzero);
    ser_pa_ = root_;
    return read_tail(root_ + layout_->compatible_len);
  }

  status validate(u64 blob_size) {
    KHO_TRY(layout_->form == luo_form::fdt ? read_fdt(blob_size) : read_raw(blob_size));
    page_table visited;
    status s = walk(visited);
    visited.release(*scratch_);
    return s;
  }

  // A chain of LUO blocks as the kernel restores it: Floyd's check over at most
  // luo_block_max blocks first, then per block count <= capacity (0 allowed).
  // Calls entry_ok(entry, its address) for each entry; returns the entry total.
  template <class Entry, class EntryOk>
  result<u64> luo_chain(page_table& visited, phys_addr head, const char* name, u32 depth, EntryOk&& entry_ok) {
    constexpr u64 pages = u64{1} << luo_block_order;
    const u64 capacity = (pages * geometry::size - sizeof(block_header)) / sizeof(Entry);
    auto next_of = [&](phys_addr b, phys_addr& out) -> status {
      if (!geometry::is_aligned(b)) return make_error(errc::misaligned, name, b, depth);
      const auto* h = static_cast<const block_header*>(mem_.to_virt(b, pages * geometry::size));
      if (h == nullptr) return make_error(errc::out_of_bounds, name, b, depth);
      out = phys_addr{h->next.get()};
      return {};
    };
    // Floyd: the hare moves two blocks per step; more than luo_block_max blocks or the
    // hare meeting the tortoise ends the walk before any entry is read.
    phys_addr slow = head, fast = head;
    for (u64 steps = 0; fast;) {
      phys_addr n1{}, n2{};
      KHO_TRY(next_of(fast, n1));
      if (++steps > luo_block_max) return make_error(errc::budget_exceeded, name, head, depth);
      if (!n1) break;
      KHO_TRY(next_of(n1, n2));
      if (++steps > luo_block_max) return make_error(errc::budget_exceeded, name, head, depth);
      KHO_TRY(next_of(slow, slow));
      fast = n2;
      if (fast && fast == slow) return make_error(errc::cycle, name, fast, depth);
    }
    u64 total = 0;
    for (phys_addr b = head; b;) {
      KHO_TRY(area(visited, b, pages, name, b, depth));
      const auto* h = at<block_header>(b.value);
      const u64 n = h->count.get();
      if (n > capacity) return make_error(errc::bad_count, name, b, depth);
      const auto* e = reinterpret_cast<const Entry*>(h + 1);
      for (u64 i = 0; i < n; ++i) KHO_TRY(entry_ok(e[i], b + sizeof(block_header) + i * sizeof(Entry)));
      total += n;
      ++blocks_;
      b = phys_addr{h->next.get()};
    }
    return total;
  }

  // A chain of KHO blocks (LF section 5: 1 <= count <= capacity, 10,000 blocks).
  template <class Entry, class EntryOk>
  result<u64> kho_chain(page_table& visited, phys_addr head, const char* name, u32 depth, EntryOk&& entry_ok) {
    auto stats = detail::walk_chain<Entry, PageShift>(
        mem_, head, linux_max_blocks, name, [&](phys_addr pa, const block_header* h, const Entry* e) -> status {
          KHO_TRY(area(visited, pa, 1, name, pa, depth));
          for (u64 i = 0; i < h->count.get(); ++i)
            KHO_TRY(entry_ok(e[i], pa + sizeof(block_header) + i * sizeof(Entry)));
          return {};
        });
    if (!stats) {
      error e = stats.err();
      e.loc.depth = depth;
      return e;
    }
    blocks_ += stats->blocks;
    return stats->size;
  }

  status session_ok(page_table& visited, const luo_session_ser& e, phys_addr pa) {
    if (!impl::luo_v5_name_ok(e.name, luo_v5_session_name_len))
      return make_error(errc::bad_string, sessions_structure, pa, 1);
    const u64 ordinal = session_count_++;
    KHO_TRY(impl::luo_insert_once(
        names_, *scratch_, impl::luo_v5_slot{impl::luo_v5_name_tag(e.name, luo_v5_session_name_len), pa.value, 0, 0},
        [&](const impl::luo_v5_slot& o) {
          return impl::luo_v5_same_name(at<luo_session_ser>(o.a)->name, e.name, luo_v5_session_name_len);
        },
        sessions_structure, pa, 1));
    return walk_files(visited, e, ordinal, pa);
  }

  status file_ok(const luo_file_ser& f, phys_addr pa, u64 ordinal) {
    if (!impl::luo_v5_name_ok(f.compatible, luo_v5_file_compatible_len))
      return make_error(errc::bad_string, files_structure, pa, 2);
    const u64 token = f.token.get();
    return impl::luo_insert_once(
        tokens_, *scratch_, impl::luo_v5_slot{impl::luo_v5_file_tag(ordinal, token), ordinal, pa.value, 0},
        [&](const impl::luo_v5_slot& o) { return o.a == ordinal && at<luo_file_ser>(o.b)->token.get() == token; },
        files_structure, pa, 2);
  }

  status walk_files(page_table& visited, const luo_session_ser& e, u64 ordinal, phys_addr at_session) {
    const phys_addr head{e.file_set_ser.files.get()};
    const u64 n = e.file_set_ser.count.get();
    auto bad = [&] { return make_error(errc::bad_count, sessions_structure, at_session, 1); };
    auto ok = [&](const luo_file_ser& f, phys_addr pa) { return file_ok(f, pa, ordinal); };
    if (layout_->files == luo_storage::array) {
      if (!head) return n == 0 ? status{} : bad();
      if (n > luo_storage_capacity<PageShift>(luo_storage::array, false)) return bad();
      KHO_TRY(area(visited, head, u64{1} << luo_v1_file_order, files_structure, at_session, 1));
      const auto* f = static_cast<const luo_file_ser*>(mem_.to_virt(head, sizeof(luo_file_ser)));
      for (u64 j = 0; j < n; ++j) KHO_TRY(ok(f[j], head + j * sizeof(luo_file_ser)));
      file_count_ += n;
      return {};
    }
    auto total = layout_->files == luo_storage::luo_blocks
                     ? luo_chain<luo_file_ser>(visited, head, files_structure, 2, ok)
                     : kho_chain<luo_file_ser>(visited, head, files_structure, 2, ok);
    if (!total) return total.err();
    if (*total != n) return bad();
    file_count_ += n;
    return {};
  }

  status walk(page_table& visited) {
    KHO_TRY(area(visited, root_, 1, structure(), root_, 0));
    if (ser_pa_ != root_ && ser_pa_) KHO_TRY(area(visited, ser_pa_, 1, structure(), ser_pa_, 0));
    auto ok = [&](const luo_session_ser& e, phys_addr pa) { return session_ok(visited, e, pa); };
    if (layout_->sessions == luo_storage::array) {
      if (sessions_pa_) {
        KHO_TRY(area(visited, sessions_pa_, u64{1} << luo_v1_session_order, sessions_structure, sessions_pa_, 1));
        const auto* h = at<luo_v1_session_header>(sessions_pa_.value);
        const u64 n = h->count.get();
        if (n > luo_storage_capacity<PageShift>(luo_storage::array, true))
          return make_error(errc::bad_count, sessions_structure, sessions_pa_, 1);
        const auto* e = reinterpret_cast<const luo_session_ser*>(h + 1);
        for (u64 i = 0; i < n; ++i)
          KHO_TRY(ok(e[i], sessions_pa_ + sizeof(luo_v1_session_header) + i * sizeof(luo_session_ser)));
      }
    } else {
      auto total = layout_->sessions == luo_storage::luo_blocks
                       ? luo_chain<luo_session_ser>(visited, sessions_pa_, sessions_structure, 1, ok)
                       : kho_chain<luo_session_ser>(visited, sessions_pa_, sessions_structure, 1, ok);
      if (!total) return total.err();
    }
    return check_flbs(visited);
  }

  status check_flbs(page_table& visited) {
    const phys_addr page = flbs_pa_;
    if (!page) return {};
    KHO_TRY(area(visited, page, 1, flbs_structure, page, 1));
    const auto* h = at<luo_flb_header_ser>(page.value);
    if (h->pgcnt.get() != luo_v5_flb_pgcnt || h->count.get() > flb_capacity)
      return make_error(errc::bad_count, flbs_structure, page, 1);
    const auto* e = reinterpret_cast<const luo_flb_ser*>(h + 1);
    for (u64 i = 0; i < h->count.get(); ++i) {
      const phys_addr pa = page + sizeof(luo_flb_header_ser) + i * sizeof(luo_flb_ser);
      if (!impl::luo_v5_name_ok(e[i].name, luo_v5_flb_name_len)) return make_error(errc::bad_string, flbs_structure, pa, 1);
      KHO_TRY(impl::luo_insert_once(
          flb_names_, *scratch_, impl::luo_v5_slot{impl::luo_v5_name_tag(e[i].name, luo_v5_flb_name_len), pa.value, 0, 0},
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
  const luo_layout* layout_ = nullptr;
  phys_addr root_, ser_pa_{}, sessions_pa_{}, flbs_pa_{};
  u64 number_ = 0, session_count_ = 0, file_count_ = 0, flb_count_ = 0, blocks_ = 0;
  slot_table names_{}, tokens_{}, flb_names_{};
};

/// Attaches with the Memory and Scratch types deduced.
template <unsigned PageShift = 12, Memory M, PageSource Scratch>
result<luo_layout_view<M, Scratch, PageShift>> attach_luo_layout(const M& mem, phys_addr pa, Scratch& scratch,
                                                                 u64 blob_size, luo_version version) {
  return luo_layout_view<M, Scratch, PageShift>::attach(mem, pa, scratch, blob_size, version);
}

/// The layout of an FDT-form LUO blob from its root compatible (and, for "luo-v1",
/// whether the luo-flb node is there); luo_version::v1 for anything else, so that
/// luo_v1_view reports what is wrong with it. Complexity: O(nodes).
inline luo_version luo_fdt_layout(const void* fdt, u64 blob_size) {
  if (impl::fdt_check_untrusted(fdt, blob_size) != 0) return luo_version::v1;
  if (fdt_node_check_compatible(fdt, 0, "luo-v2") == 0) return luo_version::v2;
  if (fdt_node_check_compatible(fdt, 0, "luo-v3") == 0) return luo_version::v3_fdt;
  if (fdt_node_check_compatible(fdt, 0, "luo-v4") == 0) return luo_version::v4_fdt;
  if (fdt_node_check_compatible(fdt, 0, luo_v1_compatible) == 0 && impl::subtree_node(fdt, luo_flb_node) >= 0)
    return luo_version::v1_flb;
  return luo_version::v1;
}

// ---- what a stock kernel of one layout does with another (section 1.8) -------------

/// A stock reader's fate on an image of another layout.
enum class luo_stock_result : u8 {
  reads,          // the same layout: read as written
  drops_flbs,     // luo-v1 without FLB support on luo-v1 (luo-flb): node ignored, FLBs lost
  enoent,         // luo-v1 with FLB support on luo-v1 without the node: -ENOENT
  einval,         // the compatible check fails: -EINVAL from early startup
  panics,         // the compatible check fails and luo_restore_fail panics
};

/// What a kernel reading layout `kernel` does when the handover is layout `image`.
/// Every reader compares one exact string and has no fallback; the raw readers
/// (luo-v3 raw on) fail through luo_restore_fail, which panics; the FDT readers fail
/// fdt_node_check_compatible and return -EINVAL (the later trees panic there too; the
/// merged luo-v1 code prints an error), and live update is lost either way.
constexpr luo_stock_result luo_stock_reading(luo_version kernel, luo_version image) {
  if (kernel == image) return luo_stock_result::reads;
  if (kernel == luo_version::v1 && image == luo_version::v1_flb) return luo_stock_result::drops_flbs;
  if (kernel == luo_version::v1_flb && image == luo_version::v1) return luo_stock_result::enoent;
  const luo_layout* k = luo_layout_of(kernel);
  const bool fdt_reader = kernel == luo_version::v1 || (k != nullptr && k->form == luo_form::fdt);
  return fdt_reader ? luo_stock_result::einval : luo_stock_result::panics;
}

/// Words for luo_stock_reading's answer.
constexpr const char* luo_stock_words(luo_stock_result r) {
  switch (r) {
    case luo_stock_result::reads: return "reads it";
    case luo_stock_result::drops_flbs:
      return "ignores the luo-flb node (FDT lookups go by name): every FLB's state is dropped";
    case luo_stock_result::enoent:
      return "finds no luo-flb node: -ENOENT from luo_flb_setup_incoming, live update is disabled";
    case luo_stock_result::einval:
      return "fails fdt_node_check_compatible: -EINVAL from early startup, live update is disabled";
    case luo_stock_result::panics: return "fails the compatible's strncmp: luo_restore_fail panics";
  }
  return "?";
}

// ---- writer ------------------------------------------------------------------------

namespace impl {

// Writes one layout of luo_layouts; every allocation is linked from the root as soon
// as it is made, so unwind() frees a half-written handover by walking it.
template <PageSource Source, unsigned PageShift>
class luo_layout_writer {
 public:
  using geometry = page_geometry<PageShift>;

  luo_layout_writer(Source& src, const luo_layout& l) : src_(&src), l_(&l) {}

  template <class Content>
  result<luo_v5_blob> write(const Content& c, downgrade_refusal* refusal) {
    KHO_TRY(check(c, refusal));
    status s = build(c);
    if (!s) {
      unwind();
      return s.err();
    }
    if (l_->form == luo_form::raw) return luo_v5_blob{ser_, luo_raw_ser_size(*l_)};
    return luo_v5_blob{fdt_, fdt_totalsize(src_->memory().to_virt(fdt_, geometry::size))};
  }

 private:
  const char* name() const { return luo_version_name(l_->version); }

  // Everything refused before anything is allocated.
  template <class Content>
  status check(const Content& c, downgrade_refusal* refusal) {
    auto refuse = [&](const char* field, const char* session) {
      if (refusal != nullptr) {
        *refusal = {};
        refusal->structure = name();
        refusal->field = field;
        if (session != nullptr) detail::store_string(refusal->session, sizeof refusal->session, session);
      }
      return make_error(errc::out_of_range, name());
    };
    char a[luo_v5_session_name_len], b[luo_v5_session_name_len];
    for (u64 i = 0; i < c.session_count; ++i) {
      const auto& s = c.sessions[i];
      if (!detail::store_string(a, sizeof a, s.name)) return errc::bad_string;
      for (u64 k = 0; k < i; ++k)
        if (detail::store_string(b, sizeof b, c.sessions[k].name) && impl::luo_v5_same_name(a, b, sizeof a))
          return errc::already_exists;
      char f[luo_v5_file_compatible_len];
      for (u64 j = 0; j < s.file_count; ++j) {
        if (!detail::store_string(f, sizeof f, s.files[j].handler)) return errc::bad_string;
        for (u64 k = 0; k < j; ++k)
          if (s.files[k].token == s.files[j].token) return errc::already_exists;
      }
      if (!fits(l_->files, false, s.file_count)) {
        if (l_->files == luo_storage::array) return refuse("files", s.name);
        return errc::table_full;
      }
    }
    if (!fits(l_->sessions, true, c.session_count)) {
      if (l_->sessions == luo_storage::array) return refuse("sessions", nullptr);
      return errc::table_full;
    }
    if (c.flb_count > luo_v5_flb_capacity<PageShift>) return errc::table_full;
    char f1[luo_v5_flb_name_len], f2[luo_v5_flb_name_len];
    for (u64 i = 0; i < c.flb_count; ++i) {
      if (!detail::store_string(f1, sizeof f1, c.flbs[i].name)) return errc::bad_string;
      for (u64 k = 0; k < i; ++k)
        if (detail::store_string(f2, sizeof f2, c.flbs[k].name) && impl::luo_v5_same_name(f1, f2, sizeof f1))
          return errc::already_exists;
    }
    return {};
  }

  static bool fits(luo_storage s, bool sessions, u64 n) {
    const u64 cap = luo_storage_capacity<PageShift>(s, sessions);
    if (s == luo_storage::array) return n <= cap;
    const u64 max = s == luo_storage::luo_blocks ? luo_block_max : linux_max_blocks;
    return (n + cap - 1) / cap <= max;
  }

  template <class T>
  T* virt(phys_addr pa, u64 bytes = sizeof(T)) const {
    return static_cast<T*>(src_->memory().to_virt(pa, bytes));
  }

  result<phys_addr> alloc(unsigned o) { return alloc_zeroed(*src_, order{o}, geometry::size << o); }

  static unsigned order_of(luo_storage s, bool sessions) {
    return s == luo_storage::kho_blocks ? 0
           : s == luo_storage::luo_blocks ? luo_block_order
           : sessions ? luo_v1_session_order
                      : luo_v1_file_order;
  }

  // Appends entry `e` to a set whose head is `head` (a chain, in blocks of `s`;
  // `tail` tracks its last block). For an array, `head` is the area and `index`
  // the entry's place; the caller keeps the count.
  template <class Entry>
  result<Entry*> append(luo_storage s, bool sessions, detail::le64& head, phys_addr& tail, u64 index) {
    const unsigned o = order_of(s, sessions);
    if (s == luo_storage::array) {
      if (head.get() == 0) {
        auto pa = alloc(o);
        if (!pa) return pa.err();
        head.set(pa->value);
      }
      const u64 skip = sessions ? sizeof(luo_v1_session_header) : 0;
      return virt<Entry>(phys_addr{head.get() + skip + index * sizeof(Entry)});
    }
    const u64 cap = luo_storage_capacity<PageShift>(s, sessions);
    block_header* h = tail ? virt<block_header>(tail) : nullptr;
    if (h == nullptr || h->count.get() == cap) {
      auto pa = alloc(o);
      if (!pa) return pa.err();
      if (h == nullptr) head.set(pa->value);
      else h->next.set(pa->value);
      tail = *pa;
      ++blocks_;
      h = virt<block_header>(tail);
    }
    Entry* e = reinterpret_cast<Entry*>(h + 1) + h->count.get();
    h->count.set(h->count.get() + 1);
    return e;
  }

  template <class Content>
  status build(const Content& c) {
    if (l_->form == luo_form::fdt) {
      auto pa = alloc(0);
      if (!pa) return pa.err();
      fdt_ = *pa;
    }
    if (l_->form == luo_form::raw || l_->abi_header) {
      auto pa = alloc(0);  // kho_alloc_preserve(sizeof luo_ser): one page
      if (!pa) return pa.err();
      ser_ = *pa;
      if (l_->form == luo_form::raw)
        std::memcpy(virt<char>(ser_, l_->compatible_len), l_->compatible,
                    detail::bounded_length(l_->compatible, l_->compatible_len));
    }
    auto flb = alloc(0);
    if (!flb) return flb.err();
    tail().flbs_pa.set(flb->value);
    auto* fh = virt<luo_flb_header_ser>(*flb, geometry::size);
    fh->pgcnt.set(luo_v5_flb_pgcnt);
    for (u64 i = 0; i < c.flb_count; ++i) {
      auto& e = reinterpret_cast<luo_flb_ser*>(fh + 1)[i];
      detail::store_string(e.name, luo_v5_flb_name_len, c.flbs[i].name);
      e.data.set(c.flbs[i].data);
      e.count.set(c.flbs[i].count);
      fh->count.set(i + 1);
    }
    tail().liveupdate_num.set(c.liveupdate_num);
    // The session array exists from boot even when empty; chains start at 0.
    if (l_->sessions == luo_storage::array) {
      auto a = alloc(luo_v1_session_order);
      if (!a) return a.err();
      tail().sessions_pa.set(a->value);
    }
    phys_addr stail{};
    for (u64 i = 0; i < c.session_count; ++i) {
      const auto& s = c.sessions[i];
      auto e = append<luo_session_ser>(l_->sessions, true, tail().sessions_pa, stail, i);
      if (!e) return e.err();
      detail::store_string((*e)->name, luo_v5_session_name_len, s.name);
      if (l_->sessions == luo_storage::array)
        virt<luo_v1_session_header>(phys_addr{tail().sessions_pa.get()})->count.set(i + 1);
      phys_addr ftail{};
      for (u64 j = 0; j < s.file_count; ++j) {
        auto f = append<luo_file_ser>(l_->files, false, (*e)->file_set_ser.files, ftail, j);
        if (!f) return f.err();
        detail::store_string((*f)->compatible, luo_v5_file_compatible_len, s.files[j].handler);
        (*f)->data.set(s.files[j].data);
        (*f)->token.set(s.files[j].token);
        (*e)->file_set_ser.count.set(j + 1);
      }
    }
    return l_->form == luo_form::fdt ? write_fdt() : status{};
  }

  // luo_ser's three u64s: in luo_ser (v2 and later) or, for luo-v1, a copy the FDT
  // takes its values from (the writer's own page-free stand-in).
  luo_ser_tail& tail() {
    if (ser_) return *virt<luo_ser_tail>(ser_ + (l_->form == luo_form::raw ? l_->compatible_len : 0));
    return v1_;
  }

  status write_fdt() {
    void* fdt = virt<void>(fdt_, geometry::size);
    unsigned char v[8];
    auto put = [&](const char* prop, u64 value) {
      impl::fdt_put_le64(v, value);
      return fdt_property(fdt, prop, v, 8);
    };
    const u64 len = detail::bounded_length(l_->compatible, luo_kho_block_compatible_len) + 1;
    int err = fdt_create(fdt, static_cast<int>(geometry::size));
    if (!err) err = fdt_finish_reservemap(fdt);
    if (!err) err = fdt_begin_node(fdt, "");
    if (!err) err = fdt_property(fdt, "compatible", l_->compatible, static_cast<int>(len));
    if (l_->abi_header) {
      if (!err) err = put(luo_abi_header_prop, ser_.value);
    } else {
      if (!err) err = put(luo_v1_number_prop, v1_.liveupdate_num.get());
      if (!err) err = fdt_begin_node(fdt, luo_v1_session_node);
      if (!err) err = fdt_property(fdt, "compatible", luo_v1_session_compatible, sizeof luo_v1_session_compatible);
      if (!err) err = put(luo_v1_session_header_prop, v1_.sessions_pa.get());
      if (!err) err = fdt_end_node(fdt);
      if (!err) err = fdt_begin_node(fdt, luo_flb_node);
      if (!err) err = fdt_property(fdt, "compatible", luo_flb_node_compatible, sizeof luo_flb_node_compatible);
      if (!err) err = put(luo_flb_header_prop, v1_.flbs_pa.get());
      if (!err) err = fdt_end_node(fdt);
    }
    if (!err) err = fdt_end_node(fdt);
    if (!err) err = fdt_finish(fdt);
    return err ? status{make_error(errc::table_full, name(), fdt_)} : status{};
  }

  void free_set(luo_storage s, bool sessions, u64 head) {
    const unsigned o = order_of(s, sessions);
    if (s == luo_storage::array) {
      if (head) src_->free(phys_addr{head}, order{o});
      return;
    }
    while (head) {
      const u64 next = virt<block_header>(phys_addr{head})->next.get();
      src_->free(phys_addr{head}, order{o});
      head = next;
    }
  }

  void unwind() {
    const u64 shead = (ser_ || fdt_) ? tail().sessions_pa.get() : 0;
    if (shead) {
      // Every session written so far, however stored, with its files.
      auto each = [&](const luo_session_ser& e) { free_set(l_->files, false, e.file_set_ser.files.get()); };
      if (l_->sessions == luo_storage::array) {
        const auto* h = virt<luo_v1_session_header>(phys_addr{shead});
        const auto* e = reinterpret_cast<const luo_session_ser*>(h + 1);
        for (u64 i = 0; i < h->count.get(); ++i) each(e[i]);
      } else {
        for (u64 b = shead; b; b = virt<block_header>(phys_addr{b})->next.get()) {
          const auto* h = virt<block_header>(phys_addr{b});
          const auto* e = reinterpret_cast<const luo_session_ser*>(h + 1);
          for (u64 i = 0; i < h->count.get(); ++i) each(e[i]);
        }
      }
      free_set(l_->sessions, true, shead);
    }
    if ((ser_ || fdt_) && tail().flbs_pa.get()) src_->free(phys_addr{tail().flbs_pa.get()}, order{0});
    if (ser_) src_->free(ser_, order{0});
    if (fdt_) src_->free(fdt_, order{0});
  }

  Source* src_;
  const luo_layout* l_;
  phys_addr fdt_{}, ser_{};
  luo_ser_tail v1_{};
  u64 blocks_ = 0;
};

}  // namespace impl

/// Writes `content` (luo_versions.hpp's luo_content) as layout `version` of
/// luo_layouts and returns what the KHO root names ("LUO": the FDT page and its
/// totalsize, or luo_ser and its size). Complexity: O(sessions^2 + files^2 + FLBs^2)
/// for the uniqueness checks, then O(content). Errors: invalid_argument (a version
/// not in luo_layouts), bad_string, already_exists (session name, token in a
/// session, FLB name), out_of_range (an array cannot hold it; `*refusal` names
/// "sessions" or "files" and the session), table_full (over 63 FLBs or a chain over
/// 10,000 blocks), out_of_memory. On error nothing is left allocated.
template <unsigned PageShift = 12, PageSource Source, class Content>
result<luo_v5_blob> write_luo_layout(Source& source, luo_version version, const Content& content,
                                     downgrade_refusal* refusal = nullptr) {
  const luo_layout* l = luo_layout_of(version);
  if (l == nullptr) return errc::invalid_argument;
  impl::luo_layout_writer<Source, PageShift> w(source, *l);
  return w.write(content, refusal);
}

}  // namespace kho::upstream
