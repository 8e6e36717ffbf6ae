// kho/model/qualify.hpp: will the next image read everything this handover carries?
// (hosted only)
//
// The question a downstream consumer asks in CI before it lets a live update happen.
// The structures come from what a handover holds (a `kho dump --json` report: the
// root's version, each subtree's format, every LUO file's handler and a memfd's
// seals) or from what an old image is about to write; the answers come from the two
// manifests (manifest.hpp): with the old image's writer manifest, each structure gets
// the version negotiation would write (negotiate.hpp); without it, the version
// already written must be one the next image reads.
#pragma once

#include <kho/linux/liveupdate_versions.hpp>
#include <kho/linux/luo_feature.hpp>
#include <kho/manifest.hpp>
#include <kho/negotiate.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <vector>

namespace kho::model {

/// One structure of a handover, as qualification sees it.
struct handover_structure {
  std::string family;           // "memfd"
  std::string what;             // "LUO session vm0, file token 1"
  u8 written = 0;               // the version in the image, 0 if not yet written
  u64 carriable = ~u64{1};      // versions that hold its content without loss
  u64 features_required = 0;
  std::string lossy_field;      // what versions outside `carriable` would drop
};

namespace impl {

inline void add_known(std::vector<handover_structure>& out, const std::string& wire, const std::string& what) {
  const format_version v = find_wire_name(wire.c_str());
  if (v.family == nullptr) return;  // not a negotiated format: an opaque blob the root carries
  out.push_back({v.family, what, v.version, ~u64{1}, 0, ""});
}

// kho-v1 names FDT subtrees only, and kho-v2 (as torvalds wrote it) has no blob-size:
// a raw blob's size would be lost. The root must be kho-v3 or later to carry one.
inline bool is_fdt_format(const std::string& format) { return format == "memblock-v1" || format == "luo-v1"; }

// The feature bits LUO's feature-header layout needs set to carry this content.
inline u64 luo_features_needed(const nlohmann::json& luo) {
  u64 f = upstream::luo_feature_number;
  if (!luo.value("sessions", nlohmann::json::array()).empty()) f |= upstream::luo_feature_sessions;
  if (!luo.value("flbs", nlohmann::json::array()).empty()) f |= upstream::luo_feature_flbs;
  return f;
}

inline void add_luo_files(std::vector<handover_structure>& out, const nlohmann::json& luo) {
  for (const auto& s : luo.value("sessions", nlohmann::json::array())) {
    const std::string session = s.value("name", "?");
    for (const auto& f : s.value("files", nlohmann::json::array())) {
      const std::string what = fmt::format("LUO session {}, file token {}", session, f.value("token", u64{0}));
      const size_t before = out.size();
      add_known(out, f.value("format", f.value("compatible", "")), what);
      if (out.size() == before || out.back().family != "memfd" || !f.contains("memfd")) continue;
      const auto& m = f["memfd"];
      if (m.value("seals", u64{0}) != 0 || m.value("flags", u64{0}) != 0) {
        out.back().carriable &= ~version_bit(1);  // memfd-v1 has neither field
        out.back().lossy_field = m.value("seals", u64{0}) != 0 ? "seals" : "flags";
      }
      // The feature-header layout carries a field only under its feature bit.
      if (m.value("seals", u64{0}) != 0) out.back().features_required |= upstream::memfd_feature_seals;
      if (m.value("nr_folios", u64{0}) != 0) out.back().features_required |= upstream::memfd_feature_folios;
    }
  }
}

}  // namespace impl

/// The structures a `kho dump --json` report shows, with their written versions.
/// Formats kho does not negotiate (a test blob's compatible) are left out: the root
/// carries them opaquely.
inline std::vector<handover_structure> structures_of_report(const nlohmann::json& dump) {
  std::vector<handover_structure> out;
  if (dump.contains("subtrees")) {  // Linux's root FDT
    const std::string root = dump.value("root", nlohmann::json::object()).value("compatible", dump.value("format", ""));
    impl::add_known(out, root, "KHO root");
    bool raw_blob = false;
    for (const auto& t : dump["subtrees"]) {
      const std::string format = t.value("format", nlohmann::json()).is_string() ? t["format"].get<std::string>() : "";
      const std::string name = t.value("name", "?");
      impl::add_known(out, format, "subtree " + name);
      raw_blob = raw_blob || !impl::is_fdt_format(format);
      if (format.rfind("luo", 0) != 0) continue;
      out.back().features_required = impl::luo_features_needed(t);
      if (!t.value("flbs", nlohmann::json::array()).empty()) {
        out.back().carriable &= ~version_bit(1);
        out.back().lossy_field = "FLBs (luo-v1 has none)";
      }
      impl::add_luo_files(out, t);
      // FLBs with a negotiated format (hugetlb-v1, ...) are structures too.
      for (const auto& b : t.value("flbs", nlohmann::json::array()))
        impl::add_known(out, b.value("name", ""), fmt::format("LUO FLB {}", b.value("name", "?")));
    }
    if (raw_blob && !out.empty() && out.front().family == "kho") {
      out.front().carriable &= ~(version_bit(1) | version_bit(2));
      out.front().lossy_field = "blob-size of a subtree that is not an FDT";
    }
  } else if (dump.contains("entries")) {  // kho's kho-root-v1
    impl::add_known(out, "kho-root-v1", "handover root");
    // kho-luo-v1's file handlers are kho's own names, not upstream formats.
    for (const auto& e : dump["entries"]) impl::add_known(out, e.value("compatible", ""), "entry " + e.value("name", "?"));
  }
  return out;
}

/// One structure's verdict.
struct qualify_row {
  handover_structure structure;
  negotiated decision;  // with a writer manifest: negotiate's; else whether `written` is read
  bool ok() const { return decision.version != 0; }
};

struct qualify_result {
  std::string writer;  // the writer manifest's image, or "handover image"
  std::string reader;
  std::vector<qualify_row> rows;
  bool ok() const {
    for (const auto& r : rows)
      if (!r.ok()) return false;
    return true;
  }
};

/// Decides every structure. With `writer`, negotiation picks what would be written;
/// without, the written version must be among those `reader` reads.
inline qualify_result qualify(const std::vector<handover_structure>& structures, const manifest_view* writer,
                              const manifest_view& reader) {
  qualify_result q{writer ? writer->image() : "handover image", reader.image(), {}};
  for (const handover_structure& s : structures) {
    negotiated n;
    if (writer != nullptr) {
      const handover_need need{s.family.c_str(), s.what.c_str(), s.carriable, s.features_required, s.lossy_field.c_str()};
      n = negotiate_one(*writer, reader, need);
    } else {
      n.writer_versions = version_bit(s.written);
      n.reader_versions = reader.reads(s.family.c_str());
      n.reader_features = reader.features(s.family.c_str());
      if (n.reader_versions & version_bit(s.written)) n.version = s.written;
      else n.why = n.reader_versions == 0 ? refusal::reader_lacks_family : refusal::no_common_version;
    }
    q.rows.push_back({s, n});
  }
  return q;
}

/// "kho-v3, kho-v4" for the versions in `mask` of `family`.
inline std::string version_names(const std::string& family, u64 mask) {
  std::string out;
  for (u8 v = 1; v <= manifest_max_version; ++v) {
    if (!(mask & version_bit(v))) continue;
    const char* name = wire_name_of(family.c_str(), v);
    out += (out.empty() ? "" : ", ") + (name ? std::string(name) : fmt::format("{} v{}", family, v));
  }
  return out.empty() ? "none" : out;
}

inline nlohmann::json to_json(const qualify_result& q) {
  nlohmann::json rows = nlohmann::json::array();
  for (const qualify_row& r : q.rows) {
    const auto& s = r.structure;
    const char* chosen = wire_name_of(s.family.c_str(), r.decision.version);
    nlohmann::json j{{"structure", s.what},
                     {"family", s.family},
                     {"ok", r.ok()},
                     {"version", chosen ? nlohmann::json(chosen) : nlohmann::json(nullptr)},
                     {"writer_versions", version_names(s.family, r.decision.writer_versions)},
                     {"reader_versions", version_names(s.family, r.decision.reader_versions)}};
    if (s.written != 0) j["written"] = wire_name_of(s.family.c_str(), s.written);
    if (!r.ok()) j["refusal"] = to_string(r.decision.why);
    if (r.decision.why == refusal::content_not_carriable && !s.lossy_field.empty())
      j["would_lose"] = s.lossy_field;
    rows.push_back(std::move(j));
  }
  return {{"writer", q.writer}, {"reader", q.reader}, {"ok", q.ok()}, {"structures", std::move(rows)}};
}

/// For people: one line per structure, then the verdict.
inline std::string format_qualify(const qualify_result& q) {
  std::string out = fmt::format("live update {} -> {}\n", q.writer, q.reader);
  for (const qualify_row& r : q.rows) {
    const auto& s = r.structure;
    if (r.ok()) {
      out += fmt::format("  ok       {}: {}\n", s.what, wire_name_of(s.family.c_str(), r.decision.version));
      continue;
    }
    out += fmt::format("  REFUSED  {} ({}): {}; writes {}, next image reads {}", s.what, s.family,
                       to_string(r.decision.why), version_names(s.family, r.decision.writer_versions),
                       version_names(s.family, r.decision.reader_versions));
    if (r.decision.why == refusal::content_not_carriable && !s.lossy_field.empty())
      out += fmt::format("; the common versions would drop {}", s.lossy_field);
    out += "\n";
  }
  u32 refused = 0;
  for (const auto& r : q.rows) refused += r.ok() ? 0 : 1;
  out += refused == 0 ? fmt::format("qualified: the next image reads all {} structures\n", q.rows.size())
                      : fmt::format("NOT qualified: {} of {} structures cannot be carried\n", refused, q.rows.size());
  return out;
}

// ---- the next kernel's .liveupdate_versions (LINUX-FORMATS-NEXT.md section 7) --------

/// One LUO compatible a handover uses: the LUO layout's own, or a file's handler.
struct luo_compatible_use {
  std::string compatible;
  std::string what;  // "LUO subtree LUO", "LUO session vm, file token 1"
};

/// What a handover's LUO needs of the next kernel's .liveupdate_versions, and what that
/// section cannot answer (FLB names are not listed in it).
struct liveupdate_versions_check {
  std::vector<std::string> listed;  // the next kernel's entries, in section order
  u64 duplicates = 0;
  std::vector<luo_compatible_use> present, missing;
  std::vector<luo_compatible_use> flbs_not_listed;  // by design of the section: not checked
  bool ok() const { return missing.empty(); }
};

/// Compares the LUO compatibles a `kho dump --json` report uses with a validated
/// section's entries. Complexity: O(uses * entries).
inline liveupdate_versions_check check_liveupdate_versions(const nlohmann::json& dump,
                                                           const upstream::liveupdate_versions_view& next) {
  liveupdate_versions_check out;
  for (u64 i = 0; i < next.size(); ++i) out.listed.emplace_back(next.entry(i));
  out.duplicates = next.duplicates();
  auto use = [&](const std::string& compatible, std::string what) {
    auto& to = next.lists(compatible.c_str()) ? out.present : out.missing;
    to.push_back({compatible, std::move(what)});
  };
  for (const auto& t : dump.value("subtrees", nlohmann::json::array())) {
    const std::string format = t.value("format", nlohmann::json()).is_string() ? t["format"].get<std::string>() : "";
    if (format.rfind("luo", 0) != 0) continue;
    use(format, "LUO subtree " + t.value("name", std::string("?")));
    for (const auto& s : t.value("sessions", nlohmann::json::array()))
      for (const auto& f : s.value("files", nlohmann::json::array()))
        use(f.value("compatible", std::string()),
            fmt::format("LUO session {}, file token {}", s.value("name", std::string("?")), f.value("token", u64{0})));
    for (const auto& b : t.value("flbs", nlohmann::json::array()))
      out.flbs_not_listed.push_back({b.value("name", std::string("?")), "FLB"});
  }
  return out;
}

inline nlohmann::json to_json(const liveupdate_versions_check& c) {
  auto list = [](const std::vector<luo_compatible_use>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& u : v) a.push_back({{"compatible", u.compatible}, {"structure", u.what}});
    return a;
  };
  return {{"ok", c.ok()},
          {"listed", c.listed},
          {"duplicates", c.duplicates},
          {"present", list(c.present)},
          {"missing", list(c.missing)},
          {"flbs_not_listed", list(c.flbs_not_listed)},
          {"note", "FLB names are not listed by .liveupdate_versions: they are not checked"}};
}

inline std::string format_liveupdate_versions_check(const liveupdate_versions_check& c) {
  std::string out = fmt::format("next kernel's .liveupdate_versions: {} entries{}\n", c.listed.size(),
                                c.duplicates ? fmt::format(" ({} duplicates)", c.duplicates) : std::string());
  for (const auto& u : c.present) out += fmt::format("  listed   {}: {}\n", u.what, u.compatible);
  for (const auto& u : c.missing) out += fmt::format("  MISSING  {}: {} is not listed\n", u.what, u.compatible);
  if (!c.flbs_not_listed.empty()) {
    out += "  FLBs are not listed by .liveupdate_versions, so these are not checked:";
    for (const auto& u : c.flbs_not_listed) out += " " + u.compatible;
    out += "\n";
  }
  out += c.ok() ? "the next kernel lists every LUO version the handover uses\n"
                : fmt::format("the next kernel lacks {} LUO versions the handover uses\n", c.missing.size());
  return out;
}

}  // namespace kho::model
