// kho/luo.hpp: Live Update Orchestrator state (sessions, files, shared objects) on
// block lists.
//
// A live update keeps services' file descriptors alive across kexec. Each service
// owns a named *session*; a session holds the *files* the service handed over (a
// memfd, a VFIO device, an iommufd...), each with a token the service chooses, the
// compatible string of the handler that serialized it and a u64 of that handler's
// data. Some objects are shared by several files (one iommufd behind many VFIO
// devices): a *file-lifecycle-bound* object (FLB) lives exactly as long as a file
// that depends on it, in both kernels:
//   old kernel  preserved with its first dependent file, unpreserved with its last;
//   next kernel retrieved with its first dependent file, finished with its last.
// Every file is retrieved at most once; what is never retrieved is reported so its
// device can be reset.
//
// Layout: one root (its own page, named "LUO" in the handover root), and three kinds
// of block lists (kho/block_list.hpp, Linux's serialization blocks): the sessions,
// one list of files per session, and the FLBs. Nothing is capped but memory: upstream
// fits FLBs in one page and the root in 4 KiB and finds duplicate names in O(n^2);
// here the FLBs are a block list too, the root is fixed-size, and duplicates are
// found in O(n) expected with hash tables in scratch pages the caller lends.
//
//   luo_root (112 bytes, page aligned)
//   +-------+------------+-------+-------+--------+----------------+
//   | magic | compatible | major | minor | shift  | state          |
//   | liveupdate_number | sessions --+ | session_count | file_count |
//   | flbs --+ | flb_count | block_count | content_checksum | checksum |
//   +-----------|---------------------------|---------------------------+
//               v                           v
//   [hdr|session 0|session 1|...] -> ...    [hdr|flb 0|flb 1|...] -> ...
//            | files                                   ^ id
//            v                                         |
//   [hdr|file 0|file 1|...] -> [hdr|file 51|...]   file.flb
//
//   session entry (80 B, 51 a block): name[64], files (head), file_count
//   file entry    (80 B, 51 a block): token, compatible[48], data, flags, flb (id, 0: none)
//   flb entry     (80 B, 51 a block): name[48], id, data, refs, reserved
//
// Checksums: content_checksum is XXH64 over the used bytes of every block (header and
// `count` entries) in walk order: session blocks, then each session's file blocks in
// session order, then FLB blocks. checksum is XXH64 of the root with its own field
// counted as zero. The handover root checksums the root again.
//
// Invariants (kept by luo_writer, checked by luo_view::attach):
//   - strings are NUL-terminated, non-empty, zero-filled after the NUL;
//   - session names are unique; tokens are unique within a session; FLB names and
//     ids are unique and ids are nonzero;
//   - a file's flb is 0 or the id of an FLB, and an FLB's refs is the number of files
//     that name it (so it is never 0);
//   - no block belongs to two lists or twice to one; counts in the root match;
//   - reserved fields (the root's reserved0 and reserved1, an FLB's reserved) and
//     every byte after a block's last entry are zero;
//   - a file's and an FLB's `data` is 0 or a page-aligned address of a page in memory
//     (where the handler's state starts; claim_pages makes that page LUO's).
//
// Validation budget: attach costs O(bytes reachable) time and O(blocks walked +
// entries) scratch, grown as it walks: no count the root claims sizes anything, and
// the size of memory does not enter at all.
//
// Complexity: writer operations O(1) expected (destroy_session: O(its files));
// seal O(blocks + bytes); attach O(bytes) with O(blocks + entries) scratch; retrieve
// O(1) expected; finish O(files of the session).
#pragma once

#include <kho/block_list.hpp>
#include <kho/checksum.hpp>
#include <kho/detail/endian.hpp>
#include <kho/detail/fixed_string.hpp>
#include <kho/detail/probe_table.hpp>
#include <kho/memory.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstddef>
#include <cstring>
#include <type_traits>

