// Fuzz target: the LUO layouts other than plain luo-v5 (kho/linux/luo_versions.hpp):
// the version detected from the bytes at the root, with blob-size the rest of the
// image and each layout's own size; after a successful attach every session and file
// is walked through the armed memory (a read outside it traps), counts must agree, and
// the pages are claimed once each (attach refused every page reached twice).
#include <kho/linux/luo_versions.hpp>
#include <kho/page_owners.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

#include <cstring>

namespace {

using kho::u64;
kho::fuzz::pages<32 << 20> scratch_memory;
volatile u64 sink;  // the records are read, not optimised away

template <class View>
void walk_v1(kho::fuzz::image& img, View& view) {
  img.arm();
  u64 files = 0, sum = 0;
  for (u64 i = 0; i < view.session_count(); ++i) {
    const auto& s = view.sessions()[i];
    if (!view.find_session(s.name)) __builtin_trap();
    for (u64 j = 0; j < s.file_set_ser.count.get(); ++j, ++files) sum += view.files(s)[j].token.get();
  }
  sink = sum;
  if (files != view.file_count()) __builtin_trap();
}

template <class View>
void walk_v5(kho::fuzz::image& img, View& view) {
  img.arm();
  u64 files = 0, sum = 0;
  for (const auto& s : view.sessions())
    for (const auto& f : view.files(s)) {
      sum += f.token.get();
      ++files;
    }
  sink = sum;
  if (files != view.file_count()) __builtin_trap();
}

void check(const uint8_t* data, size_t size, u64 blob_size) {
  using namespace kho::upstream;
  kho::fuzz::image img(data, size);
  kho::flat_memory scratch_mem(kho::phys_addr{u64{1} << 46}, scratch_memory.size, scratch_memory);
  kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  auto version = detect_luo_version(img.memory(), img.root(), blob_size);
  if (!version || luo_layout_of(*version) != nullptr) return;  // fuzz_linux_luo_layouts reads those
  kho::page_owners<decltype(scratch)> owners(scratch);
  if (*version == luo_version::v1) {
    auto view = attach_luo_v1<12>(img.memory(), img.root(), scratch, blob_size);
    if (!view) return;
    walk_v1(img, *view);
    if (!view->claim_pages(owners)) __builtin_trap();
    view->release();
    return;
  }
  auto view = attach_luo_v5<12>(img.memory(), img.root(), scratch, blob_size, {}, *version);
  if (!view) return;
  walk_v5(img, *view);
  if (!view->claim_pages(owners)) __builtin_trap();
  view->release();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const u64 rest = kho::fuzz::bytes_from_root(data, size);
  check(data, size, rest);
  for (u64 exact : {u64{40}, u64{152}, u64{4096}})
    if (exact != rest) check(data, size, exact);
  return 0;
}
