// kho/luo/view.hpp: luo_view, the next kernel's side of LUO: a validated root read in
// place; sessions looked up, each file retrieved once, sessions finished, the files
// never retrieved reported.
//
// Two parts of the class are defined out of line, each in a header of its own: its
// validation (kho/luo/attach.hpp: the two passes attach() runs, and attach_luo) and
// its page claims (kho/luo/claim.hpp). Both are included at the end of this header,
// so including it alone gives the whole view.
#pragma once

#include <kho/block_list.hpp>
#include <kho/detail/fixed_string.hpp>
#include <kho/detail/probe_table.hpp>
#include <kho/luo/index.hpp>
#include <kho/luo/layout.hpp>
#include <kho/memory.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstring>

namespace kho {

/// Bounds for attach: total blocks of all lists (upstream caps one set at 10,000).
struct luo_limits {
  u64 max_blocks = unlimited_blocks;
};

/// What retrieve() hands back.
struct luo_retrieved {
  const luo_file_entry* file = nullptr;
  const luo_flb_entry* flb = nullptr;  // the shared object it depends on, if any
  bool flb_first = false;              // this retrieve brought the shared object back
};

/// What finish() did.
struct luo_finished {
  u64 files = 0;        // files finished
  u64 unreclaimed = 0;  // of those, never retrieved (their devices need a reset)
  u64 flbs = 0;         // shared objects whose last dependent file this was
};

/// A shared object's counts in the next kernel.
struct luo_flb_status {
  u64 refs = 0;       // dependent files, as the old kernel counted them
  u64 retrieved = 0;  // of those, retrieved so far
  u64 remaining = 0;  // not yet finished; 0 means the object is finished
};

/// One file never retrieved, for the report.
struct luo_unreclaimed {
  const luo_session_entry* session = nullptr;
  const luo_file_entry* file = nullptr;
  bool session_finished = false;
};

/// The next kernel's view: validated once, then sessions are looked up and files
/// retrieved in place. Its bookkeeping (who was retrieved, FLB counts) lives in hash
/// tables in pages from `Scratch`, never in preserved memory, which stays as the old
/// kernel sealed it.
template <Memory M, PageSource Scratch, unsigned PageShift = 12>
class luo_view {
 public:
  using geometry = page_geometry<PageShift>;
  using session_view = block_list_view<luo_session_entry, M, PageShift>;
  using file_view = block_list_view<luo_file_entry, M, PageShift>;
  using flb_view = block_list_view<luo_flb_entry, M, PageShift>;
  static constexpr const char* structure = "luo";

  /// Validates the LUO root at `root` and everything reachable from it, and builds
  /// the indexes in `scratch`. Errors carry the structure ("luo", "luo-sessions",
  /// "luo-files", "luo-flbs"), the offending block or entry, and the depth (0 root,
  /// 1 session or FLB list, 2 file list).
  /// Complexity: O(bytes reachable) time; scratch O(blocks walked + entries), grown as
  /// the walk goes (never sized by the root's claimed counts), about 32 bytes a block
  /// while walking and 64 an entry in the indexes; whatever the size of memory.
  /// Errors: misaligned (root; a file's or FLB's data not page-aligned), out_of_bounds
  /// (root; a data page outside memory), bad_magic, bad_compatible, bad_version,
  /// page_size_mismatch, not_sealed, torn, bad_checksum, reserved_nonzero (the root's
  /// reserved0/reserved1 at the field, an FLB's reserved at the entry, a byte after a
  /// block's last entry at that byte), bad_count, cycle, budget_exceeded, bad_string,
  /// out_of_range (FLB id 0), duplicate (session name, token in a session, FLB name or
  /// id), missing_dependency (a file's FLB), out_of_memory (scratch).
  static result<luo_view> attach(const M& mem, phys_addr root, Scratch& scratch,
                                 const luo_limits& limits = {}) {
    luo_view v(mem, root, scratch);
    if (status s = v.validate(limits); !s) {
      v.release();
      return s.err();
    }
    return v;
  }

  /// Retrieves a file, exactly once; the first dependent file retrieved brings its
  /// FLB back too. Complexity: O(1) expected.
  /// Errors: not_found (no such session, finished session, or token), already_retrieved.
  result<luo_retrieved> retrieve(const char* session, u64 token) {
    detail::luo_slot* s = find_live_session(session);
    if (s == nullptr) return make_error(errc::not_found, structure, root_);
    detail::luo_slot* f = find_file(s->a, token);
    if (f == nullptr) return make_error(errc::not_found, structure, root_);
    if (f->c & retrieved_bit) return make_error(errc::already_retrieved, structure, phys_addr{f->b});
    f->c |= retrieved_bit;
    luo_retrieved out;
    out.file = at<luo_file_entry>(f->b);
    if (const u64 id = out.file->flb.get()) {
      detail::luo_slot* b = find_flb_id(id);
      out.flb = at<luo_flb_entry>(b->a);
      out.flb_first = b->b++ == 0;
    }
    return out;
  }

