// Fuzz target: an ELF core file as `kho --memory` opens it (model/elf_core.hpp,
// model/image_memory.hpp). The input is the file. A refusal is a std::runtime_error;
// anything else (a crash, a read outside the file) is a bug. Once accepted, every
// PT_LOAD's first, middle and last file byte must read back at its physical address,
// and the byte past its p_filesz must not, unless another segment starts there.
#include <kho/model/image_memory.hpp>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kho;
  int fd = ::memfd_create("fuzz-core", 0);
  if (fd < 0) return 0;
  if (size != 0 && ::pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) {
    ::close(fd);
    return 0;
  }
  model::elf_core core;
  std::unique_ptr<model::memory_image> image;
  try {
    core = model::parse_elf_core([&](u64 offset, u64 len, void* out) { std::memcpy(out, data + offset, len); },
                                 size);
    image = model::memory_image::open_elf(fd, size);  // owns fd from here
  } catch (const std::runtime_error&) {
    if (!image) ::close(fd);
    return 0;
  }
  const model::image_memory mem = image->memory();
  auto starts_a_segment = [&](u64 pa) {
    for (const model::elf_load& l : core.loads)
      if (l.filesz != 0 && l.paddr == pa) return true;
    return false;
  };
  for (const model::elf_load& l : core.loads) {
    if (l.filesz == 0) continue;
    for (u64 at : {u64{0}, l.filesz / 2, l.filesz - 1}) {
      const auto* b = static_cast<const unsigned char*>(mem.to_virt(phys_addr{l.paddr + at}, 1));
      if (b == nullptr || *b != data[l.offset + at]) __builtin_trap();
    }
    u64 end = 0;
    if (checked_add(l.paddr, l.filesz, end) && !starts_a_segment(end) &&
        mem.to_virt(phys_addr{end}, 1) != nullptr)
      __builtin_trap();
  }
  return 0;
}
