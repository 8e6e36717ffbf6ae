// kho/luo/writer.hpp: luo_writer, the old kernel's side of LUO: sessions, files and
// FLBs kept in block lists as services preserve and unpreserve them, indexed in hash
// tables for O(1) expected lookups, and sealed into the root for the next kernel.
#pragma once

#include <kho/block_list.hpp>
#include <kho/checksum.hpp>
#include <kho/detail/fixed_string.hpp>
#include <kho/detail/probe_table.hpp>
#include <kho/luo/index.hpp>
#include <kho/luo/layout.hpp>
#include <kho/memory.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstddef>
#include <cstring>

namespace kho {

/// A file to preserve. `compatible` is copied; `data` is the handler's state.
struct luo_file {
  u64 token = 0;
  const char* compatible = "";
  phys_addr data{};
  u64 flags = 0;
};

/// A shared object a file depends on, named; preserved with its first dependent file.
struct luo_flb {
  const char* name = "";
  phys_addr data{};
};

/// What seal() publishes: the root to name in the handover root, and its size.
struct luo_sealed {
  phys_addr root{};
  u64 size = 0;
};

namespace detail {

/// Feeds a (trusted) chain's used bytes to `st`; returns its blocks.
template <class Entry, Memory M>
u64 hash_chain(XXH64_state_t& st, const M& mem, phys_addr head) {
  u64 blocks = 0;
  for (block_ptr<M> b{&mem, head}; b; b = block_node_traits<M>::get_next(b), ++blocks) {
    const block_header* h = b.header();
    XXH64_update(&st, h, sizeof(block_header) + h->count.get() * sizeof(Entry));
  }
  return blocks;
}

}  // namespace detail

template <PageSource Source, unsigned PageShift = 12>
class luo_writer {
 public:
  using geometry = page_geometry<PageShift>;
  using memory_type = memory_of<Source>;
  static constexpr const char* structure = "luo";

  /// Allocates the root for the handover that makes this the `liveupdate_number`th
  /// live update. Errors: out_of_memory.
  static result<luo_writer> create(Source& source, u64 liveupdate_number) {
    auto pa = alloc_zeroed(source, order{0}, geometry::size);
    if (!pa) return pa.err();
    luo_writer w(source, *pa);
    luo_root& r = w.root();
    r.magic.set(luo_magic);
    detail::store_string(r.compatible, sizeof r.compatible, luo_compatible);
    r.version_major.set(luo_version_major);
    r.version_minor.set(luo_version_minor);
    r.page_shift.set(PageShift);
    r.liveupdate_number.set(liveupdate_number);
    r.state.set(static_cast<u32>(luo_state::open));
    return w;
  }

  /// Creates an empty session. Complexity: O(1) expected.
  /// Errors: bad_string (empty or 64 bytes or longer), already_exists, out_of_memory.
  status create_session(const char* name) {
    luo_session_entry e{};
    if (!detail::store_string(e.name, luo_session_name_len, name)) return errc::bad_string;
    const u64 tag = detail::name_tag(e.name, luo_session_name_len);
    if (find_session(tag, e.name) != nullptr) return errc::already_exists;
    KHO_TRY(by_name_.reserve(*src_, by_name_.size() + 1));
    auto list = session_list();
    auto at = list.push_back(e);
    if (!at) return at.err();
    sessions_ = list.state();
    KHO_TRY(by_name_.insert(*src_, {tag, next_session_id_++, at->value, {}}));
    touch();
    return {};
  }

  /// Destroys a session, unpreserving its files first (and with them any FLB they
  /// were the last users of). Complexity: O(files of the session). Errors: not_found.
  status destroy_session(const char* name) {
    char field[luo_session_name_len];
    if (!detail::store_string(field, sizeof field, name)) return errc::not_found;
    const u64 tag = detail::name_tag(field, sizeof field);
    detail::luo_session_slot* s = find_session(tag, field);
    if (s == nullptr) return errc::not_found;
    const u64 id = s->id;
    const phys_addr entry{s->entry};
    file_list files(*src_, s->files);
    for (auto it = files.begin(); it != files.end(); ++it) {
      release_flb(it->flb.get());
      const u64 token = it->token.get();
      files_.erase(*src_, files_.find(*src_, detail::file_tag(id, token),
                                      [&](const detail::luo_slot& f) {
                                        return f.a == id && f.b == token;
                                      }));
    }
    file_count_ -= files.size();
    files.clear();
    by_name_.erase(*src_, find_session(tag, field));
    auto list = session_list();
    auto moved = list.erase(entry);
    sessions_ = list.state();
    if (moved && *moved != entry) {
      const luo_session_entry* m = list.entry(entry);
      by_name_.find(*src_, detail::name_tag(m->name, luo_session_name_len),
                    [&](const detail::luo_session_slot& o) { return o.entry == moved->value; })
          ->entry = entry.value;
    }
    touch();
    return {};
  }

