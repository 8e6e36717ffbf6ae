// kho/model/demo_chain.hpp: a chain of live updates A -> B -> C ... in the model
// (hosted only).
//
// Each image of the chain adopts the handover the previous one wrote and writes the
// next one from that adopted state, as a kernel that is itself live-updated again:
//
//   image A            image B                        image C ... last image
//   write hop 1  --->  read hop 1, check it  --->     read hop 2, check it
//                      release what it no longer      ...
//                      needs, write hop 2             check the final state
//
// What a hop carries (docs/format.md, "A chain of live updates"):
//   - LUO (luo-v5) sessions: "vm-alpha" is never finished; every other session is
//     finished by the second image after the one that created it; each image adds one
//     ("svc-B", "svc-C", ...). plan_after(image) is the deterministic oracle.
//   - memfd files: the reader adopts a file's folio array into a kho xarray; that
//     xarray becomes the folio array the next hop writes: the SAME folio pages stay
//     preserved, each holding chain_word(token, index, word) in every word, checked
//     at every hop. vm-alpha's file 1 takes chain_faults new pages per hop.
//   - kexec-metadata: kexec_count = the count read + 1, previous_release the writer's
//     release ("kho-model-A", ...); each reader checks both.
//   - memblock's "trace" region, at the same physical address.
//   - with kho_formats: kho-xarray-v1 adopted in place (its nodes and folios stay
//     preserved, new faults added); kho-luo-v1 rebuilt per hop.
// Memory: the writer allocates from a free_page_source in which only the carried
// pages are busy: everything else of the previous handover (its root, map, LUO blocks,
// memfd arrays, finished files' folios, guest memory) was released after reading.
//
// Which version of each structure a hop writes is decided in one place: hop_formats.
#pragma once

#include <kho/detail/probe_table.hpp>
#include <kho/hole_finder.hpp>
#include <kho/linux/kho_fdt.hpp>
#include <kho/model/demo_linux.hpp>
#include <kho/model/demo_luo.hpp>
#include <kho/model/demo_xarray.hpp>
#include <kho/model/free_pages.hpp>
#include <kho/model/scratch_pages.hpp>
#include <kho/page_owners.hpp>
#include <kho/xarray.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace kho::model {

/// The version of each structure a hop writes. The writer takes it as a whole, so a
/// later change can pick an older upstream version per hop without touching the rest.
/// Defaults: the versions the model writes today.
struct hop_formats {
  int root = 4;            // kho-v4 root FDT
  int luo = 5;             // luo-v5
  int memfd = 2;           // memfd-v2 (1: memfd-v1, no seals)
  int kexec_metadata = 1;  // kexec-metadata version 1
  int memblock = 1;        // memblock-v1
  bool kho_formats = false;  // also kho-xarray-v1 and kho-luo-v1
};

/// Refuses (std::invalid_argument) a version this model has no writer for yet.
inline void check_writable(const hop_formats& f) {
  if ((f.root != 3 && f.root != 4) || f.luo != 5 || (f.memfd != 1 && f.memfd != 2) || f.kexec_metadata != 1 ||
      f.memblock != 1)
    throw std::invalid_argument(fmt::format("no writer for root kho-v{} / luo-v{} / memfd-v{} / kexec-metadata v{} / memblock-v{}",
                                            f.root, f.luo, f.memfd, f.kexec_metadata, f.memblock));
}

/// The versions image `image` writes: the one place a per-hop choice goes (a reader
/// manifest of the next image, or a schedule of downgrades). Today: `chain` for every
/// hop, the --kho-formats choice included.
inline hop_formats formats_for_hop(unsigned image, const hop_formats& chain) {
  (void)image;
  return chain;
}

inline const char* memfd_compatible_of(const hop_formats& f) {
  return f.memfd == 1 ? upstream::memfd_v1_compatible : upstream::memfd_v2_compatible;
}

inline constexpr u64 chain_faults = 8;      // pages vm-alpha's file 1 takes per hop
inline constexpr u64 chain_kho_faults = 8;  // pages the kho xarray takes per hop

/// Image `image` (1-based) of the chain: "A".."Z", then "I27", "I28", ...
inline std::string chain_image(unsigned image) {
  if (image >= 1 && image <= 26) return std::string(1, static_cast<char>('A' + image - 1));
  return fmt::format("I{}", image);
}
/// The release string image `image` runs (kexec-metadata's previous_release).
inline std::string chain_release(unsigned image) { return "kho-model-" + chain_image(image); }

