// Kernel-shim check for a VM host's memory state (LINUX-FORMATS-NEXT.md sections 2 to
// 4): hugetlb-v1, huge-memfd-v1, guest_memfd_luo_v1, kvm_vm_luo_v1 (both layouts),
// kvm_vcpu_luo_v1, tmpfs-mnt-v1, tmpfs-file-v1 and the adoption of folios into a kho
// xarray, every writer and view instantiated freestanding for each page size.
#include <kho/linux/adopt_folios.hpp>
#include <kho/linux/guest_memfd.hpp>
#include <kho/linux/hugetlb.hpp>
#include <kho/linux/kvm.hpp>
#include <kho/linux/tmpfs.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/xarray.hpp>

namespace {

using namespace kho;
using namespace kho::upstream;

alignas(65536) unsigned char pool[8u << 20];
alignas(65536) unsigned char scratch_pool[4u << 20];
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
  int n = 0;

  const hugetlb_hstate hs[1] = {{2, 1}};
  auto flb = write_hugetlb_flb<PageShift>(pages, hs, 1);
  if (!flb) return -1;
  auto flb_view = attach_hugetlb_flb<PageShift>(mem, *flb);
  if (!flb_view || !flb_view->claim_pages(owners)) return -2;

  const huge_folio huge[1] = {{pfn{(pool_base >> PageShift) + 4}, 4}};
  auto hf = write_huge_memfd<PageShift>(pages, huge_memfd_file{u64{8} << PageShift, 0, 2, huge, 1});
  if (!hf) return -3;
  auto hv = attach_huge_memfd<PageShift>(mem, *hf);
  if (!hv || !hv->claim_pages(owners)) return -4;
  auto xa = xarray<u64, PageShift, source>::create(pages);
  if (!xa) return -5;
  auto adopted = adopt_folios(*xa, *hv);
  if (!adopted) return -6;
  n += static_cast<int>(*adopted);

  const guest_memfd_folio gf[1] = {{pfn{pool_base >> PageShift}, 0, guest_memfd_folio_uptodate}};
  auto g = write_guest_memfd<PageShift>(pages, guest_memfd_file{u64{1} << PageShift, 1, 5, gf, 1});
  if (!g) return -7;
  auto gv = attach_guest_memfd<PageShift>(mem, *g);
  if (!gv || !gv->claim_pages(owners)) return -8;
  auto gadopted = adopt_folios(*xa, *gv);
  if (!gadopted) return -9;
  n += static_cast<int>(*gadopted);

  const kvm_mem_attr attrs[1] = {{1, 8}};
  kvm_vm_file vm;
  vm.mem_attrs = attrs, vm.nr_mem_attrs = 1, vm.cpuid_nent = 0;
  for (kvm_vm_dialect d : {kvm_vm_dialect::linux_mm, kvm_vm_dialect::soleen}) {
    auto w = write_kvm_vm<PageShift>(pages, vm, d);
    if (!w) return -10;
    auto v = attach_kvm_vm<PageShift>(mem, *w, d);
    if (!v || !v->claim_pages(owners)) return -11;
    n += static_cast<int>(v->type());
  }
  kvm_vcpu_file vcpu;
  vcpu.caretaker = true;
  auto c = write_kvm_vcpu<PageShift>(pages, vcpu);
  if (!c) return -12;
  auto cv = attach_kvm_vcpu<PageShift>(mem, *c);
  if (!cv || !cv->claim_pages(owners)) return -13;

  auto m = write_tmpfs_mnt<PageShift>(pages, tmpfs_mount{});
  if (!m) return -14;
  auto mv = attach_tmpfs_mnt<PageShift>(mem, *m);
  if (!mv || !mv->claim_pages(owners)) return -15;
  const memfd_folio tf[1] = {{pfn{(pool_base >> PageShift) + 1}, 0}};
  auto t = write_tmpfs_file<PageShift>(pages, tmpfs_file{1, 0, u64{1} << PageShift, 0600, "f", tf, 1});
  if (!t) return -16;
  auto tv = attach_tmpfs_file<PageShift>(mem, *t);
  if (!tv || !tv->claim_pages(owners)) return -17;
  return n + static_cast<int>(tv->nr_folios());
}

}  // namespace

extern "C" int kho_shim_vmmem_4k() { return exercise<12>(); }
extern "C" int kho_shim_vmmem_16k() { return exercise<14>(); }
extern "C" int kho_shim_vmmem_64k() { return exercise<16>(); }