  /// Preserves `file` in `session`, depending on the shared object `shared` if given
  /// (created with its first dependent file; later files name it and must agree on its
  /// data). Complexity: O(1) expected.
  /// Errors: bad_string, not_found (session), already_exists (token), invalid_argument
  /// (an FLB of that name with other data), misaligned / out_of_bounds (a nonzero data
  /// that is not the address of a page in memory: what the reader refuses),
  /// out_of_memory.
  status preserve_file(const char* session, const luo_file& file, const luo_flb* shared = nullptr) {
    KHO_TRY(check_state(file.data));
    if (shared != nullptr) KHO_TRY(check_state(shared->data));
    luo_file_entry fe{};
    fe.token.set(file.token);
    fe.data.set(file.data.value);
    fe.flags.set(file.flags);
    if (!detail::store_string(fe.compatible, luo_compatible_len, file.compatible))
      return errc::bad_string;
    luo_flb_entry be{};
    if (shared != nullptr && !detail::store_string(be.name, luo_flb_name_len, shared->name))
      return errc::bad_string;
    char field[luo_session_name_len];
    if (!detail::store_string(field, sizeof field, session)) return errc::bad_string;
    // Room first: after this no index insert can fail, so nothing needs undoing there.
    KHO_TRY(files_.reserve(*src_, files_.size() + 1));
    KHO_TRY(flb_names_.reserve(*src_, flb_names_.size() + 1));
    KHO_TRY(flb_ids_.reserve(*src_, flb_ids_.size() + 1));
    detail::luo_session_slot* s = find_session(detail::name_tag(field, sizeof field), field);
    if (s == nullptr) return errc::not_found;
    const u64 id = s->id;
    const u64 ftag = detail::file_tag(id, file.token);
    if (files_.find(*src_, ftag, [&](const detail::luo_slot& f) {
          return f.a == id && f.b == file.token;
        }) != nullptr)
      return errc::already_exists;

    const u64 ntag = shared ? detail::name_tag(be.name, luo_flb_name_len) : 0;
    detail::luo_slot* known = shared ? find_flb_by_name(ntag, be.name) : nullptr;
    phys_addr flb_at{};
    if (known != nullptr) {
      if (flb_list().entry(phys_addr{known->b})->data.get() != shared->data.value)
        return errc::invalid_argument;
      fe.flb.set(known->a);
    } else if (shared != nullptr) {
      be.id.set(next_flb_id_);
      be.data.set(shared->data.value);
      be.refs.set(1);
      auto flbs = flb_list();
      auto at = flbs.push_back(be);
      if (!at) return at.err();
      flbs_ = flbs.state();
      flb_at = *at;
      fe.flb.set(next_flb_id_);
    }

    file_list files(*src_, s->files);
    auto at = files.push_back(fe);
    if (!at) {
      if (flb_at) erase_flb(flb_at);
      return at.err();
    }
    s->files = files.state();
    sync_session(*s);
    KHO_TRY(files_.insert(*src_, {ftag, id, file.token, at->value}));
    if (flb_at) {
      KHO_TRY(flb_names_.insert(*src_, {ntag, next_flb_id_, flb_at.value, 0}));
      KHO_TRY(flb_ids_.insert(*src_, {detail::id_tag(next_flb_id_), next_flb_id_, flb_at.value, 0}));
      ++next_flb_id_;
    } else if (known != nullptr) {
      luo_flb_entry* b = flb_list().entry(phys_addr{known->b});
      b->refs.set(b->refs.get() + 1);
    }
    ++file_count_;
    touch();
    return {};
  }

