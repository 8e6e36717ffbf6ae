// Kernel-shim check for the whole-handover attach: every reader it dispatches to and
// the page-ownership table, instantiated freestanding over the shim's own pages.
#include <kho/handover_check.hpp>
#include <kho/preserving_page_source.hpp>

namespace {

using namespace kho;

alignas(65536) unsigned char pool[4u << 20];
alignas(65536) unsigned char scratch_pool[1u << 20];
constexpr u64 pool_base = u64{1} << 32;
constexpr u64 scratch_base = u64{1} << 40;

template <unsigned PageShift>
int exercise_handover_check() {
  using source = bump_page_source<flat_memory, PageShift>;
  flat_memory mem(phys_addr{pool_base}, sizeof pool, pool);
  flat_memory scratch_mem(phys_addr{scratch_base}, sizeof scratch_pool, scratch_pool);
  source pages(mem, mem.base(), mem.end());
  source scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  auto map = preserve_bitmap<source, PageShift>::create(pages);
  if (!map) return -1;
  preserving_page_source<source, preserve_bitmap<source, PageShift>> tracked(pages, *map);
  auto w = handover_writer<decltype(tracked), PageShift>::create(tracked);
  if (!w) return -2;
  auto blob = alloc_zeroed(tracked, order{0}, page_geometry<PageShift>::size);
  if (!blob || !w->add("blob", "kho-blob-v1", *blob, 64)) return -3;
  if (!w->add("preserved-memory-map", radix_compatible, map->root(), 64)) return -4;
  if (!w->seal()) return -5;
  auto v = attach_handover<PageShift>(mem, w->root(), scratch);
  return static_cast<int>(v.code());
}

}  // namespace

extern "C" int kho_shim_handover_check_4k() { return exercise_handover_check<12>(); }
extern "C" int kho_shim_handover_check_16k() { return exercise_handover_check<14>(); }
extern "C" int kho_shim_handover_check_64k() { return exercise_handover_check<16>(); }
