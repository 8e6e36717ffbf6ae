// tests/golden_images.hpp: the deterministic handover images behind tests/golden/ and
// the fuzz seeds. Each builder writes into a zeroed buffer standing for physical
// memory [image_base, image_base + size) with a bump page source, so its bytes depend
// only on the writer code: any drift in a format shows up as a byte difference.
#pragma once

#include <kho/handover.hpp>
#include <kho/block_list.hpp>
#include <kho/model/demo_luo.hpp>
#include <kho/model/demo_xarray.hpp>
#include <kho/xarray.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/preserving_page_source.hpp>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace kho::golden {

inline constexpr u64 image_base = u64{1} << 32;

struct image {
  std::vector<unsigned char> bytes;
  phys_addr root{};
};

/// Page-aligned scratch memory for a writer; copied out into `image::bytes`.
class arena_buffer {
 public:
  explicit arena_buffer(u64 size)
      : data_(static_cast<unsigned char*>(std::aligned_alloc(65536, size))),
        mem_(phys_addr{image_base}, size, data_), pages_(mem_, mem_.base(), mem_.end()) {
    std::memset(data_, 0, size);
  }
  ~arena_buffer() { std::free(data_); }
  bump_page_source<flat_memory>& pages() { return pages_; }
  const flat_memory& memory() const { return mem_; }
  /// The image up to the highest page used.
  image take(phys_addr root) const {
    const u64 used = pages_.high_water() - mem_.base();
    return image{std::vector<unsigned char>(data_, data_ + used), root};
  }

 private:
  unsigned char* data_;
  flat_memory mem_;
  bump_page_source<flat_memory> pages_;
};

inline void must(const status& s, const char* what) {
  if (!s) throw std::runtime_error(std::string(what) + ": " + to_string(s.code()));
}

/// A root with `blobs` small checksummed blobs.
inline image root_with_blobs(unsigned blobs) {
  arena_buffer a(u64{1} << 20);
  auto w = handover_writer<bump_page_source<flat_memory>>::create(a.pages(), 42);
  if (!w) throw std::runtime_error("root");
  for (unsigned i = 0; i < blobs; ++i) {
    auto pa = alloc_zeroed(a.pages(), order{0}, 4096);
    if (!pa) throw std::runtime_error("blob");
    const std::string text = "blob number " + std::to_string(i);
    std::memcpy(a.memory().to_virt(*pa, text.size()), text.data(), text.size());
    must(w->add(("blob-" + std::to_string(i)).c_str(), "kho-blob-v1", *pa, text.size()), "add");
  }
  must(w->seal(), "seal");
  return a.take(w->root());
}

/// A bare radix tree (no root around it), as Linux would leave one: no own-page records.
inline image radix_tree(unsigned pattern) {
  arena_buffer a(u64{4} << 20);
  auto t = preserve_bitmap<bump_page_source<flat_memory>>::create(a.pages(), false);
  if (!t) throw std::runtime_error("tree");
  if (pattern == 0) {
    must(t->preserve(phys_addr{0x1000}, order{0}), "p");
  } else if (pattern == 1) {
    for (u64 i = 0; i < 200; ++i) must(t->preserve(phys_addr{0x100000000 + i * 0x3000}, order{0}), "p");
    must(t->preserve(phys_addr{0x40000000}, order{18}), "p");
    must(t->preserve(phys_addr{0x200000}, order{9}), "p");
  } else {
    for (u64 i = 0; i < 512; ++i) must(t->preserve(phys_addr{0x80000000 + i * 0x1000}, order{0}), "p");
    must(t->preserve(phys_addr{u64{1} << 63}, order{51}), "p");
    must(t->preserve(phys_addr{0xfffffffffffff000}, order{0}), "p");
  }
  return a.take(t->root());
}

/// The demo's shape: blob, LUO sessions and the map of every page, deep-checksummed.
inline image full_handover() {
  using source = bump_page_source<flat_memory>;
  using tracked = preserving_page_source<source, preserve_bitmap<source>>;
  arena_buffer a(u64{4} << 20);
  auto map = preserve_bitmap<source>::create(a.pages());
  if (!map) throw std::runtime_error("map");
  tracked pages(a.pages(), *map);
  auto w = handover_writer<tracked>::create(pages, 7);
  if (!w) throw std::runtime_error("root");
  auto blob = alloc_zeroed(pages, order{0}, 4096);
  if (!blob) throw std::runtime_error("blob");
  std::memcpy(a.memory().to_virt(*blob, 5), "hello", 5);
  must(w->add("demo-blob", "kho-blob-v1", *blob, 5), "blob");
  must(model::build_demo_luo(pages, *w), "luo");
  // A memfd-shaped xarray: the folios' values are recorded, not allocated, to keep the
  // image small (the format is what is golden here).
  auto file = make_xarray<u64, 12>(pages);
  if (!file) throw std::runtime_error("xarray");
  for (u64 i = 0; i < 100; ++i) must(file->store(i, model::memfd_value(phys_addr{0x200000000 + i * 4096}, 2)), "store");
  must(file->store_range(1024, order{9}, model::memfd_value(phys_addr{0x240000000}, 3)), "range");
  must(file->set_mark(1024, model::memfd_mark_dirty), "mark");
  must(file->store(u64{1000000000}, model::memfd_value(phys_addr{0x280000000}, 2)), "sparse");
  file->seal();
  must(w->add(model::memfd_entry_name, xarray_compatible, file->root(), file->root_size), "memfd");
  must(w->add("preserved-memory-map", radix_compatible, map->root(), 4096), "map");
  must(w->set_deep_checksum("preserved-memory-map", map->deep_checksum()), "deep");
  must(w->seal(), "seal");
  return a.take(w->root());
}

/// A bare block list of 600 16-byte records: three 4 KiB blocks (255 per block).
inline image block_list_records() {
  struct record {
    u64 a, b;
  };
  arena_buffer a(u64{1} << 20);
  block_list<record, bump_page_source<flat_memory>> list(a.pages());
  for (u64 i = 0; i < 600; ++i)
    if (!list.push_back(record{i, i * i})) throw std::runtime_error("push_back");
  return a.take(list.head());
}

struct golden_image {
  std::string name;
  std::function<image()> make;
};

inline std::vector<golden_image> all() {
  return {
      {"root-empty", [] { return root_with_blobs(0); }},
      {"root-three-blobs", [] { return root_with_blobs(3); }},
      {"root-full-table", [] { return root_with_blobs(31); }},
      {"radix-one-page", [] { return radix_tree(0); }},
      {"radix-mixed-orders", [] { return radix_tree(1); }},
      {"radix-edges", [] { return radix_tree(2); }},
      {"handover-full", [] { return full_handover(); }},
      {"block-list-600", [] { return block_list_records(); }},
  };
}

}  // namespace kho::golden
