// kho/linux/bootmem.hpp: "KHO boot memory", the kernel's newer name for KHO scratch,
// and the boot parameter that sizes it under either name.
//
// The memory a KHO boot starts from (physically contiguous ranges the previous kernel
// guarantees hold no preserved page) was called "scratch" up to v7.3. The kernel
// renamed it "KHO boot memory" ("bootmem"; liveupdate/linux next, 24 Sep 2026; v7.4-rc1
// documents it), because "scratch" also named the holes a booting kernel discovers
// (now "noprsrv"). What changed and what did not (shared/LINUX-FORMATS-NEXT.md, 9):
//
//   boot parameter   kho_scratch=          ->  kho_bootmem=  (same syntax)
//   debugfs kho/out  scratch_phys, _len    ->  bootmem_phys, bootmem_len
//   memblock flag    MEMBLOCK_KHO_SCRATCH  ->  MEMBLOCK_KHO_NOPRSRV
//   wire             struct kho_scratch, kho_data.scratch_*, /chosen linux,kho-scratch:
//                    unchanged (no wire rename was seen)
//
// kho keeps its wire names (they are the kernel's) and shows both words wherever it
// speaks of this memory (`kho dump`'s JSON has "bootmem" beside "scratch").
//
// The parameter's value, under either name:
//   <low>,<global>,<per-node>   three sizes, each a number with an optional K, M, G,
//                               T, P or E suffix (powers of 1024), as memparse reads
//   <n>%                        a scale of the memory the kernel used while booting
// Which name a kernel reads: before the rename only kho_scratch=, after it
// kho_bootmem= (whether kho_scratch= stays an alias is unconfirmed), so a command line
// meant for both carries both; find_kho_bootmem_param reports each.
//
// Complexity: O(length of the command line). Freestanding, no allocation.
#pragma once

#include <kho/phys.hpp>
#include <kho/result.hpp>

namespace kho::upstream {

inline constexpr const char* kho_bootmem_param = "kho_bootmem";  // v7.4 on
inline constexpr const char* kho_scratch_param = "kho_scratch";  // up to v7.3
inline constexpr const char* kho_debugfs_bootmem_phys = "bootmem_phys";
inline constexpr const char* kho_debugfs_bootmem_len = "bootmem_len";
inline constexpr const char* kho_debugfs_scratch_phys = "scratch_phys";
inline constexpr const char* kho_debugfs_scratch_len = "scratch_len";

/// A parsed kho_bootmem= / kho_scratch= value: three sizes, or a percentage.
struct kho_bootmem_sizes {
  bool is_scale = false;
  u64 scale_percent = 0;  // with is_scale
  u64 lowmem = 0;         // bytes of the low-memory range
  u64 global = 0;         // bytes of the global range
  u64 per_node = 0;       // bytes of each per-node range
};

namespace impl {

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

// One decimal number at s[i..end), advancing i. Errors: bad_string (no digit),
// out_of_range (over 2^64 - 1).
inline status parse_decimal(const char* s, u64& i, u64 end, u64& out) {
  if (i == end || !is_digit(s[i])) return make_error(errc::bad_string, "kho_bootmem", phys_addr{i});
  out = 0;
  for (; i < end && is_digit(s[i]); ++i) {
    const u64 d = static_cast<u64>(s[i] - '0');
    if (out > (~u64{0} - d) / 10) return make_error(errc::out_of_range, "kho_bootmem", phys_addr{i});
    out = out * 10 + d;
  }
  return {};
}

// A size: a decimal number and an optional binary suffix.
inline status parse_size(const char* s, u64& i, u64 end, u64& out) {
  KHO_TRY(parse_decimal(s, i, end, out));
  if (i == end) return {};
  unsigned shift = 0;
  switch (s[i]) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    case 'p': case 'P': shift = 50; break;
    case 'e': case 'E': shift = 60; break;
    default: return {};
  }
  ++i;
  if (out > (~u64{0} >> shift)) return make_error(errc::out_of_range, "kho_bootmem", phys_addr{i});
  out <<= shift;
  return {};
}

}  // namespace impl

/// Parses a parameter's value (`s[0..len)`, without the "name=").
/// Errors (structure "kho_bootmem", `at` the offset in the value): bad_string (not
/// three comma-separated sizes nor <n>%; trailing characters), out_of_range (a size
/// over 2^64 - 1 bytes), invalid_argument (a scale of 0%).
inline result<kho_bootmem_sizes> parse_kho_bootmem(const char* s, u64 len) {
  kho_bootmem_sizes out;
  u64 i = 0;
  if (len > 0 && s[len - 1] == '%') {
    KHO_TRY(impl::parse_decimal(s, i, len - 1, out.scale_percent));
    if (i != len - 1) return make_error(errc::bad_string, "kho_bootmem", phys_addr{i});
    if (out.scale_percent == 0) return make_error(errc::invalid_argument, "kho_bootmem", phys_addr{0});
    out.is_scale = true;
    return out;
  }
  u64* fields[3] = {&out.lowmem, &out.global, &out.per_node};
  for (int f = 0; f < 3; ++f) {
    if (f > 0) {
      if (i == len || s[i] != ',') return make_error(errc::bad_string, "kho_bootmem", phys_addr{i});
      ++i;
    }
    KHO_TRY(impl::parse_size(s, i, len, *fields[f]));
  }
  if (i != len) return make_error(errc::bad_string, "kho_bootmem", phys_addr{i});
  return out;
}

/// Where a command line names the boot memory: the value of each name's last
/// occurrence (the kernel's early_param handlers run for every occurrence, so the
/// last one wins), as offsets into the command line; `len` 0 and `found` false for a
/// name that does not occur.
struct kho_bootmem_param_hits {
  struct hit {
    bool found = false;
    u64 at = 0;   // offset of the value in the command line
    u64 len = 0;  // bytes of the value
  };
  hit bootmem;  // kho_bootmem=
  hit scratch;  // kho_scratch=
};

/// Finds kho_bootmem= and kho_scratch= among the space-separated words of
/// `cmdline[0..len)`. Quoting is not interpreted (neither value contains a space).
/// Complexity: O(len).
inline kho_bootmem_param_hits find_kho_bootmem_param(const char* cmdline, u64 len) {
  kho_bootmem_param_hits out;
  auto matches = [&](u64 at, u64 end, const char* name, kho_bootmem_param_hits::hit& h) {
    u64 n = 0;
    while (name[n] != '\0') ++n;
    if (end - at <= n || cmdline[at + n] != '=') return;
    for (u64 k = 0; k < n; ++k)
      if (cmdline[at + k] != name[k]) return;
    h = {true, at + n + 1, end - (at + n + 1)};
  };
  u64 i = 0;
  while (i < len) {
    while (i < len && (cmdline[i] == ' ' || cmdline[i] == '\t' || cmdline[i] == '\n')) ++i;
    const u64 start = i;
    while (i < len && cmdline[i] != ' ' && cmdline[i] != '\t' && cmdline[i] != '\n') ++i;
    if (i > start) {
      matches(start, i, kho_bootmem_param, out.bootmem);
      matches(start, i, kho_scratch_param, out.scratch);
    }
  }
  return out;
}

}  // namespace kho::upstream
