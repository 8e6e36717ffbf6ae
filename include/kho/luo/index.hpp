// kho/luo/index.hpp: the slots of the hash tables (kho/detail/probe_table.hpp) in
// which the writer and the view index sessions, files and FLBs, and their tags.
//
// The tables live in pages of a page source, never in preserved memory; each table
// says what a slot's words mean where it is declared (luo_writer, luo_view).
#pragma once

#include <kho/block_list.hpp>
#include <kho/checksum.hpp>
#include <kho/detail/probe_table.hpp>
#include <kho/phys.hpp>

namespace kho::detail {

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

}  // namespace kho::detail
