// tests/golden_linux.hpp: small deterministic Linux handovers, one per combination of
// format versions kho writes, behind tests/golden/linux-*.img and the compatibility
// matrix. Each is a whole handover (root FDT, radix map, kexec-metadata, memblock, LUO
// with memfd files) in a zeroed buffer standing for physical memory from
// golden::image_base, written by kho's writers at the versions asked for, so its bytes
// depend only on the writer code and the versions.
#pragma once

#include "golden_images.hpp"

#include <kho/linux/kexec_metadata.hpp>
#include <kho/linux/kho_fdt.hpp>
#include <kho/linux/kho_mem_chunks.hpp>
#include <kho/linux/luo_v5.hpp>
#include <kho/linux/luo_versions.hpp>
#include <kho/linux/memblock.hpp>
#include <kho/linux/memfd.hpp>
#include <kho/manifest.hpp>
#include <kho/model/scratch_pages.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

namespace kho::golden {

/// The version of each family a Linux handover is written in (manifest.hpp numbers).
struct linux_versions {
  u8 root = 4;
  u8 luo = 5;
  u8 memfd = 2;
  bool seals = true;  // the memfds carry seals (memfd-v1 cannot)

  /// The file name: the wire names, with the RFC forms' ';' as '-' and the feature
  /// headers as "<family>-feature".
  std::string name() const {
    auto file_name = [](const char* family, u8 v) {
      std::string n = wire_name_of(family, v);
      if (is_feature_version(family, v)) return std::string(family) + "-feature";
      std::replace(n.begin(), n.end(), ';', '-');
      return n;
    };
    return fmt::format("linux-{}-{}-{}{}", file_name("kho", root), file_name("luo", luo), file_name("memfd", memfd),
                       seals ? "" : "-unsealed");
  }
};

/// What the handover holds, version-independent: the model a reader's result is
/// compared with.
struct linux_content {
  struct file {
    std::string session;
    u64 token;
    u64 size;
    u32 seals;
    std::vector<std::pair<u64, u64>> folios;  // (index, pfn)
  };
  std::vector<file> files;
  std::string release = "6.20.0-kho-golden";
  u32 kexec_count = 3;
  u64 liveupdate_num = 3;
};

/// Where the builder puts the first folio: the first page of the image. A fact of
/// every golden file, kept so.
inline constexpr u64 linux_golden_first_folio = image_base >> 12;

/// The content every golden Linux handover carries.
inline linux_content linux_golden_content(const linux_versions& v, u64 first_folio_pfn) {
  linux_content c;
  u64 pfn = first_folio_pfn;
  const struct {
    const char* session;
    u64 token;
    u64 folios;
  } specs[] = {{"vm-alpha", 1, 5}, {"vm-alpha", 2, 1}, {"database", 7, 3}};
  for (const auto& s : specs) {
    linux_content::file f{s.session, s.token, s.folios * 2 * 4096, v.seals ? upstream::memfd_seal_seal | upstream::memfd_seal_grow : 0u, {}};
    for (u64 i = 0; i < s.folios; ++i) f.folios.emplace_back(i * 2, pfn++);
    c.files.push_back(std::move(f));
  }
  return c;
}

/// Builds the handover at versions `v`; the root (the FDT's address) is image::root.
/// Throws std::runtime_error where kho cannot write a version.
inline image build_linux(const linux_versions& v) {
  using namespace upstream;
  using source = bump_page_source<flat_memory>;
  using map_type = preserve_bitmap<source>;
  using tracked_type = preserving_page_source<source, map_type>;
  auto must = [](const status& s, const char* what) {
    if (!s) throw std::runtime_error(fmt::format("{}: {}", what, to_string(s.code())));
  };
  if (v.root < 1 || v.root > 5 || v.luo < 1 || v.luo > 12 || v.memfd < 1 || v.memfd > 3)
    throw std::runtime_error(fmt::format("kho writes no {} / {} / {}", v.root, v.luo, v.memfd));
  // kho-v1 and -v2 name FDT blobs only: no kexec-metadata (a raw blob), LUO as luo-v1.
  const bool raw_blobs = v.root >= 3;
  arena_buffer arena(u64{1} << 20);
  // Folios first, at the arena's first frames, so the content model can name them.
  std::vector<phys_addr> folio_pages;
  for (int i = 0; i < 9; ++i) {
    auto f = arena.pages().alloc(order{0});
    must(f.has_value() ? status{} : status{f.err()}, "folio");
    folio_pages.push_back(*f);
  }
  auto map = map_type::create(arena.pages(), /*record_own_pages=*/false);
  must(map.has_value() ? status{} : status{map.err()}, "map");
  for (phys_addr f : folio_pages) must(map->preserve(f, order{0}), "preserve folio");
  tracked_type tracked(arena.pages(), *map);
  kho_fdt_options root_options{true, 1};
  root_options.version = static_cast<kho_root_version>(v.root == 5 ? 4 : v.root);
  root_options.granular = v.root == 5;  // "kho-v4;radix-v1;vmalloc-v1"
  auto root = kho_fdt_writer<tracked_type>::create(tracked, map->root(), root_options);
  must(root.has_value() ? status{} : status{root.err()}, "root");

  const linux_content content = linux_golden_content(v, linux_golden_first_folio);
  for (const auto& f : content.files)
    for (const auto& [index, frame] : f.folios) {
      const std::string text = fmt::format("{} token {} index {}", f.session, f.token, index);
      std::memcpy(arena.memory().to_virt(phys_addr{frame << 12}, text.size()), text.data(), text.size());
    }

  if (raw_blobs) {
    auto meta = write_kexec_metadata(tracked, content.release.c_str(), content.kexec_count);
    must(meta.has_value() ? status{} : status{meta.err()}, "kexec-metadata");
    must(root->add(kexec_metadata_subtree, meta->phys, meta->size), "add kexec-metadata");
  }
  auto trace = tracked.alloc(order{2});
  must(trace.has_value() ? status{} : status{trace.err()}, "reserve_mem region");
  const reserve_mem_region regions[] = {{"trace", *trace, u64{4} * 4096}};
  auto mb = write_memblock(tracked, regions, 1);
  must(mb.has_value() ? status{} : status{mb.err()}, "memblock");
  must(root->add(memblock_subtree, mb->phys, mb->size, memblock_compatible), "add memblock");

  // memfds first (their states are what LUO's file records point at), then LUO.
  std::vector<luo_file_content> files;
  for (const auto& f : content.files) {
    std::vector<memfd_folio> folios;
    for (const auto& [index, frame] : f.folios)
      folios.push_back({pfn{frame}, index, static_cast<u16>(memfd_folio_dirty | memfd_folio_uptodate)});
    auto fd = write_memfd_for(tracked, f.session.c_str(), f.token, memfd_file{0, f.size, f.seals, folios.data(), folios.size()},
                              static_cast<memfd_version>(v.memfd));
    must(fd.has_value() ? status{} : status{fd.err()}, "memfd");
    files.push_back({memfd_file_name(static_cast<memfd_version>(v.memfd)), fd->value, f.token});
  }
  const luo_session_content sessions[] = {{"vm-alpha", files.data(), 2}, {"database", files.data() + 2, 1}};
  auto iommu = tracked.alloc(order{0});
  must(iommu.has_value() ? status{} : status{iommu.err()}, "FLB");
  const luo_flb_content flb{"iommufd", iommu->value, 1};
  const luo_content luo_state{content.liveupdate_num, sessions, 2, &flb, v.luo == 1 ? 0u : 1u};
  auto luo = write_luo(tracked, static_cast<luo_version>(v.luo), luo_state);
  must(luo.has_value() ? status{} : status{luo.err()}, "LUO");
  must(root->add(luo_v5_subtree, luo->phys, luo->size, luo_version_name(static_cast<luo_version>(v.luo))), "add LUO");
  if (v.root == 1) {
    // kho-v1's map is a chunk chain written from the tree at the end; as the kernel's,
    // its pages are not preserved (and not recorded: the arena's own source).
    auto chain = write_kho_mem_chunks(arena.pages(), *map);
    must(chain.has_value() ? status{} : status{chain.err()}, "chunk chain");
    must(root->set_memory_map(chain->first), "chunk chain as the map");
    model::scratch_pages<> scratch(arena.memory());
    auto view = attach_kho_mem_chunks(arena.memory(), chain->first, scratch.pages());
    must(view.has_value() ? status{} : status{view.err()}, "chunk chain read back");
    must(root->set_memory_map_checksum(view->deep_checksum()), "map checksum");
  } else {
    must(root->set_memory_map_checksum(map->deep_checksum()), "map checksum");
  }
  must(root->seal(), "seal");
  return arena.take(root->root());
}

}  // namespace kho::golden

namespace kho::golden {

/// The Linux handovers at every combination of versions today's writers write; each is
/// checked in as tests/golden/<name>.img and stays there when a later kho stops
/// writing it, so that every later reader keeps reading it.
inline std::vector<linux_versions> linux_written_versions() {
  return {
      {4, 5, 2, true},  {4, 5, 1, false}, {3, 5, 2, true}, {5, 5, 2, true}, {4, 6, 2, true},
      {4, 7, 3, true},  {4, 5, 3, true},  {3, 1, 1, false}, {2, 1, 1, false}, {1, 1, 1, false},
  };
}

}  // namespace kho::golden
