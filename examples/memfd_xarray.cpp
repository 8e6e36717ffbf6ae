// memfd_xarray: a memfd-shaped file on the KHO xarray across a modelled kexec, in one
// process.
//
//   old kernel   folios of 4 KiB, 2 MiB and 1 GiB are allocated through a preserving
//                page source (every page lands in a preserve_bitmap as it is handed
//                out), recorded in an xarray with dirty/uptodate marks, and named in a
//                sealed handover root.
//   kexec        the "physical memory" file is mapped again at another address; the
//                old mapping is gone, only physical addresses survive.
//   next kernel  attaches the root and the xarray (validating every node), prints what
//                `kho dump` would, adopts the file with a fresh page source and faults
//                64 more pages in.
//
//   memfd_xarray            prints JSON; exit status 0 when every step succeeded
#include <kho/handover.hpp>
#include <kho/model/demo_xarray.hpp>
#include <kho/model/inspect_xarray.hpp>
#include <kho/model/physical_memory.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/preserving_page_source.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>

#include <unistd.h>

using namespace kho;

namespace {

constexpr u64 base = u64{4} << 30;
constexpr u64 size = u64{4} << 30;                // sparse: only written pages cost anything
constexpr u64 next_kernel_free = base + (u64{3} << 30);  // where the next kernel allocates

using bump = bump_page_source<flat_memory>;

int fail(const char* step, const error& e) {
  std::printf("%s\n", nlohmann::json{{"ok", false}, {"step", step}, {"error", to_string(e.code)},
                                     {"at", fmt::format("{:#x}", e.loc.at.value)}}.dump(2).c_str());
  return 1;
}

}  // namespace

int main() {
  auto old_memory = std::make_unique<model::physical_memory>(model::physical_memory::create(base, size));
  phys_addr root{};
  u64 preserved_pages = 0;
  {
    // ---- old kernel
    bump pages(old_memory->memory(), old_memory->base(), phys_addr{next_kernel_free});
    auto bitmap = preserve_bitmap<bump, 12>::create(pages);
    if (!bitmap) return fail("preserve_bitmap", bitmap.err());
    preserving_page_source<bump, preserve_bitmap<bump, 12>> preserving(pages, *bitmap);
    auto handover = handover_writer<bump, 12>::create(pages);
    if (!handover) return fail("handover", handover.err());
    if (status s = model::build_demo_memfd(preserving, *handover); !s) return fail("build", s.err());
    if (status s = handover->seal(); !s) return fail("seal", s.err());
    root = handover->root();
    bitmap->for_each_block([&](phys_addr, order o) { preserved_pages += u64{1} << o.value; });
  }
  // ---- kexec: the same bytes at another virtual address
  void* old_virt = old_memory->virt();
  auto memory = std::make_unique<model::physical_memory>(
      model::physical_memory::adopt_fd(::dup(old_memory->fd()), base, true, old_virt));
  old_memory.reset();

  // ---- next kernel
  const flat_memory mem = memory->memory();
  auto handover = attach_handover_root(mem, root);
  if (!handover) return fail("attach handover", handover.err());
  auto entry = handover->find(model::memfd_entry_name);
  if (!entry) return fail("find entry", entry.err());
  nlohmann::json out{{"preserved_pages", preserved_pages}, {"dump", model::read_xarray(mem, **entry)}};
  bump fresh(mem, phys_addr{next_kernel_free}, memory->base() + size);
  out["next_kernel"] = model::reclaim_demo_memfd(fresh, **entry);
  out["ok"] = out["dump"]["ok"].get<bool>() && out["next_kernel"]["ok"].get<bool>();
  std::printf("%s\n", out.dump(2).c_str());
  return out["ok"].get<bool>() ? 0 : 1;
}
