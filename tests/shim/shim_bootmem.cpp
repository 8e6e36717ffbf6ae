// Kernel-shim check for the KHO boot memory parameter (include/kho/linux/bootmem.hpp):
// parsing a command line freestanding, as a module reading its own boot parameters would.
#include <kho/linux/bootmem.hpp>

extern "C" long long kho_shim_bootmem(const char* cmdline, unsigned long len) {
  using namespace kho::upstream;
  const auto hits = find_kho_bootmem_param(cmdline, len);
  const auto& hit = hits.bootmem.found ? hits.bootmem : hits.scratch;
  if (!hit.found) return 0;
  auto sizes = parse_kho_bootmem(cmdline + hit.at, hit.len);
  if (!sizes) return -static_cast<long long>(sizes.code());
  return static_cast<long long>(sizes->is_scale ? sizes->scale_percent : sizes->lowmem + sizes->global);
}
