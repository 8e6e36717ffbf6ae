// kho/linux/x86_boot.hpp: how an x86 kernel learns where the KHO root FDT and the
// scratch areas are: a `setup_data` entry of type SETUP_KEXEC_KHO carrying
// `struct kho_data`, whose scratch fields point at an array of `struct kho_scratch`.
//
// Upstream: arch/x86/include/uapi/asm/setup_data.h (torvalds 512a93a9) and
// kernel/liveupdate/kexec_handover.c; shared/LINUX-FORMATS.md, section 2. Devicetree
// architectures pass the same two ranges in /chosen (`linux,kho-fdt`,
// `linux,kho-scratch`) instead.
//
//   kho_data (32 B, packed; setup_data len 32)        kho_scratch (16 B) x count
//   +----------+----------+--------------+--------------+   +--------+--------+
//   | fdt_addr | fdt_size | scratch_addr | scratch_size |   | addr   | size   |
//   | u64      | u64      | u64 ------------> array       |   | u64    | u64    |
//   +----------+----------+--------------+--------------+   +--------+--------+
//   fdt_size is PAGE_SIZE (the root FDT is one page); scratch_size = 16 * count.
//   Scratch [0] is lowmem, [1] global, [2..] one per NUMA node.
//
// setup_data nodes form a singly linked list from boot_params.hdr.setup_data:
//   { next u64 (0 ends it), type u32, len u32, data[len] }   (16-byte header)
//
// Reader (find_kho_data, then check_kho_boot): the whole list walked, as the kernel
// walks it, at most max_setup_nodes nodes, a cycle refused (the kernel would never
// finish the walk); of several SETUP_KEXEC_KHO nodes the last is read (the kernel
// populates from each in turn, so the last wins), each one's len exactly 32; then what kho_populate trusts and kho checks: the FDT page-aligned,
// fdt_size between an FDT header and a page, the scratch array 16-byte entries, 1 to
// max_scratch_entries of them, inside memory (at any byte address, as the kernel
// reads it); each scratch range page-aligned,
// non-empty, not wrapping and disjoint from the others; and (check_scratch_unpreserved)
// no preserved page and no page of the preserved-memory map inside scratch, which the
// next kernel allocates from at once.
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/memory.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