namespace kho {

// ---- wire layout -------------------------------------------------------------------

inline constexpr u64 luo_magic = 0x31304f554c4f484bULL;  // "KHOLUO01" little-endian
/// Not upstream's "luo-v1": the entries carry flags and FLB references it lacks.
inline constexpr const char* luo_compatible = "kho-luo-v1";
inline constexpr const char* luo_entry_name = "LUO";  // the handover root's name for it
inline constexpr u16 luo_version_major = 1;
inline constexpr u16 luo_version_minor = 0;

inline constexpr u64 luo_session_name_len = 64;  // 63 characters and the NUL
inline constexpr u64 luo_compatible_len = 48;    // handler names: 47 and the NUL
inline constexpr u64 luo_flb_name_len = 48;

enum class luo_state : u32 {
  open = 0x4e45504f,    // "OPEN": changed since the last seal
  sealed = 0x4c414553,  // "SEAL"
};

struct luo_root {
  detail::le64 magic;
  char compatible[16];
  detail::le16 version_major;
  detail::le16 version_minor;
  detail::le16 page_shift;
  detail::le16 reserved0;
  detail::le32 state;
  detail::le32 reserved1;
  detail::le64 liveupdate_number;  // how many live updates this machine went through
  detail::le64 sessions;           // head block of the session list, 0 if none
  detail::le64 session_count;
  detail::le64 file_count;         // over all sessions
  detail::le64 flbs;               // head block of the FLB list, 0 if none
  detail::le64 flb_count;
  detail::le64 block_count;        // blocks of every list together
  detail::le64 content_checksum;   // XXH64 of every block's used bytes, in walk order
  detail::le64 checksum;           // XXH64 of this root, this field counted as zero
};

struct luo_session_entry {
  char name[luo_session_name_len];
  detail::le64 files;       // head block of this session's files, 0 if none
  detail::le64 file_count;  // entries in that list
};

struct luo_file_entry {
  detail::le64 token;                    // the service's key, unique in the session
  char compatible[luo_compatible_len];   // handler that serialized it, e.g. "memfd-v1"
  detail::le64 data;                     // 0, or the page where the handler's state starts
  detail::le64 flags;                    // the handler's; opaque to LUO
  detail::le64 flb;                      // id of the FLB it depends on, 0 for none
};

struct luo_flb_entry {
  char name[luo_flb_name_len];  // e.g. "iommufd:0"
  detail::le64 id;              // nonzero; what files refer to
  detail::le64 data;            // 0, or the page where the object's state starts
  detail::le64 refs;            // files that depend on it
  detail::le64 reserved;        // zero throughout major version 1 (reserved_nonzero)
};

static_assert(sizeof(luo_root) == 112);
static_assert(offsetof(luo_root, compatible) == 8);
static_assert(offsetof(luo_root, version_major) == 24);
static_assert(offsetof(luo_root, page_shift) == 28);
static_assert(offsetof(luo_root, state) == 32);
static_assert(offsetof(luo_root, liveupdate_number) == 40);
static_assert(offsetof(luo_root, sessions) == 48);
static_assert(offsetof(luo_root, session_count) == 56);
static_assert(offsetof(luo_root, file_count) == 64);
static_assert(offsetof(luo_root, flbs) == 72);
static_assert(offsetof(luo_root, flb_count) == 80);
static_assert(offsetof(luo_root, block_count) == 88);
static_assert(offsetof(luo_root, content_checksum) == 96);
static_assert(offsetof(luo_root, checksum) == 104);
static_assert(sizeof(luo_session_entry) == 80);
static_assert(offsetof(luo_session_entry, files) == 64);
static_assert(offsetof(luo_session_entry, file_count) == 72);
static_assert(sizeof(luo_file_entry) == 80);
static_assert(offsetof(luo_file_entry, compatible) == 8);
static_assert(offsetof(luo_file_entry, data) == 56);
static_assert(offsetof(luo_file_entry, flags) == 64);
static_assert(offsetof(luo_file_entry, flb) == 72);
static_assert(sizeof(luo_flb_entry) == 80);
static_assert(offsetof(luo_flb_entry, id) == 48);
static_assert(offsetof(luo_flb_entry, data) == 56);
static_assert(offsetof(luo_flb_entry, refs) == 64);
static_assert(std::has_unique_object_representations_v<luo_root>);
static_assert(std::has_unique_object_representations_v<luo_session_entry>);
static_assert(std::has_unique_object_representations_v<luo_file_entry>);
static_assert(std::has_unique_object_representations_v<luo_flb_entry>);
static_assert(block_capacity<luo_session_entry> == 51 && block_capacity<luo_file_entry> == 51);

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

/// A generic index slot: a tag and three words whose meaning each table documents.
struct luo_slot {
  u64 tag, a, b, c;
};

/// The writer's session index: its id (stable while entries move), where its entry
/// is, and its file list's writer state.
struct luo_session_slot {
  u64 tag;
  u64 id;
  u64 entry;
  block_list_state files;
};

/// One visited page (tag: tag_of its page frame number).
struct luo_block_slot {
  u64 tag;
};

static_assert(sizeof(luo_session_slot) == 64 && sizeof(luo_slot) == 32);

inline u64 name_tag(const char* field, u64 len) { return tag_of(checksum(field, len)); }
inline u64 file_tag(u64 session, u64 token) { return tag_of(mix64(session ^ mix64(token))); }
inline u64 id_tag(u64 id) { return tag_of(mix64(id)); }

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

// ---- writer (the old kernel) -------------------------------------------------------

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


// ---- reader (the next kernel) ------------------------------------------------------

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
  status claim_pages(Owners& owners) const {
    const page_owner me{structure, root_};
    KHO_TRY(owners.claim(root_, 1, me));
    KHO_TRY(sessions().claim_chain(owners, me));
    for (const luo_session_entry& e : sessions()) {
      const file_view list = files(e);
      KHO_TRY(list.claim_chain(owners, me));
      for (const luo_file_entry& f : list)
        if (const u64 data = f.data.get()) KHO_TRY(owners.claim(phys_addr{data}, 1, me));
    }
    KHO_TRY(flbs().claim_chain(owners, me));
    for (const luo_flb_entry& b : flbs())
      if (const u64 data = b.data.get()) KHO_TRY(owners.claim(phys_addr{data}, 1, me));
    return {};
  }

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

