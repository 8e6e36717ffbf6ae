// kho/model/scratch_pages.hpp: scratch pages for readers, mapped as they are used (hosted only).
//
// Validation keeps its bookkeeping (visited sets, duplicate indexes, owner tables) in
// pages a PageSource lends, never in the memory being read. In the model those pages
// sit in a physical range of their own, far from any modelled RAM, and are mapped in
// chunks that double in size as the bump pointer reaches them:
//
//   offset  0 ...... c ...... 2c ............ 4c ........................ 8c ...
//           (unused) | chunk 0 | chunk 1       | chunk 2                   | ...
//
// Chunk k covers [2^k c, 2^(k+1) c) of the range. Every chunk is aligned to its own
// size, so a naturally aligned block of any order that starts in a chunk ends in it:
// each block the source lends is contiguous in virtual memory too. What a reading
// costs in address space is therefore at most twice what its readers used, whatever
// the size of the memory it reads (a 64 TiB sparse image with a small handover needs
// a few chunks), and a `ulimit -v` that admits the image admits its scratch.
//
// Chunks are anonymous, private and unreserved mappings. When a scratch_pages goes, its
// chunks stay mapped for the next one on the same thread, up to `kept_bytes` in all:
// a tool or test that reads many handovers in turn maps its scratch once, and pays no
// munmap (whose TLB shootdowns dominated such loops) per reading. So a block's bytes
// are unspecified when lent, as the PageSource contract says; readers zero what they
// use (alloc_zeroed).
#pragma once

#include <kho/memory.hpp>
#include <kho/model/physical_memory.hpp>

#include <array>
#include <bit>
#include <memory>

#include <sys/mman.h>

namespace kho::model {

namespace detail_scratch {

inline constexpr unsigned first_chunk_shift = 20;  // chunk 0: 1 MiB
inline constexpr unsigned max_chunks = 46 - first_chunk_shift;
inline constexpr u64 kept_bytes = u64{64} << 20;  // mapped chunks kept per thread

/// Mapped chunks waiting for the next scratch on this thread, by chunk index.
struct chunk_pool {
  std::array<void*, max_chunks> chunks{};
  u64 bytes = 0;

  ~chunk_pool() {
    for (unsigned k = 0; k < max_chunks; ++k)
      if (chunks[k] != nullptr) ::munmap(chunks[k], chunk_bytes(k));
  }
  static constexpr u64 chunk_bytes(unsigned k) { return u64{1} << (first_chunk_shift + k); }
};

inline chunk_pool& this_threads_pool() {
  thread_local chunk_pool pool;
  return pool;
}

/// The chunks of one scratch range, mapped on first use.
class chunk_space {
 public:
  chunk_space(u64 base, u64 ceiling) : base_(base), ceiling_(ceiling) {}
  chunk_space(const chunk_space&) = delete;
  chunk_space& operator=(const chunk_space&) = delete;
  ~chunk_space() {
    chunk_pool& pool = this_threads_pool();
    for (unsigned k = 0; k < max_chunks; ++k) {
      if (chunks_[k] == nullptr) continue;
      const u64 bytes = chunk_pool::chunk_bytes(k);
      if (pool.chunks[k] == nullptr && pool.bytes + bytes <= kept_bytes) {
        pool.chunks[k] = chunks_[k];
        pool.bytes += bytes;
      } else {
        ::munmap(chunks_[k], bytes);
      }
    }
  }

  /// The bytes [pa, pa+len), mapping their chunk if need be; nullptr if they are not
  /// inside one chunk below the ceiling, or the chunk cannot be mapped.
  void* to_virt(phys_addr pa, u64 len) const {
    if (pa.value < base_) return nullptr;
    const u64 off = pa.value - base_;
    if (off < chunk_pool::chunk_bytes(0) || off >= ceiling_) return nullptr;
    const unsigned k = static_cast<unsigned>(std::bit_width(off >> first_chunk_shift)) - 1;
    const u64 start = chunk_pool::chunk_bytes(k);  // chunk k starts at its own size: [start, 2 * start)
    if (len > 2 * start - off) return nullptr;
    unsigned char* chunk = chunks_[k] != nullptr ? chunks_[k] : map(k);
    return chunk == nullptr ? nullptr : chunk + (off - start);
  }

  u64 base() const { return base_; }
  u64 ceiling() const { return ceiling_; }

 private:
  unsigned char* map(unsigned k) const {
    chunk_pool& pool = this_threads_pool();
    void* v = pool.chunks[k];
    if (v != nullptr) {
      pool.chunks[k] = nullptr;
      pool.bytes -= chunk_pool::chunk_bytes(k);
    } else {
      v = ::mmap(nullptr, chunk_pool::chunk_bytes(k), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (v == MAP_FAILED) return nullptr;
    }
    chunks_[k] = static_cast<unsigned char*>(v);
    return chunks_[k];
  }

  u64 base_, ceiling_;
  mutable std::array<unsigned char*, max_chunks> chunks_{};
};

}  // namespace detail_scratch

/// The Memory policy over a scratch range: a handle, copied into every view that reads
/// scratch, to the chunks its scratch_pages owns.
class scratch_memory {
 public:
  explicit scratch_memory(const detail_scratch::chunk_space* space = nullptr) : space_(space) {}
  void* to_virt(phys_addr pa, u64 len) const { return space_ ? space_->to_virt(pa, len) : nullptr; }

 private:
  const detail_scratch::chunk_space* space_;
};
static_assert(Memory<scratch_memory>);

/// Scratch for reading `reading` (any Memory with a size() in bytes). The ceiling is
/// what a reading could ever need: the readers' indexes take about 64 bytes per entry
/// (or per node page) at most and entries take at least 80 bytes of memory, so twice
/// the memory being read, plus slack, always suffices. Pages are 2^PageShift bytes, the
/// handover's: a reader's scratch tables are sized in its pages, so the slack is
/// counted in them: 16384 (64 MiB at 4 KiB). Only what the readers use is mapped.
template <unsigned PageShift = 12>
class scratch_pages {
 public:
  using source_type = bump_page_source<scratch_memory, PageShift>;
  static constexpr u64 base = u64{1} << 46;  // far from any modelled RAM
  static constexpr u64 slack = u64{16384} << PageShift;
  static constexpr u64 most = u64{1} << 45;  // the range's own size

  template <Memory M>
  explicit scratch_pages(const M& reading)
      : space_(std::make_unique<detail_scratch::chunk_space>(base, ceiling_for(reading.size()))),
        pages_(scratch_memory(space_.get()), phys_addr{base + detail_scratch::chunk_pool::chunk_bytes(0)},
               phys_addr{base + space_->ceiling()}) {}

  source_type& pages() { return pages_; }

 private:
  static u64 ceiling_for(u64 reading_bytes) {
    const u64 want = reading_bytes > (most - slack) / 2 ? most : 2 * reading_bytes + slack;
    return detail_scratch::chunk_pool::chunk_bytes(0) + want;
  }

  std::unique_ptr<detail_scratch::chunk_space> space_;
  source_type pages_;
};

}  // namespace kho::model
