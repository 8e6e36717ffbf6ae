// Kernel-shim check for the radix preservation bitmaps and the restore strategies.
#include <kho/preserve_bitmap.hpp>
#include <kho/restore.hpp>

namespace {

using namespace kho;

alignas(65536) unsigned char pool[8u << 20];
constexpr u64 pool_base = u64{1} << 32;
u64 scratch[1024];

template <unsigned PageShift>
int exercise() {
  flat_memory mem(phys_addr{pool_base}, sizeof pool, pool);
  bump_page_source<flat_memory, PageShift> pages(mem, mem.base(), mem.end());
  using source = decltype(pages);
  auto tree = preserve_bitmap<source, PageShift>::create(pages);
  if (!tree) return -1;
  if (!tree->preserve(phys_addr{u64{1} << 40}, order{1})) return -2;
  if (!tree->preserve(phys_addr{u64{1} << 41}, order{9})) return -3;
  u64 sum = tree->is_preserved(phys_addr{u64{1} << 40}) + tree->contains(phys_addr{0}, order{1});
  tree->for_each_range([&](phys_addr s, u64 n) { sum += s.value + n; });
  tree->for_each_block([&](phys_addr s, order o) { sum += s.value + o.value; });
  auto view = attach_preserve_bitmap<PageShift>(mem, tree->root(), pages, scratch);
  if (!view) return static_cast<int>(view.code());
  view->for_each_range(phys_addr{0}, phys_addr{u64{1} << 42}, [&](phys_addr s, u64 n) {
    sum += s.value + n;
    return true;
  });
  view->for_each_node([&](phys_addr n) { sum += n.value; });
  {
    page_owners<source, PageShift> owners(pages);
    if (!view->claim_pages(owners)) return -7;
  }
  auto naive = memblock_model<source, PageShift>::create(pages);
  auto linear = memblock_model<source, PageShift>::create(pages);
  if (!naive || !linear) return -4;
  if (!restore_naive(*view, *naive) || !restore_linear(*view, *linear)) return -5;
  auto adopted = preserve_bitmap<source, PageShift>::adopt(*view, pages);
  if (!adopted.unpreserve(phys_addr{u64{1} << 40}, order{1})) return -6;
  adopted.clear();
  return static_cast<int>((sum + naive->size() + linear->reserved_bytes()) & 0x7f);
}

}  // namespace

extern "C" int kho_shim_preserve_bitmap_4k() { return exercise<12>(); }
extern "C" int kho_shim_preserve_bitmap_16k() { return exercise<14>(); }
extern "C" int kho_shim_preserve_bitmap_64k() { return exercise<16>(); }
