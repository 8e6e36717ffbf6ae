// kho/linux/kho_mem_chunks.hpp: the preserved-memory map of a "kho-v1" KHO root, a
// chain of one-page chunks of (start, bitmap) pairs, read and written as the kernel
// that wrote kho-v1 does.
//
// Upstream: kernel/liveupdate/kexec_handover.c at torvalds/linux dd03dd60 (struct
// khoser_mem_chunk; the header kexec_handover.h @ c17ee635 names "kho-v1"), replaced
// by the radix tree in kho-v2. docs/format.md "kho-v1 memory map" draws the bytes:
//
//   chunk (one page)   0  u64 next chunk's physical address, 0 = last
//                      8  u32 order of every bitmap in this chunk
//                     12  u32 count of entries used
//                     16  entries[(PAGE_SIZE - 16) / 16]  (255 with 4 KiB pages)
//   entry (16 bytes)   0  u64 start: the physical address bit 0 stands for
//                      8  u64 physical address of a one-page bitmap
//   bitmap (one page)  bit b (bit b%64 of LE u64 word b/64) = the block of `order`
//                      at start + (b << (PAGE_SHIFT + order)) is preserved
//
// A bitmap covers PAGE_SIZE*8 consecutive blocks of its order, so `start` is a
// multiple of that span: (n * PAGE_SIZE*8) << (PAGE_SHIFT + order) for the bitmap's
// number n. The kernel writes at kexec time: for each order ascending, a fresh chunk,
// then that order's bitmaps by ascending start, a new chunk of the same order when one
// fills. Neither chunks nor bitmaps are preserved or recorded (the next kernel runs in
// scratch until it has read them); the map page value 0 means "no chunk".
//
// The kernel's reader trusts all of it (no bound on count, no cycle check). This
// reader checks: every chunk and bitmap page-aligned and inside memory; no page
// reached twice (a chunk cycle, a bitmap named twice, a bitmap that is a chunk);
// count <= entries per chunk; order small enough that a bitmap's span fits 64 bits;
// start aligned to the span; and the entries strictly ascending by (order, start)
// across the chain, which the kernel's writer always produces, so no range is
// described twice.
// Complexity: attach O(chunks + bitmap bytes) time, O(pages reached) scratch (a
// visited set, returned before attach returns); queries O(entries).
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/detail/probe_table.hpp>
#include <kho/memory.hpp>
#include <kho/phys.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/result.hpp>

#include <cstring>

