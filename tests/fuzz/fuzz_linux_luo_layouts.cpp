// Fuzz target: the LUO layouts between luo-v1 and luo-v5 (kho/linux/luo_layouts.hpp),
// detected from the bytes at the root with blob-size the rest of the image and each
// layout's own sizes (32 and 48 raw, a page for the FDTs). After a successful attach
// every session and file is walked through the armed memory (a read outside it
// traps), the counts must agree, every page is claimed once (attach refused every page
// reached twice), and walk_luo (what kho verify and kho dump use) agrees with the view.
#include <kho/linux/luo_versions.hpp>
#include <kho/page_owners.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

#include <cstring>

namespace {

using kho::u64;
kho::fuzz::pages<32 << 20> scratch_memory;
volatile u64 sink;  // the records are read, not optimised away

struct count_visitor {
  u64 sessions = 0, files = 0;
  template <class View>
  kho::status view(const View&) {
    return {};
  }
  kho::status flbs(const kho::upstream::luo_flb_ser*, u64) { return {}; }
  template <class Files>
  kho::status session(const kho::upstream::luo_session_ser&, const Files& f) {
    ++sessions;
    for (const auto& x : f) {
      sink = x.token.get();
      ++files;
    }
    return {};
  }
};

void check(const uint8_t* data, size_t size, u64 blob_size) {
  using namespace kho::upstream;
  kho::fuzz::image img(data, size);
  kho::flat_memory scratch_mem(kho::phys_addr{u64{1} << 46}, scratch_memory.size, scratch_memory);
  kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  auto version = detect_luo_version(img.memory(), img.root(), blob_size);
  if (!version || luo_layout_of(*version) == nullptr) return;
  u64 sessions = 0, files = 0;
  {
    auto view = attach_luo_layout<12>(img.memory(), img.root(), scratch, blob_size, *version);
    if (!view) return;
    img.arm();
    u64 sum = 0;
    for (const auto& s : view->sessions()) {
      ++sessions;
      for (const auto& f : view->files(s)) {
        sum += f.token.get();
        ++files;
      }
    }
    for (u64 i = 0; i < view->flb_count(); ++i) sum += view->flbs()[i].data.get();
    sink = sum;
    if (sessions != view->session_count() || files != view->file_count()) __builtin_trap();
    kho::page_owners<decltype(scratch)> owners(scratch);
    if (!view->claim_pages(owners)) __builtin_trap();
    view->release();
  }
  count_visitor c;
  auto walked = walk_luo<12>(img.memory(), img.root(), blob_size, scratch, c);
  if (!walked || walked->version != *version || c.sessions != sessions || c.files != files) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const u64 rest = kho::fuzz::bytes_from_root(data, size);
  check(data, size, rest);
  for (u64 exact : {u64{32}, u64{48}, u64{4096}})
    if (exact != rest) check(data, size, exact);
  return 0;
}
