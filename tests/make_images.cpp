// make_images: writes the checked-in golden images and fuzz seed corpora.
//
//   make_images golden DIR   memory images with known contents (tests/golden/)
//   make_images corpus DIR   seed inputs per fuzz target (tests/fuzz/corpus/<target>/)
//
// Everything is deterministic: the same writer code writes the same bytes, so the
// golden test can also rebuild each image and compare it byte for byte (a writer
// whose output drifts fails CI as surely as a reader that drifts).
#include <kho/handover.hpp>
#include <kho/model/demo_luo.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/preserving_page_source.hpp>

#include "golden_images.hpp"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace {

using namespace kho;

void write_file(const std::filesystem::path& path, const std::vector<unsigned char>& bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

/// A fuzz input: the root's offset (8 bytes LE), then the image.
std::vector<unsigned char> fuzz_input(const golden::image& img) {
  std::vector<unsigned char> out(8 + img.bytes.size());
  const u64 offset = img.root.value - golden::image_base;
  std::memcpy(out.data(), &offset, 8);
  std::memcpy(out.data() + 8, img.bytes.data(), img.bytes.size());
  return out;
}

/// The full handover's structures, each as its own reader's seed: the same image
/// with the root offset moved to the entry's block.
void write_entry_seeds(const golden::image& img, const std::filesystem::path& dir) {
  const auto* page = reinterpret_cast<const detail::handover_page<12>*>(img.bytes.data() +
                                                                         (img.root.value - golden::image_base));
  for (u32 i = 0; i < page->header.entry_count.get(); ++i) {
    const handover_entry& e = page->entries[i];
    const std::string compatible = e.compatible;
    if (compatible == "kho-radix-v1")
      write_file(dir / "fuzz_hole_finder" / ("handover-full-" + compatible), fuzz_input(golden::image{img.bytes, phys_addr{e.phys.get()}}));
    const char* target = compatible == "kho-luo-v1"      ? "fuzz_luo"
                         : compatible == "kho-xarray-v1" ? "fuzz_xarray"
                         : compatible == "kho-radix-v1"  ? "fuzz_preserve_bitmap"
                                                          : nullptr;
    if (target == nullptr) continue;
    golden::image entry_img{img.bytes, phys_addr{e.phys.get()}};
    write_file(dir / target / ("handover-full-" + compatible), fuzz_input(entry_img));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_images golden|corpus DIR\n");
    return 2;
  }
  const std::string what = argv[1];
  const std::filesystem::path dir = argv[2];
  try {
    if (what == "golden") {
      std::ofstream index(dir / "index.txt");
      index << "# name root (images stand for physical memory from " << std::hex << std::showbase
            << golden::image_base << ")\n";
      for (const auto& g : golden::all()) {
        const golden::image img = g.make();
        write_file(dir / (g.name + ".img"), img.bytes);
        index << g.name << " " << img.root.value << "\n";
        std::printf("%s: %zu bytes, root %#llx\n", g.name.c_str(), img.bytes.size(),
                    static_cast<unsigned long long>(img.root.value));
      }
      return 0;
    }
    if (what == "corpus") {
      for (const auto& g : golden::all()) {
        const golden::image img = g.make();
        write_file(dir / "fuzz_inspect" / g.name, fuzz_input(img));
        if (g.name.starts_with("root-")) write_file(dir / "fuzz_handover" / g.name, fuzz_input(img));
        if (g.name.starts_with("radix-")) {
          write_file(dir / "fuzz_preserve_bitmap" / g.name, fuzz_input(img));
          write_file(dir / "fuzz_hole_finder" / g.name, fuzz_input(img));
        }
        if (g.name.starts_with("block-list-")) write_file(dir / "fuzz_block_list" / g.name, fuzz_input(img));
        if (g.name == "handover-full") write_entry_seeds(img, dir);
      }
      std::mt19937_64 rng(7);
      for (int i = 0; i < 4; ++i) {
        std::vector<unsigned char> ops(64 << i);
        for (auto& b : ops) b = static_cast<unsigned char>(rng());
        write_file(dir / "diff_preserve_bitmap" / ("ops-" + std::to_string(i)), ops);
      }
      return 0;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_images: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "make_images: unknown kind %s\n", what.c_str());
  return 2;
}
