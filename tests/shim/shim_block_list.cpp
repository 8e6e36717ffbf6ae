// Kernel-shim check for block_list.hpp and luo.hpp: every public template instantiated
// freestanding over the shim's own page source, for each page size. check_nm.cmake
// then fails on any undefined symbol but memcpy/memset/memmove/memcmp and kho_shim_*.
#include <kho/block_list.hpp>
#include <kho/luo.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>

namespace {

using namespace kho;

// A static pool, as a kernel's early allocator; the second half is the next kernel's
// scratch for LUO's indexes.
alignas(65536) unsigned char pool[8u << 20];
alignas(65536) unsigned char scratch_pool[8u << 20];
constexpr u64 pool_base = u64{1} << 32;
constexpr u64 scratch_base = u64{1} << 40;

struct record {
  u64 key;
  u64 value;
};

template <unsigned PageShift>
int exercise_block_list() {
  flat_memory mem(phys_addr{pool_base}, sizeof pool, pool);
  bump_page_source<flat_memory, PageShift> pages(mem, phys_addr{pool_base},
                                                 phys_addr{pool_base + sizeof pool});
  block_list<record, decltype(pages), PageShift> list(pages);
  for (u64 i = 0; i < 1000; ++i)
    if (!list.push_back(record{i, i * 3})) return -1;
  if (!list.erase(list.begin().phys())) return -2;
  auto v = attach_block_list<record, PageShift>(mem, list.head(), linux_max_blocks, block_tail::zero);
  if (!v) return static_cast<int>(v.code());
  {
    page_owners<decltype(pages), PageShift> owners(pages);
    if (!v->claim_pages(owners)) return -4;
  }
  u64 sum = 0;
  for (const record& r : *v) sum += r.value;
  v->for_each_block([&](phys_addr, const record* first, u64 n) { sum += first[n - 1].key; });
  auto adopted = block_list<record, decltype(pages), PageShift>::adopt(pages, *v);
  if (!adopted) return -3;
  for (record& r : *adopted) r.value = 0;
  adopted->clear();
  return static_cast<int>(sum & 0xff);
}

template <unsigned PageShift>
int exercise_luo() {
  flat_memory mem(phys_addr{pool_base}, sizeof pool, pool);
  bump_page_source<flat_memory, PageShift> pages(mem, phys_addr{pool_base},
                                                 phys_addr{pool_base + sizeof pool});
  auto w = luo_writer<decltype(pages), PageShift>::create(pages, 1);
  if (!w) return -1;
  const luo_flb shared{"iommufd:0", phys_addr{pool_base}};
  if (!w->create_session("vm-1") || !w->create_session("vm-2")) return -2;
  if (!w->preserve_file("vm-1", {1, "vfio-v1", phys_addr{pool_base}, 0}, &shared)) return -3;
  if (!w->preserve_file("vm-2", {1, "vfio-v1", phys_addr{pool_base}, 0}, &shared)) return -4;
  if (!w->preserve_file("vm-2", {2, "memfd-v1", phys_addr{pool_base}, 1})) return -5;
  if (!w->unpreserve_file("vm-2", 2) || !w->destroy_session("vm-1")) return -6;
  if (!w->has_session("vm-2") || w->flb_refs("iommufd:0") != 1 || !w->file_count("vm-2")) return -7;
  auto sealed = w->seal();
  if (!sealed) return -8;

  flat_memory smem(phys_addr{scratch_base}, sizeof scratch_pool, scratch_pool);
  bump_page_source<flat_memory, PageShift> scratch(smem, phys_addr{scratch_base},
                                                   phys_addr{scratch_base + sizeof scratch_pool});
  auto v = attach_luo<PageShift>(mem, sealed->root, scratch);
  if (!v) return static_cast<int>(v.code());
  int n = 0;
  if (!v->retrieve("vm-2", 1) || !v->is_retrieved("vm-2", 1) || !v->flb_status("iommufd:0")) return -9;
  if (!v->finish("vm-2") || !v->is_finished("vm-2") || !v->find("vm-2")) return -10;
  v->for_each_unreclaimed([&](const luo_unreclaimed&) { ++n; });
  for (const luo_session_entry& s : v->sessions())
    for (const luo_file_entry& f : v->files(s)) n += static_cast<int>(f.token.get());
  for (const luo_flb_entry& b : v->flbs()) n += static_cast<int>(b.refs.get());
  n += static_cast<int>(v->liveupdate_number() + v->scratch_bytes());
  {
    page_owners<decltype(scratch), PageShift> owners(scratch);
    n += static_cast<int>(v->claim_pages(owners).code());  // the FLB and a file share a page here
  }
  v->release();
  w->destroy();
  return n;
}

}  // namespace

extern "C" int kho_shim_block_list_4k() { return exercise_block_list<12>(); }
extern "C" int kho_shim_block_list_16k() { return exercise_block_list<14>(); }
extern "C" int kho_shim_block_list_64k() { return exercise_block_list<16>(); }
extern "C" int kho_shim_block_list_luo_4k() { return exercise_luo<12>(); }
extern "C" int kho_shim_block_list_luo_16k() { return exercise_luo<14>(); }
extern "C" int kho_shim_block_list_luo_64k() { return exercise_luo<16>(); }