  status validate(const luo_limits& limits) {
    auto fail = [this](errc c) { return make_error(c, structure, root_, 0); };
    if (!geometry::is_aligned(root_)) return fail(errc::misaligned);
    r_ = static_cast<const luo_root*>(mem_.to_virt(root_, sizeof(luo_root)));
    if (r_ == nullptr) return fail(errc::out_of_bounds);
    if (r_->magic.get() != luo_magic) return fail(errc::bad_magic);
    if (!detail::string_equals(r_->compatible, sizeof r_->compatible, luo_compatible))
      return fail(errc::bad_compatible);
    if (r_->version_major.get() != luo_version_major) return fail(errc::bad_version);
    if (r_->page_shift.get() != PageShift) return fail(errc::page_size_mismatch);
    switch (static_cast<luo_state>(r_->state.get())) {
      case luo_state::sealed: break;
      case luo_state::open: return fail(errc::not_sealed);
      default: return fail(errc::torn);
    }
    if (checksum_with_hole(r_, sizeof(luo_root), offsetof(luo_root, checksum)) != r_->checksum.get())
      return fail(errc::bad_checksum);
    if (r_->reserved0.get() != 0)
      return make_error(errc::reserved_nonzero, structure, root_ + offsetof(luo_root, reserved0), 0);
    if (r_->reserved1.get() != 0)
      return make_error(errc::reserved_nonzero, structure, root_ + offsetof(luo_root, reserved1), 0);
    const u64 claimed = r_->block_count.get();
    if (claimed > limits.max_blocks) return fail(errc::budget_exceeded);
    KHO_TRY(check_blocks(claimed));
    return index_entries();
  }

  // A file's or FLB's `data`: 0 (no state in memory) or the physical address of the
  // page where its handler's state starts, page-aligned and inside memory. The state
  // may run on; the handler that knows its size checks the rest.
  errc check_state(u64 data) const {
    if (data == 0) return errc::ok;
    if (!geometry::is_aligned(phys_addr{data})) return errc::misaligned;
    return mem_.to_virt(phys_addr{data}, geometry::size) ? errc::ok : errc::out_of_bounds;
  }

  // Pass 1: every list's blocks and strings, the counts, the content checksum. Each
  // block is recorded in a visited set, so a block shared by two lists is a cycle. The
  // set grows with the blocks actually walked: the root's block_count only bounds the
  // walk, it never sizes scratch (a root that claims 2^40 blocks and has one costs one).
  status check_blocks(u64 claimed) {
    detail::probe_table<detail::luo_block_slot, Scratch, PageShift> visited;
    status s = walk_all(claimed, visited);
    visited.release(*scratch_);
    return s;
  }

