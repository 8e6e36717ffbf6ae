// tests/fuzz/forge_luo.hpp: re-seal damaged LUO state as a forger would.
//
// Shared by the reseal_luo and reseal_handover targets: recompute the LUO root's
// content checksum (and, when asked, its counts) over whatever the chains now hold,
// then its own checksum, so only the structural validator stands in the way.
#pragma once

#include <kho/luo.hpp>

#include <vector>

namespace kho::fuzz {

// A forger's walk of one chain: at most 64 blocks, counts clipped to a block, stops
// at the first block outside memory. Feeds the used bytes to `st` (when given) and
// returns the blocks and entries it saw; equal to the writer's on an intact chain.
template <class Entry, class F>
void forge_chain(const flat_memory& mem, phys_addr head, XXH64_state_t* st, u64& blocks, u64& entries, F&& each) {
  constexpr u64 cap = block_capacity<Entry>;
  for (u64 b = 0; head && b < 64; ++b) {
    const auto* h = static_cast<const block_header*>(mem.to_virt(head, 4096));
    if (h == nullptr || (head.value & 4095) != 0) return;
    const u64 n = h->count.get() < cap ? h->count.get() : cap;
    if (st != nullptr) XXH64_update(st, h, sizeof(block_header) + n * sizeof(Entry));
    ++blocks;
    entries += n;
    for (u64 i = 0; i < n; ++i) each(reinterpret_cast<const Entry*>(h + 1)[i]);
    head = phys_addr{h->next.get()};
  }
}

inline void forge_luo_seal(const flat_memory& mem, luo_root& r, bool recount) {
  XXH64_state_t st;
  XXH64_reset(&st, 0);
  u64 blocks = 0, sessions = 0, files = 0, flbs = 0, ignored = 0;
  std::vector<phys_addr> heads;
  forge_chain<luo_session_entry>(mem, phys_addr{r.sessions.get()}, &st, blocks, sessions,
                                 [&](const luo_session_entry& e) { heads.push_back(phys_addr{e.files.get()}); });
  for (phys_addr h : heads) forge_chain<luo_file_entry>(mem, h, &st, blocks, files, [](auto&) {});
  forge_chain<luo_flb_entry>(mem, phys_addr{r.flbs.get()}, &st, blocks, flbs, [](auto&) {});
  (void)ignored;
  r.content_checksum.set(XXH64_digest(&st));
  if (recount) {
    r.block_count.set(blocks);
    r.session_count.set(sessions);
    r.file_count.set(files);
    r.flb_count.set(flbs);
  }
  r.checksum.set(checksum_with_hole(&r, sizeof r, offsetof(luo_root, checksum)));
}

}  // namespace kho::fuzz