  /// Unpreserves one file; the FLB it depended on goes with its last file.
  /// Complexity: O(1) expected. Errors: not_found (session or token).
  status unpreserve_file(const char* session, u64 token) {
    char field[luo_session_name_len];
    if (!detail::store_string(field, sizeof field, session)) return errc::not_found;
    detail::luo_session_slot* s = find_session(detail::name_tag(field, sizeof field), field);
    if (s == nullptr) return errc::not_found;
    const u64 id = s->id;
    detail::luo_slot* f = files_.find(*src_, detail::file_tag(id, token),
                                      [&](const detail::luo_slot& o) {
                                        return o.a == id && o.b == token;
                                      });
    if (f == nullptr) return errc::not_found;
    const phys_addr at{f->c};
    files_.erase(*src_, f);
    file_list files(*src_, s->files);
    const u64 flb = files.entry(at)->flb.get();
    auto moved = files.erase(at);
    if (!moved) return moved.err();
    s->files = files.state();
    sync_session(*s);
    if (*moved != at) {
      const u64 token_moved = files.entry(at)->token.get();
      files_.find(*src_, detail::file_tag(id, token_moved), [&](const detail::luo_slot& o) {
        return o.c == moved->value;
      })->c = at.value;
    }
    --file_count_;
    release_flb(flb);
    touch();
    return {};
  }

  /// Checksums every block and the root and marks it sealed; any later change
  /// reopens it. Complexity: O(blocks + bytes). Errors: none today (result for
  /// symmetry with the handover root).
  result<luo_sealed> seal() {
    XXH64_state_t st;
    XXH64_reset(&st, 0);
    const memory_type& mem = src_->memory();
    u64 blocks = detail::hash_chain<luo_session_entry>(st, mem, sessions_.head);
    for (const luo_session_entry& e : session_list())
      blocks += detail::hash_chain<luo_file_entry>(st, mem, phys_addr{e.files.get()});
    blocks += detail::hash_chain<luo_flb_entry>(st, mem, flbs_.head);
    luo_root& r = root();
    r.sessions.set(sessions_.head.value);
    r.session_count.set(sessions_.size);
    r.file_count.set(file_count_);
    r.flbs.set(flbs_.head.value);
    r.flb_count.set(flbs_.size);
    r.block_count.set(blocks);
    r.content_checksum.set(XXH64_digest(&st));
    r.state.set(static_cast<u32>(luo_state::sealed));
    r.checksum.set(checksum_with_hole(&r, sizeof r, offsetof(luo_root, checksum)));
    return luo_sealed{root_, sizeof(luo_root)};
  }

  /// Frees every block, index and the root. Complexity: O(blocks).
  void destroy() {
    for (auto it = session_list().begin(); it != session_list().end(); ++it) {
      const luo_session_entry& e = *it;
      detail::luo_session_slot* s =
          find_session(detail::name_tag(e.name, luo_session_name_len), e.name);
      file_list(*src_, s->files).clear();
    }
    session_list().clear();
    flb_list().clear();
    by_name_.release(*src_);
    files_.release(*src_);
    flb_names_.release(*src_);
    flb_ids_.release(*src_);
    src_->free(root_, order{0});
    sessions_ = flbs_ = {};
    file_count_ = 0;
  }

  bool has_session(const char* name) const {
    char field[luo_session_name_len];
    return detail::store_string(field, sizeof field, name) &&
           find_session(detail::name_tag(field, sizeof field), field) != nullptr;
  }

  /// Files preserved in `name`. Errors: not_found.
  result<u64> file_count(const char* name) const {
    char field[luo_session_name_len];
    if (!detail::store_string(field, sizeof field, name)) return errc::not_found;
    const detail::luo_session_slot* s = find_session(detail::name_tag(field, sizeof field), field);
    if (s == nullptr) return errc::not_found;
    return s->files.size;
  }

  /// Files that depend on the FLB `name` (0: not preserved).
  u64 flb_refs(const char* name) const {
    char field[luo_flb_name_len];
    if (!detail::store_string(field, sizeof field, name)) return 0;
    const detail::luo_slot* b = find_flb_by_name(detail::name_tag(field, sizeof field), field);
    return b ? flb_list().entry(phys_addr{b->b})->refs.get() : 0;
  }

  u64 session_count() const { return sessions_.size; }
  u64 file_count() const { return file_count_; }
  u64 flb_count() const { return flbs_.size; }
  u64 liveupdate_number() const { return root().liveupdate_number.get(); }
  phys_addr root_address() const { return root_; }
  bool sealed() const { return root().state.get() == static_cast<u32>(luo_state::sealed); }

