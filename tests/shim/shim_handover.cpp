// Kernel-shim check: every core header, compiled freestanding (-ffreestanding
// -fno-exceptions -fno-rtti), with every public template instantiated over a page
// source of the shim's own. check_nm.cmake then fails on any undefined symbol but
// memcpy/memset/memmove/memcmp and kho_shim_*.
#include <kho/checksum.hpp>
#include <kho/handover.hpp>
#include <kho/memory.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

namespace {

using namespace kho;

// The shim's own page allocator: a static pool, as a kernel's early allocator would be.
alignas(65536) unsigned char pool[4u << 20];
constexpr u64 pool_base = u64{1} << 32;

template <unsigned PageShift>
int exercise_handover() {
  flat_memory mem(phys_addr{pool_base}, sizeof pool, pool);
  bump_page_source<flat_memory, PageShift> pages(mem, phys_addr{pool_base},
                                                 phys_addr{pool_base + sizeof pool});
  auto w = handover_writer<decltype(pages), PageShift>::create(pages);
  if (!w) return -1;
  if (!w->add("blob", "kho-blob-v1", phys_addr{pool_base}, 64)) return -2;
  if (!w->update("blob", phys_addr{pool_base}, 128)) return -3;
  if (!w->seal()) return -4;
  auto v = attach_handover_root<PageShift>(mem, w->root());
  if (!v) return static_cast<int>(v.code());
  auto e = v->find("blob");
  auto c = v->find_compatible("kho-blob-v1");
  if (!e || !c) return -5;
  if (!w->remove("blob")) return -6;
  range_memory<4> ranges;
  if (!ranges.add(phys_addr{pool_base}, sizeof pool, pool)) return -7;
  auto v2 = attach_handover_root<PageShift>(ranges, w->root());
  return static_cast<int>(v2.code()) + static_cast<int>(checksum(pool, 64) & 1);
}

}  // namespace

// Entry points with C linkage keep the instantiations from being discarded.
extern "C" int kho_shim_handover_4k() { return exercise_handover<12>(); }
extern "C" int kho_shim_handover_16k() { return exercise_handover<14>(); }
extern "C" int kho_shim_handover_64k() { return exercise_handover<16>(); }
extern "C" const char* kho_shim_error_text(int e) { return to_string(static_cast<errc>(e)); }
