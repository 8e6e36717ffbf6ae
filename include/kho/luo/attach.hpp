// kho/luo/attach.hpp: the validation behind luo_view::attach, defined out of line, and
// attach_luo.
//
// Pass 1 walks every list once: blocks, strings, data pages, counts, the content
// checksum, and a visited set that makes a shared or repeated block a cycle. Pass 2
// builds the view's indexes and with them finds duplicates, dangling FLB references
// and wrong refcounts. Scratch grows with what is walked, never with what the root
// claims. The errors each check gives are listed at luo_view::attach.
#pragma once

#include <kho/block_list.hpp>
#include <kho/checksum.hpp>
#include <kho/detail/fixed_string.hpp>
#include <kho/detail/probe_table.hpp>
#include <kho/luo/index.hpp>
#include <kho/luo/layout.hpp>
#include <kho/luo/view.hpp>
#include <kho/memory.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstddef>
#include <cstring>

namespace kho {

template <Memory M, PageSource Scratch, unsigned PageShift>
status luo_view<M, Scratch, PageShift>::validate(const luo_limits& limits) {
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
template <Memory M, PageSource Scratch, unsigned PageShift>
errc luo_view<M, Scratch, PageShift>::check_state(u64 data) const {
  if (data == 0) return errc::ok;
  if (!geometry::is_aligned(phys_addr{data})) return errc::misaligned;
  return mem_.to_virt(phys_addr{data}, geometry::size) ? errc::ok : errc::out_of_bounds;
}

// Pass 1: every list's blocks and strings, the counts, the content checksum. Each
// block is recorded in a visited set, so a block shared by two lists is a cycle. The
// set grows with the blocks actually walked: the root's block_count only bounds the
// walk, it never sizes scratch (a root that claims 2^40 blocks and has one costs one).
template <Memory M, PageSource Scratch, unsigned PageShift>
status luo_view<M, Scratch, PageShift>::check_blocks(u64 claimed) {
  detail::probe_table<detail::luo_block_slot, Scratch, PageShift> visited;
  status s = walk_all(claimed, visited);
  visited.release(*scratch_);
  return s;
}

// Probes allowed per entry of a scratch table: linear probing averages about 1.5 at
// load 1/2, so only crafted collisions come near; the slack covers tiny tables.
template <Memory M, PageSource Scratch, unsigned PageShift>
constexpr u64 luo_view<M, Scratch, PageShift>::probe_allowance(u64 entries) {
  return 16 * entries + 1024;
}

template <Memory M, PageSource Scratch, unsigned PageShift>
template <class Visited>
status luo_view<M, Scratch, PageShift>::walk_all(u64 claimed, Visited& visited) {
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
template <Memory M, PageSource Scratch, unsigned PageShift>
status luo_view<M, Scratch, PageShift>::index_entries() {
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

/// Attaches with the Memory and Scratch types deduced.
template <unsigned PageShift = 12, Memory M, PageSource Scratch>
result<luo_view<M, Scratch, PageShift>> attach_luo(const M& mem, phys_addr root, Scratch& scratch,
                                                   const luo_limits& limits = {}) {
  return luo_view<M, Scratch, PageShift>::attach(mem, root, scratch, limits);
}

}  // namespace kho