/// Word `word` of page `index` of file `token`: what every memfd page holds.
inline u64 chain_word(u64 token, u64 index, u64 word) {
  return detail::mix64(detail::mix64(token * 0x9e3779b97f4a7c15ULL ^ index) + word);
}
inline void fill_chain_page(void* page, u64 token, u64 index) {
  auto* w = static_cast<unsigned char*>(page);
  for (u64 i = 0; i < page_geometry<>::size / 8; ++i) {
    const u64 v = chain_word(token, index, i);
    std::memcpy(w + i * 8, &v, 8);
  }
}
inline bool chain_page_ok(const void* page, u64 token, u64 index) {
  const auto* w = static_cast<const unsigned char*>(page);
  for (u64 i = 0; i < page_geometry<>::size / 8; ++i) {
    u64 v = 0;
    std::memcpy(&v, w + i * 8, 8);
    if (v != chain_word(token, index, i)) return false;
  }
  return true;
}

struct chain_file_plan {
  u64 token = 0;
  std::vector<u64> indices;  // ascending
};
struct chain_session_plan {
  std::string name;
  std::vector<chain_file_plan> files;
};
using chain_plan = std::vector<chain_session_plan>;

/// What the handover written by image `image` (1-based) carries: A's sessions, then
/// each later image finishes the oldest session but vm-alpha, faults chain_faults pages
/// into vm-alpha's file 1 and adds "svc-<image>" with one file. The chain's oracle.
/// Complexity: O(image * pages).
inline chain_plan plan_after(unsigned image) {
  auto even = [](u64 n) {
    std::vector<u64> v;
    for (u64 i = 0; i < n; ++i) v.push_back(i * 2);
    return v;
  };
  auto run = [](u64 from, u64 n) {
    std::vector<u64> v;
    for (u64 i = 0; i < n; ++i) v.push_back(from + i);
    return v;
  };
  chain_plan p = {{"vm-alpha", {{1, even(48)}, {2, even(3)}}}, {"database", {{7, even(20)}}}, {"cache", {{9, run(0, 8)}}}};
  for (unsigned h = 2; h <= image; ++h) {
    p.erase(p.begin() + 1);  // the oldest session but vm-alpha is finished
    auto& grow = p[0].files[0].indices;
    const u64 next = grow.back() + 1;
    for (u64 i = 0; i < chain_faults; ++i) grow.push_back(next + i);
    p.push_back({"svc-" + chain_image(h), {{100 + h, run(0, 2 + h)}}});
  }
  return p;
}

/// Sessions of `before` that `after` no longer has: finished in between.
inline std::vector<std::string> finished_between(const chain_plan& before, const chain_plan& after) {
  std::vector<std::string> out;
  for (const auto& s : before)
    if (std::none_of(after.begin(), after.end(), [&](const chain_session_plan& a) { return a.name == s.name; }))
      out.push_back(s.name);
  return out;
}

/// One folio of a carried memfd: its page stays where it is and stays preserved.
struct chain_folio {
  u64 index = 0;
  phys_addr page{};
  u16 flags = 0;
};
struct chain_file {
  std::string session;
  u64 token = 0;
  u64 pos = 0;
  u32 seals = 0;
  std::vector<chain_folio> folios;  // ascending index
};

/// What the reader of a hop hands its writer: the state still preserved.
struct chain_carry {
  std::vector<chain_file> files;                 // files of sessions not finished
  std::vector<std::pair<phys_addr, order>> keep;  // other blocks still preserved
  std::optional<upstream::reserve_mem_region> trace;
  phys_addr kho_xarray{};                        // kho-xarray-v1 to adopt; 0: build one
};

/// XXH-free fingerprint of every file (session, token, seals, index, page, flags): the writer
/// sends it with the hop, the reader recomputes it from what it read.
inline u64 chain_digest(const std::vector<chain_file>& files) {
  u64 h = 0x6b686f2d636861ULL;
  auto add = [&](u64 v) { h = detail::mix64(h ^ v) + 0x9e3779b97f4a7c15ULL; };
  for (const chain_file& f : files) {
    for (char c : f.session) add(static_cast<unsigned char>(c));
    add(f.token);
    add(f.seals);
    add(f.folios.size());
    for (const chain_folio& g : f.folios) {
      add(g.index);
      add(g.page.value);
      add(g.flags);
    }
  }
  return h;
}

