// kho/model/physical_memory.hpp: a file that stands for physical memory (hosted only).
//
// The userspace model of a kexec: a file (a memfd by default, or a path) of N bytes
// is the physical range [base, base+N). The old image maps it and builds; the next
// image maps the same file at a *different* virtual address and must find everything
// by physical address alone. The file is sparse, so a 1 GiB "machine" costs only the
// pages actually written.
//
// The first page at `base` is the boot page (model/boot_page.hpp): it plays kexec's
// part of handing the next kernel the root's physical address.
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/memory.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kho::model {

inline constexpr u64 default_base = u64{4} << 30;  // 4 GiB: above the 32-bit hole
inline constexpr u64 default_size = u64{1} << 30;  // 1 GiB, sparse

[[noreturn]] inline void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

/// A file mapped as physical memory [base, base+size). Owns the fd and the mapping.
class physical_memory {
 public:
  /// A new sparse memfd (or file at `path`, truncated) of `size` bytes.
  static physical_memory create(u64 base, u64 size, const std::string& path = {}) {
    int fd = path.empty() ? ::memfd_create("kho-phys", 0)
                          : ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw_errno("cannot create physical memory file");
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
      ::close(fd);
      throw_errno("cannot size physical memory file");
    }
    return physical_memory(fd, base, size, /*writable=*/true, nullptr);
  }

  /// Maps an existing fd (inherited across exec), avoiding the virtual address `avoid`.
  static physical_memory adopt_fd(int fd, u64 base, bool writable, const void* avoid) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw_errno("cannot stat physical memory fd");
    return physical_memory(fd, base, static_cast<u64>(st.st_size), writable, avoid);
  }

  /// Opens a memory image file, which must be a regular file. Read-only images are
  /// mapped privately, away from the virtual address `avoid` (a boot page's writer_virt).
  /// `base` must be a multiple of `page_size` (the handover's page, 4 KiB by default).
  static physical_memory open(const std::string& path, u64 base, bool writable, const void* avoid = nullptr,
                              u64 page_size = page_geometry<>::size) {
    // O_NONBLOCK: opening a FIFO without a writer would block forever; it is refused below.
    int fd = ::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) throw_errno("cannot open " + path);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      throw_errno("cannot stat " + path);
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      throw std::runtime_error(path + ": not a regular file (a memory image must be one)");
    }
    if (st.st_size <= 0) {
      ::close(fd);
      throw std::runtime_error(path + ": empty memory image");
    }
    return physical_memory(fd, base, static_cast<u64>(st.st_size), writable, avoid, page_size);
  }

  physical_memory(physical_memory&& o) noexcept
      : fd_(std::exchange(o.fd_, -1)),
        base_(o.base_),
        size_(o.size_),
        virt_(std::exchange(o.virt_, nullptr)) {}
  physical_memory& operator=(physical_memory&&) = delete;
  ~physical_memory() {
    if (virt_ != nullptr) ::munmap(virt_, size_);
    if (fd_ >= 0) ::close(fd_);
  }

  /// The Memory policy over this mapping.
  flat_memory memory() const { return flat_memory(phys_addr{base_}, size_, virt_); }
  phys_addr base() const { return phys_addr{base_}; }
  u64 size() const { return size_; }
  void* virt() const { return virt_; }
  int fd() const { return fd_; }

  /// Lets the fd survive exec (the next image inherits it).
  void keep_across_exec() const {
    int flags = ::fcntl(fd_, F_GETFD);
    if (flags < 0 || ::fcntl(fd_, F_SETFD, flags & ~FD_CLOEXEC) != 0)
      throw_errno("cannot clear FD_CLOEXEC");
  }

 private:
  physical_memory(int fd, u64 base, u64 size, bool writable, const void* avoid,
                  u64 page_size = page_geometry<>::size)
      : fd_(fd), base_(base), size_(size) {
    // The mapping starts page-aligned, so physical and virtual addresses agree on their
    // offset in a page only if the base is page-aligned; otherwise every page-aligned
    // structure would sit at a misaligned host address.
    if ((base & (page_size - 1)) != 0) {
      ::close(fd);
      throw std::invalid_argument(
          fmt::format("memory base {:#x} is not a multiple of the page size ({} bytes)", base, page_size));
    }
    u64 end = 0;
    if (!checked_add(base, size, end)) {
      ::close(fd);
      throw std::invalid_argument("base + size wraps the physical address space");
    }
    const int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    const int flags = writable ? MAP_SHARED : MAP_PRIVATE;
    void* v = ::mmap(nullptr, size, prot, flags, fd, 0);
    if (v == MAP_FAILED) {
      ::close(fd);
      throw_errno("cannot map physical memory");
    }
    if (avoid != nullptr && v == avoid) {
      // Same address as the writer by chance: map again while holding the first one.
      void* again = ::mmap(nullptr, size, prot, flags, fd, 0);
      ::munmap(v, size);
      if (again == MAP_FAILED) {
        ::close(fd);
        throw_errno("cannot remap physical memory");
      }
      v = again;
    }
    virt_ = v;
  }

  int fd_ = -1;
  u64 base_ = 0;
  u64 size_ = 0;
  void* virt_ = nullptr;
};

}  // namespace kho::model