  // Probes allowed per entry of a scratch table: linear probing averages about 1.5 at
  // load 1/2, so only crafted collisions come near; the slack covers tiny tables.
  static constexpr u64 probe_allowance(u64 entries) { return 16 * entries + 1024; }

  template <class Visited>
  status walk_all(u64 claimed, Visited& visited) {
    // Inserts a page (tag: its frame number, which it alone has) unless it is there.
    auto visit = [&](phys_addr pa, bool& fresh) {
      visited.raise_probe_budget(probe_allowance(visited.size() + 1));
      return visited.insert_unique(*scratch_, {detail::tag_of(pa.value >> PageShift)},
                                   [](auto&) { return true; }, fresh);
    };
    bool fresh = false;
    if (auto r = visit(root_, fresh); !r) return make_error(r.code(), structure, root_, 0);
    XXH64_state_t st;
    XXH64_reset(&st, 0);
    u64 left = claimed;

    // One chain: visit and hash its blocks, check its entries with `entry_ok`.
    auto chain = [&]<class Entry>(phys_addr head, const char* name, u32 depth, auto&& entry_ok)
        -> result<detail::chain_stats> {
      auto stats = detail::walk_chain<Entry, PageShift>(
          mem_, head, left, name,
          [&](phys_addr pa, const block_header* h, const Entry* entries) -> status {
            bool inserted = false;
            if (auto r = visit(pa, inserted); !r) return make_error(r.code(), name, pa, depth);
            if (!inserted) return make_error(errc::cycle, name, pa, depth);
            const u64 n = h->count.get();
            XXH64_update(&st, h, sizeof(block_header) + n * sizeof(Entry));
            for (u64 i = 0; i < n; ++i) {
              const errc c = entry_ok(entries[i]);
              if (c != errc::ok)
                return make_error(c, name, pa + sizeof(block_header) + i * sizeof(Entry), depth);
            }
            // kho's writer zeroes what erase vacates, and this format says so.
            if (const u64 off = detail::nonzero_tail<Entry, PageShift>(h, n))
              return make_error(errc::reserved_nonzero, name, pa + off, depth);
            return {};
          });
      if (!stats) {
        const error& e = stats.err();
        // More blocks than the root claims: the root disagrees with the lists.
        const errc c = e.code == errc::budget_exceeded ? errc::bad_count : e.code;
        return make_error(c, e.loc.structure, e.loc.at, depth);
      }
      left -= stats->blocks;
      return stats;
    };

    auto sessions = chain.template operator()<luo_session_entry>(
        phys_addr{r_->sessions.get()}, "luo-sessions", 1, [](const luo_session_entry& e) {
          return detail::is_canonical_string(e.name, luo_session_name_len) ? errc::ok
                                                                            : errc::bad_string;
        });
    if (!sessions) return sessions.err();
    session_blocks_ = sessions->blocks;
    if (sessions->size != r_->session_count.get()) return make_error(errc::bad_count, structure, root_);

    u64 files = 0;
    const session_view all = this->sessions();  // iterators point into it
    for (auto it = all.begin(); it != all.end(); ++it) {
      auto list = chain.template operator()<luo_file_entry>(
          phys_addr{it->files.get()}, "luo-files", 2, [this](const luo_file_entry& f) {
            if (!detail::is_canonical_string(f.compatible, luo_compatible_len)) return errc::bad_string;
            return check_state(f.data.get());
          });
      if (!list) return list.err();
      if (list->size != it->file_count.get())
        return make_error(errc::bad_count, "luo-sessions", it.phys(), 1);
      files += list->size;
    }
    if (files != r_->file_count.get()) return make_error(errc::bad_count, structure, root_);

    auto flbs = chain.template operator()<luo_flb_entry>(
        phys_addr{r_->flbs.get()}, "luo-flbs", 1, [this](const luo_flb_entry& b) {
          if (!detail::is_canonical_string(b.name, luo_flb_name_len)) return errc::bad_string;
          if (b.id.get() == 0) return errc::out_of_range;
          if (b.reserved.get() != 0) return errc::reserved_nonzero;
          return check_state(b.data.get());
        });
    if (!flbs) return flbs.err();
    flb_blocks_ = flbs->blocks;
    if (flbs->size != r_->flb_count.get() || left != 0)
      return make_error(errc::bad_count, structure, root_);
    if (XXH64_digest(&st) != r_->content_checksum.get())
      return make_error(errc::bad_checksum, structure, root_);
    return {};
  }

