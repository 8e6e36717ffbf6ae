// Kernel-shim check for the xarray and the preserving page source: every public
// template instantiated freestanding over the shim's own static pool, for u64 and
// 16-byte values and three page sizes. check_nm.cmake then allows only mem* symbols.
#include <kho/page_owners.hpp>
#include <kho/preserving_page_source.hpp>
#include <kho/xarray.hpp>

namespace {

using namespace kho;

alignas(65536) unsigned char pool[8u << 20];
constexpr u64 pool_base = u64{1} << 33;

struct folio {
  u64 pfn_flags, index;
};

/// A preservation map that only counts: the shim has no preserve_bitmap of its own.
struct counting_preserver {
  u64 blocks = 0;
  status preserve(phys_addr, order) {
    ++blocks;
    return {};
  }
  status unpreserve(phys_addr, order) {
    --blocks;
    return {};
  }
};

template <class Value, unsigned PageShift>
int exercise_xarray(Value a, Value b) {
  flat_memory mem(phys_addr{pool_base}, sizeof pool, pool);
  bump_page_source<flat_memory, PageShift> bump(mem, phys_addr{pool_base}, phys_addr{pool_base + sizeof pool});
  counting_preserver map;
  preserving_page_source<decltype(bump), counting_preserver> pages(bump, map);
  auto x = make_xarray<Value, PageShift>(pages);
  if (!x) return -1;
  for (u64 i = 0; i < 3000; ++i)
    if (!x->store(i * 3, a)) return -2;
  if (!x->append_ordered(u64{1} << 39, order{3}, a) || x->append_ordered(5, a)) return -10;
  if (!x->store_range(u64{1} << 40, order{18}, b) || !x->store(~u64{0}, b)) return -3;
  if (!x->set_mark(3, xa_mark::mark1) || !x->clear_mark(3, xa_mark::mark1)) return -4;
  if (!x->exchange(6, b) || !x->erase(9) || !x->find_after(0) || x->find_marked(0, xa_mark::mark2)) return -5;
  u64 n = 0;
  x->for_each(0, ~u64{0}, [&](const xarray_entry<Value>&) { ++n; });
  for (auto c = x->marked_cursor(0, xa_mark::mark1); c.next();) ++n;
  for (auto c = x->cursor(1); c.next();) ++n;
  x->for_each_marked(0, ~u64{0}, xa_mark::mark0, [&](const xarray_entry<Value>&) { return false; });
  x->seal();
  auto v = attach_xarray<Value, PageShift>(mem, x->root(), bump);  // scratch: the shim's pool
  if (!v) return static_cast<int>(v.code());
  if (!v->load(6) || !v->entry_at(u64{1} << 40) || !v->find(1) || v->get_mark(3, xa_mark::mark0)) return -6;
  {
    page_owners<decltype(bump), PageShift> owners(bump);
    if (!v->claim_pages(owners) || owners.size() != v->nodes() + 1) return -8;
  }
  if (!v->cursor(0).next() || v->marked_cursor(0, xa_mark::mark2).next()) return -9;
  auto w = xarray<Value, PageShift, decltype(pages)>::adopt(*v, pages);
  if (!w || !w->store(1, a)) return -7;
  w->destroy();
  return static_cast<int>(n + map.blocks);
}

}  // namespace

extern "C" int kho_shim_xarray_4k() { return exercise_xarray<u64, 12>(1, 2); }
extern "C" int kho_shim_xarray_16k() { return exercise_xarray<u64, 14>(1, 2); }
extern "C" int kho_shim_xarray_64k() { return exercise_xarray<u64, 16>(1, 2); }
extern "C" int kho_shim_xarray_folio_4k() { return exercise_xarray<folio, 12>(folio{1, 2}, folio{3, 4}); }
extern "C" int kho_shim_xarray_folio_64k() { return exercise_xarray<folio, 16>(folio{1, 2}, folio{3, 4}); }
