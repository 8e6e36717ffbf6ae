// The compatibility matrix: for every format family kho reads and writes, and every
// pair (writer version w, reader version r), either the pair works (kho writes w, a
// reader reads it and finds exactly the content a model says) or it is refused before
// kexec (negotiation between a writer of {w} and a reader of {r} fails, and a reader
// of {r} given w's bytes anyway refuses them). Upstream readers read exactly one
// version, so the matrix is diagonal; the off-diagonal cells that work are kho's own
// minors and the content that several versions can carry. Also here: every golden
// Linux handover under tests/golden/ read by today's readers, and the minor-version
// rule of docs/format.md on kho's own root.
#include <kho/handover.hpp>
#include <kho/handover_check.hpp>
#include <kho/manifest.hpp>
#include <kho/model/inspect.hpp>
#include <kho/model/inspect_linux.hpp>
#include <kho/model/qualify.hpp>
#include <kho/negotiate.hpp>
#include <kho/readers.hpp>

#include "golden_files.hpp"
#include "golden_linux.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace kho::test::compat_matrix_test {
namespace {

using golden::linux_versions;

/// An image in aligned memory at golden::image_base.
struct mapped {
  explicit mapped(const std::vector<unsigned char>& bytes)
      : size((bytes.size() + 65535) & ~size_t{65535}), data(static_cast<unsigned char*>(std::aligned_alloc(65536, size))) {
    std::memset(data, 0, size);
    std::memcpy(data, bytes.data(), bytes.size());
  }
  ~mapped() { std::free(data); }
  mapped(const mapped&) = delete;
  flat_memory memory() const { return flat_memory(phys_addr{golden::image_base}, size, data); }
  size_t size;
  unsigned char* data;
};

nlohmann::json read_linux(const golden::image& img) {
  mapped m(img.bytes);
  return model::inspect_kho_fdt(m.memory(), img.root);
}

const nlohmann::json& subtree(const nlohmann::json& report, const std::string& name) {
  for (const auto& t : report["subtrees"])
    if (t["name"] == name) return t;
  throw std::runtime_error("no subtree " + name);
}

/// The report says exactly what the content model says.
void expect_content(const nlohmann::json& report, const golden::linux_content& want, const linux_versions& v,
                    const std::string& what) {
  ASSERT_EQ(report.value("status", ""), "ok") << what << ": " << report.dump();
  EXPECT_EQ(report["root"]["compatible"], wire_name_of("kho", v.root)) << what;
  if (v.root >= 3) {  // kho-v1 and -v2 cannot name kexec-metadata's raw blob
    const auto& meta = subtree(report, "kexec-metadata");
    EXPECT_EQ(meta["previous_release"], want.release) << what;
    EXPECT_EQ(meta["kexec_count"], want.kexec_count) << what;
  }
  const auto& luo = subtree(report, "LUO");
  EXPECT_EQ(luo["format"], wire_name_of("luo", v.luo)) << what;
  EXPECT_EQ(luo["liveupdate_num"], want.liveupdate_num) << what;
  std::vector<golden::linux_content::file> got;
  for (const auto& s : luo["sessions"])
    for (const auto& f : s["files"]) {
      EXPECT_EQ(f["format"], wire_name_of("memfd", v.memfd)) << what;
      golden::linux_content::file g{s["name"], f["token"], f["memfd"]["size"], f["memfd"]["seals"], {}};
      for (const auto& folio : f["memfd"]["folios"])
        g.folios.emplace_back(folio["index"].get<u64>(), std::stoull(folio["pfn"].get<std::string>(), nullptr, 16));
      got.push_back(std::move(g));
    }
  ASSERT_EQ(got.size(), want.files.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].session, want.files[i].session) << what;
    EXPECT_EQ(got[i].token, want.files[i].token) << what;
    EXPECT_EQ(got[i].size, want.files[i].size) << what;
    EXPECT_EQ(got[i].seals, want.files[i].seals) << what;
    EXPECT_EQ(got[i].folios, want.files[i].folios) << what;
  }
}

/// A manifest (as bytes) of an image that reads `reads` and writes `writes` of one
/// family and, of every other family a Linux handover uses, the version in `era`.
std::vector<unsigned char> manifest_bytes(const std::string& family, u64 reads, u64 writes,
                                          const linux_versions& era = {}) {
  const std::pair<const char*, u8> others[] = {
      {"kho", era.root}, {"luo", era.luo}, {"memfd", era.memfd}, {"kexec-metadata", 1}, {"memblock", 1}};
  std::vector<unsigned char> b(64, 0);
  manifest_header h{};
  h.magic.set(manifest_magic);
  h.version_major.set(1);
  h.entry_size.set(sizeof(manifest_entry));
  h.count.set(5);
  std::memcpy(h.image, "matrix", 7);
  std::memcpy(b.data(), &h, sizeof h);
  for (const auto& [f, current] : others) {
    manifest_entry e{};
    std::memcpy(e.family, f, std::strlen(f));
    const bool it = family == f;
    e.reads.set(it ? reads : version_bit(current));
    e.writes.set(it ? writes : version_bit(current));
    // The feature bits kho's readers support, for the feature-header layouts.
    if (std::strcmp(f, "luo") == 0) e.features.set(upstream::luo_features_supported);
    if (std::strcmp(f, "memfd") == 0) e.features.set(upstream::memfd_features_supported);
    const auto* p = reinterpret_cast<const unsigned char*>(&e);
    b.insert(b.end(), p, p + sizeof e);
  }
  return b;
}