/// Pages claimed by a structure, recorded instead of checked: the kho xarray's nodes,
/// which an adopting writer keeps in place.
struct page_recorder {
  enum class preserve : u8 { required, exempt };
  std::vector<std::pair<phys_addr, u64>> spans;
  status claim(phys_addr first, u64 pages, page_owner, preserve = preserve::required) {
    spans.emplace_back(first, pages);
    return {};
  }
};

/// Who the writer is: image `image` writes hop `image` with these versions.
struct hop_input {
  unsigned image = 1;
  u64 kexec_count = 1;  // the count it read + 1 (A: 1)
  hop_formats formats{};
  u32 new_file_seals = upstream::memfd_seal_grow;  // the seals of a file created this hop
};

/// The seals a file of the hop carries: a carried file keeps its own (seals are never
/// lifted), a new one gets `new_file_seals`.
inline u32 chain_file_seals(const chain_carry& carry, const std::string& session, u64 token, u32 new_file_seals) {
  for (const chain_file& c : carry.files)
    if (c.session == session && c.token == token) return c.seals;
  return new_file_seals;
}

/// Pages a preserved-memory map (writer or view) records, its own pages not counted.
/// Complexity: O(ranges).
template <class Map>
u64 preserved_pages(const Map& map) {
  u64 n = 0;
  map.for_each_range([&](phys_addr, u64 bytes) { n += bytes >> page_geometry<>::shift; });
  return n;
}

namespace detail_chain {

using detail_linux::fail;
using detail_linux::must;

inline u64 memfd_bytes(const std::vector<upstream::memfd_folio>& folios) {
  return folios.empty() ? 0 : (folios.back().index + 1) * page_geometry<>::size;
}

/// Adopts the kho xarray at `root` (or builds the demo file) and adds it to `root_fdt`.
template <class Tracked, class RootFdt>
void carry_kho_xarray(Tracked& tracked, RootFdt& root_fdt, phys_addr root, nlohmann::json& entry) {
  detail_linux::fdt_subtrees<RootFdt> kho_root{&root_fdt};
  if (root.value == 0) {
    must(build_demo_memfd(tracked, kho_root), "kho-xarray-v1");
  } else {
    scratch_pages scratch(tracked.memory());
    auto view = attach_xarray<u64, 12>(tracked.memory(), root, scratch.pages());
    if (!view) fail("kho-xarray-v1", view.err());
    auto file = xarray<u64, 12, Tracked>::adopt(*view, tracked);
    if (!file) fail("kho-xarray-v1 adopt", file.err());
    u64 next = 0;
    file->for_each(0, ~u64{0}, [&](const auto& e) { next = e.last() + 1; });
    for (u64 i = 0; i < chain_kho_faults; ++i)
      must(add_demo_folio(*file, tracked, next + i, order{0}, memfd_flag_dirty | memfd_flag_uptodate), "kho-xarray-v1 fault");
    file->seal();
    must(kho_root.add(memfd_entry_name, xarray_compatible, file->root(), file->root_size), "add kho-xarray-v1");
    entry["kho_xarray_entries"] = file->count();
  }
  entry["kho_xarray"] = root.value == 0 ? "built" : "adopted";
}

}  // namespace detail_chain

