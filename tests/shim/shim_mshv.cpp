// Kernel-shim check for issue 21's MSHV subtree, devicetree /chosen and LoongArch EFI
// hand-offs and .liveupdate_versions section: every reader and writer instantiated freestanding (MSHV
// for each page size, over the raw-pfn radix tree). check_nm.cmake then allows only
// memcpy/memset/memmove/memcmp, kho_shim_* and libfdt's fdt_*.
#include <kho/linux/dt_chosen.hpp>
#include <kho/linux/efi_kho.hpp>
#include <kho/linux/liveupdate_versions.hpp>
#include <kho/linux/mshv.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/preserve_bitmap.hpp>

namespace {

using namespace kho;
using namespace kho::upstream;

alignas(65536) unsigned char pool[8u << 20];
alignas(65536) unsigned char scratch_pool[4u << 20];
alignas(8) unsigned char dtb[1024];
unsigned char section[8 + 48 * 2];
constexpr u64 pool_base = u64{1} << 32;
constexpr u64 scratch_base = u64{1} << 40;

template <unsigned PageShift>
int exercise() {
  using source = bump_page_source<flat_memory, PageShift>;
  flat_memory mem(phys_addr{pool_base}, sizeof pool, pool);
  source pages(mem, phys_addr{pool_base}, phys_addr{pool_base + sizeof pool});
  flat_memory smem(phys_addr{scratch_base}, sizeof scratch_pool, scratch_pool);
  source scratch(smem, phys_addr{scratch_base}, phys_addr{scratch_base + sizeof scratch_pool});
  page_owners<source, PageShift> owners(scratch);
  auto map = preserve_bitmap<source, PageShift>::create(pages, false);
  if (!map) return -1;
  const phys_addr hv[2] = {phys_addr{u64{1} << 44}, phys_addr{(u64{1} << 44) + (u64{1} << PageShift)}};
  auto blob = write_mshv<PageShift>(pages, std::span<const phys_addr>(hv), *map);
  if (!blob) return -2;
  auto v = attach_mshv<PageShift>(mem, blob->phys, blob->size, scratch);
  if (!v || !v->check_main_map(*map) || !v->claim_pages(owners)) return -3;
  int n = static_cast<int>(v->page_count() + v->node_count());
  v->for_each_page([&](phys_addr pa) { n += static_cast<int>(pa.value >> 40); });
  v->release();
  // LoongArch's EFI table (layout inferred; any GUID will do for the shim).
  const efi_guid guid{{1, 2, 3}};
  kho_data d{};
  d.scratch_addr.set(pool_base);
  d.scratch_size.set(32);
  auto tables = write_efi_kho<PageShift>(pages, d, guid, std::span<const efi_config_table_entry>());
  if (!tables) return -4;
  auto k = find_efi_kho(mem, tables->table, tables->count, guid);
  if (!k) return -5;
  n += static_cast<int>(kho_scratch_count(trim_efi_kho_scratch(mem, *k).data));
  return n;
}

int exercise_handoffs() {
  // An empty DTB with room, then /chosen's two properties, read back.
  if (fdt_create_empty_tree(dtb, sizeof dtb) != 0) return -10;
  kho_data d{};
  d.fdt_addr.set(pool_base);
  d.fdt_size.set(4096);
  d.scratch_addr.set(pool_base + 4096);
  d.scratch_size.set(32);
  if (!add_kho_chosen(dtb, sizeof dtb, d)) return -11;
  auto k = find_kho_chosen(dtb, sizeof dtb);
  if (!k) return -12;
  const char* names[2] = {"memfd-v1", "luo-v1"};
  if (!write_liveupdate_versions(section, names, 2)) return -13;
  auto lv = liveupdate_versions_view::parse(section, sizeof section);
  if (!lv || !lv->lists("luo-v1")) return -14;
  return static_cast<int>(kho_scratch_count(k->data) + lv->size() + lv->duplicates());
}

}  // namespace

extern "C" int kho_shim_mshv_4k() { return exercise<12>(); }
extern "C" int kho_shim_mshv_16k() { return exercise<14>(); }
extern "C" int kho_shim_mshv_64k() { return exercise<16>(); }
extern "C" int kho_shim_handoffs() { return exercise_handoffs(); }
