// Fuzz target: Linux's LUO state ("luo-v5"): attach, then every session retrieved
// once (a second retrieve must fail), every file of it retrieved once, every FLB found
// by name, and the pages claimed once each.
#include <kho/linux/luo_v5.hpp>
#include <kho/page_owners.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

#include <string>
#include <vector>

namespace {

kho::fuzz::pages<32 << 20> scratch_memory;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kho::upstream;
  kho::fuzz::image img(data, size);
  kho::flat_memory scratch_mem(kho::phys_addr{kho::u64{1} << 46}, scratch_memory.size, scratch_memory);
  kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  auto view = attach_luo_v5<12>(img.memory(), img.root(), scratch);
  if (!view) return 0;
  img.arm();
  std::vector<std::string> names;
  for (const luo_session_ser& s : view->sessions()) names.emplace_back(s.name);
  for (const std::string& name : names) {
    auto session = view->retrieve_session(name.c_str());
    if (!session) __builtin_trap();  // listed sessions are unique, so each comes back once
    if (view->retrieve_session(name.c_str()).code() != kho::errc::already_retrieved) __builtin_trap();
    std::vector<kho::u64> tokens;
    for (const luo_file_ser& f : view->files(**session)) tokens.push_back(f.token.get());
    if (tokens.size() != (*session)->file_set_ser.count.get()) __builtin_trap();
    for (kho::u64 t : tokens) {
      if (!view->retrieve_file(name.c_str(), t)) __builtin_trap();
      if (view->retrieve_file(name.c_str(), t).code() != kho::errc::already_retrieved) __builtin_trap();
    }
  }
  for (kho::u64 i = 0; i < view->flb_count(); ++i)
    if (!view->find_flb(view->flbs()[i].name)) __builtin_trap();
  {
    kho::page_owners<decltype(scratch)> owners(scratch);
    if (!view->claim_pages(owners)) __builtin_trap();  // attach refused every page reached twice
  }
  view->release();
  return 0;
}
