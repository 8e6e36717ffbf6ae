// kho/model/parallel_restore.hpp: the bounded restore on several threads (hosted).
//
// The core headers only expose the split (split_restore, restore_capacity,
// restore_part, join_parts); threads are the host's business. Here part 0 starts at
// once at slot 0; part i > 0 first measures parts 0..i-1 with restore_capacity (one
// read of their leaves, a fraction of a restore) to learn where its slice starts, then
// restores its own window there. Nothing waits on anything but the final join:
//
//   thread 0   restore [0, s1) -> slots [0, ...)
//   thread 1   capacity [0, s1) = c0;  restore [s1, top) -> slots [c0, ...)
//   join       close the gap (none when c0 is exact), merge a range cut at s1
#pragma once

#include <kho/restore.hpp>

#include <algorithm>
#include <thread>
#include <vector>

namespace kho::model {

/// restore_at_bound on up to `threads` threads (at least 1). Errors: as restore_at_bound.
template <class View, class Memblock>
status restore_parallel(const View& view, Memblock& memblock, unsigned threads) {
  std::vector<phys_addr> bounds(std::max(threads, 1u) + 1);
  const u64 splits = split_restore(view, std::span<phys_addr>(bounds.data() + 1, bounds.size() - 2));
  bounds.resize(splits + 2);
  bounds.front() = phys_addr{0};
  bounds.back() = phys_addr{~u64{0}};
  const u64 parts = splits + 1;
  // A block of another order may straddle a split and count on both sides.
  auto room = memblock.prepare(restore_bound(view) + memblock.size() + parts * View::orders);
  if (!room) return room.err();
  const std::span<memblock_region> slots = room->slots;
  const std::span<const memblock_region> present = room->present;
  std::vector<restore_slice> slices(parts);
  std::vector<errc> failed(parts, errc::ok);
  auto run = [&](u64 i) {
    u64 offset = 0;
    for (u64 j = 0; j < i; ++j) offset += restore_capacity(view, bounds[j], bounds[j + 1], present);
    auto n = restore_part(view, bounds[i], bounds[i + 1], slots.subspan(std::min<u64>(offset, slots.size())), present);
    slices[i] = restore_slice{offset, n ? *n : 0};
    failed[i] = n.code();
  };
  std::vector<std::thread> workers;
  for (u64 i = 1; i < parts; ++i) workers.emplace_back(run, i);
  run(0);
  for (std::thread& t : workers) t.join();
  for (errc e : failed)
    if (e != errc::ok) {
      memblock.cancel();
      return e;
    }
  auto joined = join_parts(slots, slices);
  if (!joined) {
    memblock.cancel();
    return joined.err();
  }
  memblock.commit(*joined);
  return {};
}

}  // namespace kho::model
