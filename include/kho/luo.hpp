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
//
// Where each part lives (this header includes them all; users include only this one):
//   kho/luo/layout.hpp  the wire layout above: luo_root, the entries, the constants
//   kho/luo/index.hpp   the hash-table slots and tags both sides index entries with
//   kho/luo/writer.hpp  luo_writer (old kernel): create, preserve, unpreserve, seal
//   kho/luo/view.hpp    luo_view (next kernel): retrieve, finish, unreclaimed files
//   kho/luo/attach.hpp  luo_view's validation (attach's two passes), attach_luo
//   kho/luo/claim.hpp   luo_view::claim_pages, for kho::page_owners
#pragma once

#include <kho/luo/layout.hpp>
#include <kho/luo/index.hpp>
#include <kho/luo/writer.hpp>
#include <kho/luo/view.hpp>
#include <kho/luo/attach.hpp>
#include <kho/luo/claim.hpp>
