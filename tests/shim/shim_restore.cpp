// Kernel-shim check for the bounded restore, the kernel-faithful memblock, and the
// side-stepped boot (holes_memblock + buddy_model).
#include <kho/buddy_model.hpp>
#include <kho/holes_memblock.hpp>
#include <kho/memblock_kernel.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/restore.hpp>

namespace {

using namespace kho;

alignas(65536) unsigned char pool[8u << 20];
constexpr u64 pool_base = u64{1} << 32;
u64 scratch[1024];
memblock_region slots[64];

struct sum_hook {
  u64* sum;
  void operator()(pfn f, order o) const { *sum += f.value + o.value; }
};

template <unsigned PageShift>
int exercise() {
  flat_memory mem(phys_addr{pool_base}, sizeof pool, pool);
  bump_page_source<flat_memory, PageShift> pages(mem, mem.base(), mem.end());
  using source = decltype(pages);
  auto tree = preserve_bitmap<source, PageShift>::create(pages, false);
  if (!tree) return -1;
  if (!tree->preserve(phys_addr{u64{1} << 30}, order{0})) return -2;
  if (!tree->preserve(phys_addr{u64{1} << 31}, order{9})) return -3;
  auto view = attach_preserve_bitmap<PageShift>(mem, tree->root(), pages, scratch);
  if (!view) return static_cast<int>(view.code());
  u64 sum = restore_bound(*view) + restore_capacity(*view, phys_addr{0}, phys_addr{u64{1} << 31});
  auto bounded = memblock_model<source, PageShift>::create(pages);
  auto kernel = memblock_kernel<source, PageShift>::create(pages);
  if (!bounded || !kernel) return -4;
  if (!restore_at_bound(*view, *bounded) || !restore_naive(*view, *kernel)) return -5;
  phys_addr split[1];
  sum += split_restore(*view, split);
  auto a = restore_part(*view, phys_addr{0}, phys_addr{u64{1} << 31}, std::span(slots, 32));
  auto b = restore_part(*view, phys_addr{u64{1} << 31}, phys_addr{~u64{0}}, std::span(slots + 32, 32));
  if (!a || !b) return -6;
  const restore_slice parts[] = {{0, *a}, {32, *b}};
  if (auto n = join_parts(slots, parts)) sum += *n;
  const phys_range ram[] = {{phys_addr{0}, phys_addr{u64{1} << 32}}, {mem.base(), mem.end()}};
  const phys_range reserved[] = {{phys_addr{4096}, phys_addr{8192}}};
  phys_range storage[4];
  auto mb = make_holes_memblock(*view, ram, reserved, storage);
  if (!mb) return -7;
  if (auto r = mb->alloc(u64{1} << 20, u64{1} << 21)) sum += r->start.value;
  buddy_model<10, sum_hook> buddy(sum_hook{&sum});
  if (!mb->free_all(buddy)) return -8;
  free_all_regions<PageShift>(ram, *bounded, buddy);
  return static_cast<int>((sum + buddy.free_pages() + kernel->size()) & 0x7f);
}

}  // namespace

extern "C" int kho_shim_restore_4k() { return exercise<12>(); }
extern "C" int kho_shim_restore_16k() { return exercise<14>(); }
extern "C" int kho_shim_restore_64k() { return exercise<16>(); }
