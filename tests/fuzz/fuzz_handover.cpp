// Fuzz target: the handover root reader.
#include <kho/handover.hpp>

#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kho::fuzz::image img(data, size);
  auto view = kho::attach_handover_root(img.memory(), img.root());
  if (!view) return 0;
  img.arm();
  kho::u64 sum = view->generation();
  for (const kho::handover_entry& e : *view) {
    auto by_name = view->find(e.name);
    if (!by_name || *by_name != &e) __builtin_trap();  // names are unique once validated
    auto by_compat = view->find_compatible(e.compatible);
    if (!by_compat) __builtin_trap();
    const void* block = view->memory().to_virt(kho::phys_addr{e.phys.get()}, e.size.get());
    if (kho::checksum(block, e.size.get()) != e.checksum.get()) __builtin_trap();
    sum += e.size.get();
  }
  return static_cast<int>(sum & 0);
}
