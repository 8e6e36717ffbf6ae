// Fuzz target: Linux's KHO root FDT ("kho-v4") as the input's bytes, unsealed or
// sealed as they come. Read twice: from a buffer of exactly the input's size outside
// memory (attach_bytes, the FDT a CLI reads from debugfs), and, when it fits a page,
// at page 0 of a zeroed memory (attach) whose blobs are all zero bytes; an accepted
// root lists every subtree by name, and the whole-handover check then runs over that
// memory (refusing is fine; crashing, looping or reading outside is not).
#include <kho/linux/kho_fdt_check.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

#include <cstring>
#include <vector>

namespace {

using namespace kho;
using namespace kho::upstream;

constexpr u64 memory_bytes = u64{1} << 20;
kho::fuzz::pages<memory_bytes> memory;
kho::fuzz::pages<4 << 20> scratch_memory;

template <class View>
void walk(const View& v) {
  u64 seen = 0;
  v.for_each([&](const kho_subtree& t) {
    if (!v.find(t.name)) __builtin_trap();  // names are unique: each comes back
    (void)subtree_format(t);
    ++seen;
  });
  if (seen != v.count()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bool armed = false;
  const fuzz::guarded_memory mem{flat_memory(phys_addr{fuzz::image_base}, memory_bytes, memory), &armed};
  {
    std::vector<unsigned char> copy(data, data + size);  // exactly sized: ASan sees an overread
    auto v = kho_fdt_view<fuzz::guarded_memory>::attach_bytes(mem, copy.data(), copy.size());
    if (v) walk(*v);
  }
  if (size > 4096) return 0;
  std::memset(memory, 0, 4096);
  std::memcpy(memory, data, size);
  auto v = attach_kho_fdt(mem, phys_addr{fuzz::image_base}, size);
  if (!v) return 0;
  armed = true;  // every blob it names lies in memory
  walk(*v);
  flat_memory smem(phys_addr{u64{1} << 46}, scratch_memory.size, scratch_memory);
  bump_page_source<flat_memory> scratch(smem, smem.base(), smem.end());
  armed = false;  // the map and the blobs' own links are the check's to refuse
  const kho::status whole = check_kho_fdt(*v, scratch);
  if (scratch.pages_in_use() != 0) __builtin_trap();
  // Structure by structure: every subtree reported once when the root and map hold,
  // and all of them standing exactly when the whole check passed.
  kho::u64 reported = 0, fell = 0;
  const kho::status fatal = check_kho_fdt_each(*v, scratch, [&](const kho_subtree&, const kho::error& e) {
    ++reported;
    if (e.code != kho::errc::ok) ++fell;
  });
  if (scratch.pages_in_use() != 0) __builtin_trap();
  if (fatal && reported != v->count()) __builtin_trap();
  if (whole && (!fatal || fell != 0)) __builtin_trap();
  return 0;
}
