// Fuzz target: the whole next-kernel read, as `kho dump` does it: the root and every
// entry through the reader its compatible string names.
#include <kho/model/inspect.hpp>

#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kho::fuzz::image img(data, size);
  const auto mem = img.memory();
  (void)kho::model::inspect(mem.inner, img.root());
  return 0;
}
