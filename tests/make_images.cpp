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
#include <kho/model/elf_core.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/preserving_page_source.hpp>

#include "golden_images.hpp"
#include "golden_linux.hpp"

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

/// A core file of `loads`, each load's bytes taken from `memory` (standing for physical
/// memory from `memory_base`); bytes outside it are zero.
std::vector<unsigned char> core_of(const std::vector<model::elf_load>& loads, const std::vector<unsigned char>& memory,
                                   u64 memory_base, u64 file_size) {
  std::vector<unsigned char> out(file_size, 0);
  const auto head = model::elf_core_headers(model::elf::machine_x86_64, loads);
  std::memcpy(out.data(), head.data(), head.size());
  for (const model::elf_load& l : loads)
    for (u64 i = 0; i < l.filesz; ++i)
      if (l.paddr + i - memory_base < memory.size()) out[l.offset + i] = memory[l.paddr + i - memory_base];
  return out;
}

/// Seeds for fuzz_elf_core: a golden image as a QEMU-like core (its segment right after
/// the headers), as a kdump-like one split in two page-aligned segments with a hole and
/// an absent tail, and a core counting its headers in section header 0 (PN_XNUM).
void write_elf_seeds(const std::filesystem::path& dir) {
  const golden::image img = golden::all().front().make();
  const u64 base = golden::image_base, size = img.bytes.size();
  const u64 headers1 = 64 + 2 * 56;
  write_file(dir / "qemu-like", core_of({{base, size, size, headers1}}, img.bytes, base, headers1 + size));
  write_file(dir / "kdump-like",
             core_of({{base, 0x800, 0x800, 0x1000}, {base + 0x800, 0x800, 0x1000, 0x1800},
                      {base + 0x4000, 0x1000, 0x1000, 0x2000}},
                     img.bytes, base, 0x3000));
  std::vector<unsigned char> xnum = core_of({{base, 0x1000, 0x1000, 0x1000}}, img.bytes, base, 0x2040);
  model::elf::header h{};
  std::memcpy(&h, xnum.data(), sizeof h);
  h.phnum.set(model::elf::pn_xnum);
  h.shoff.set(0x2000);
  h.shentsize.set(sizeof(model::elf::section_header));
  std::memcpy(xnum.data(), &h, sizeof h);
  model::elf::section_header s0{};
  s0.info.set(2);
  std::memcpy(xnum.data() + 0x2000, &s0, sizeof s0);
  write_file(dir / "pn-xnum", xnum);
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
      // Linux handovers at every version combination written today. An image of a
      // version no longer written stays checked in, with its line kept by hand.
      for (const golden::linux_versions& v : golden::linux_written_versions()) {
        const golden::image img = golden::build_linux(v);
        write_file(dir / (v.name() + ".img"), img.bytes);
        index << v.name() << " " << img.root.value << "\n";
        std::printf("%s: %zu bytes, root %#llx\n", v.name().c_str(), img.bytes.size(),
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
      write_elf_seeds(dir / "fuzz_elf_core");
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
