// kho/model/image_memory.hpp: a memory image of several physical ranges (hosted only).
//
// A flat image is one physical range; a guest's ELF core (model/elf_core.hpp) is
// several, with holes between them (the PCI hole, ranges the dumper left out).
// memory_image owns the mappings of either; image_memory is the Memory policy over it,
// a pointer wide, so views copy it freely.
//
//   ranges (sorted, disjoint)      host
//   [base0, base0 + size0)   ->    file mapped at the segment's offset       (mapped)
//   [base1, base1 + size1)   ->    anonymous pages read from the file on use (copied)
//
// A structure that is page-aligned in physical memory must be page-aligned in the
// host too (the readers load u64 fields in place), so a range is mapped from the file
// only when its file offset and its physical address agree modulo the host page size
// (kdump's /proc/vmcore: it keeps them congruent). Otherwise (a QEMU dump puts its
// segments right after its notes) the range is an anonymous reservation whose pages
// are read from the file the first time a reader asks for any byte of them: memory
// and I/O stay O(bytes read), as with a mapping. Adjacent segments whose file bytes
// are adjacent too are one range, so a structure may straddle them.
//
// Not thread-safe for copied ranges (a page is read on first use); the CLI reads from
// one thread.
#pragma once

#include <kho/hole_finder.hpp>
#include <kho/memory.hpp>
#include <kho/model/elf_core.hpp>
#include <kho/model/physical_memory.hpp>
#include <kho/phys.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kho::model {

class memory_image;

/// The Memory policy over a memory_image (which must outlive it).
class image_memory {
 public:
  explicit image_memory(const memory_image* image) : image_(image) {}

  /// The bytes [pa, pa+len) if one range holds all of them, else nullptr.
  /// Complexity: O(log ranges), plus reading the pages of a copied range not yet read.
  /// Errors: nullptr outside memory; std::system_error if the file cannot be read.
  void* to_virt(phys_addr pa, u64 len) const;
  /// Bytes of memory in all ranges (sizes scratch and node lists, as flat_memory::size).
  u64 size() const;
  /// The physical ranges, sorted: the RAM the image stands for.
  std::span<const phys_range> ranges() const;

 private:
  const memory_image* image_;
};
static_assert(Memory<image_memory>);

class memory_image {
 public:
  /// One range over a flat image's mapping, which the caller keeps alive.
  static std::unique_ptr<memory_image> over(const flat_memory& flat) {
    std::unique_ptr<memory_image> m(new memory_image());
    m->ranges_.push_back({flat.base().value, flat.size(), static_cast<unsigned char*>(flat.virt())});
    m->finish();
    return m;
  }

  /// Maps the PT_LOAD segments of the ELF core file `fd` (kept open; closed with the
  /// image) of `file_size` bytes. Errors: std::runtime_error for a malformed core
  /// (parse_elf_core), std::system_error when mapping or reading fails.
  static std::unique_ptr<memory_image> open_elf(int fd, u64 file_size) {
    std::unique_ptr<memory_image> m(new memory_image());
    m->fd_ = fd;
    const elf_core core = parse_elf_core(
        [fd](u64 offset, u64 len, void* out) { read_fully(fd, offset, len, static_cast<unsigned char*>(out)); },
        file_size);
    m->machine_ = core.machine;
    for (const elf_load& l : core.loads) {
      if (l.filesz == 0) continue;
      range* last = m->ranges_.empty() ? nullptr : &m->ranges_.back();
      if (last != nullptr && last->open_end && last->base + last->size == l.paddr &&
          last->offset + last->size == l.offset) {
        last->size += l.filesz;  // physically and in the file adjacent: one range
        last->open_end = l.filesz == l.memsz;
        continue;
      }
      range r{l.paddr, l.filesz, nullptr};
      r.offset = l.offset;
      r.open_end = l.filesz == l.memsz;
      m->ranges_.push_back(r);
    }
    for (range& r : m->ranges_) m->map(r);
    m->finish();
    return m;
  }

  memory_image(const memory_image&) = delete;
  memory_image& operator=(const memory_image&) = delete;
  ~memory_image() {
    for (const range& r : ranges_)
      if (r.map != nullptr) ::munmap(r.map, r.map_len);
    if (fd_ >= 0) ::close(fd_);
  }

  image_memory memory() const { return image_memory(this); }
  std::span<const phys_range> ranges() const { return phys_; }
  u64 size() const { return bytes_; }
  /// e_machine of an ELF core (0 for a flat image).
  u16 machine() const { return machine_; }
  /// Ranges whose pages are read from the file on use (not congruent to the host page).
  unsigned copied_ranges() const {
    return static_cast<unsigned>(std::count_if(ranges_.begin(), ranges_.end(), [](const range& r) { return r.copied; }));
  }

