// Fuzz target: LUO state (sessions, files, shared objects): attach, then every
// session's files retrieved once (a second retrieve must fail), sessions finished,
// and the unreclaimed report.
#include <kho/luo.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

#include <string>
#include <vector>

namespace {

kho::fuzz::pages<32 << 20> scratch_memory;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kho::fuzz::image img(data, size);
  kho::flat_memory scratch_mem(kho::phys_addr{kho::u64{1} << 46}, scratch_memory.size, scratch_memory);
  kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  auto view = kho::attach_luo<12>(img.memory(), img.root(), scratch);
  if (!view) return 0;
  img.arm();
  std::vector<std::string> names;
  for (const kho::luo_session_entry& s : view->sessions()) names.emplace_back(s.name);
  for (const std::string& name : names) {
    auto session = view->find(name.c_str());
    if (!session) __builtin_trap();  // listed sessions can be found
    std::vector<kho::u64> tokens;
    for (const kho::luo_file_entry& f : view->files(**session)) tokens.push_back(f.token.get());
    for (kho::u64 t : tokens) {
      if (!view->retrieve(name.c_str(), t)) __builtin_trap();
      if (view->retrieve(name.c_str(), t).code() != kho::errc::already_retrieved) __builtin_trap();
    }
    (void)view->finish(name.c_str());
  }
  (void)view->for_each_unreclaimed([](const kho::luo_unreclaimed&) {});
  return 0;
}