namespace kho::upstream {

template <unsigned PageShift>
struct kho_mem_chunk_geometry {
  static constexpr u64 page_size = u64{1} << PageShift;
  static constexpr u64 header_bytes = 16;
  static constexpr u64 entry_bytes = 16;
  static constexpr u64 entries = (page_size - header_bytes) / entry_bytes;  // 255 for 4 KiB
  static constexpr unsigned bitmap_bits_log2 = PageShift + 3;                // bits in a page
  static constexpr u64 bitmap_words = page_size / 8;
  // Largest order whose bitmap span (2^(bitmap_bits_log2 + PAGE_SHIFT + order) bytes)
  // still fits in 64 bits: 60 - 2 * PAGE_SHIFT, 36 for 4 KiB pages, beyond any folio.
  static constexpr unsigned max_order = 64 - bitmap_bits_log2 - PageShift - 1;
  static constexpr unsigned span_shift(unsigned o) { return bitmap_bits_log2 + PageShift + o; }
};

struct kho_mem_chunk_header {
  detail::le64 next;
  detail::le32 order;
  detail::le32 count;
};
struct kho_mem_chunk_entry {
  detail::le64 start;
  detail::le64 bitmap;
};
static_assert(sizeof(kho_mem_chunk_header) == 16 && sizeof(kho_mem_chunk_entry) == 16);
static_assert(std::has_unique_object_representations_v<kho_mem_chunk_header> &&
              std::has_unique_object_representations_v<kho_mem_chunk_entry>);

/// What write_kho_mem_chunks built: the first chunk (preserved-memory-map's value)
/// and the pages it took.
struct kho_mem_chunks_blob {
  phys_addr first{};
  u64 chunks = 0;
  u64 bitmaps = 0;
};

/// Writes the blocks of `map` (anything with count(order) and for_each_block(f(pa,
/// order)), such as preserve_bitmap) as a kho-v1 chunk chain, in the kernel's order.
/// `source` must not record into `map` while it is walked: the kernel does not
/// preserve these pages either.
/// Complexity: O(k * blocks) for the k orders present, plus a page per chunk and per
/// bitmap. Errors: out_of_memory, out_of_range (an order beyond the format's).
template <unsigned PageShift = 12, PageSource Source, class Map>
result<kho_mem_chunks_blob> write_kho_mem_chunks(Source& source, const Map& map) {
  using geo = kho_mem_chunk_geometry<PageShift>;
  kho_mem_chunks_blob out;
  kho_mem_chunk_header* chunk = nullptr;
  status s;
  for (unsigned o = 0; o < Map::orders && s; ++o) {
    if (map.count(order{o}) == 0) continue;
    if (o > geo::max_order) return errc::out_of_range;
    auto open_chunk = [&]() -> status {
      auto pa = alloc_zeroed(source, order{0}, geo::page_size);
      if (!pa) return pa.err();
      auto* c = static_cast<kho_mem_chunk_header*>(source.memory().to_virt(*pa, geo::page_size));
      c->order.set(o);
      if (chunk) chunk->next.set(pa->value);
      else out.first = *pa;
      chunk = c;
      ++out.chunks;
      return {};
    };
    s = open_chunk();
    u64 current = ~u64{0};
    u64* bits = nullptr;
    map.for_each_block([&](phys_addr pa, order bo) {
      if (!s || bo.value != o) return;
      const u64 high = pa.value >> (PageShift + o);
      const u64 n = high >> geo::bitmap_bits_log2;
      if (n != current) {
        if (chunk->count.get() == geo::entries && !(s = open_chunk())) return;
        auto bp = alloc_zeroed(source, order{0}, geo::page_size);
        if (!bp) {
          s = bp.err();
          return;
        }
        auto* e = reinterpret_cast<kho_mem_chunk_entry*>(reinterpret_cast<unsigned char*>(chunk) + 16) +
                  chunk->count.get();
        e->start.set((n << geo::bitmap_bits_log2) << (PageShift + o));
        e->bitmap.set(bp->value);
        chunk->count.set(chunk->count.get() + 1);
        bits = static_cast<u64*>(source.memory().to_virt(*bp, geo::page_size));
        current = n;
        ++out.bitmaps;
      }
      const u64 b = high & ((u64{1} << geo::bitmap_bits_log2) - 1);
      detail::store_le(bits + (b >> 6), detail::load_le(bits + (b >> 6)) | u64{1} << (b & 63));
    });
  }
  if (!s) return s.err();
  return out;
}

/// A validated kho-v1 chunk chain, queried in place.
template <Memory M, unsigned PageShift = 12>
class kho_mem_chunks_view {
 public:
  using geo = kho_mem_chunk_geometry<PageShift>;
  static constexpr unsigned orders = geo::max_order + 1;
  static constexpr const char* structure = "kho-mem-chunks";

  /// Validates the chain from `first` (0: an empty map). Scratch from `scratch` holds
  /// the visited set and is returned before attach returns.
  /// Complexity: O(chunks + bitmap bytes). Errors (loc: "kho-mem-chunks", the chunk
  /// or bitmap page, depth = the chunk's index in the chain): misaligned,
  /// out_of_bounds, cycle (a page reached twice), bad_count (count over the entries
  /// a chunk holds), out_of_range (an order over geo::max_order), misaligned (a start
  /// not a multiple of its bitmap's span, at the chunk), bad_level (entries not
  /// strictly ascending by (order, start), at the chunk), out_of_memory /
  /// budget_exceeded (scratch).
  template <PageSource Scratch>
  static result<kho_mem_chunks_view> attach(const M& mem, phys_addr first, Scratch& scratch) {
    kho_mem_chunks_view v(mem, first);
    detail::probe_table<detail::radix_node_slot, Scratch, PageShift> seen;
    const status s = v.validate(seen, scratch);
    seen.release(scratch);
    if (!s) return s.err();
    return v;
  }

