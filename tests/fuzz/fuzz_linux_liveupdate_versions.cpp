// Fuzz target: a ".liveupdate_versions" section (the whole input is the section). What
// the parser accepts has entries shorter than 48 bytes, and the writer lays the same
// entries out into the same bytes.
#include <kho/linux/liveupdate_versions.hpp>

#include <cstring>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto v = kho::upstream::liveupdate_versions_view::parse(data, size);
  if (!v) return 0;
  if (8 + 48 * v->size() != size) __builtin_trap();
  std::vector<const char*> names;
  for (kho::u64 i = 0; i < v->size(); ++i) {
    if (std::strlen(v->entry(i)) >= 48) __builtin_trap();
    names.push_back(v->entry(i));
  }
  std::vector<unsigned char> out(size);
  if (!kho::upstream::write_liveupdate_versions(out.data(), names.data(), names.size())) __builtin_trap();
  if (std::memcmp(out.data(), data, size) != 0) __builtin_trap();
  (void)v->duplicates();
  return 0;
}
