// Fuzz target: tmpfs's state at the root (kho/linux/tmpfs.hpp), read as tmpfs-mnt-v1
// and as tmpfs-file-v1. After a successful attach every read is through the armed
// memory; the file's name must be one path component and its folios in strictly
// increasing index order with known flags; the pages are claimed once each.
#include <kho/linux/tmpfs.hpp>
#include <kho/page_owners.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

#include <cstring>

namespace {

kho::fuzz::pages<16 << 20> scratch_memory;

template <class View>
void claim(const View& v) {
  kho::flat_memory scratch_mem(kho::phys_addr{kho::u64{1} << 46}, scratch_memory.size, scratch_memory);
  kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  kho::page_owners<decltype(scratch)> owners(scratch);
  (void)v.claim_pages(owners);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kho::upstream;
  {
    kho::fuzz::image img(data, size);
    if (auto m = attach_tmpfs_mnt<12>(img.memory(), img.root())) {
      img.arm();
      claim(*m);
    }
  }
  kho::fuzz::image img(data, size);
  auto f = attach_tmpfs_file<12>(img.memory(), img.root());
  if (!f) return 0;
  img.arm();
  const char* name = f->name();
  const std::size_t len = std::strlen(name);
  if (len == 0 || len >= tmpfs_name_len || std::strchr(name, '/') != nullptr || std::strcmp(name, ".") == 0 ||
      std::strcmp(name, "..") == 0)
    __builtin_trap();
  kho::u64 n = 0, last = 0;
  f->for_each_folio([&](const memfd_folio& x) {
    if (x.frame.value == 0 || (x.flags & ~memfd_folio_known_flags) != 0 || (n > 0 && x.index <= last))
      __builtin_trap();
    last = x.index;
    ++n;
  });
  if (n != f->nr_folios()) __builtin_trap();
  claim(*f);
  return 0;
}