  /// Finishes a session: every file in it is finished (retrieved or not: those never
  /// retrieved are counted as unreclaimed), each FLB with its last dependent file, and
  /// the session is gone for retrieve() and finish(). Complexity: O(files of session).
  /// Errors: not_found (no such session, or already finished).
  result<luo_finished> finish(const char* session) {
    detail::luo_slot* s = find_live_session(session);
    if (s == nullptr) return make_error(errc::not_found, structure, root_);
    s->c = 1;
    const u64 ordinal = s->a;
    const luo_session_entry* e = at<luo_session_entry>(s->b);
    luo_finished out;
    for (const luo_file_entry& file : files(*e)) {
      detail::luo_slot* f = find_file(ordinal, file.token.get());
      ++out.files;
      if (!(f->c & retrieved_bit)) ++out.unreclaimed;
      f->c |= finished_bit;
      if (const u64 id = file.flb.get()) {
        detail::luo_slot* b = find_flb_id(id);
        if (--b->c == 0) ++out.flbs;
      }
    }
    return out;
  }

  /// Calls f(luo_unreclaimed) for every file never retrieved; returns how many.
  /// Complexity: O(files).
  template <class F>
  u64 for_each_unreclaimed(F&& f) const {
    u64 n = 0, ordinal = 0;
    for (const luo_session_entry& e : sessions()) {
      const detail::luo_slot* s = find_session(e.name);
      for (const luo_file_entry& file : files(e)) {
        if (find_file(ordinal, file.token.get())->c & retrieved_bit) continue;
        ++n;
        f(luo_unreclaimed{&e, &file, s->c != 0});
      }
      ++ordinal;
    }
    return n;
  }

  /// The counts of FLB `name`. Errors: not_found.
  result<luo_flb_status> flb_status(const char* name) const {
    char field[luo_flb_name_len];
    if (!detail::store_string(field, sizeof field, name)) return errc::not_found;
    const detail::luo_slot* n = flb_names_.find(*scratch_, detail::name_tag(field, sizeof field),
                                                [&](const detail::luo_slot& o) {
      return std::memcmp(at<luo_flb_entry>(o.a)->name, field, luo_flb_name_len) == 0;
    });
    if (n == nullptr) return errc::not_found;
    const luo_flb_entry* e = at<luo_flb_entry>(n->a);
    const detail::luo_slot* b = find_flb_id(e->id.get());
    return luo_flb_status{e->refs.get(), b->b, b->c};
  }

  /// The session named `name`. Complexity: O(1) expected. Errors: not_found.
  result<const luo_session_entry*> find(const char* name) const {
    char field[luo_session_name_len];
    if (!detail::store_string(field, sizeof field, name)) return errc::not_found;
    const detail::luo_slot* s = find_session(field);
    if (s == nullptr) return errc::not_found;
    return at<luo_session_entry>(s->b);
  }

  /// True once the file was retrieved. Errors: not_found.
  result<bool> is_retrieved(const char* session, u64 token) const {
    char field[luo_session_name_len];
    if (!detail::store_string(field, sizeof field, session)) return errc::not_found;
    const detail::luo_slot* s = find_session(field);
    const detail::luo_slot* f = s ? find_file(s->a, token) : nullptr;
    if (f == nullptr) return errc::not_found;
    return (f->c & retrieved_bit) != 0;
  }

  /// True once finish(name) ran. Errors: not_found.
  result<bool> is_finished(const char* name) const {
    char field[luo_session_name_len];
    if (!detail::store_string(field, sizeof field, name)) return errc::not_found;
    const detail::luo_slot* s = find_session(field);
    if (s == nullptr) return errc::not_found;
    return s->c != 0;
  }

  session_view sessions() const {
    return session_view::unchecked(mem_, phys_addr{r_->sessions.get()}, r_->session_count.get(),
                                   session_blocks_);
  }
  file_view files(const luo_session_entry& e) const {
    const phys_addr head{e.files.get()};
    u64 blocks = 0;
    for (detail::block_ptr<M> b{&mem_, head}; b; b = detail::block_node_traits<M>::get_next(b))
      ++blocks;
    return file_view::unchecked(mem_, head, e.file_count.get(), blocks);
  }
  flb_view flbs() const {
    return flb_view::unchecked(mem_, phys_addr{r_->flbs.get()}, r_->flb_count.get(), flb_blocks_);
  }

