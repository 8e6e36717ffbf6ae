// Runs a fuzz target over every file of its corpus once: the corpus as a plain test,
// without a fuzzing engine. Every target is linked into this one binary under its own
// entry point (tests/fuzz/CMakeLists.txt renames each LLVMFuzzerTestOneInput).
// Usage: kho_fuzz_corpus TARGET FILE_OR_DIR...
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#define KHO_CORPUS_TARGET(name) extern "C" int kho_corpus_##name(const uint8_t* data, size_t size);
#include "corpus_targets.inc"
#undef KHO_CORPUS_TARGET

namespace {

struct fuzz_target {
  const char* name;
  int (*run)(const uint8_t* data, size_t size);
};

constexpr fuzz_target targets[] = {
#define KHO_CORPUS_TARGET(name) {#name, kho_corpus_##name},
#include "corpus_targets.inc"
#undef KHO_CORPUS_TARGET
};

const fuzz_target* find_target(const char* name) {
  for (const fuzz_target& t : targets)
    if (std::strcmp(t.name, name) == 0) return &t;
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  const fuzz_target* target = argc > 1 ? find_target(argv[1]) : nullptr;
  if (!target) {
    std::fprintf(stderr, "usage: %s TARGET FILE_OR_DIR...; targets:", argv[0]);
    for (const fuzz_target& t : targets) std::fprintf(stderr, " %s", t.name);
    std::fprintf(stderr, "\n");
    return 2;
  }
  unsigned runs = 0;
  for (int i = 2; i < argc; ++i) {
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(argv[i])) {
      for (const auto& e : std::filesystem::directory_iterator(argv[i]))
        if (e.is_regular_file()) files.push_back(e.path());
    } else {
      files.emplace_back(argv[i]);
    }
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      target->run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      ++runs;
    }
  }
  std::printf("%s: ran %u inputs\n", target->name, runs);
  return runs == 0 ? 1 : 0;
}
