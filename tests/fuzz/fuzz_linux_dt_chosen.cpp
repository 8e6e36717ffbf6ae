// Fuzz target: a boot DTB's /chosen KHO properties (the whole input is the DTB). What
// the reader accepts is written back into a copy with room to grow, and must read back
// the same; the reader never reads outside the input (ASan's bound).
#include <kho/linux/dt_chosen.hpp>

#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // libfdt reads the header's words in place: the DTB gets an 8-byte aligned copy.
  std::vector<kho::u64> aligned(size / 8 + 1);
  if (size != 0) std::memcpy(aligned.data(), data, size);
  auto found = kho::upstream::find_kho_chosen(aligned.data(), size);
  if (!found) return 0;
  std::vector<kho::u64> copy(size / 8 + 64);
  std::memcpy(copy.data(), data, size);
  if (!kho::upstream::add_kho_chosen(copy.data(), copy.size() * 8, found->data)) return 0;
  auto again = kho::upstream::find_kho_chosen(copy.data(), copy.size() * 8);
  if (!again || std::memcmp(&again->data, &found->data, sizeof found->data) != 0) __builtin_trap();
  return 0;
}
