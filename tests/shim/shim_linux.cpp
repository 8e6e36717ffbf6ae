// Kernel-shim check for Linux's formats (include/kho/linux/): every writer and view
// instantiated freestanding for each page size. check_nm.cmake then allows only
// memcpy/memset/memmove/memcmp, kho_shim_* and libfdt's fdt_* (the kernel's own copy).
#include <kho/linux/kexec_metadata.hpp>
#include <kho/linux/kho_vmalloc.hpp>
#include <kho/linux/luo_v5.hpp>
#include <kho/linux/luo_versions.hpp>
#include <kho/linux/memblock.hpp>
#include <kho/linux/memfd.hpp>
#include <kho/linux/x86_boot.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>

namespace {

using namespace kho;
using namespace kho::upstream;

alignas(65536) unsigned char pool[8u << 20];
alignas(65536) unsigned char scratch_pool[4u << 20];
constexpr u64 pool_base = u64{1} << 32;
constexpr u64 scratch_base = u64{1} << 40;

// The other LUO and memfd versions (kho/linux/luo_versions.hpp): luo-v1, luo-v5;block-v1,
// the feature-header layouts, and the version-choosing entries.
template <unsigned PageShift, class Source, class Owners>
int exercise_versions(const flat_memory& mem, Source& pages, Source& scratch, Owners& owners) {
  int n = 0;
  const memfd_folio folios[1] = {{pfn{pool_base >> PageShift}, 0}};
  downgrade_refusal refusal;
  for (memfd_version mv : {memfd_version::v1, memfd_version::v2, memfd_version::feature}) {
    auto ser = write_memfd_for<PageShift>(pages, "vm", 1, memfd_file{0, 1 << PageShift, 0, folios, 1}, mv, &refusal);
    if (!ser) return -1;
    auto fd = attach_memfd<PageShift>(mem, *ser, mv);
    if (!fd) return -2;
    n += static_cast<int>(fd->nr_folios());
  }
  const luo_file_content files[1] = {{"memfd", 0, 7}};
  const luo_session_content sessions[1] = {{"vm", files, 1}};
  const luo_content content{3, sessions, 1, nullptr, 0};
  for (luo_version v : {luo_version::v1, luo_version::v5, luo_version::v5_block_v1, luo_version::feature}) {
    auto blob = write_luo<PageShift>(pages, v, content, &refusal);
    if (!blob) return -3;
    auto got = for_each_luo_file<PageShift>(
        mem, blob->phys, blob->size, scratch, [&](const luo_session_ser&) { ++n; },
        [&](const luo_session_ser&, const luo_file_ser& f) { n += static_cast<int>(f.token.get()); });
    if (!got || *got != v) return -4;
  }
  auto w1 = luo_v1_writer<Source, PageShift>::create(pages, 1);
  if (!w1 || !w1->create_session("s") || !w1->preserve_file("s", "memfd-v1", 0, 1)) return -5;
  auto v1 = attach_luo_v1<PageShift>(mem, w1->blob().phys, scratch, w1->blob().size);
  if (!v1 || !v1->find_session("s") || !v1->claim_pages(owners) || !v1->retrieve_session("s") ||
      !v1->retrieve_file("s", 1))
    return -6;
  n += static_cast<int>(v1->file_count());
  v1->release();
  w1->destroy();
  return n;
}

template <unsigned PageShift>
int exercise() {
  using source = bump_page_source<flat_memory, PageShift>;
  flat_memory mem(phys_addr{pool_base}, sizeof pool, pool);
  source pages(mem, phys_addr{pool_base}, phys_addr{pool_base + sizeof pool});
  flat_memory smem(phys_addr{scratch_base}, sizeof scratch_pool, scratch_pool);
  source scratch(smem, phys_addr{scratch_base}, phys_addr{scratch_base + sizeof scratch_pool});
  page_owners<source, PageShift> owners(scratch);
  int n = 0;

  memfd_folio folios[3] = {{pfn{pool_base >> PageShift}, 0}, {pfn{(pool_base >> PageShift) + 1}, 1},
                           {pfn{(pool_base >> PageShift) + 2}, 7}};
  auto ser = write_memfd<PageShift>(pages, memfd_file{0, 8 << PageShift, memfd_seal_seal, folios, 3});
  if (!ser) return -1;
  auto fd = attach_memfd<PageShift>(mem, *ser);
  if (!fd || !fd->claim_pages(owners)) return -2;
  fd->for_each_folio([&](const memfd_folio& f) { n += static_cast<int>(f.index); });

  auto area = vmalloc_writer<source, PageShift>::create(pages, 0);
  if (!area || !area->push(*ser)) return -3;
  auto av = attach_vmalloc<PageShift>(mem, area->descriptor());
  if (!av) return -4;
  av->for_each_unit([&](phys_addr, u64 idx) { n += static_cast<int>(idx); });
  area->abandon();

  auto w = luo_v5_writer<source, PageShift>::create(pages, 3);
  if (!w || !w->create_session("vm") || !w->preserve_file("vm", "memfd-v2", ser->value, 1) ||
      !w->add_flb("iommufd", 0, 1))
    return -5;
  auto lv = attach_luo_v5<PageShift>(mem, w->blob().phys, scratch);
  if (!lv || !lv->retrieve_session("vm") || !lv->retrieve_file("vm", 1) || !lv->find_flb("iommufd")) return -6;
  if (!lv->claim_pages(owners)) return -7;
  for (const luo_session_ser& s : lv->sessions())
    for (const luo_file_ser& f : lv->files(s)) n += static_cast<int>(f.token.get());
  n += static_cast<int>(lv->liveupdate_num() + lv->scratch_bytes());
  lv->release();
  w->destroy();

  auto meta = write_kexec_metadata<PageShift>(pages, "6.20.0", 4);
  if (!meta) return -8;
  auto mv = kexec_metadata_view<PageShift>::attach(mem, meta->phys, meta->size);
  if (!mv || !mv->claim_pages(owners)) return -9;
  n += static_cast<int>(mv->kexec_count());

  const reserve_mem_region regions[] = {{"trace", phys_addr{pool_base}, u64{1} << PageShift}};
  auto mb = write_memblock<PageShift>(pages, regions, 1);
  if (!mb) return -10;
  auto mbv = attach_memblock<PageShift>(mem, mb->phys, mb->size);
  if (!mbv || !mbv->claim_pages(owners) || !mbv->find("trace")) return -11;
  mbv->for_each_region([&](const reserve_mem_region& r) { n += static_cast<int>(r.size >> PageShift); });

  kho_data d{};
  d.scratch_size.set(32);
  n += static_cast<int>(kho_scratch_count(d));
  return n + exercise_versions<PageShift>(mem, pages, scratch, owners);
}

}  // namespace

extern "C" int kho_shim_linux_4k() { return exercise<12>(); }
extern "C" int kho_shim_linux_16k() { return exercise<14>(); }
extern "C" int kho_shim_linux_64k() { return exercise<16>(); }
