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
//   kho_hostile_image sample --out FILE [--base PHYS] [--size BYTES] [--page-size N]
//                            [--elf CORE]
//       A valid handover at any page size (4, 16 or 64 KiB): a blob, the demo's LUO
//       sessions, an xarray and the radix map preserving every page they use. The
//       map's pages sit in the first quarter of the image, everything else in the second
//       half; the second quarter holds nothing. With --elf the same memory is also
//       written as an ELF core (x86-64 for 4 KiB pages, aarch64 otherwise) as a guest
//       dumper would: a PT_NOTE, then PT_LOADs for the first quarter (file bytes right
//       after the headers, as QEMU puts them: not page-aligned), none for the empty
//       quarter (a hole), and two for the second half, physically and in the file
//       adjacent, split inside the root's page (page-aligned, as kdump puts them), the
//       last with one page of p_memsz past its p_filesz.
//
// All write a boot page, so `kho verify --memory FILE --base PHYS` finds the root.
// Only the pages written take disk space.
#include <kho/handover.hpp>
#include <kho/luo.hpp>
#include <kho/model/boot_page.hpp>
#include <kho/model/demo_luo.hpp>
#include <kho/model/elf_core.hpp>
#include <kho/model/physical_memory.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/preserving_page_source.hpp>
#include <kho/xarray.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

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

/// A valid handover at 2^PageShift-byte pages; returns its root.
template <unsigned PageShift>
phys_addr write_sample_handover(model::physical_memory& pm) {
  using page_source = bump_page_source<flat_memory, PageShift>;
  using map = preserve_bitmap<page_source, PageShift>;
  using tracked = preserving_page_source<page_source, map>;
  constexpr u64 page = page_geometry<PageShift>::size;
  flat_memory mem = pm.memory();
  const phys_addr base = pm.base();
  page_source low(mem, base + page, base + pm.size() / 4);
  page_source high(mem, base + pm.size() / 2, base + pm.size());
  auto preserved = map::create(low);
  if (!preserved) check(preserved.err(), "map");
  check(preserved->preserve(base, order{0}), "boot page");
  tracked pages(high, *preserved);
  auto root = handover_writer<tracked, PageShift>::create(pages, generation);
  if (!root) check(root.err(), "handover root");
  auto blob = alloc_zeroed(pages, order{0}, page);
  if (!blob) check(blob.err(), "blob");
  const char state[] = "service state that must survive the live update";
  std::memcpy(mem.to_virt(*blob, sizeof state), state, sizeof state);
  check(root->add("demo-blob", "kho-blob-v1", *blob, sizeof state), "add blob");
  check(model::build_demo_luo<PageShift>(pages, *root), "LUO");
  auto file = make_xarray<u64, PageShift>(pages);
  if (!file) check(file.err(), "xarray");
  for (u64 i = 0; i < 40; ++i) check(file->store(i * 7919, (i << PageShift) | 2), "xarray store");
  file->seal();
  check(root->add("memfd:sample", xarray_compatible, file->root(), file->root_size), "add xarray");
  // guest memory: a few pages at the end of the low quarter
  for (u64 i = 1; i <= 4; ++i) check(preserved->preserve(base + (pm.size() / 4 - 2 * i * page), order{0}), "guest");
  check(root->add("preserved-memory-map", radix_compatible, preserved->root(), page), "add radix entry");
  check(root->set_deep_checksum("preserved-memory-map", preserved->deep_checksum()), "deep checksum");
  check(root->seal(), "seal");
  model::write_boot_page(pm, root->root(), generation, PageShift);
  return root->root();
}

void write_at(int fd, u64 offset, const void* bytes, u64 len) {
  if (::pwrite(fd, bytes, len, static_cast<off_t>(offset)) != static_cast<ssize_t>(len))
    model::throw_errno("cannot write the ELF core");
}

/// The image's memory as an ELF core (see the usage above); only non-zero pages are
/// written, so the core is as sparse as the image.
void write_elf_core(const std::string& out, const model::physical_memory& pm, phys_addr root, u64 page) {
  const u64 base = pm.base().value, quarter = pm.size() / 4, half = base + 2 * quarter;
  const u64 split = root.value + page / 2;  // inside the root's page
  const u64 headers = sizeof(model::elf::header) + 4 * sizeof(model::elf::program_header);
  const u64 high_offset = (headers + quarter + 0xffff) & ~u64{0xffff};  // congruent for any host page
  const std::vector<model::elf_load> loads = {
      {base, quarter, quarter, headers},
      {half, split - half, split - half, high_offset},
      {split, base + pm.size() - split, base + pm.size() - split + page, high_offset + (split - half)},
  };
  int fd = ::open(out.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) model::throw_errno("cannot create " + out);
  const auto head = model::elf_core_headers(page == 4096 ? model::elf::machine_x86_64 : model::elf::machine_aarch64,
                                            loads);
  write_at(fd, 0, head.data(), head.size());
  const auto* bytes = static_cast<const unsigned char*>(pm.virt());
  const std::vector<unsigned char> zero(page, 0);
  for (const model::elf_load& l : loads) {
    for (u64 done = 0; done < l.filesz; done += page) {
      const u64 len = std::min(page, l.filesz - done);
      const unsigned char* src = bytes + (l.paddr - base) + done;
      if (std::memcmp(src, zero.data(), len) != 0) write_at(fd, l.offset + done, src, len);
    }
  }
  if (::ftruncate(fd, static_cast<off_t>(loads.back().offset + loads.back().filesz)) != 0)
    model::throw_errno("cannot size " + out);
  ::close(fd);
}

void write_sample(const std::string& out, u64 base, u64 size, u64 page_size, const std::string& elf_out) {
  auto pm = model::physical_memory::create(base, size, out);
  phys_addr root{};
  switch (page_size) {
    case 4096: root = write_sample_handover<12>(pm); break;
    case 16384: root = write_sample_handover<14>(pm); break;
    case 65536: root = write_sample_handover<16>(pm); break;
    default: throw std::invalid_argument("--page-size must be 4096, 16384 or 65536");
  }
  if (!elf_out.empty()) write_elf_core(elf_out, pm, root, page_size);
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
  auto* sample = app.add_subcommand("sample", "a valid handover at a page size, flat and as an ELF core");
  u64 sample_size = u64{32} << 20, page_size = 4096;
  std::string elf_out;
  sample->add_option("--out", out, "flat image file")->required();
  sample->add_option("--base", base, "physical base")->capture_default_str();
  sample->add_option("--size", sample_size, "image size in bytes (sparse)")->capture_default_str();
  sample->add_option("--page-size", page_size, "4096, 16384 or 65536")->capture_default_str();
  sample->add_option("--elf", elf_out, "also write the memory as an ELF core file");
  CLI11_PARSE(app, argc, argv);
  try {
    if (*dag)
      write_dag(out, base, size);
    else if (*sample)
      write_sample(out, base, sample_size, page_size, elf_out);
    else
      write_alternating(out, base, leaves);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kho_hostile_image: %s\n", e.what());
    return 1;
  }
}
