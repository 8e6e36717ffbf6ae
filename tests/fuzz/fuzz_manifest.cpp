// Fuzz target: a manifest read from an untrusted file (an executable's .kho_manifest
// section). The bytes are copied to an exactly-sized heap buffer so that ASan traps a
// read past them. After a successful parse: count within the bound and the bytes,
// every family a canonical string no other entry repeats, bit 0 clear; then the
// manifest is negotiated both ways against a fixed one, and every decision must be
// the highest version of writes & reads & carriable (or a refusal with no version).
#include <kho/manifest.hpp>
#include <kho/negotiate.hpp>

#include <cstdint>
#include <cstring>
#include <memory>

namespace {

using namespace kho;

constexpr manifest_line fixed_lines[] = {
    {"kho", version_bit(3) | version_bit(4), version_bit(3) | version_bit(4)},
    {"memfd", version_bit(1) | version_bit(2) | version_bit(3), version_bit(1) | version_bit(2), 0x3},
    {"luo", version_bit(5) | version_bit(7), version_bit(5) | version_bit(7), 0x7},
};
constexpr auto fixed = make_manifest("fuzz-fixed", fixed_lines);

void check_decision(const manifest_view& w, const manifest_view& r, const handover_need& need) {
  const negotiated n = negotiate_one(w, r, need);
  const u64 fits = w.writes(need.family) & r.reads(need.family) & need.carriable;
  if (n.version != 0 && !(fits & version_bit(n.version))) __builtin_trap();
  if (n.version == 0 && n.why == refusal::none) __builtin_trap();
  if (n.version != 0 && n.why != refusal::none) __builtin_trap();
  if (n.version != 0 && n.version != highest_version(fits) && !is_feature_version(need.family, highest_version(fits)))
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = std::make_unique<unsigned char[]>(size ? size : 1);
  if (size) std::memcpy(bytes.get(), data, size);
  auto m = manifest_view::parse(size ? bytes.get() : nullptr, size);
  if (!m) return 0;
  if (m->size() > manifest_max_entries) __builtin_trap();
  if (detail::bounded_length(m->image(), manifest_image_len) >= manifest_image_len) __builtin_trap();
  for (u16 i = 0; i < m->size(); ++i) {
    const manifest_entry e = m->entry(i);
    if (!detail::is_canonical_string(e.family, manifest_family_len)) __builtin_trap();
    if ((e.reads.get() | e.writes.get()) & 1) __builtin_trap();
    for (u16 j = 0; j < i; ++j)
      if (std::memcmp(m->entry(j).family, e.family, manifest_family_len) == 0) __builtin_trap();
    if (m->reads(e.family) != e.reads.get()) __builtin_trap();  // find() finds this entry
  }
  auto f = manifest_view::parse(&fixed, sizeof fixed);
  if (!f) __builtin_trap();
  for (const char* family : {"kho", "memfd", "luo", "kho-root"}) {
    for (u64 carriable : {~u64{1}, version_bit(1), version_bit(2) | version_bit(3), u64{0}}) {
      const handover_need need{family, "fuzz", carriable, 0x2, ""};
      check_decision(*m, *f, need);
      check_decision(*f, *m, need);
    }
  }
  return 0;
}