 private:
  using session_list_type = block_list<luo_session_entry, Source, PageShift>;
  using file_list = block_list<luo_file_entry, Source, PageShift>;
  using flb_list_type = block_list<luo_flb_entry, Source, PageShift>;

  luo_writer(Source& source, phys_addr root) : src_(&source), root_(root) {}

  // The reader's rule for a file's or FLB's data: 0, or a page-aligned page in memory.
  status check_state(phys_addr data) const {
    if (!data) return {};
    if (!geometry::is_aligned(data)) return errc::misaligned;
    if (src_->memory().to_virt(data, geometry::size) == nullptr) return errc::out_of_bounds;
    return {};
  }

  luo_root& root() const {
    return *static_cast<luo_root*>(src_->memory().to_virt(root_, sizeof(luo_root)));
  }
  void touch() { root().state.set(static_cast<u32>(luo_state::open)); }
  session_list_type session_list() const { return session_list_type(*src_, sessions_); }
  flb_list_type flb_list() const { return flb_list_type(*src_, flbs_); }

  detail::luo_session_slot* find_session(u64 tag, const char* field) const {
    const session_list_type list = session_list();
    return by_name_.find(*src_, tag, [&](const detail::luo_session_slot& s) {
      return std::memcmp(list.entry(phys_addr{s.entry})->name, field, luo_session_name_len) == 0;
    });
  }

  detail::luo_slot* find_flb_by_name(u64 tag, const char* field) const {
    const flb_list_type list = flb_list();
    return flb_names_.find(*src_, tag, [&](const detail::luo_slot& s) {
      return std::memcmp(list.entry(phys_addr{s.b})->name, field, luo_flb_name_len) == 0;
    });
  }

  // The session entry mirrors its list's head and size.
  void sync_session(const detail::luo_session_slot& s) {
    luo_session_entry* e = session_list().entry(phys_addr{s.entry});
    e->files.set(s.files.head.value);
    e->file_count.set(s.files.size);
  }

  // One file less depends on FLB `id`; the last one takes it along.
  void release_flb(u64 id) {
    if (id == 0) return;
    detail::luo_slot* b = flb_ids_.find(*src_, detail::id_tag(id),
                                        [&](const detail::luo_slot& o) { return o.a == id; });
    luo_flb_entry* e = flb_list().entry(phys_addr{b->b});
    const u64 refs = e->refs.get() - 1;
    e->refs.set(refs);
    if (refs == 0) erase_flb(phys_addr{b->b});
  }

  // Removes the FLB entry at `at` and its two index slots, following the entry moved.
  void erase_flb(phys_addr at) {
    auto flbs = flb_list();
    const luo_flb_entry* e = flbs.entry(at);
    const u64 id = e->id.get();
    auto same = [&](phys_addr where) {
      return [where](const detail::luo_slot& o) { return o.b == where.value; };
    };
    if (detail::luo_slot* n = flb_names_.find(*src_, detail::name_tag(e->name, luo_flb_name_len), same(at)))
      flb_names_.erase(*src_, n);
    if (detail::luo_slot* i = flb_ids_.find(*src_, detail::id_tag(id), same(at)))
      flb_ids_.erase(*src_, i);
    auto moved = flbs.erase(at);
    flbs_ = flbs.state();
    if (!moved || *moved == at) return;
    const luo_flb_entry* m = flbs.entry(at);
    flb_names_.find(*src_, detail::name_tag(m->name, luo_flb_name_len), same(*moved))->b = at.value;
    flb_ids_.find(*src_, detail::id_tag(m->id.get()), same(*moved))->b = at.value;
  }

  Source* src_;
  phys_addr root_;
  block_list_state sessions_{}, flbs_{};
  // by_name_: sessions by name. files_: {tag, session id, token, entry}.
  // flb_names_, flb_ids_: {tag, id, entry, -}.
  detail::probe_table<detail::luo_session_slot, Source, PageShift> by_name_{};
  detail::probe_table<detail::luo_slot, Source, PageShift> files_{}, flb_names_{}, flb_ids_{};
  u64 next_session_id_ = 1;
  u64 next_flb_id_ = 1;
  u64 file_count_ = 0;
};

}  // namespace kho
