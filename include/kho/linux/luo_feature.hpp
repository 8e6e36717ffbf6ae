// kho/linux/luo_feature.hpp: the 128-byte feature header that newer LUO layouts put
// first in a serialized structure instead of a compatible string, its checks, and the
// record a writer fills when it refuses a downgrade that would lose information.
//
// Upstream: the LUO ABI header of linux-mm 29a75107 (luo_feature_hdr, the LUO core's
// feature bits) and the memfd ABI header of linux-mm c30cc99c (memfd's feature bits);
// shared/LINUX-FORMATS.md, sections 0, 6 and 7; docs/format.md draws the bytes.
//
//   luo_feature_hdr (128 B)
//   +------+------+--------+------------------------------+
//   | supp | req  | active | reserved: 13 u64, zero       |
//   | u64  | u64  | u64    |                              |
//   +------+------+--------+------------------------------+
//     0      8      16       24                           128
//
// supp: what the producing kernel could write; req: what the receiving kernel must
// understand to read the bytes safely; active: what the bytes actually use. The
// upstream header's rule: an optional feature is written supported + active; one the
// next kernel must know is first only supported (for a transition kernel), later active
// and required. The reader code that enforces it was not in the index (see
// docs/format.md), so kho's rules are its own reading of that contract:
//   * req & ~(what this reader supports) != 0  -> bad_version (refused, never guessed)
//   * active & ~supp != 0                       -> bad_compatible (the producer lies)
//   * reserved words nonzero                    -> reserved_nonzero
//   * a field whose feature is not active must be zero (checked by each structure)
// A writer's active and required masks must lie within what the peer reader supports
// (the negotiated mask, by default kho's own constexpr mask), else invalid_argument.
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstddef>
#include <type_traits>

namespace kho::upstream {

struct luo_feature_hdr {
  detail::le64 supp;
  detail::le64 req;
  detail::le64 active;
  detail::le64 reserved[13];
};
static_assert(sizeof(luo_feature_hdr) == 128);
static_assert(offsetof(luo_feature_hdr, req) == 8);
static_assert(offsetof(luo_feature_hdr, active) == 16);
static_assert(offsetof(luo_feature_hdr, reserved) == 24);
static_assert(std::has_unique_object_representations_v<luo_feature_hdr>);

// LUO core bits (luo_ser.features).
inline constexpr u64 luo_feature_number = u64{1} << 0;    // liveupdate_num is meaningful
inline constexpr u64 luo_feature_sessions = u64{1} << 1;  // sessions_pa is meaningful
inline constexpr u64 luo_feature_flbs = u64{1} << 2;      // flbs_pa is meaningful
/// What kho's LUO reader understands; a manifest lists it.
inline constexpr u64 luo_features_supported = luo_feature_number | luo_feature_sessions | luo_feature_flbs;

// memfd bits (memfd_luo_ser.features).
inline constexpr u64 memfd_feature_seals = u64{1} << 0;   // seals is meaningful
inline constexpr u64 memfd_feature_folios = u64{1} << 1;  // nr_folios and folios are meaningful
/// What kho's memfd reader understands; a manifest lists it.
inline constexpr u64 memfd_features_supported = memfd_feature_seals | memfd_feature_folios;

/// The three masks a writer puts in a feature header, and what the reader on the other
/// side supports (the negotiated mask).
struct feature_masks {
  u64 supported = 0;
  u64 required = 0;
  u64 active = 0;
  u64 peer_supported = 0;
};
inline constexpr feature_masks luo_default_features{luo_features_supported, luo_features_supported,
                                                    luo_features_supported, luo_features_supported};
inline constexpr feature_masks memfd_default_features{memfd_features_supported, memfd_features_supported,
                                                      memfd_features_supported, memfd_features_supported};

/// Whether a writer may put `m` in a header: active within supported, and active and
/// required within what the peer reads. Complexity: O(1).
constexpr bool feature_masks_ok(const feature_masks& m) {
  return (m.active & ~m.supported) == 0 && (m.active & ~m.peer_supported) == 0 &&
         (m.required & ~m.peer_supported) == 0;
}

/// Fills a zeroed header with `m`'s masks.
inline void put_feature_hdr(luo_feature_hdr& h, const feature_masks& m) {
  h.supp.set(m.supported);
  h.req.set(m.required);
  h.active.set(m.active);
}

/// The header check every reader makes, against what this reader supports.
/// Complexity: O(1). Errors: bad_version (a required bit not supported),
/// bad_compatible (active outside supp), reserved_nonzero.
constexpr errc check_feature_hdr(const luo_feature_hdr& h, u64 reader_supported) {
  if ((h.req.get() & ~reader_supported) != 0) return errc::bad_version;
  if ((h.active.get() & ~h.supp.get()) != 0) return errc::bad_compatible;
  for (const detail::le64& r : h.reserved)
    if (r.get() != 0) return errc::reserved_nonzero;
  return errc::ok;
}

/// What a writer refused to drop when asked for an older version: the structure it
/// was writing ("memfd-v1", "luo-v1"), the field that cannot be carried, and, when it
/// is about a file, the session and token. Filled only on refusal (errc::out_of_range).
struct downgrade_refusal {
  const char* structure = nullptr;
  const char* field = nullptr;
  char session[64] = {};
  u64 token = 0;
  bool has_file = false;
};

}  // namespace kho::upstream