manifest_view view(const std::vector<unsigned char>& b) {
  auto m = manifest_view::parse(b.data(), b.size());
  if (!m) throw std::runtime_error("bad test manifest");
  return *m;
}

/// The versions of `family` kho writes today (and so reads: every writer's output is
/// read by the same kho).
struct family_versions {
  const char* family;
  std::vector<u8> versions;
  linux_versions (*with)(u8);
};

std::vector<family_versions> matrix_families() {
  return {
      // kho-v1 and -v2 roots carry the FDT-era LUO (luo-v1) and memfd-v1.
      {"kho", {1, 2, 3, 4, 5}, [](u8 v) { return v < 3 ? linux_versions{v, 1, 1, false} : linux_versions{v, 5, 2, true}; }},
      // 1..7, then luo_layouts.hpp's: 2, 3, 4 and 8..12 (LINUX-FORMATS-NEXT.md 1.1).
      {"luo", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, [](u8 v) { return linux_versions{4, v, 2, true}; }},
      {"memfd", {1, 2, 3}, [](u8 v) { return linux_versions{4, 5, v, v != 1}; }},
  };
}

// The matrix covers exactly what kho declares it reads (readers.hpp): a declared
// version the matrix does not write and read would be a claim nothing checks.
TEST(CompatMatrix, CoversEveryVersionKhoDeclares) {
  for (const family_versions& fam : matrix_families()) {
    u64 covered = 0;
    for (u8 v : fam.versions) covered |= version_bit(v);
    bool found = false;
    for (const manifest_line& line : reader_lines) {
      if (std::string(line.family) != fam.family) continue;
      found = true;
      EXPECT_EQ(line.reads, covered) << fam.family;
      EXPECT_EQ(line.writes, covered) << fam.family;
    }
    EXPECT_TRUE(found) << fam.family;
  }
}

// Every cell of every family's matrix.
TEST(CompatMatrix, EveryWriterReaderPairWorksOrIsRefusedBeforeKexec) {
  int works = 0, refused = 0;
  for (const family_versions& fam : matrix_families()) {
    for (u8 w : fam.versions) {
      const linux_versions v = fam.with(w);
      const golden::image img = golden::build_linux(v);
      const nlohmann::json report = read_linux(img);
      const auto structures = model::structures_of_report(report);
      for (u8 r : fam.versions) {
        const std::string cell = fmt::format("{} written as {}, read by a reader of {}", fam.family,
                                             wire_name_of(fam.family, w), wire_name_of(fam.family, r));
        const auto wb = manifest_bytes(fam.family, version_bit(w), version_bit(w), v);
        const auto rb = manifest_bytes(fam.family, version_bit(r), version_bit(r), v);
        // Before kexec: negotiation over the whole handover's structures, the content
        // known and nothing written yet.
        std::vector<model::handover_structure> planned = structures;
        for (auto& s : planned) s.written = 0;
        const manifest_view writer = view(wb);
        const auto plan = model::qualify(planned, &writer, view(rb));
        const bool must_work = w == r;  // upstream readers read one version
        EXPECT_EQ(plan.ok(), must_work) << cell << "\n" << model::format_qualify(plan);
        // After kexec: the reader of {r} given w's bytes reads them iff the pair works,
        // and then finds exactly the content written.
        const auto negotiated = model::qualify(structures, nullptr, view(rb));
        EXPECT_EQ(negotiated.ok(), must_work) << cell;
        if (must_work) {
          expect_content(report, golden::linux_golden_content(v, golden::linux_golden_first_folio), v, cell);
          ++works;
        } else {
          for (const auto& row : negotiated.rows) {
            if (row.structure.family == fam.family) {
              EXPECT_FALSE(row.ok()) << cell << ": " << row.structure.what;
            }
          }
          ++refused;
        }
      }
    }
  }
  EXPECT_GT(works, 0);
  EXPECT_GT(refused, 0);
}

// The content decides too: a writer of memfd-v1 and -v2 and a reader of memfd-v1 only
// can carry unsealed files, never sealed ones (the seals would be lost).
TEST(CompatMatrix, ContentThatAnOlderVersionCannotCarryIsRefused) {
  const auto wb = manifest_bytes("memfd", version_bit(1) | version_bit(2), version_bit(1) | version_bit(2));
  const auto rb = manifest_bytes("memfd", version_bit(1), version_bit(1));
  for (bool seals : {true, false}) {
    const linux_versions v{4, 5, 2, seals};
    auto structures = model::structures_of_report(read_linux(golden::build_linux(v)));
    for (auto& s : structures) s.written = 0;
    const manifest_view writer = view(wb);
    const auto plan = model::qualify(structures, &writer, view(rb));
    EXPECT_EQ(plan.ok(), !seals) << model::format_qualify(plan);
    int files = 0;
    for (const auto& row : plan.rows) {
      if (row.structure.family != "memfd") continue;
      ++files;
      if (seals) {
        EXPECT_EQ(row.decision.why, refusal::content_not_carriable) << row.structure.what;
        EXPECT_EQ(row.structure.lossy_field, "seals");
      } else {
        EXPECT_EQ(row.decision.version, 1) << row.structure.what;
      }
    }
    EXPECT_EQ(files, 3);
  }
}

