// tests/fuzz/reseal.hpp: fuzzing behind the checksums.
//
// The reseal_* targets build a valid structure from the input's first bytes, then let
// the rest of the input damage its pages (flip a bit, overwrite a word, re-point a link
// at another page of the structure, fill a table with one link), and then re-seal as
// a forger would: every checksum and deep checksum is recomputed, so only the
// structural validator stands between the damage and the readers. Validation must
// either refuse (and give its scratch back) or accept a structure every later walk
// can read without leaving memory: the Memory is armed after attach, as in the other
// targets, and traps on any read outside.
#pragma once

#include <kho/memory.hpp>

#include "fuzz_input.hpp"
#include "fuzz_pages.hpp"

#include <cstdint>
#include <cstring>
#include <vector>

namespace kho::fuzz {

/// A small machine for one input: [base, base + bytes) in a static buffer, zeroed
/// per input, with a writer's page source over it and a guarded Memory for readers.
template <u64 Bytes>
class machine {
 public:
  static constexpr u64 base = u64{1} << 32;
  machine() {
    std::memset(buf_, 0, Bytes);
    armed_ = false;
  }
  flat_memory plain() const { return flat_memory(phys_addr{base}, Bytes, buf_); }
  guarded_memory guarded() const { return {plain(), &armed_}; }
  void arm() { armed_ = true; }
  unsigned char* bytes(phys_addr pa) { return buf_ + (pa.value - base); }

 private:
  static inline pages<Bytes> buf_;
  static inline bool armed_ = false;
};

/// Reads the input front to back; past its end, every read is 0.
class cursor {
 public:
  cursor(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  u64 take(unsigned bytes) {
    u64 v = 0;
    for (unsigned i = 0; i < bytes; ++i) v |= static_cast<u64>(pos_ < size_ ? data_[pos_++] : 0) << (8 * i);
    return v;
  }
  bool done() const { return pos_ >= size_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

/// One damage step on `pages` (the structure's own pages), 8 bytes of input:
/// [kind][page][offset lo][offset hi][value x4].
template <class Machine>
void damage(cursor& in, const std::vector<phys_addr>& pages, Machine& m) {
  if (pages.empty()) return;
  const unsigned kind = static_cast<unsigned>(in.take(1)) % 6;
  const phys_addr page = pages[in.take(1) % pages.size()];
  const u64 offset = in.take(2) % 4096;
  const u64 value = in.take(4);
  unsigned char* p = m.bytes(page);
  const u64 word = offset & ~u64{7};
  auto store = [&](u64 off, u64 v) { std::memcpy(p + off, &v, 8); };
  switch (kind) {
    case 0:  // a bit
      p[offset] ^= static_cast<unsigned char>(1u << (value % 8));
      break;
    case 1:  // a word, small (a count, an id, a length)
      store(word, value % 600);
      break;
    case 2:  // a link to another page of the structure, itself included
      store(word, pages[value % pages.size()].value);
      break;
    case 3:  // a link that is almost right
      store(word, pages[value % pages.size()].value + ((value >> 16) % 3 == 0 ? 8 : 4096));
      break;
    case 4:  // every word of the page: one link (the DAG that multiplies paths)
      for (u64 w = 0; w < 4096; w += 8) store(w, pages[value % pages.size()].value);
      break;
    default:  // a word, anything
      store(word, value * 0x9e3779b97f4a7c15ULL);
      break;
  }
}

}  // namespace kho::fuzz