/// Writes hop `in.image` into `pm` from the adopted state `carry`, allocating from
/// `pages` (in which every carried page is busy), calling crash_point(step) after each
/// step of linux_demo_steps and on_entry(entry) before sealing. The entry (JSON) sums
/// the hop up; "digest" is chain_digest of the files written.
/// Complexity: O(pages allocated + carried pages + the allocator's scans).
/// Errors: throws std::runtime_error if memory runs out or a writer refuses, and
/// std::invalid_argument (check_writable) for a version without a writer.
template <class CrashPoint, class OnEntry>
nlohmann::json write_chain_hop(const physical_memory& pm, const hop_input& in, const chain_carry& carry,
                               free_page_source& pages, CrashPoint&& crash_point, OnEntry&& on_entry) {
  using namespace upstream;
  using detail_linux::fail;
  using detail_linux::must;
  using map_type = preserve_bitmap<free_page_source>;
  using tracked_type = preserving_page_source<free_page_source, map_type>;
  constexpr u64 page = page_geometry<>::size;
  check_writable(in.formats);
  const flat_memory mem = pm.memory();
  const u64 allocated_before = pages.allocated();

  // The previous hand-off is gone: each kexec builds the next kernel's boot data anew.
  std::memset(pm.virt(), 0, sizeof(setup_data_header) + sizeof(kho_data));

  auto map = map_type::create(pages, /*record_own_pages=*/false);
  if (!map) fail("preserved-memory map", map.err());
  tracked_type tracked(pages, *map);
  u64 carried_pages = 0;
  for (const auto& [pa, o] : carry.keep) {
    must(map->preserve(pa, o), "preserve carried block");
    carried_pages += u64{1} << o.value;
  }
  for (const chain_file& f : carry.files)
    for (const chain_folio& g : f.folios) {
      must(map->preserve(g.page, order{0}), "preserve carried folio");
      ++carried_pages;
    }
  kho_fdt_options root_options{true, in.image};
  root_options.version = static_cast<kho_root_version>(in.formats.root);
  auto root = kho_fdt_writer<tracked_type>::create(tracked, map->root(), root_options);
  if (!root) fail("root FDT", root.err());
  crash_point("root");

  write_linux_boot(pm, root->root(), root->size());
  crash_point("boot-data");

  const std::string release = chain_release(in.image);
  auto meta = write_kexec_metadata(tracked, release.c_str(), static_cast<u32>(in.kexec_count));
  if (!meta) fail("kexec-metadata", meta.err());
  must(root->add(kexec_metadata_subtree, meta->phys, meta->size), "add kexec-metadata");
  crash_point("metadata");

  reserve_mem_region trace_region{"trace", {}, 16 * page};
  if (carry.trace) {
    trace_region.start = carry.trace->start;
    trace_region.size = carry.trace->size;
  } else {
    auto trace = tracked.alloc(order{4});  // 64 KiB of trace buffer kept across kexec
    if (!trace) fail("reserve_mem region", trace.err());
    trace_region.start = *trace;
  }
  auto mb = write_memblock(tracked, &trace_region, 1);
  if (!mb) fail("memblock", mb.err());
  must(root->add(memblock_subtree, mb->phys, mb->size, memblock_compatible), "add memblock");
  crash_point("memblock");

  auto luo = luo_v5_writer<tracked_type>::create(tracked, in.image);
  if (!luo) fail("LUO", luo.err());
  const chain_plan plan = plan_after(in.image);
  std::vector<chain_file> written;
  u64 faulted = 0, folios_total = 0;
  for (const chain_session_plan& s : plan) {
    must(luo->create_session(s.name.c_str()), "LUO session");
    for (const chain_file_plan& fp : s.files) {
      const chain_file* old = nullptr;
      for (const chain_file& c : carry.files)
        if (c.session == s.name && c.token == fp.token) old = &c;
      chain_file out{s.name, fp.token, old ? old->pos : 0, chain_file_seals(carry, s.name, fp.token, in.new_file_seals), {}};
      // Negotiation keeps memfd-v1 from sealed files; dropping the seals here would be
      // the silent downgrade it exists to prevent.
      if (in.formats.memfd == 1 && out.seals != 0)
        throw std::invalid_argument(fmt::format("memfd-v1 cannot carry the seals {:#x} of session {}, file token {}",
                                                out.seals, s.name, fp.token));
      std::vector<memfd_folio> folios;
      std::size_t k = 0;
      for (u64 index : fp.indices) {
        while (old && k < old->folios.size() && old->folios[k].index < index) ++k;
        chain_folio g{index, {}, static_cast<u16>(memfd_folio_uptodate | memfd_folio_dirty)};
        if (old && k < old->folios.size() && old->folios[k].index == index) {
          g = old->folios[k];
        } else {  // a page faulted in by this image
          auto p = tracked.alloc(order{0});
          if (!p) fail("memfd folio", p.err());
          fill_chain_page(mem.to_virt(*p, page), fp.token, index);
          g.page = *p;
          ++faulted;
        }
        folios.push_back({pfn{g.page.value >> page_geometry<>::shift}, g.index, g.flags});
        out.folios.push_back(g);
      }
      folios_total += folios.size();
      auto fd = write_memfd(tracked,
                            memfd_file{out.pos, detail_chain::memfd_bytes(folios), out.seals, folios.data(), folios.size()},
                            in.formats.memfd == 1 ? memfd_version::v1 : memfd_version::v2);
      if (!fd) fail("memfd", fd.err());
      must(luo->preserve_file(s.name.c_str(), memfd_compatible_of(in.formats), fd->value, fp.token), "LUO file");
      written.push_back(std::move(out));
    }
  }
  auto iommu = alloc_zeroed(tracked, order{0}, page);
  if (!iommu) fail("FLB", iommu.err());
  must(luo->add_flb("iommufd", iommu->value, 1), "FLB");
  must(root->add(luo_v5_subtree, luo->blob().phys, luo->blob().size, luo_v5_compatible), "add LUO");
  crash_point("luo");

  nlohmann::json entry;
  if (in.formats.kho_formats) {
    detail_linux::fdt_subtrees<std::remove_reference_t<decltype(*root)>> kho_root{&*root};
    must(build_demo_luo(tracked, kho_root, in.image), "kho-luo-v1");
    detail_chain::carry_kho_xarray(tracked, *root, carry.kho_xarray, entry);
    crash_point("kho-formats");
  }

  // This hop's guest scratchpad: preserved for the next image, which releases it.
  for (int i = 0; i < 4; ++i)
    if (!tracked.alloc(order{9})) fail("guest memory", errc::out_of_memory);
  for (int i = 0; i < 16; ++i)
    if (!tracked.alloc(order{0}) || !pages.alloc(order{0})) fail("guest memory", errc::out_of_memory);
  must(root->set_memory_map_checksum(map->deep_checksum()), "map checksum");
  crash_point("guest");

  // Nothing carried may have been handed out again: every carried page is preserved.
  for (const chain_file& f : written)
    for (const chain_folio& g : f.folios)
      if (!map->is_preserved(g.page)) fail("carried folio not preserved", errc::not_preserved);

  const chain_plan before = in.image > 1 ? plan_after(in.image - 1) : chain_plan{};
  nlohmann::json sessions = nlohmann::json::array();
  for (const auto& s : plan) sessions.push_back(s.name);
  entry.update({{"hop", in.image},
                {"image", chain_image(in.image)},
                {"release", release},
                {"generation", in.image},
                {"kexec_count", in.kexec_count},
                {"formats", {{"root", fmt::format("kho-v{}", in.formats.root)},
                             {"luo", fmt::format("luo-v{}", in.formats.luo)},
                             {"memfd", memfd_compatible_of(in.formats)}}},
                {"sessions", std::move(sessions)},
                {"finished", finished_between(before, plan)},
                {"added", in.image > 1 ? nlohmann::json::array({plan.back().name}) : nlohmann::json::array()},
                {"files", written.size()},
                {"folios", folios_total},
                {"carried_folios", folios_total - faulted},
                {"faulted_in", faulted},
                {"carried_pages", carried_pages},
                {"preserved_pages", preserved_pages(*map)},
                {"tree_pages", map->node_count()},
                {"allocated_pages", pages.allocated() - allocated_before},
                {"digest", fmt::format("{:#018x}", chain_digest(written))}});
  on_entry(entry);
  must(root->seal([&](seal_step s) { crash_point(seal_step_name(s)); }), "seal");
  return entry;
}