// ---- golden images of every version kho has written ---------------------------------

/// The versions a golden Linux image's name records ("linux-kho-v4-luo-v5-memfd-v2").
std::optional<linux_versions> versions_of_name(const std::string& name) {
  for (u8 root = 1; root < 8; ++root)
    for (u8 luo = 1; luo < 8; ++luo)
      for (u8 memfd = 1; memfd < 4; ++memfd)
        for (bool seals : {true, false}) {
          const linux_versions v{root, luo, memfd, seals};
          if (wire_name_of("kho", root) && wire_name_of("luo", luo) && wire_name_of("memfd", memfd) && v.name() == name)
            return v;
        }
  return std::nullopt;
}

TEST(CompatMatrix, EveryGoldenLinuxImageIsReadByTodaysReaders) {
  int read = 0;
  for (const auto& [name, root] : golden::read_index()) {
    (void)root;
    if (!name.starts_with("linux-")) continue;
    const auto v = versions_of_name(name);
    ASSERT_TRUE(v.has_value()) << name << ": a golden Linux image whose name names no versions";
    const golden::image img = golden::load(name);
    ASSERT_FALSE(img.bytes.empty()) << name;
    expect_content(read_linux(img), golden::linux_golden_content(*v, golden::linux_golden_first_folio), *v, name);
    ++read;
  }
  EXPECT_GE(read, static_cast<int>(golden::linux_written_versions().size()));
}

TEST(CompatMatrix, TodaysWritersStillWriteTheirGoldenImages) {
  const auto index = golden::read_index();
  for (const linux_versions& v : golden::linux_written_versions()) {
    const golden::image img = golden::build_linux(v);
    ASSERT_TRUE(index.count(v.name())) << v.name() << " is not checked in (make_images golden tests/golden)";
    const golden::image file = golden::load(v.name());
    EXPECT_TRUE(img.bytes == file.bytes) << v.name() << ": the writer's bytes drifted from tests/golden";
    EXPECT_EQ(img.root, file.root) << v.name();
  }
}

// ---- the minor-version rule on kho's own root -----------------------------------

/// handover-full.img as a simulated writer of kho-root-v1.1 would leave it: the minor
/// raised and a structure of a kind 1.0 does not know added (an additive change), then
/// re-sealed.
TEST(CompatMatrix, MinorZeroReaderReadsAnAdditiveMinorOneRoot) {
  const golden::image full = golden::all()[6].make();
  ASSERT_EQ(golden::all()[6].name, "handover-full");
  mapped m(full.bytes);
  // The new structure: a page past the image, outside the old writer's pages.
  const u64 extra = golden::image_base + ((full.bytes.size() + 4095) & ~u64{4095});
  ASSERT_LT(extra + 4096, golden::image_base + m.size);
  std::memcpy(m.data + (extra - golden::image_base), "a structure kho-root 1.0 does not know", 39);
  auto* page = reinterpret_cast<detail::handover_page<12>*>(m.data + (full.root.value - golden::image_base));
  auto& h = page->header;
  const u32 n = h.entry_count.get();
  handover_entry& e = page->entries[n];
  detail::store_string(e.name, handover_name_len, "future-thing");
  detail::store_string(e.compatible, handover_compatible_len, "kho-future-v1");
  e.phys.set(extra);
  e.size.set(39);
  e.checksum.set(checksum(m.data + (extra - golden::image_base), 39));
  h.entry_count.set(n + 1);
  h.version_minor.set(handover_version_minor + 1);
  h.checksum.set(detail::root_checksum(*page));

  // The added page is outside the image's preserved-memory map (editing the map is
  // not what the rule is about), so the check waives preservation here.
  const nlohmann::json before = model::inspect(m.memory(), full.root, {.require_preserved = false});
  ASSERT_EQ(before["status"], "ok") << before.dump();
  auto root = attach_handover_root(m.memory(), full.root);
  ASSERT_TRUE(root) << to_string(root.code());
  EXPECT_EQ(root->version_minor(), handover_version_minor + 1);
  int unknown = 0;
  for (const auto& entry : before["entries"]) unknown += entry.value("known_format", true) ? 0 : 1;
  EXPECT_EQ(unknown, 1) << "the new kind is carried as an opaque, checksummed blob";

  // What needs a major instead: the same writer using a reserved field is refused.
  h.reserved.set(1);
  h.checksum.set(detail::root_checksum(*page));
  EXPECT_EQ(attach_handover_root(m.memory(), full.root).code(), errc::reserved_nonzero);
}

}  // namespace
}  // namespace kho::test::compat_matrix_test
