// Fuzz target behind every checksum, for the handover as a whole: a valid handover
// (a blob, LUO state with state pages, a memfd-shaped xarray, the preserved-memory map
// that covers all of it) is damaged page by page -- any page in use, so a link of one
// structure can come to name a page of another -- or has a root entry re-pointed,
// and is then re-sealed as a forger would (LUO's content checksum and counts, the
// xarray's root block, the map's deep checksum, every entry and the root).
// attach_handover must refuse it (giving its scratch back) or accept a handover whose
// structures every reader then walks without leaving memory. The intact handover must
// always attach: what the writers produce passes the whole-handover check.
#include <kho/handover_check.hpp>
#include <kho/preserving_page_source.hpp>

#include "fuzz_pages.hpp"
#include "../xarray_reseal.hpp"
#include "forge_luo.hpp"
#include "reseal.hpp"

#include <string>
#include <vector>

namespace {

using namespace kho;
using machine = fuzz::machine<u64{4} << 20>;  // 1024 pages
using source = bump_page_source<flat_memory>;
using map_type = preserve_bitmap<source>;
using tracked_source = preserving_page_source<source, map_type>;

kho::fuzz::pages<8 << 20> scratch_memory;

constexpr const char* memfd_entry = "memfd:fuzz";
constexpr const char* map_entry = "preserved-memory-map";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  machine m;
  fuzz::cursor in(data, size);
  const flat_memory mem = m.plain();
  source pages(mem, mem.base(), mem.end());
  auto map = map_type::create(pages);
  if (!map) return 0;
  tracked_source tracked(pages, *map);
  auto root = handover_writer<tracked_source>::create(tracked, 1);
  if (!root) return 0;

  // The valid handover, shaped by the first bytes.
  auto page = [&]() -> phys_addr {
    auto pa = alloc_zeroed(tracked, order{0}, 4096);
    return pa ? *pa : phys_addr{};
  };
  const phys_addr blob = page();
  if (!blob || !root->add("blob", "kho-blob-v1", blob, 1 + in.take(2) % 4096)) return 0;

  auto luo = luo_writer<tracked_source>::create(tracked, 1);
  if (!luo) return 0;
  const luo_flb flb{"iommufd:0", page()};
  const unsigned sessions = 1 + static_cast<unsigned>(in.take(1) % 3);
  for (unsigned s = 0; s < sessions; ++s) {
    const std::string name = "session-" + std::to_string(s);
    if (!luo->create_session(name.c_str())) return 0;
    const unsigned files = static_cast<unsigned>(in.take(1) % 8);
    for (unsigned f = 0; f < files; ++f)
      if (!luo->preserve_file(name.c_str(), {f + 1, "memfd-v1", f % 2 ? page() : phys_addr{}, f},
                              f % 3 == 0 ? &flb : nullptr))
        return 0;
  }
  auto luo_sealed = luo->seal();
  if (!luo_sealed || !root->add(luo_entry_name, luo_compatible, luo_sealed->root, luo_sealed->size)) return 0;

  auto file = make_xarray<u64, 12>(tracked);
  if (!file) return 0;
  const unsigned entries = static_cast<unsigned>(in.take(1));
  for (unsigned i = 0; i < entries; ++i) {
    const u64 index = in.take(1) % 2 ? in.take(2) : in.take(8) >> (in.take(1) % 64);
    (void)file->store(index, (u64{i} + 1) << 12);  // an overlap with a stored range is fine
  }
  file->seal();
  if (!root->add(memfd_entry, xarray_compatible, file->root(), file->root_size)) return 0;
  if (!root->add(map_entry, radix_compatible, map->root(), 4096) ||
      !root->set_deep_checksum(map_entry, map->deep_checksum()) || !root->seal())
    return 0;

  flat_memory smem(phys_addr{u64{1} << 46}, scratch_memory.size, scratch_memory);
  source scratch(smem, smem.base(), smem.end());
  if (!attach_handover(mem, root->root(), scratch)) __builtin_trap();  // the writers' output
  if (scratch.pages_in_use() != 0) __builtin_trap();

  // Damage: any page in use (structures and payload alike), or a root entry.
  std::vector<phys_addr> used;
  for (phys_addr pa = mem.base(); pa < pages.high_water(); pa = pa + 4096) used.push_back(pa);
  const u32 names = root->count();
  while (!in.done()) {
    if (in.take(1) % 8 != 0) {
      fuzz::damage(in, used, m);
      continue;
    }
    auto& entry = reinterpret_cast<detail::handover_page<12>*>(m.bytes(root->root()))->entries[in.take(1) % names];
    entry.phys.set(used[in.take(2) % used.size()].value + (in.take(1) % 2 ? 0 : in.take(2) % 4096));
  }

  // Re-seal everything, as a forger who knows every format.
  auto* luo_root_block = reinterpret_cast<luo_root*>(m.bytes(luo_sealed->root));
  fuzz::forge_luo_seal(mem, *luo_root_block, true);
  test::reseal_xarray<u64>(mem, file->root(), u64{1} << 12);
  std::vector<u64> nodes(used.size());
  if (auto v = attach_preserve_bitmap(mem, map->root(), scratch, std::span<u64>(nodes)))
    (void)root->set_deep_checksum(map_entry, v->deep_checksum());
  if (!root->seal()) return 0;  // an entry re-pointed outside memory

  const fuzz::guarded_memory g = m.guarded();
  auto h = attach_handover(g, root->root(), scratch);
  if (scratch.pages_in_use() != 0) __builtin_trap();  // scratch given back either way
  if (!h) return 0;
  m.arm();
  // Accepted: every structure reads back within memory.
  for (const handover_entry& e : *h) {
    const phys_addr at{e.phys.get()};
    if (detail::string_equals(e.compatible, handover_compatible_len, radix_compatible)) {
      auto v = attach_preserve_bitmap(g, at, scratch, std::span<u64>(nodes));
      if (!v) __builtin_trap();  // attach_handover accepted it
      u64 bytes = 0;
      v->for_each_range([&](phys_addr, u64 n) { bytes += n; return true; });
    } else if (detail::string_equals(e.compatible, handover_compatible_len, xarray_compatible)) {
      auto v = attach_xarray<u64>(g, at, scratch);
      if (!v) __builtin_trap();
      u64 seen = 0;
      v->for_each(0, ~u64{0}, [&](const auto&) { ++seen; });
      if (seen > v->count()) __builtin_trap();
    } else if (detail::string_equals(e.compatible, handover_compatible_len, luo_compatible)) {
      auto v = attach_luo(g, at, scratch);
      if (!v) __builtin_trap();
      for (const luo_session_entry& s : v->sessions())
        for (const luo_file_entry& f : v->files(s)) (void)f.token.get();
      v->release();
    }
  }
  if (scratch.pages_in_use() != 0) __builtin_trap();
  return 0;
}