namespace kho::upstream {

inline constexpr u32 setup_kexec_kho = 10;  // SETUP_KEXEC_KHO, the setup_data type

struct kho_data {
  detail::le64 fdt_addr;      // physical address of the KHO root FDT page
  detail::le64 fdt_size;      // PAGE_SIZE
  detail::le64 scratch_addr;  // physical address of the kho_scratch array
  detail::le64 scratch_size;  // bytes of that array: 16 per entry
};

struct kho_scratch {
  detail::le64 addr;  // phys_addr_t
  detail::le64 size;
};

struct setup_data_header {
  detail::le64 next;  // physical address of the next node; 0 ends the list
  detail::le32 type;
  detail::le32 len;   // bytes of data after this header
};

static_assert(sizeof(setup_data_header) == 16);
static_assert(offsetof(setup_data_header, type) == 8);
static_assert(offsetof(setup_data_header, len) == 12);
static_assert(std::has_unique_object_representations_v<setup_data_header>);
static_assert(sizeof(kho_data) == 32);
static_assert(offsetof(kho_data, fdt_addr) == 0);
static_assert(offsetof(kho_data, fdt_size) == 8);
static_assert(offsetof(kho_data, scratch_addr) == 16);
static_assert(offsetof(kho_data, scratch_size) == 24);
static_assert(std::has_unique_object_representations_v<kho_data>);
static_assert(sizeof(kho_scratch) == 16);
static_assert(offsetof(kho_scratch, addr) == 0);
static_assert(offsetof(kho_scratch, size) == 8);
static_assert(std::has_unique_object_representations_v<kho_scratch>);

/// Scratch entries a kho_data names (the kernel's count = scratch_len / 16).
constexpr u64 kho_scratch_count(const kho_data& d) { return d.scratch_size.get() / sizeof(kho_scratch); }

// A list longer than any boot loader writes: a bound on the walk, not a format limit.
inline constexpr u64 max_setup_nodes = 256;
// MAX_NUMNODES (1024) + lowmem + global: the most scratch entries a kernel writes.
inline constexpr u64 max_scratch_entries = 1026;

/// The kho_data a setup_data list carries, and where it was found.
struct located_kho_data {
  kho_data data{};
  phys_addr at{};     // the node's header
  u32 kho_nodes = 0;  // SETUP_KEXEC_KHO nodes in the list; `data` is the last one's
  bool from_chosen = false;  // read from a DTB's /chosen (dt_chosen.hpp): `at` is unused
};

namespace impl {
// Entry i of a scratch array at any byte address: the kernel reads the array through
// a plain mapping and does not require 8-byte alignment, so entries are copied out,
// never referenced in place (a misaligned kho_scratch* is undefined behaviour).
inline kho_scratch load_scratch(const unsigned char* array, u64 i) {
  kho_scratch e;
  std::memcpy(&e, array + i * sizeof e, sizeof e);
  return e;
}
}  // namespace impl

/// Walks the whole setup_data list from `head`, as the kernel's parse_setup_data does,
/// and returns its last SETUP_KEXEC_KHO node: the kernel calls kho_populate for every
/// such node, so the last one's FDT is the one it reads. `kho_nodes` says how many
/// there were. A list that comes back on itself is a cycle: the kernel's walk never
/// ends (a hang at boot), so it is refused here, found in O(1) space by a second
/// cursor moving twice as fast. Complexity: O(nodes), at most max_setup_nodes.
/// Errors (structure "setup_data", at the node): out_of_bounds (a node outside
/// memory), not_found (no SETUP_KEXEC_KHO node), bad_count (such a node's len is not
/// 32: stricter than the kernel, which reads 32 bytes whatever len says), cycle (at
/// the node where the two cursors met), budget_exceeded (more than max_setup_nodes).
template <Memory M>
result<located_kho_data> find_kho_data(const M& mem, phys_addr head) {
  auto header_at = [&](phys_addr at, setup_data_header& node) {
    const void* h = mem.to_virt(at, sizeof node);
    if (h != nullptr) std::memcpy(&node, h, sizeof node);
    return h != nullptr;
  };
  located_kho_data out;
  setup_data_header node, ahead;
  phys_addr at = head, fast = head;
  for (u64 n = 0; at; ++n) {
    if (n == max_setup_nodes) return make_error(errc::budget_exceeded, "setup_data", at);
    if (!header_at(at, node)) return make_error(errc::out_of_bounds, "setup_data", at);
    if (node.type.get() == setup_kexec_kho) {
      if (node.len.get() != sizeof(kho_data)) return make_error(errc::bad_count, "setup_data", at);
      const void* d = mem.to_virt(at + sizeof node, sizeof(kho_data));
      if (d == nullptr) return make_error(errc::out_of_bounds, "setup_data", at);
      std::memcpy(&out.data, d, sizeof out.data);
      out.at = at;
      ++out.kho_nodes;
    }
    at = phys_addr{node.next.get()};
    for (int step = 0; step < 2 && fast; ++step)
      fast = header_at(fast, ahead) ? phys_addr{ahead.next.get()} : phys_addr{};
    if (at && at == fast) return make_error(errc::cycle, "setup_data", at);
  }
  if (out.kho_nodes == 0) return make_error(errc::not_found, "setup_data", head);
  return out;
}

/// Checks a kho_data and its scratch array before either is used; see the header
/// comment. Complexity: O(entries^2), entries at most max_scratch_entries.
/// Errors (structure "kho_data" at its node, or "kho_scratch" at the entry):
/// misaligned (FDT or a range), out_of_range (fdt_size), bad_count (array size not
/// a multiple of 16, empty or too long), out_of_bounds (array outside memory),
/// out_of_range (a range empty or wrapping), aliased (two ranges overlap).
template <unsigned PageShift = 12, Memory M>
status check_kho_boot(const M& mem, const located_kho_data& k) {
  using geometry = page_geometry<PageShift>;
  auto fail = [&](errc c) { return make_error(c, "kho_data", k.at); };
  if (!geometry::is_aligned(phys_addr{k.data.fdt_addr.get()})) return fail(errc::misaligned);
  if (k.data.fdt_size.get() < 40 || k.data.fdt_size.get() > geometry::size) return fail(errc::out_of_range);
  const u64 bytes = k.data.scratch_size.get(), count = kho_scratch_count(k.data);
  if (bytes % sizeof(kho_scratch) != 0 || count == 0 || count > max_scratch_entries) return fail(errc::bad_count);
  const phys_addr array{k.data.scratch_addr.get()};
  const auto* entries = static_cast<const unsigned char*>(mem.to_virt(array, bytes));
  if (entries == nullptr) return fail(errc::out_of_bounds);
  for (u64 i = 0; i < count; ++i) {
    const phys_addr entry_at = array + i * sizeof(kho_scratch);
    const kho_scratch e = impl::load_scratch(entries, i);
    const u64 a = e.addr.get(), n = e.size.get();
    u64 end = 0;
    if (!geometry::is_aligned(phys_addr{a}) || (n & geometry::mask) != 0)
      return make_error(errc::misaligned, "kho_scratch", entry_at);
    if (n == 0 || !checked_add(a, n, end)) return make_error(errc::out_of_range, "kho_scratch", entry_at);
    for (u64 j = 0; j < i; ++j) {
      const kho_scratch other = impl::load_scratch(entries, j);
      const u64 b = other.addr.get();
      if (a < b + other.size.get() && b < end) {
        error err = make_error(errc::aliased, "kho_scratch", entry_at);
        err.other = where{"kho_scratch", array + j * sizeof(kho_scratch), 0};
        return err;
      }
    }
  }
  return {};
}

/// Scratch is where the next kernel allocates first, before it walks the map: no
/// preserved page may lie in it, nor a page of the map itself (the upstream tree does
/// not preserve its own pages, so they are checked apart).
/// `map` is anything with for_each_range(from, to, f) (a preserve_bitmap_view); with a
/// nodes() span (the tree's pages, sorted), those are checked too.
/// Complexity: O(preserved ranges inside scratch + scratch entries * (tree walk setup
/// + log nodes)). Errors: aliased (structure "kho_scratch" at the entry; other: the
/// preserved page, or the map's page as structure "radix" at depth 1).
template <Memory M, class Map>
status check_scratch_unpreserved(const M& mem, const kho_data& d, const Map& map) {
  const phys_addr array{d.scratch_addr.get()};
  const auto* entries = static_cast<const unsigned char*>(mem.to_virt(array, d.scratch_size.get()));
  status s;
  for (u64 i = 0; entries != nullptr && i < kho_scratch_count(d) && s; ++i) {
    const kho_scratch e = impl::load_scratch(entries, i);
    const u64 a = e.addr.get(), end = a + e.size.get();
    auto refuse = [&](phys_addr page, u32 depth) {
      error err = make_error(errc::aliased, "kho_scratch", array + i * sizeof(kho_scratch));
      err.other = where{"radix", page, depth};
      s = err;
    };
    map.for_each_range(phys_addr{a}, phys_addr{end}, [&](phys_addr start, u64) {
      refuse(start, 0);
      return false;
    });
    if constexpr (requires { map.nodes(); }) {
      const auto nodes = map.nodes();
      const u64* first = std::lower_bound(nodes.data(), nodes.data() + nodes.size(), a);
      if (s && first != nodes.data() + nodes.size() && *first < end) refuse(phys_addr{*first}, 1);
    }
  }
  return s;
}

}  // namespace kho::upstream
