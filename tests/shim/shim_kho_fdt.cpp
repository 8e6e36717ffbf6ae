// Kernel-shim check for Linux's KHO root FDT: the writer, the view and the whole-handover
// check over every upstream reader it dispatches to, freestanding for each page size.
#include <kho/linux/kho_fdt_check.hpp>
#include <kho/linux/x86_boot.hpp>
#include <kho/preserving_page_source.hpp>

namespace {

using namespace kho;
using namespace kho::upstream;

alignas(65536) unsigned char pool[4u << 20];
alignas(65536) unsigned char scratch_pool[1u << 20];
constexpr u64 pool_base = u64{1} << 32;
constexpr u64 scratch_base = u64{1} << 40;

// The older roots over the same memory: a kho-v1 root over a chunk chain, a kho-v2
// root over the radix tree, each checked whole; the chunk writer and view are
// instantiated here.
template <unsigned PageShift, class Source, class Tracked, class Map>
int exercise_old_roots(const flat_memory& mem, Source& pages, Source& scratch, Tracked& tracked, Map& map) {
  int n = 0;
  for (auto ver : {kho_root_version::v1, kho_root_version::v2}) {
    kho_fdt_options opt;
    opt.version = ver;
    auto w = kho_fdt_writer<Tracked, PageShift>::create(tracked, ver == kho_root_version::v1 ? phys_addr{} : map.root(), opt);
    if (!w) {
      // kho-v2 at 16 KiB pages: its shallower tree cannot name order-0 blocks.
      n += w.code() == errc::out_of_range ? 10 : -200;
      continue;
    }
    const reserve_mem_region regions[] = {{"trace", phys_addr{pool_base}, u64{1} << PageShift}};
    auto mb = write_memblock<PageShift>(tracked, regions, 1);
    if (!mb || !w->add(memblock_subtree, mb->phys, mb->size)) return -3;
    if (ver == kho_root_version::v1) {
      auto chunks = write_kho_mem_chunks<PageShift>(pages, map);
      if (!chunks || !w->set_memory_map(chunks->first)) return -4;
      auto c = attach_kho_mem_chunks<PageShift>(mem, chunks->first, scratch);
      if (!c || !w->set_memory_map_checksum(c->deep_checksum())) return -5;
    }
    if (!w->seal()) return -6;
    auto v = attach_kho_handover<PageShift>(mem, w->root(), scratch);
    n += v ? static_cast<int>(v->version()) : -100;
  }
  return n;
}

template <unsigned PageShift>
int exercise_kho_fdt() {
  using source = bump_page_source<flat_memory, PageShift>;
  flat_memory mem(phys_addr{pool_base}, sizeof pool, pool);
  flat_memory scratch_mem(phys_addr{scratch_base}, sizeof scratch_pool, scratch_pool);
  source pages(mem, mem.base(), mem.end());
  source scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  auto map = preserve_bitmap<source, PageShift>::create(pages);
  if (!map) return -1;
  preserving_page_source<source, preserve_bitmap<source, PageShift>> tracked(pages, *map);
  auto w = kho_fdt_writer<decltype(tracked), PageShift>::create(tracked, map->root());
  if (!w) return -2;
  auto luo = luo_v5_writer<decltype(tracked), PageShift>::create(tracked, 1);
  if (!luo || !luo->create_session("vm")) return -3;
  auto meta = write_kexec_metadata<PageShift>(tracked, "6.20.0", 1);
  if (!meta) return -4;
  if (!w->add(luo_v5_subtree, luo->blob().phys, luo->blob().size, luo_v5_compatible) ||
      !w->add(kexec_metadata_subtree, meta->phys, meta->size) || !w->seal())
    return -5;
  auto v = attach_kho_handover<PageShift>(mem, w->root(), scratch);
  if (!v) return -static_cast<int>(v.code());
  int n = static_cast<int>(v->count());
  kho_data d{};
  d.fdt_addr.set(w->root().value);
  d.fdt_size.set(page_geometry<PageShift>::size);
  d.scratch_addr.set(pool_base + sizeof pool - 4096);
  d.scratch_size.set(16);
  if (auto k = find_kho_data(mem, phys_addr{pool_base}); k && check_kho_boot<PageShift>(mem, *k)) ++n;
  if (check_scratch_unpreserved(mem, d, *map)) ++n;
  v->for_each([&](const kho_subtree& t) { n += static_cast<int>(t.size); });
  return n + (v->find("LUO") ? 1 : 0) + exercise_old_roots<PageShift>(mem, pages, scratch, tracked, *map);
}

}  // namespace

extern "C" int kho_shim_kho_fdt_4k() { return exercise_kho_fdt<12>(); }
extern "C" int kho_shim_kho_fdt_16k() { return exercise_kho_fdt<14>(); }
extern "C" int kho_shim_kho_fdt_64k() { return exercise_kho_fdt<16>(); }