  u64 liveupdate_number() const { return r_->liveupdate_number.get(); }
  u64 session_count() const { return r_->session_count.get(); }
  u64 file_count() const { return r_->file_count.get(); }
  u64 flb_count() const { return r_->flb_count.get(); }
  u64 block_count() const { return r_->block_count.get(); }
  phys_addr root() const { return root_; }
  const M& memory() const { return mem_; }
  /// Scratch bytes the indexes hold.
  u64 scratch_bytes() const {
    return sessions_.bytes() + files_.bytes() + flb_ids_.bytes() + flb_names_.bytes();
  }

  /// Claims every page this structure reaches for page_owner{structure, root()} in
  /// `owners` (kho::page_owners): the root's page, every block of the session list,
  /// of each session's file list and of the FLB list, and the first page of every
  /// nonzero file and FLB `data` (the page where a handler's state starts; the handler,
  /// which alone knows the state's size, claims the rest). All must be preserved. Two
  /// files, or a file and an FLB, naming one state page are therefore `aliased`.
  /// Call on a validated view. Complexity: O(pages reached) = O(blocks + entries).
  /// Errors: those of page_owners::claim.
  template <class Owners>
  status claim_pages(Owners& owners) const;  // kho/luo/claim.hpp

  /// Returns the scratch pages; the view must not be used afterwards.
  void release() {
    sessions_.release(*scratch_);
    files_.release(*scratch_);
    flb_ids_.release(*scratch_);
    flb_names_.release(*scratch_);
  }

 private:
  // sessions_: {tag, ordinal, entry, finished}. files_: {tag, session ordinal, entry,
  // retrieved|finished bits}. flb_ids_: {tag, entry, retrieved, remaining}.
  // flb_names_: {tag, entry, -, -}.
  static constexpr u64 retrieved_bit = 1;
  static constexpr u64 finished_bit = 2;
  using slot_table = detail::probe_table<detail::luo_slot, Scratch, PageShift>;

  luo_view(const M& mem, phys_addr root, Scratch& scratch)
      : mem_(mem), scratch_(&scratch), root_(root) {}

  template <class T>
  const T* at(u64 pa) const {
    return static_cast<const T*>(mem_.to_virt(phys_addr{pa}, sizeof(T)));
  }

  const detail::luo_slot* find_session(const char* field) const {
    return sessions_.find(*scratch_, detail::name_tag(field, luo_session_name_len),
                          [&](const detail::luo_slot& o) {
      return std::memcmp(at<luo_session_entry>(o.b)->name, field, luo_session_name_len) == 0;
    });
  }
  detail::luo_slot* find_live_session(const char* name) {
    char field[luo_session_name_len];
    if (!detail::store_string(field, sizeof field, name)) return nullptr;
    auto* s = const_cast<detail::luo_slot*>(find_session(field));
    return s && s->c == 0 ? s : nullptr;
  }
  detail::luo_slot* find_file(u64 ordinal, u64 token) const {
    return files_.find(*scratch_, detail::file_tag(ordinal, token), [&](const detail::luo_slot& o) {
      return o.a == ordinal && at<luo_file_entry>(o.b)->token.get() == token;
    });
  }
  detail::luo_slot* find_flb_id(u64 id) const {
    return flb_ids_.find(*scratch_, detail::id_tag(id), [&](const detail::luo_slot& o) {
      return at<luo_flb_entry>(o.a)->id.get() == id;
    });
  }

  // Validation: the definitions are in kho/luo/attach.hpp.
  status validate(const luo_limits& limits);
  errc check_state(u64 data) const;
  status check_blocks(u64 claimed);
  static constexpr u64 probe_allowance(u64 entries);
  template <class Visited>
  status walk_all(u64 claimed, Visited& visited);
  status index_entries();

  typename flb_view::iterator flb_view_begin() const {
    return typename flb_view::iterator(&mem_, phys_addr{r_->flbs.get()});
  }
  typename flb_view::iterator flb_view_end() const { return {}; }

  M mem_;
  Scratch* scratch_;
  phys_addr root_;
  const luo_root* r_ = nullptr;
  u64 session_blocks_ = 0, flb_blocks_ = 0;
  slot_table sessions_{}, files_{}, flb_ids_{}, flb_names_{};
};

}  // namespace kho

#include <kho/luo/attach.hpp>
#include <kho/luo/claim.hpp>
