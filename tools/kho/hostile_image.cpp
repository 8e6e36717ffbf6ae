// kho_hostile_image: writes sealed handover images a hostile (or buggy) old kernel
// could leave, for measuring and testing `kho verify` on them.
//
//   kho_hostile_image dag  --out FILE [--base PHYS] [--size BYTES]
//       A sparse image (default 1 TiB at 4 GiB) whose radix entry is a six-page DAG:
//       every slot of every table level that a key can use points to the same
//       next-level page (the root's 4 below the key limit, all 512 below it), so six
//       pages written stand for 4 * 512^4 leaves. The root and the entry checksum are
//       recomputed by sealing, so only the radix reader's structure checks stand in
//       the way. The entry carries no deep checksum: it is defined over every node
//       in pre-order (512^5 pages here), which no writer could compute.
//   kho_hostile_image alternating --out FILE [--base PHYS] [--leaves N]
//       A valid handover whose radix map has N leaves of alternating bits (the most
//       ranges per byte of input: 16384 per 4 KiB leaf), in a sparse image of
//       2 * N * 128 MiB. For the bounded-memory test of verify and dump.
//
// Both write a boot page, so `kho verify --memory FILE --base PHYS` finds the root.
// Only the pages written take disk space.
#include <kho/handover.hpp>
#include <kho/model/boot_page.hpp>
#include <kho/model/physical_memory.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/preserving_page_source.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>

namespace {

using namespace kho;
using geometry = radix_geometry<12>;
using source_type = bump_page_source<flat_memory>;
using map_type = preserve_bitmap<source_type>;
using tracked_source = preserving_page_source<source_type, map_type>;

constexpr u64 generation = 1;

void check(const status& s, const char* what) {
  if (!s) throw std::runtime_error(fmt::format("{}: {}", what, to_string(s.code())));
}

/// Adds the radix entry, seals the root and writes the boot page that names it.
template <class Writer>
void seal_with_radix(model::physical_memory& pm, Writer& root, phys_addr radix_root,
                     std::optional<u64> deep_checksum) {
  check(root.add("preserved-memory-map", radix_compatible, radix_root, geometry::page_size), "add radix entry");
  if (deep_checksum) check(root.set_deep_checksum("preserved-memory-map", *deep_checksum), "deep checksum");
  check(root.seal(), "seal");
  model::write_boot_page(pm, root.root(), generation, geometry::page_shift);
}

/// Six pages: five tables whose every slot names the next page, then one leaf. The leaf
/// marks the pages the handover uses (boot page, root, the six), as a writer that
/// recorded them would; through the DAG every table path reaches the same bits.
void write_dag(const std::string& out, u64 base, u64 size) {
  auto pm = model::physical_memory::create(base, size, out);
  flat_memory mem = pm.memory();
  source_type pages(mem, pm.base() + geometry::page_size, pm.base() + pm.size());
  auto root = handover_writer<source_type>::create(pages, generation);
  if (!root) check(root.err(), "handover root");
  phys_addr level[geometry::depth];
  for (phys_addr& pa : level) {
    auto p = alloc_zeroed(pages, order{0}, geometry::page_size);
    if (!p) check(p.err(), "DAG page");
    pa = *p;
  }
  for (unsigned i = 0; i + 1 < geometry::depth; ++i) {
    // The root's slots past the key limit must be empty (a reader refuses them at
    // once); every slot a key can use points down.
    const u64 used = i == 0 ? u64{1} << (geometry::key_bits - geometry::span_bits(geometry::depth - 2))
                            : geometry::table_entries;
    auto* slots = static_cast<detail::le64*>(mem.to_virt(level[i], geometry::page_size));
    for (u64 s = 0; s < used; ++s) slots[s].set(level[i + 1].value);
  }
  auto* leaf = static_cast<detail::le64*>(mem.to_virt(level[geometry::depth - 1], geometry::page_size));
  auto mark = [&](phys_addr pa) {
    const u64 bit = (pa.value >> geometry::page_shift) & ((u64{1} << geometry::leaf_bits) - 1);
    if (bit < 2) return;  // under the all-zero path these are keys 0 and 1, which no block has
    leaf[bit / 64].set(leaf[bit / 64].get() | u64{1} << (bit % 64));
  };
  mark(pm.base());
  mark(root->root());
  for (phys_addr pa : level) mark(pa);
  seal_with_radix(pm, *root, level[0], std::nullopt);
}

/// A valid tree with `leaves` leaves of alternating bits in the image's upper half.
void write_alternating(const std::string& out, u64 base, u64 leaves) {
  const u64 leaf_span = u64{1} << (geometry::leaf_bits + geometry::page_shift);  // 128 MiB
  const u64 size = 2 * leaves * leaf_span;
  auto pm = model::physical_memory::create(base, size, out);
  flat_memory mem = pm.memory();
  source_type pages(mem, pm.base() + geometry::page_size, pm.base() + size / 2);
  auto map = map_type::create(pages);
  if (!map) check(map.err(), "map");
  check(map->preserve(pm.base(), order{0}), "boot page");
  tracked_source tracked(pages, *map);
  for (u64 pa = base + size / 2; pa < base + size; pa += 2 * geometry::page_size)
    check(map->preserve(phys_addr{pa}, order{0}), "preserve");
  auto root = handover_writer<tracked_source>::create(tracked, generation);
  if (!root) check(root.err(), "handover root");
  seal_with_radix(pm, *root, map->root(), map->deep_checksum());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kho_hostile_image: write hostile handover images"};
  app.require_subcommand(1);
  std::string out;
  u64 base = model::default_base, size = u64{1} << 40, leaves = 64;
  auto* dag = app.add_subcommand("dag", "a six-page radix DAG in a sparse image");
  dag->add_option("--out", out, "image file")->required();
  dag->add_option("--base", base, "physical base")->capture_default_str();
  dag->add_option("--size", size, "image size in bytes (sparse)")->capture_default_str();
  auto* alt = app.add_subcommand("alternating", "radix leaves of alternating bits");
  alt->add_option("--out", out, "image file")->required();
  alt->add_option("--base", base, "physical base")->capture_default_str();
  alt->add_option("--leaves", leaves, "leaves of alternating bits")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    if (*dag)
      write_dag(out, base, size);
    else
      write_alternating(out, base, leaves);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kho_hostile_image: %s\n", e.what());
    return 1;
  }
}
