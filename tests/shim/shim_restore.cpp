// Kernel-shim check for the bounded restore, the kernel-faithful memblock, and the
// side-stepped boot (holes_memblock + buddy_model, and word by word into bitmap_buddy).
#include <kho/bitmap_buddy.hpp>
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
u64 zone_words[2][u64{1} << 14];  // RAM [0, 4 GiB) in 4 KiB frames; the pool

/// free_all_words into two zones, one per RAM range (MaxOrder chosen to take the
/// one-level and the no-flag folds of the finishing pass).
template <unsigned MaxOrder, unsigned PageShift, class Memblock>
u64 hand_over_words(const Memblock& mb, std::span<const phys_range> ram) {
  using zone = bitmap_buddy<MaxOrder>;
  auto a = zone::create(pfn{ram[0].start.value >> PageShift}, pfn{ram[0].end.value >> PageShift}, zone_words[0]);
  auto b = zone::create(pfn{ram[1].start.value >> PageShift}, pfn{ram[1].end.value >> PageShift}, zone_words[1]);
  if (!a || !b) return 1;
  zone zones[] = {*a, *b};
  if (!mb.free_all_words(std::span<zone>(zones))) return 2;
  zones[1].free_word(pfn{ram[1].start.value >> PageShift}, ~u64{0});
  zones[1].take_range(zones[1].start(), pfn{zones[1].start().value + 1});
  return zones[0].blocks() + zones[1].free_pages() + zones[1].free_blocks(order{MaxOrder}) +
         zones[0].is_free(pfn{1});
}

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
  sum += hand_over_words<10, PageShift>(*mb, ram);
  auto mw = make_holes_memblock(*tree, ram, reserved, storage);
  if (!mw) return -9;
  sum += hand_over_words<3, PageShift>(*mw, ram);
  return static_cast<int>((sum + buddy.free_pages() + kernel->size()) & 0x7f);
}

}  // namespace

extern "C" int kho_shim_restore_4k() { return exercise<12>(); }
extern "C" int kho_shim_restore_16k() { return exercise<14>(); }
extern "C" int kho_shim_restore_64k() { return exercise<16>(); }