  // Pass 2: the indexes, and with them duplicates, FLB references and refcounts.
  // The counts are the ones pass 1 proved equal to what it walked, so the tables are
  // sized by entries that exist, not by a claim.
  status index_entries() {
    const u64 sessions = r_->session_count.get(), file_total = r_->file_count.get(),
              flbs = r_->flb_count.get();
    KHO_TRY(sessions_.reserve(*scratch_, sessions));
    KHO_TRY(files_.reserve(*scratch_, file_total));
    KHO_TRY(flb_ids_.reserve(*scratch_, flbs));
    KHO_TRY(flb_names_.reserve(*scratch_, flbs));
    sessions_.set_probe_budget(probe_allowance(sessions));
    files_.set_probe_budget(probe_allowance(file_total));
    flb_ids_.set_probe_budget(probe_allowance(flbs));
    flb_names_.set_probe_budget(probe_allowance(flbs));

    // Inserts unless an equal key is there: then `dup` at `pa`.
    auto add = [&](slot_table& t, const detail::luo_slot& slot, auto&& eq, const char* name,
                   phys_addr pa, u32 depth) -> status {
      bool inserted = false;
      auto r = t.insert_unique(*scratch_, slot, eq, inserted);
      if (!r) return make_error(r.code(), name, pa, depth);
      if (!inserted) return make_error(errc::duplicate, name, pa, depth);
      return {};
    };

    for (auto it = flb_view_begin(); it != flb_view_end(); ++it) {
      const u64 id = it->id.get();
      KHO_TRY(add(flb_ids_, {detail::id_tag(id), it.phys().value, 0, 0},
                  [&](const detail::luo_slot& o) { return at<luo_flb_entry>(o.a)->id.get() == id; },
                  "luo-flbs", it.phys(), 1));
      const char* name = it->name;
      KHO_TRY(add(flb_names_, {detail::name_tag(name, luo_flb_name_len), it.phys().value, 0, 0},
                  [&](const detail::luo_slot& o) {
                    return std::memcmp(at<luo_flb_entry>(o.a)->name, name, luo_flb_name_len) == 0;
                  },
                  "luo-flbs", it.phys(), 1));
    }

    u64 ordinal = 0;
    const session_view all = this->sessions();  // iterators point into it
    for (auto s = all.begin(); s != all.end(); ++s, ++ordinal) {
      const char* name = s->name;
      KHO_TRY(add(sessions_, {detail::name_tag(name, luo_session_name_len), ordinal, s.phys().value, 0},
                  [&](const detail::luo_slot& o) {
                    return std::memcmp(at<luo_session_entry>(o.b)->name, name,
                                       luo_session_name_len) == 0;
                  },
                  "luo-sessions", s.phys(), 1));
      const file_view list = files(*s);
      for (auto f = list.begin(); f != list.end(); ++f) {
        const u64 token = f->token.get();
        KHO_TRY(add(files_, {detail::file_tag(ordinal, token), ordinal, f.phys().value, 0},
                    [&](const detail::luo_slot& o) {
                      return o.a == ordinal && at<luo_file_entry>(o.b)->token.get() == token;
                    },
                    "luo-files", f.phys(), 2));
        if (const u64 id = f->flb.get()) {
          detail::luo_slot* b = find_flb_id(id);
          if (b == nullptr) return make_error(errc::missing_dependency, "luo-files", f.phys(), 2);
          ++b->c;
        }
      }
    }

    for (auto it = flb_view_begin(); it != flb_view_end(); ++it)
      if (find_flb_id(it->id.get())->c != it->refs.get())
        return make_error(errc::bad_count, "luo-flbs", it.phys(), 1);
    return {};
  }

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

/// Attaches with the Memory and Scratch types deduced.
template <unsigned PageShift = 12, Memory M, PageSource Scratch>
result<luo_view<M, Scratch, PageShift>> attach_luo(const M& mem, phys_addr root, Scratch& scratch,
                                                   const luo_limits& limits = {}) {
  return luo_view<M, Scratch, PageShift>::attach(mem, root, scratch, limits);
}

}  // namespace kho