  phys_addr first() const { return first_; }
  const M& memory() const { return mem_; }
  u64 chunk_count() const { return chunks_; }
  u64 bitmap_count() const { return bitmaps_; }
  u64 count(order o) const { return o.value < orders ? counts_[o.value] : 0; }

  /// Calls f(start, order, bitmap words) for every entry, in chain order.
  template <class F>
  void for_each_entry(F&& f) const {
    for (phys_addr c = first_; c;) {
      const kho_mem_chunk_header* h = header(c);
      for (u32 i = 0; i < h->count.get(); ++i) {
        const kho_mem_chunk_entry& e = entry(h, i);
        f(phys_addr{e.start.get()}, order{h->order.get()}, words(phys_addr{e.bitmap.get()}));
      }
      c = phys_addr{h->next.get()};
    }
  }

  /// Calls f(pa, order) for every preserved block: orders ascending, addresses
  /// ascending within an order (the chain's order). Complexity: O(bitmap bytes + blocks).
  template <class F>
  void for_each_block(F&& f) const {
    for_each_entry([&](phys_addr start, order o, const u64* w) {
      for (u64 i = 0; i < geo::bitmap_words; ++i)
        for (u64 bits = detail::load_le(w + i); bits != 0; bits &= bits - 1) {
          const u64 b = (i << 6) + static_cast<u64>(__builtin_ctzll(bits));
          f(phys_addr{start.value + (b << (PageShift + o.value))}, o);
        }
    });
  }

  /// True if exactly block (pa, o) is preserved. Complexity: O(entries).
  bool contains(phys_addr pa, order o) const {
    if (o.value >= orders || counts_[o.value] == 0) return false;
    const unsigned shift = PageShift + o.value;
    if ((pa.value & ((u64{1} << shift) - 1)) != 0) return false;
    const u64 span = u64{1} << geo::span_shift(o.value);
    const u64 start = pa.value & ~(span - 1);
    bool hit = false;
    for_each_entry([&](phys_addr s, order eo, const u64* w) {
      if (hit || eo.value != o.value || s.value != start) return;
      const u64 b = (pa.value - start) >> shift;
      hit = ((detail::load_le(w + (b >> 6)) >> (b & 63)) & 1) != 0;
    });
    return hit;
  }

  /// True if a preserved block of any order covers `pa`. Complexity: O(orders * entries).
  bool is_preserved(phys_addr pa) const {
    for (unsigned o = 0; o < orders; ++o) {
      if (counts_[o] == 0) continue;
      const u64 mask = (u64{1} << (PageShift + o)) - 1;
      if (contains(phys_addr{pa.value & ~mask}, order{o})) return true;
    }
    return false;
  }

  /// XXH64 over each chunk page followed by its bitmap pages, in chain order: what
  /// kho,map-xxh64 holds for a kho-v1 root. Complexity: O(pages * page).
  u64 deep_checksum() const {
    XXH64_state_t st;
    XXH64_reset(&st, 0);
    for (phys_addr c = first_; c;) {
      const kho_mem_chunk_header* h = header(c);
      XXH64_update(&st, h, geo::page_size);
      for (u32 i = 0; i < h->count.get(); ++i) XXH64_update(&st, words(phys_addr{entry(h, i).bitmap.get()}), geo::page_size);
      c = phys_addr{h->next.get()};
    }
    return XXH64_digest(&st);
  }

  /// Claims every chunk and bitmap page for {structure, first()}, exempt from the
  /// preserved check: the kernel never preserves them.
  template <class Owners>
  status claim_pages(Owners& owners) const {
    const page_owner who{structure, first_};
    for (phys_addr c = first_; c;) {
      const kho_mem_chunk_header* h = header(c);
      KHO_TRY(owners.claim(c, 1, who, Owners::preserve::exempt));
      for (u32 i = 0; i < h->count.get(); ++i)
        KHO_TRY(owners.claim(phys_addr{entry(h, i).bitmap.get()}, 1, who, Owners::preserve::exempt));
      c = phys_addr{h->next.get()};
    }
    return {};
  }

