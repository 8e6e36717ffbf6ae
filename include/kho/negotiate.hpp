// kho/negotiate.hpp: before kexec, pick per structure the version to write, or refuse.
//
// The old image lists what it is about to hand over: one need per structure, each of a
// format family, with the versions that can carry its content (a memfd with seals
// cannot be carried by memfd-v1: writing it there would drop the seals, so memfd-v1
// is not among that file's versions) and, for feature-header versions, the feature
// bits its content needs. Given its own manifest (what it writes) and the next
// image's (what it reads), each need gets the highest version in
//
//     writer.writes(family) & reader.reads(family) & need.carriable
//
// (a feature-header version only if the reader supports every required feature), or
// a refusal that says which of the three sets came up empty. Every need is decided,
// not just up to the first refusal, so that the operator sees every structure that
// cannot be carried at once; the caller refuses the update before it seals anything
// if any was refused.
//
// Complexity: O(needs x manifest entries).
#pragma once

#include <kho/manifest.hpp>

namespace kho {

/// One structure the old image is about to hand over.
struct handover_need {
  const char* family = "";         // "memfd"
  const char* what = "";           // for people: "session vm0, file token 7"
  u64 carriable = ~u64{1};         // versions that hold its content without loss
  u64 features_required = 0;       // for feature-header versions
  const char* lossy_field = "";    // why versions outside `carriable` cannot: "seals"
};

enum class refusal : u8 {
  none = 0,
  writer_lacks_family,    // this image writes no version of the family
  reader_lacks_family,    // the next image reads no version of the family
  no_common_version,      // both know the family, no version in common
  content_not_carriable,  // common versions exist, none holds this content
  features_unsupported,   // only feature-header versions fit; the reader lacks a feature
};

constexpr const char* to_string(refusal r) {
  switch (r) {
    case refusal::none: return "ok";
    case refusal::writer_lacks_family: return "this image writes no version of it";
    case refusal::reader_lacks_family: return "the next image reads no version of it";
    case refusal::no_common_version: return "no version both images know";
    case refusal::content_not_carriable: return "the versions both know cannot carry its content";
    case refusal::features_unsupported: return "the next image lacks a required feature";
  }
  return "?";
}

/// The decision for one need, with the sets it was made from.
struct negotiated {
  u8 version = 0;  // 0 when refused
  refusal why = refusal::none;
  u64 writer_versions = 0;
  u64 reader_versions = 0;
  u64 reader_features = 0;
};

/// Decides one need against the two manifests.
/// Complexity: O(entries of the two manifests).
inline negotiated negotiate_one(const manifest_view& writer, const manifest_view& reader, const handover_need& need) {
  negotiated n;
  n.writer_versions = writer.writes(need.family);
  n.reader_versions = reader.reads(need.family);
  n.reader_features = reader.features(need.family);
  const u64 common = n.writer_versions & n.reader_versions;
  u64 fits = common & need.carriable;
  for (u8 v = 1; v <= manifest_max_version; ++v)
    if ((fits & version_bit(v)) && is_feature_version(need.family, v) &&
        (need.features_required & ~n.reader_features) != 0)
      fits &= ~version_bit(v);
  n.version = highest_version(fits);
  if (n.version != 0) return n;
  if (n.writer_versions == 0) n.why = refusal::writer_lacks_family;
  else if (n.reader_versions == 0) n.why = refusal::reader_lacks_family;
  else if (common == 0) n.why = refusal::no_common_version;
  else if ((common & need.carriable) == 0) n.why = refusal::content_not_carriable;
  else n.why = refusal::features_unsupported;
  return n;
}

/// Decides every need; out[i] is needs[i]'s decision. Returns how many were refused.
/// Complexity: O(n x manifest entries).
inline u32 negotiate(const manifest_view& writer, const manifest_view& reader, const handover_need* needs, u32 n,
                     negotiated* out) {
  u32 refused = 0;
  for (u32 i = 0; i < n; ++i) {
    out[i] = negotiate_one(writer, reader, needs[i]);
    if (out[i].version == 0) ++refused;
  }
  return refused;
}

}  // namespace kho
