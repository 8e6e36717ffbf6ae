// Kernel-shim check for the hole finder, over a validated view and over the writer.
#include <kho/hole_finder.hpp>
#include <kho/preserve_bitmap.hpp>

namespace {

using namespace kho;

alignas(65536) unsigned char pool[4u << 20];
constexpr u64 pool_base = u64{1} << 32;
u64 scratch[512];

template <class Map>
u64 query(const Map& map, std::span<const phys_range> ram, std::span<const phys_range> reserved) {
  auto f = make_hole_finder(map, ram, reserved);
  if (!f) return static_cast<u64>(f.code());
  f->set_last_fit_chunk(u64{1} << 24);
  u64 sum = 0;
  (void)f->for_each_hole(f->ram_window(), 0, [&](phys_addr s, u64 n) {
    sum += s.value ^ n;
    return sum != 0;
  });
  if (auto h = f->largest_hole()) sum += h->start.value + h->size();
  if (auto h = f->first_fit(u64{1} << 20, u64{1} << 21)) sum += h->start.value;
  if (auto h = f->last_fit(u64{1} << 20, u64{1} << 12)) sum += h->end.value;
  phys_range pieces[4];
  if (auto plan = f->grow_scratch(u64{1} << 30, pieces)) sum += plan->pieces + plan->bytes;
  return sum + f->stats().ranges;
}

template <unsigned PageShift>
int exercise() {
  flat_memory mem(phys_addr{pool_base}, sizeof pool, pool);
  bump_page_source<flat_memory, PageShift> pages(mem, mem.base(), mem.end());
  using source = decltype(pages);
  auto tree = preserve_bitmap<source, PageShift>::create(pages, false);
  if (!tree) return -1;
  if (!tree->preserve(phys_addr{u64{1} << 30}, order{1})) return -2;
  if (!tree->preserve(phys_addr{u64{1} << 33}, order{9})) return -3;
  auto view = attach_preserve_bitmap<PageShift>(mem, tree->root(), pages, scratch);
  if (!view) return static_cast<int>(view.code());
  const phys_range ram[] = {{phys_addr{0}, phys_addr{u64{1} << 32}},
                            {phys_addr{pool_base}, phys_addr{pool_base + sizeof pool}},
                            {phys_addr{u64{1} << 33}, phys_addr{u64{1} << 34}}};
  const phys_range reserved[] = {{phys_addr{4096}, phys_addr{8192}}};
  return static_cast<int>((query(*view, ram, reserved) + query(*tree, ram, {})) & 0x7f);
}

}  // namespace

extern "C" int kho_shim_hole_finder_4k() { return exercise<12>(); }
extern "C" int kho_shim_hole_finder_16k() { return exercise<14>(); }
extern "C" int kho_shim_hole_finder_64k() { return exercise<16>(); }
