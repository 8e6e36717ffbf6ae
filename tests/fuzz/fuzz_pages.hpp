// tests/fuzz/fuzz_pages.hpp: the large buffers a fuzz target keeps for its whole run.
//
// They are anonymous mappings, not arrays in .bss: LeakSanitizer scans every global
// at exit, and 350 MB of zero pages cost each sanitized corpus run 0.7 s of page
// faults; it never scans an anonymous mapping. The buffers hold physical addresses
// and bytes, never a pointer into the heap, so no leak check is lost.
#pragma once

#include <kho/phys.hpp>

#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>

namespace kho::fuzz {

/// `Bytes` zeroed, page-aligned bytes, mapped on construction and kept until exit.
/// Reads as an `unsigned char*`; `size` stands in for `sizeof` of the array it replaces.
template <u64 Bytes>
struct pages {
  static constexpr u64 size = Bytes;
  unsigned char* const data = map();
  operator unsigned char*() const { return data; }

 private:
  static unsigned char* map() {
    void* p = ::mmap(nullptr, Bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      std::perror("fuzz pages: mmap");
      std::abort();
    }
    return static_cast<unsigned char*>(p);
  }
};

}  // namespace kho::fuzz