 private:
  kho_mem_chunks_view(const M& mem, phys_addr first) : mem_(mem), first_(first) {}

  const kho_mem_chunk_header* header(phys_addr c) const {
    return static_cast<const kho_mem_chunk_header*>(mem_.to_virt(c, geo::page_size));
  }
  static const kho_mem_chunk_entry& entry(const kho_mem_chunk_header* h, u32 i) {
    return reinterpret_cast<const kho_mem_chunk_entry*>(reinterpret_cast<const unsigned char*>(h) + 16)[i];
  }
  const u64* words(phys_addr b) const { return static_cast<const u64*>(mem_.to_virt(b, geo::page_size)); }

  status fail(errc e, phys_addr at, u64 index) const {
    return make_error(e, structure, at, static_cast<u32>(index));
  }

  // A page enters the visited set before it is read: a chain that loops back, or a
  // bitmap named twice, is refused at the repeated page, before work multiplies.
  template <class Seen, class Scratch>
  status visit(Seen& seen, Scratch& scratch, phys_addr pa, u64 index) {
    if (!page_geometry<PageShift>::is_aligned(pa)) return fail(errc::misaligned, pa, index);
    if (mem_.to_virt(pa, geo::page_size) == nullptr) return fail(errc::out_of_bounds, pa, index);
    seen.raise_probe_budget(16 * (seen.size() + 1) + 1024);
    bool fresh = false;
    auto slot = seen.insert_unique(scratch, {detail::tag_of(pa.value >> PageShift)},
                                   [](const detail::radix_node_slot&) { return true; }, fresh);
    if (!slot) return fail(slot.code(), pa, index);
    if (!fresh) return fail(errc::cycle, pa, index);
    return {};
  }

  template <class Seen, class Scratch>
  status validate(Seen& seen, Scratch& scratch) {
    bool any = false;
    u64 last_order = 0, last_start = 0;
    for (phys_addr c = first_; c; ++chunks_) {
      KHO_TRY(visit(seen, scratch, c, chunks_));
      const kho_mem_chunk_header* h = header(c);
      const u32 o = h->order.get(), n = h->count.get();
      if (n > geo::entries) return fail(errc::bad_count, c, chunks_);
      if (n != 0 && o > geo::max_order) return fail(errc::out_of_range, c, chunks_);
      for (u32 i = 0; i < n; ++i) {
        const kho_mem_chunk_entry& e = entry(h, i);
        const u64 start = e.start.get();
        if ((start & ((u64{1} << geo::span_shift(o)) - 1)) != 0) return fail(errc::misaligned, c, chunks_);
        if (any && (o < last_order || (o == last_order && start <= last_start)))
          return fail(errc::bad_level, c, chunks_);
        any = true;
        last_order = o;
        last_start = start;
        const phys_addr b{e.bitmap.get()};
        KHO_TRY(visit(seen, scratch, b, chunks_));
        const u64* w = words(b);
        for (u64 k = 0; k < geo::bitmap_words; ++k) counts_[o] += detail::popcount64(detail::load_le(w + k));
        ++bitmaps_;
      }
      c = phys_addr{h->next.get()};
    }
    return {};
  }

  M mem_;
  phys_addr first_;
  u64 chunks_ = 0;
  u64 bitmaps_ = 0;
  u64 counts_[orders]{};
};

/// Attaches with the Memory type deduced.
template <unsigned PageShift = 12, Memory M, PageSource Scratch>
result<kho_mem_chunks_view<M, PageShift>> attach_kho_mem_chunks(const M& mem, phys_addr first, Scratch& scratch) {
  return kho_mem_chunks_view<M, PageShift>::attach(mem, first, scratch);
}

}  // namespace kho::upstream
