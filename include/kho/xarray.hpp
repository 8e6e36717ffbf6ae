// kho/xarray.hpp: a sparse index -> value map that stays usable across kexec.
//
// A preserved memfd, guest_memfd or hugetlb file needs "page index -> folio" that the
// next kernel reads in place and keeps changing (faults after preservation). Upstream
// today writes a flat sorted array of 16-byte records (capped near 1 GiB, frozen once
// written); its work-in-progress KHO xarray is 6 levels of 512 u64 slots, which costs a
// page per entry when keys are sparse. This one answers that with two leaf kinds and
// branches whose slots may share a leaf:
//
//   root block ──► branch (level h) ──► branch (level 1) ──► dense leaf  [v v 0 v v ...]
//   (128 bytes,     header | marks      header | marks        2^leaf_bits Values, nothing
//    checksummed)   summary | slots     | dense counts          else: 0 means absent
//                                       | side refs | slots ─► side node (marks + tails)
//                                 └──────────────────────────► compact leaf covering a
//                                                              RUN of 2^r aligned slots
//                                                              [k0 k1 k2 ...][v..][o..][m..]
//
//   index bits (4 KiB pages, u64 values; L = 9 leaf bits, B = 8 branch bits):
//   63 ........ 57 56 .. 49 48 .. 41 ... 16 .. 9 8 ....... 0
//   [ level 7:7b ][level 6 ][level 5 ] ... [lvl 1][dense leaf]
//
// * Branch (level h >= 1): fanout = page/16 slots (256 with 4 KiB pages), each a ref:
//   physical address | kind (bits 0-1: null, branch, compact, dense) | run (bits 2-6).
//   Per slot it also keeps three mark-summary bits (some entry behind the slot carries
//   the mark: find_marked skips the subtree otherwise) and, for a dense child, its
//   entry count. Level-1 branches keep refs to side nodes, one per `side_group` slots.
// * Dense leaf: only under a level-1 branch; one page of Values indexed by the low L
//   bits, no header, so a dense u64 file costs 8 bytes per entry plus 1/256 for the
//   branches. The all-zero Value is "absent" (as a NULL in the kernel's xarray); storing
//   it is refused. Marks and multi-order entries (stored as the value repeated with a
//   "tail" bit on every slot after the first) live in a side node, allocated only
//   when a dense leaf has one.
// * Compact leaf: up to compact_capacity (224) sorted records (first index, order,
//   marks, value). It hangs off 2^run aligned slots of one branch (extendible hashing:
//   all those slots hold the same ref) and covers their whole range; when full it splits
//   in two halves of the run, at run 0 it bursts into a branch one level down (or, at
//   level 1, becomes a dense leaf). Sparse keys therefore share pages: N random 64-bit
//   keys cost about 4096 / (0.7 * 224) = 26 bytes each instead of a page each.
// * A multi-order entry (store_range: a 2 MiB or 1 GiB folio) is one record covering an
//   aligned block of 2^order indices, kept by a compact leaf whose range holds the
//   block, or by a dense leaf when it is smaller than one.
// * Height grows and shrinks with the largest index: the root covers [0, 2^cover(H))
//   and a file of 512 pages has height 0 (one compact leaf) or 1.
//
// Invariants (checked by attach): every node is page-aligned and inside memory; no page
// is reached twice (a visited set in caller-lent scratch holds every page reached, the
// root block's included, and is consulted before a node is read: the one legitimate
// sharing, a compact leaf's run of 2^r aligned slots holding one ref, is recognised from
// the slots and counted once); a node's header level, base and shift match its position
// and links go strictly down; compact records are sorted, disjoint, aligned to their
// order and inside the leaf; dense counts, compact counts and branch entry counts equal
// what is below them; summary bits equal the marks below; side bits sit only on present
// slots (marks on heads, tails after a head of equal value forming an aligned
// power-of-two block); every field documented as zero is zero (docs/format.md); entries,
// marks, node count and the address fingerprint equal the root's. A checksum or
// fingerprint a writer can recompute proves nothing about the graph; the visited set does.
//
// Complexity: load, store, erase, exchange, set/clear_mark are O(H + log compact_capacity)
// (H <= 7 with 4 KiB pages), and where the entry is plain (an order-0 store or erase in
// a leaf that neither fills nor empties, any mark or exchange) they are ONE descent:
// counts change on the path, mark summaries only where a bit flips, bottom-up until a
// branch's own marks stay the same; none at all when the change falls in the window of
// the leaf the last one reached (a hint kept as xa_state keeps its node, dropped by any
// change that moves nodes or records, or by a remap of the writer's memory). A store that splits a leaf adds O(page); store_range
// adds O(entries and nodes it replaces); find/find_marked O(H * fanout) worst case; a
// cursor (cursor(), marked_cursor()) resumes where it stopped, O(1) amortised per entry;
// append_ordered (index-ordered input: a memfd's folios at preservation) writes into the
// rightmost leaf without a search and opens the next dense leaf directly. Validation (attach) costs O(bytes reachable from the
// root) in time and O(pages reachable) in scratch (about 32 bytes per page), never O(RAM)
// or O(a count the root claims); claim_pages O(pages reached).
//
// The writer (xarray) allocates nodes from a PageSource; pair it with
// preserving_page_source and every node it adds after preservation is preserved too.
// The reader (xarray_view) is a validated const view; adopt() turns one back into a
// writer in the next kernel, reusing every node in place.
//
// Where each part lives (include this header; it brings them all):
//   xarray/layout.hpp    the root block, the node header, every field's offset, refs
//   xarray/read.hpp      load, walk and first-entry paths shared by writer and view
//   xarray/cursor.hpp    the resumable scan (cursor(), marked_cursor())
//   xarray/queries.hpp   the const queries, written once for writer and view
//   xarray/writer.hpp    class xarray: public operations, state, internals declared
//   xarray/nodes.hpp     node pages, branch slots and summaries, leaf records, side nodes
//   xarray/remove.hpp    removing ranges and subtrees
//   xarray/insert.hpp    height, insertion, split and burst
//   xarray/in_place.hpp  one-descent changes to one entry: value, marks, erase
//   xarray/append.hpp    the ordered bulk append
//   xarray/view.hpp      xarray_view: attach (validation), queries, claim_pages
#pragma once

#include <kho/xarray/layout.hpp>
#include <kho/xarray/read.hpp>
#include <kho/xarray/cursor.hpp>
#include <kho/xarray/queries.hpp>
#include <kho/xarray/writer.hpp>
#include <kho/xarray/nodes.hpp>
#include <kho/xarray/remove.hpp>
#include <kho/xarray/insert.hpp>
#include <kho/xarray/in_place.hpp>
#include <kho/xarray/append.hpp>
#include <kho/xarray/view.hpp>
