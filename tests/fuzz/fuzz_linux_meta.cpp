// Fuzz target: Linux's small KHO subtrees, both read at the root with blob-size the
// bytes from the root to the image's end: "kexec-metadata" (also with the kernel's 73)
// and "memblock" as an FDT. After a successful attach the memory is armed (a read
// outside it traps): the release string must end within its 65 bytes, every region
// must be page-aligned, non-empty and not wrap, count() must match the walk, and
// find(name) must return the region of exactly that name. Pages are claimed once.
#include <kho/linux/kexec_metadata.hpp>
#include <kho/linux/memblock.hpp>
#include <kho/page_owners.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

#include <cstring>

namespace {

using kho::phys_addr;
using kho::u64;

kho::fuzz::pages<1 << 20> scratch_memory;

void claim(const auto& view) {
  kho::flat_memory scratch_mem(phys_addr{u64{1} << 46}, scratch_memory.size, scratch_memory);
  kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  kho::page_owners<decltype(scratch)> owners(scratch);
  if (!view.claim_pages(owners)) __builtin_trap();  // one page, claimed once
}

template <class Image>
void metadata(Image& img, u64 blob_size) {
  auto view = kho::upstream::kexec_metadata_view<12>::attach(img.memory(), img.root(), blob_size);
  if (!view) return;
  img.arm();
  if (view->version() != kho::upstream::kexec_metadata_version) __builtin_trap();
  if (::strnlen(view->previous_release(), kho::upstream::kexec_metadata_release_len) ==
      kho::upstream::kexec_metadata_release_len)
    __builtin_trap();
  claim(*view);
}

template <class Image>
void memblock(Image& img, u64 blob_size) {
  auto view = kho::upstream::attach_memblock<12>(img.memory(), img.root(), blob_size);
  if (!view) return;
  img.arm();
  u64 n = 0;
  view->for_each_region([&](const kho::upstream::reserve_mem_region& r) {
    const u64 a = r.start.value;
    if (r.size == 0 || (a & 4095) != 0 || (r.size & 4095) != 0 || a + r.size < a) __builtin_trap();
    auto found = view->find(r.name);
    if (!found || std::strcmp(found->name, r.name) != 0 || found->start.value != r.start.value || found->size != r.size)
      __builtin_trap();
    ++n;
  });
  if (n != view->count()) __builtin_trap();
  claim(*view);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const u64 rest = kho::fuzz::bytes_from_root(data, size);
  {
    kho::fuzz::image img(data, size);
    metadata(img, rest);
  }
  {
    kho::fuzz::image img(data, size);
    metadata(img, sizeof(kho::upstream::kexec_metadata));
  }
  kho::fuzz::image img(data, size);
  memblock(img, rest);
  return 0;
}
