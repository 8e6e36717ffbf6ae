// Kernel-shim check of the manifest and negotiation: what a kernel image embeds in its
// ".kho_manifest" section and how the old kernel decides, before kexec, what to write.
#include <kho/manifest.hpp>
#include <kho/negotiate.hpp>
#include <kho/readers.hpp>

namespace {

using namespace kho;

// As a kernel would place it: in its section, built at compile time, every reader.
KHO_MANIFEST_SECTION constinit const auto shim_manifest = make_manifest("shim-6.99", reader_lines);

}  // namespace

extern "C" int kho_shim_manifest(const void* next_image_manifest, unsigned long len) {
  auto mine = manifest_view::parse(&shim_manifest, sizeof shim_manifest);
  auto next = manifest_view::parse(next_image_manifest, len);
  if (!mine || !next) return -1;
  const handover_need needs[] = {
      {"kho", "root", ~u64{1}, 0, ""},
      {"memfd", "session a, file 1", version_bit(2), 0, "seals"},
      {"luo", "LUO", ~u64{1}, 0x1, ""},
  };
  negotiated out[3];
  const u32 refused = negotiate(*mine, *next, needs, 3, out);
  return static_cast<int>(refused) * 256 + out[0].version + (wire_name_of("kho", out[0].version) ? 1 : 0);
}
