// Fuzz target: LoongArch's EFI hand-off (LINUX-FORMATS-NEXT.md 8.2, layout inferred):
// the configuration table at the root, as many 24-byte entries as fit before the
// image's end, searched for the KHO GUID (a parameter: its value was not recovered;
// here a fixed one the seeds use). What the reader accepts is trimmed of trailing
// all-zero scratch entries and checked as x86's kho_data is; once both pass, every
// scratch entry is read again through the armed memory (a read outside it traps).
#include <kho/linux/efi_kho.hpp>
#include <kho/linux/x86_boot.hpp>

#include "fuzz_input.hpp"

namespace {

constexpr kho::upstream::efi_guid fuzz_guid{{0x6b, 0x68, 0x6f, 0x2d, 0x66, 0x75, 0x7a, 0x7a,
                                             0x2d, 0x67, 0x75, 0x69, 0x64, 0x2d, 0x30, 0x31}};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kho::upstream;
  kho::fuzz::image img(data, size);
  const kho::u64 count = kho::fuzz::bytes_from_root(data, size) / sizeof(efi_config_table_entry);
  auto found = find_efi_kho(img.memory(), img.root(), count, fuzz_guid);
  if (!found) return 0;
  if (found->kho_nodes == 0) __builtin_trap();
  const located_kho_data trimmed = trim_efi_kho_scratch(img.memory(), *found);
  if (trimmed.data.scratch_size.get() > found->data.scratch_size.get()) __builtin_trap();  // only ever cut
  if (!check_kho_boot(img.memory(), trimmed)) return 0;
  img.arm();
  const auto* a = static_cast<const unsigned char*>(img.memory().to_virt(
      kho::phys_addr{trimmed.data.scratch_addr.get()}, kho_scratch_count(trimmed.data) * sizeof(kho_scratch)));
  kho::u64 total = 0;
  for (kho::u64 i = 0; i < kho_scratch_count(trimmed.data); ++i) total += impl::load_scratch(a, i).size.get();
  if (total == 0) __builtin_trap();  // check_kho_boot refuses empty ranges
  return 0;
}
