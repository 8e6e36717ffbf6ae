// kho/linux/efi_kho.hpp: LoongArch's hand-off of the KHO root FDT and scratch array
// through an EFI configuration table entry (it has no boot FDT). Beside x86_boot.hpp
// and dt_chosen.hpp, with the same result: a located_kho_data for check_kho_boot.
//
// shared/LINUX-FORMATS-NEXT.md, section 8.2: a posted series, not known merged. The
// blob's struct definition, the entry's GUID value and the next kernel's reader were
// NOT found, so the layout below is INFERRED from the order the writer assigns fields,
// and the GUID is a parameter of every call (kho makes none up):
//
//   EFI configuration table: entries of 24 bytes (64-bit UEFI)
//     +--------------------+------------------+
//     | GUID (16 bytes)    | pointer u64      | ... the firmware's entries, then one
//     +--------------------+------------------+     more naming linux_efi_kho_data
//
//   linux_efi_kho_data (32 bytes, INFERRED: four u64 in assignment order)
//     0 fdt_addr   8 fdt_size (PAGE_SIZE)   16 scratch_addr   24 scratch_size
//
// scratch_size is the scratch segment's memsz, which kexec rounds up to whole pages:
// the array may end in all-zero {0, 0} entries, which a reader must accept (x86 passes
// the exact 16 x count). trim_efi_kho_scratch drops them before check_kho_boot.
//
// Reader (find_efi_kho): the table inside memory, at most max_efi_tables entries
// (bad_count), the first entry with the GUID (not_found otherwise; how many had it is
// counted in kho_nodes: what a kernel does with several is unknown), its blob inside
// memory. Complexity: O(entries) + O(scratch entries) for the trim.
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/linux/x86_boot.hpp>
#include <kho/memory.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstddef>
#include <cstring>
#include <span>
#include <type_traits>

namespace kho::upstream {

/// The blob's layout is inferred (LINUX-FORMATS-NEXT.md 8.2); reports say so.
inline constexpr bool efi_kho_layout_inferred = true;
/// A bound on the walk, not a format limit: firmware tables hold a few dozen entries.
inline constexpr u64 max_efi_tables = 4096;

/// linux_efi_kho_data (inferred): the same four u64 as x86's kho_data.
using linux_efi_kho_data = kho_data;
static_assert(sizeof(linux_efi_kho_data) == 32);

/// An EFI GUID as its 16 bytes in memory (EFI's mixed-endian text form is the caller's).
struct efi_guid {
  unsigned char bytes[16];
};

/// One entry of a 64-bit EFI configuration table.
struct efi_config_table_entry {
  efi_guid guid;
  detail::le64 table;  // physical address of the entry's data
};

static_assert(sizeof(efi_guid) == 16);
static_assert(sizeof(efi_config_table_entry) == 24);
static_assert(offsetof(efi_config_table_entry, table) == 16);
static_assert(std::has_unique_object_representations_v<efi_config_table_entry>);

/// Finds the entry `guid` names in the configuration table of `count` entries at
/// `table`, and reads the linux_efi_kho_data it points at: `at` is the blob, kho_nodes
/// the number of entries with the GUID (the first is read).
/// Errors (structure "efi_table", at the table unless said): bad_count (count over
/// max_efi_tables), out_of_bounds (the table, or the blob: at the entry), not_found
/// (no entry with the GUID).
template <Memory M>
result<located_kho_data> find_efi_kho(const M& mem, phys_addr table, u64 count, const efi_guid& guid) {
  if (count > max_efi_tables) return make_error(errc::bad_count, "efi_table", table);
  const auto* entries =
      static_cast<const unsigned char*>(mem.to_virt(table, count * sizeof(efi_config_table_entry)));
  if (entries == nullptr && count != 0) return make_error(errc::out_of_bounds, "efi_table", table);
  located_kho_data out;
  for (u64 i = 0; i < count; ++i) {
    efi_config_table_entry e;  // copied: the table need not be 8-byte aligned
    std::memcpy(&e, entries + i * sizeof e, sizeof e);
    if (std::memcmp(e.guid.bytes, guid.bytes, sizeof guid.bytes) != 0) continue;
    if (out.kho_nodes++ != 0) continue;
    out.at = phys_addr{e.table.get()};
    const void* blob = mem.to_virt(out.at, sizeof(linux_efi_kho_data));
    if (blob == nullptr) return make_error(errc::out_of_bounds, "efi_table", table + i * sizeof e);
    std::memcpy(&out.data, blob, sizeof out.data);
  }
  if (out.kho_nodes == 0) return make_error(errc::not_found, "efi_table", table);
  return out;
}

/// `k` with its scratch_size cut before the trailing all-zero entries (memsz rounding),
/// at least one entry kept so check_kho_boot judges an all-zero array. An array
/// outside memory is left as it is, for check_kho_boot to refuse.
template <Memory M>
located_kho_data trim_efi_kho_scratch(const M& mem, located_kho_data k) {
  u64 count = kho_scratch_count(k.data);
  const auto* a = static_cast<const unsigned char*>(
      mem.to_virt(phys_addr{k.data.scratch_addr.get()}, count * sizeof(kho_scratch)));
  if (a == nullptr) return k;
  while (count > 1) {
    const kho_scratch e = impl::load_scratch(a, count - 1);
    if (e.addr.get() != 0 || e.size.get() != 0) break;
    --count;
  }
  if (k.data.scratch_size.get() % sizeof(kho_scratch) == 0) k.data.scratch_size.set(count * sizeof(kho_scratch));
  return k;
}

/// What the LoongArch loader writes: the blob (its own 8-byte aligned segment; a page
/// here) and a copy of the firmware's table with one entry appended naming it.
struct efi_kho_tables {
  phys_addr table{};
  u64 count = 0;
  phys_addr blob{};
};

/// Writes the blob and the table (firmware's entries, then {guid, blob}), each in
/// pages of its own. Complexity: O(entries). Errors: bad_count (more than
/// max_efi_tables - 1 firmware entries), out_of_memory.
template <unsigned PageShift = 12, PageSource Source>
result<efi_kho_tables> write_efi_kho(Source& source, const linux_efi_kho_data& d, const efi_guid& guid,
                                     std::span<const efi_config_table_entry> firmware) {
  if (firmware.size() >= max_efi_tables) return errc::bad_count;
  auto blob = alloc_zeroed(source, order{0}, page_geometry<PageShift>::size);
  if (!blob) return blob.err();
  std::memcpy(source.memory().to_virt(*blob, sizeof d), &d, sizeof d);
  const u64 count = firmware.size() + 1, bytes = count * sizeof(efi_config_table_entry);
  const u64 pages = (bytes + page_geometry<PageShift>::size - 1) >> PageShift;
  unsigned o = 0;
  while ((u64{1} << o) < pages) ++o;
  auto table = alloc_zeroed(source, order{o}, page_geometry<PageShift>::size << o);
  if (!table) return table.err();
  auto* t = static_cast<unsigned char*>(source.memory().to_virt(*table, bytes));
  if (!firmware.empty()) std::memcpy(t, firmware.data(), firmware.size_bytes());
  efi_config_table_entry e{};
  e.guid = guid;
  e.table.set(blob->value);
  std::memcpy(t + firmware.size_bytes(), &e, sizeof e);
  return efi_kho_tables{*table, count, *blob};
}

}  // namespace kho::upstream