  void* to_virt(phys_addr pa, u64 len) const {
    // the last range starting at or below pa
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), pa.value,
                               [](u64 v, const range& r) { return v < r.base; });
    if (it == ranges_.begin()) return nullptr;
    const range& r = *--it;
    if (!range_within(pa.value, len, r.base, r.base + r.size) || pa.value - r.base >= r.size) return nullptr;
    if (r.copied) load(r, pa.value - r.base, len);
    return r.virt + (pa.value - r.base);
  }

 private:
  struct range {
    u64 base = 0;
    u64 size = 0;
    unsigned char* virt = nullptr;  // host address of `base`
    u64 offset = 0;                 // file offset of `base` (ELF ranges)
    bool open_end = false;          // no absent tail: an adjacent segment may extend it
    unsigned char* map = nullptr;   // what to munmap (owned mappings only)
    u64 map_len = 0;
    bool copied = false;
    mutable std::vector<u64> loaded{};  // copied ranges: one bit per host page read
  };

  memory_image() = default;

  static u64 host_page() { return static_cast<u64>(::sysconf(_SC_PAGESIZE)); }

  static void read_fully(int fd, u64 offset, u64 len, unsigned char* out) {
    while (len != 0) {
      const ssize_t n = ::pread(fd, out, len, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno(fmt::format("cannot read the core file at {:#x}", offset));
      if (n == 0) throw std::runtime_error(fmt::format("core file ends at {:#x}, before its segments do", offset));
      out += n;
      offset += static_cast<u64>(n);
      len -= static_cast<u64>(n);
    }
  }

  void map(range& r) {
    const u64 page = host_page();
    const u64 skew = r.base & (page - 1);  // host and physical agree modulo the page
    if (((r.offset - r.base) & (page - 1)) == 0) {
      r.map_len = skew + r.size;
      void* v = ::mmap(nullptr, r.map_len, PROT_READ, MAP_PRIVATE, fd_, static_cast<off_t>(r.offset - skew));
      if (v == MAP_FAILED) throw_errno(fmt::format("cannot map the core's segment at {:#x}", r.base));
      r.map = static_cast<unsigned char*>(v);
    } else {
      r.map_len = (skew + r.size + page - 1) & ~(page - 1);
      void* v = ::mmap(nullptr, r.map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (v == MAP_FAILED) throw_errno(fmt::format("cannot reserve memory for the core's segment at {:#x}", r.base));
      r.map = static_cast<unsigned char*>(v);
      r.copied = true;
      r.loaded.assign((r.map_len / page + 63) / 64, 0);
    }
    r.virt = r.map + skew;
  }

  /// Reads the host pages of copied range `r` that hold [at, at + len) of it.
  void load(const range& r, u64 at, u64 len) const {
    const u64 page = host_page();
    const u64 skew = static_cast<u64>(r.virt - r.map);
    const u64 first = (skew + at) / page;
    const u64 last = (skew + at + (len ? len - 1 : 0)) / page;
    for (u64 p = first; p <= last; ++p) {
      u64& word = r.loaded[p / 64];
      if ((word >> (p % 64)) & 1) continue;
      // the range's bytes on this host page: [lo, hi) of the range
      const u64 lo = p * page > skew ? p * page - skew : 0;
      const u64 hi = std::min(r.size, (p + 1) * page - skew);
      read_fully(fd_, r.offset + lo, hi - lo, r.virt + lo);
      word |= u64{1} << (p % 64);
    }
  }

  void finish() {
    for (const range& r : ranges_) {
      phys_.push_back({phys_addr{r.base}, phys_addr{r.base + r.size}});
      bytes_ += r.size;
    }
  }

  std::vector<range> ranges_;
  std::vector<phys_range> phys_;
  u64 bytes_ = 0;
  int fd_ = -1;
  u16 machine_ = 0;
};

inline void* image_memory::to_virt(phys_addr pa, u64 len) const { return image_->to_virt(pa, len); }
inline u64 image_memory::size() const { return image_->size(); }
inline std::span<const phys_range> image_memory::ranges() const { return image_->ranges(); }

/// The RAM a Memory stands for, for the hole finder: a flat memory's one range.
inline std::vector<phys_range> ram_ranges(const flat_memory& mem) { return {{mem.base(), mem.end()}}; }
inline std::vector<phys_range> ram_ranges(const image_memory& mem) {
  return {mem.ranges().begin(), mem.ranges().end()};
}

/// True if `path` is a regular file that starts with the ELF magic. Anything else
/// (missing, not regular, short) is left to the flat image's open to refuse.
inline bool is_elf_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return false;
  struct stat st {};
  unsigned char head[sizeof elf::magic] = {};
  const bool elf = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                   ::pread(fd, head, sizeof head, 0) == static_cast<ssize_t>(sizeof head) &&
                   has_elf_magic(head, sizeof head);
  ::close(fd);
  return elf;
}

/// Opens an ELF core file at `path` as a memory_image.
/// Errors: std::system_error (open, stat, map), std::runtime_error (not a regular file,
/// malformed core).
inline std::unique_ptr<memory_image> open_elf_core(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw_errno("cannot open " + path);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw std::runtime_error(path + ": not a regular file (a memory image must be one)");
  }
  try {
    return memory_image::open_elf(fd, static_cast<u64>(st.st_size));
  } catch (const std::runtime_error& e) {
    // open_elf owns fd once the image exists; it fails before that only in new
    throw std::runtime_error(path + ": " + e.what());
  }
}

}  // namespace kho::model
