// tests/fuzz/fuzz_input.hpp: turning fuzzer bytes into a memory image and a root.
//
// Input layout: [root offset: 8 bytes LE][image bytes...]. The image stands for
// physical memory [image_base, image_base + size) and is copied into page-aligned
// storage; the root is image_base + offset (any offset: misaligned and out-of-range
// roots are part of the input space).
//
// guarded_memory is the Memory policy the targets read through. Once validation has
// passed the target arms it: from then on a read outside the image is not an error
// the code handles but a broken promise ("validation passed implies every later read
// is in bounds"), and it traps.
#pragma once

#include <kho/memory.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace kho::fuzz {

inline constexpr u64 image_base = u64{1} << 32;

struct guarded_memory {
  flat_memory inner;
  const bool* armed;

  void* to_virt(phys_addr pa, u64 len) const {
    void* v = inner.to_virt(pa, len);
    if (v == nullptr && *armed) __builtin_trap();
    return v;
  }
};
static_assert(Memory<guarded_memory>);

/// Bytes from the input's root to the end of its image (0 if the root is outside).
inline u64 bytes_from_root(const uint8_t* data, size_t size) {
  u64 offset = 0;
  if (size >= 8) std::memcpy(&offset, data, 8);
  const u64 image_bytes = size >= 8 ? size - 8 : size;
  return offset < image_bytes ? image_bytes - offset : 0;
}

class image {
 public:
  image(const uint8_t* data, size_t size) {
    u64 offset = 0;
    if (size >= 8) {
      std::memcpy(&offset, data, 8);
      data += 8;
      size -= 8;
    }
    size_ = size;
    storage_ = static_cast<unsigned char*>(std::aligned_alloc(65536, (size + 65535) & ~size_t{65535}));
    if (size != 0) std::memcpy(storage_, data, size);
    root_ = phys_addr{image_base + offset};
  }
  ~image() { std::free(storage_); }
  image(const image&) = delete;
  image& operator=(const image&) = delete;

  guarded_memory memory() const { return {flat_memory(phys_addr{image_base}, size_, storage_), &armed_}; }
  phys_addr root() const { return root_; }
  u64 size() const { return size_; }
  void arm() { armed_ = true; }

 private:
  unsigned char* storage_ = nullptr;
  u64 size_ = 0;
  phys_addr root_{};
  bool armed_ = false;
};

}  // namespace kho::fuzz
