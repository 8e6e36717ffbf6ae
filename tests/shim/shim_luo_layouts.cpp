// Kernel-shim check of kho/linux/luo_layouts.hpp (the LUO layouts between luo-v1 and
// luo-v5): each layout written by write_luo, detected, read by its view (every session
// and file, claim_pages) and walked by walk_luo, freestanding, for each page size.
#include <kho/linux/luo_layouts.hpp>
#include <kho/linux/luo_versions.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>

namespace {

using namespace kho;
using namespace kho::upstream;

alignas(65536) unsigned char pool[16u << 20];
alignas(65536) unsigned char scratch_pool[4u << 20];
constexpr u64 pool_base = u64{1} << 32;
constexpr u64 scratch_base = u64{1} << 40;

struct counting_visitor {
  int n = 0;
  template <class View>
  status view(const View&) {
    return {};
  }
  status flbs(const luo_flb_ser*, u64 count) {
    n += static_cast<int>(count);
    return {};
  }
  template <class Files>
  status session(const luo_session_ser&, const Files& files) {
    for (const luo_file_ser& f : files) n += static_cast<int>(f.token.get());
    return {};
  }
};

template <unsigned PageShift>
int exercise() {
  using source = bump_page_source<flat_memory, PageShift>;
  flat_memory mem(phys_addr{pool_base}, sizeof pool, pool);
  source pages(mem, phys_addr{pool_base}, phys_addr{pool_base + sizeof pool});
  flat_memory smem(phys_addr{scratch_base}, sizeof scratch_pool, scratch_pool);
  source scratch(smem, phys_addr{scratch_base}, phys_addr{scratch_base + sizeof scratch_pool});
  const luo_file_content files[2] = {{"memfd-v2", 0, 7}, {"other", 0, 8}};
  const luo_session_content sessions[2] = {{"vm", files, 2}, {"empty", nullptr, 0}};
  const luo_flb_content flbs[1] = {{"flb", 0, 1}};
  const luo_content content{3, sessions, 2, flbs, 1};
  int n = 0;
  for (const luo_layout& l : luo_layouts) {
    downgrade_refusal refusal;
    auto blob = write_luo<PageShift>(pages, l.version, content, &refusal);
    if (!blob) return -1;
    auto v = detect_luo_version(mem, blob->phys, blob->size);
    if (!v || *v != l.version) return -2;
    auto view = attach_luo_layout<PageShift>(mem, blob->phys, scratch, blob->size, l.version);
    if (!view) return -3;
    for (const luo_session_ser& s : view->sessions())
      for (const luo_file_ser& f : view->files(s)) n += static_cast<int>(f.token.get());
    {
      page_owners<source, PageShift> owners(scratch);
      if (!view->claim_pages(owners)) return -4;
    }
    view->release();
    counting_visitor c;
    if (!walk_luo<PageShift>(mem, blob->phys, blob->size, scratch, c)) return -5;
    n += c.n + static_cast<int>(luo_stock_reading(luo_version::v5, l.version));
  }
  return n;
}

}  // namespace

extern "C" int kho_shim_luo_layouts_4k() { return exercise<12>(); }
extern "C" int kho_shim_luo_layouts_16k() { return exercise<14>(); }
extern "C" int kho_shim_luo_layouts_64k() { return exercise<16>(); }