/// What a reader found in a hop, and what it hands its writer.
struct chain_read {
  std::optional<std::string> problem;  // set: the hop is refused ("chain mismatch")
  nlohmann::json report;
  chain_carry carry;
  u64 old_pages = 0;  // pages the previous handover held: preserved plus tree pages
};

/// Reads hop `image - 1` (root already validated as a whole by attach_kho_handover)
/// as image `image`: checks the root's generation, LUO's liveupdate_num and
/// kexec-metadata against the chain, retrieves every session
/// plan_after(image - 1) names and no other, adopts each memfd's folio array into a
/// kho xarray and checks every page's pattern, compares chain_digest with
/// `expected_digest` (the writer's; likewise the kho xarray's entry count when the
/// writer adopted one), and collects the state `final_image` is false
/// for: files of sessions plan_after(image) keeps, the trace region, the kho xarray.
/// Complexity: O(bytes reachable + memfd pages * PAGE_SIZE). Errors: none thrown; a
/// refusal is `problem`, in words (the caller reports it as "chain mismatch").
template <class RootView>
chain_read read_chain_hop(const flat_memory& mem, const RootView& root, unsigned image, bool final_image,
                          u64 expected_digest, std::optional<u64> kho_xarray_entries = std::nullopt) {
  using namespace upstream;
  chain_read r;
  auto refuse = [&](std::string why) {
    if (!r.problem) r.problem = std::move(why);
    return r;
  };
  const unsigned hop = image - 1;
  nlohmann::json& rep = r.report;
  rep["image"] = chain_image(image);
  if (root.generation() != hop) return refuse(fmt::format("root generation {}, hop {}", root.generation(), hop));

  auto meta_t = root.find(kexec_metadata_subtree);
  if (!meta_t) return refuse("no kexec-metadata");
  auto meta = kexec_metadata_view<>::attach(mem, meta_t->phys, meta_t->size);
  if (!meta) return refuse("kexec-metadata: " + std::string(to_string(meta.code())));
  rep["kexec_count"] = meta->kexec_count();
  rep["previous_release"] = meta->previous_release();
  if (meta->kexec_count() != hop) return refuse(fmt::format("kexec_count {}, expected {}", meta->kexec_count(), hop));
  if (meta->previous_release() != chain_release(hop))
    return refuse(fmt::format("previous_release {}, expected {}", meta->previous_release(), chain_release(hop)));

  if (auto mb_t = root.find(memblock_subtree)) {
    auto mb = memblock_view<flat_memory>::attach(mem, mb_t->phys, mb_t->size);
    if (!mb) return refuse("memblock: " + std::string(to_string(mb.code())));
    auto trace = mb->find("trace");
    if (!trace) return refuse("memblock: no trace region");
    r.carry.trace = *trace;
  } else {
    return refuse("no memblock");
  }

  // Every session of the plan, every file, every page; nothing more.
  const chain_plan plan = plan_after(hop);
  const chain_plan next = final_image ? chain_plan{} : plan_after(image);
  auto luo_t = root.find(luo_v5_subtree);
  if (!luo_t) return refuse("no LUO");
  scratch_pages scratch(mem);
  auto luo = attach_luo_v5(mem, luo_t->phys, scratch.pages(), luo_t->size);
  if (!luo) return refuse("LUO: " + std::string(to_string(luo.code())));
  if (luo->liveupdate_num() != hop)
    return refuse(fmt::format("LUO liveupdate_num {}, hop {}", luo->liveupdate_num(), hop));
  u64 sessions = 0, files = 0, pages_checked = 0;
  for (const luo_session_ser& e : luo->sessions()) (void)e, ++sessions;
  std::vector<chain_file> read;
  for (const chain_session_plan& s : plan) {
    if (!luo->retrieve_session(s.name.c_str())) return refuse("session " + s.name + " missing");
    for (const chain_file_plan& fp : s.files) {
      auto f = luo->retrieve_file(s.name.c_str(), fp.token);
      if (!f) return refuse(fmt::format("file {}/{} missing", s.name, fp.token));
      ++files;
      const bool v1 = detail::string_equals((*f)->compatible, luo_v5_file_compatible_len, memfd_v1_compatible);
      if (!v1 && !detail::string_equals((*f)->compatible, luo_v5_file_compatible_len, memfd_v2_compatible))
        return refuse(fmt::format("file {}/{} is not a memfd", s.name, fp.token));
      auto fd = attach_memfd(mem, phys_addr{(*f)->data.get()}, v1 ? memfd_version::v1 : memfd_version::v2);
      if (!fd) return refuse(fmt::format("memfd {}/{}: {}", s.name, fp.token, to_string(fd.code())));
      // The folio array becomes a kho xarray (index -> pfn << 12 | flags), kept in the
      // reader's own scratch: the array the next hop writes is read back from it.
      auto xa = make_xarray<u64, 12>(scratch.pages());
      if (!xa) return refuse("xarray: " + std::string(to_string(xa.code())));
      status st;
      fd->for_each_folio([&](const memfd_folio& g) {
        if (st) st = xa->store(g.index, (g.frame.value << 12) | g.flags);
      });
      if (!st) return refuse("xarray: " + std::string(to_string(st.code())));
      chain_file cf{s.name, fp.token, fd->pos(), fd->seals(), {}};
      bool pattern = true;
      xa->for_each(0, ~u64{0}, [&](const xarray_entry<u64>& e) {
        const phys_addr pa{(e.value >> 12) << page_geometry<>::shift};
        const void* p = mem.to_virt(pa, page_geometry<>::size);
        pattern = pattern && p != nullptr && chain_page_ok(p, fp.token, e.index);
        ++pages_checked;
        cf.folios.push_back({e.index, pa, static_cast<u16>(e.value & memfd_folio_known_flags)});
      });
      if (!pattern) return refuse(fmt::format("memfd {}/{}: a page lost its content", s.name, fp.token));
      std::vector<u64> indices;
      for (const chain_folio& g : cf.folios) indices.push_back(g.index);
      if (indices != fp.indices) return refuse(fmt::format("memfd {}/{}: not the planned pages", s.name, fp.token));
      read.push_back(std::move(cf));
    }
  }
  luo->release();
  if (sessions != plan.size()) return refuse(fmt::format("{} sessions, the chain has {}", sessions, plan.size()));
  const u64 digest = chain_digest(read);
  rep["digest_ok"] = digest == expected_digest;
  if (digest != expected_digest)
    return refuse(fmt::format("digest {:#018x}, the writer sent {:#018x}", digest, expected_digest));
  rep["sessions"] = sessions;
  rep["files"] = files;
  rep["pages_checked"] = pages_checked;
  if (!final_image) rep["finished"] = finished_between(plan, next);
  for (chain_file& f : read)
    if (std::any_of(next.begin(), next.end(), [&](const chain_session_plan& s) { return s.name == f.session; }))
      r.carry.files.push_back(std::move(f));

  if (auto kho_luo = root.find("kho-LUO")) {
    rep["kho_luo"] = reclaim_demo_luo(mem, kho_luo->phys);
    if (!rep["kho_luo"].value("ok", false)) return refuse("kho-luo-v1 refused");
  }
  if (auto kho_xa = root.find("kho-memfd-demo")) {
    auto view = attach_xarray<u64, 12>(mem, kho_xa->phys, scratch.pages());
    if (!view) return refuse("kho-xarray-v1: " + std::string(to_string(view.code())));
    page_recorder nodes;
    if (!view->claim_pages(nodes)) return refuse("kho-xarray-v1 nodes");
    for (const auto& [pa, n] : nodes.spans)
      for (u64 i = 0; i < n; ++i) r.carry.keep.emplace_back(pa + i * page_geometry<>::size, order{0});
    view->for_each(0, ~u64{0}, [&](const xarray_entry<u64>& e) {
      r.carry.keep.emplace_back(phys_addr{(e.value >> 12) << page_geometry<>::shift}, e.span);
    });
    rep["kho_xarray_entries"] = view->count();
    if (kho_xarray_entries && view->count() != *kho_xarray_entries)
      return refuse(fmt::format("kho-xarray-v1: {} entries, the writer sent {}", view->count(), *kho_xarray_entries));
    r.carry.kho_xarray = kho_xa->phys;
  }
  if (r.carry.trace) r.carry.keep.emplace_back(r.carry.trace->start, order{4});
  {
    std::vector<u64> node_list(mem.size() / page_geometry<>::size);
    auto map = attach_preserve_bitmap(mem, root.memory_map(), scratch.pages(), node_list);
    if (!map) return refuse("preserved-memory map: " + std::string(to_string(map.code())));
    r.old_pages = preserved_pages(*map) + map->nodes().size();
  }
  return r;
}

/// Pages every carried block and folio occupies.
inline u64 carried_pages(const chain_carry& c) {
  u64 n = 0;
  for (const auto& [pa, o] : c.keep) n += u64{1} << o.value;
  for (const chain_file& f : c.files) n += f.folios.size();
  return n;
}

/// The writer's allocator for the next hop: the old kernel's memory of `pm` (between
/// the boot page and scratch) with only the carried pages busy.
inline free_page_source chain_pages(const physical_memory& pm, const chain_carry& c) {
  free_page_source pages(pm.memory(), {pm.base() + page_geometry<>::size, linux_demo_scratch(pm).start});
  for (const auto& [pa, o] : c.keep) pages.reserve(pa, u64{1} << o.value);
  for (const chain_file& f : c.files)
    for (const chain_folio& g : f.folios) pages.reserve(g.page, 1);
  return pages;
}

}  // namespace kho::model
