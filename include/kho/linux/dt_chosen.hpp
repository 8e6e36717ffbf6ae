// kho/linux/dt_chosen.hpp: how a devicetree kernel (arm64 and other DT architectures)
// learns where the KHO root FDT and the scratch array are: two properties of the boot
// DTB's /chosen node, beside x86's setup_data route (x86_boot.hpp), whose API this
// mirrors: the reader yields the same located_kho_data, so check_kho_boot and
// check_scratch_unpreserved apply unchanged.
//
// shared/LINUX-FORMATS-NEXT.md, section 8.1 (merged upstream).
//
//   /chosen  linux,kho-fdt      <address size>   the KHO root FDT: phys and length
//   /chosen  linux,kho-scratch  <address size>   the kho_scratch array (16-byte
//                                                entries, LF section 2): phys and bytes
//
// Each value is ONE (address, size) pair in big-endian 32-bit cells, the root node's
// #address-cells cells of address then #size-cells cells of size (ordinary DT rules,
// unlike the KHO FDT's native little-endian u64 properties).
//
// Reader (find_kho_chosen): the DTB whole (libfdt's full check); the root's cell
// counts, 1 or 2 each (a u64 holds the value; a count the root does not give is 1,
// the kernel's default for the root node: kho's reading, not the spec's); /chosen;
// each property's length exactly (address cells + size cells) * 4, which the kernel
// also requires (otherwise it silently ignores KHO); both properties present (the
// kernel needs both). The obsolete RFC names linux,kho-dt and linux,kho-mem are
// recognised when the current ones are absent and refused as such (bad_version): a
// kernel reads only the current names, so a DTB carrying only the old ones boots
// without KHO.
//
// Writer (add_kho_chosen): sets both properties on /chosen (creating the node when
// absent), replacing earlier values, as the kexec loader does; the cells are encoded
// by the same rule the reader decodes with.
//
// Complexity: O(DTB bytes) for libfdt's check, then O(1).
#pragma once

#include <kho/linux/memblock.hpp>
#include <kho/linux/x86_boot.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <libfdt.h>

namespace kho::upstream {

inline constexpr const char* chosen_kho_fdt = "linux,kho-fdt";
inline constexpr const char* chosen_kho_scratch = "linux,kho-scratch";
/// RFC names no kernel reads; recognised only to say so.
inline constexpr const char* chosen_obsolete_kho_dt = "linux,kho-dt";
inline constexpr const char* chosen_obsolete_kho_mem = "linux,kho-mem";

/// The root node's cell counts an (address, size) pair is encoded with.
struct dt_cells {
  u32 address = 1;
  u32 size = 1;
  u32 bytes() const { return (address + size) * 4; }
};

namespace impl {

inline u32 load_be32(const unsigned char* p) {
  return u32{p[0]} << 24 | u32{p[1]} << 16 | u32{p[2]} << 8 | u32{p[3]};
}
inline void store_be32(unsigned char* p, u32 v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (24 - 8 * i));
}
// `n` cells (1 or 2), most significant first.
inline u64 load_cells(const unsigned char* p, u32 n) {
  u64 v = 0;
  for (u32 i = 0; i < n; ++i) v = v << 32 | load_be32(p + 4 * i);
  return v;
}
inline bool store_cells(unsigned char* p, u32 n, u64 v) {
  if (n == 1 && v > 0xffffffffu) return false;
  for (u32 i = n; i-- > 0; v >>= 32) store_be32(p + 4 * i, static_cast<u32>(v));
  return true;
}

// A root cell count: absent is 1, present must be one 4-byte cell of 1 or 2.
inline errc root_cell_count(const void* dtb, const char* name, u32& out) {
  int len = 0;
  const void* p = fdt_getprop(dtb, 0, name, &len);
  if (p == nullptr) return errc::ok;  // out keeps its default
  if (len != 4) return errc::bad_count;
  out = load_be32(static_cast<const unsigned char*>(p));
  return out == 1 || out == 2 ? errc::ok : errc::out_of_range;
}

}  // namespace impl

/// The root's cell counts. Errors (structure "dtb", at 0): bad_count (a count property
/// not one cell), out_of_range (a count other than 1 or 2).
inline result<dt_cells> dt_root_cells(const void* dtb) {
  dt_cells c;
  if (errc e = impl::root_cell_count(dtb, "#address-cells", c.address); e != errc::ok)
    return make_error(e, "dtb", phys_addr{}, 0);
  if (errc e = impl::root_cell_count(dtb, "#size-cells", c.size); e != errc::ok)
    return make_error(e, "dtb", phys_addr{}, 0);
  return c;
}

/// Reads /chosen's KHO properties from the DTB in [dtb, dtb + size): the same
/// located_kho_data setup_data yields (`at` 0: the DTB is not in the handover's memory,
/// kho_nodes 1). Check it with check_kho_boot before use.
/// Errors: structure "dtb" at 0: bad_fdt (libfdt refuses the blob, or totalsize over
/// `size`), the cell-count errors of dt_root_cells; structure "chosen", at the byte
/// offset of /chosen in the DTB (0 when absent): not_found (no /chosen, or either
/// property missing), bad_version (only the obsolete RFC names: no kernel reads them),
/// bad_count (a property whose length is not (address + size cells) * 4; depth 1 for
/// linux,kho-scratch, 0 for linux,kho-fdt).
inline result<located_kho_data> find_kho_chosen(const void* dtb, u64 size) {
  if (impl::fdt_check_untrusted(dtb, size) != 0 || fdt_totalsize(dtb) > size)
    return make_error(errc::bad_fdt, "dtb", phys_addr{}, 0);
  auto cells = dt_root_cells(dtb);
  if (!cells) return cells.err();
  const int chosen = fdt_path_offset(dtb, "/chosen");
  if (chosen < 0) return make_error(errc::not_found, "chosen", phys_addr{}, 0);
  const phys_addr at{static_cast<u64>(chosen)};
  int fdt_len = 0, scratch_len = 0;
  const void* fdt = fdt_getprop(dtb, chosen, chosen_kho_fdt, &fdt_len);
  const void* scratch = fdt_getprop(dtb, chosen, chosen_kho_scratch, &scratch_len);
  if (fdt == nullptr && scratch == nullptr) {
    int ignored = 0;
    if (fdt_getprop(dtb, chosen, chosen_obsolete_kho_dt, &ignored) != nullptr ||
        fdt_getprop(dtb, chosen, chosen_obsolete_kho_mem, &ignored) != nullptr)
      return make_error(errc::bad_version, "chosen", at, 0);
  }
  if (fdt == nullptr || scratch == nullptr) return make_error(errc::not_found, "chosen", at, fdt == nullptr ? 0 : 1);
  if (static_cast<u32>(fdt_len) != cells->bytes()) return make_error(errc::bad_count, "chosen", at, 0);
  if (static_cast<u32>(scratch_len) != cells->bytes()) return make_error(errc::bad_count, "chosen", at, 1);
  const auto* f = static_cast<const unsigned char*>(fdt);
  const auto* s = static_cast<const unsigned char*>(scratch);
  located_kho_data out;
  out.data.fdt_addr.set(impl::load_cells(f, cells->address));
  out.data.fdt_size.set(impl::load_cells(f + 4 * cells->address, cells->size));
  out.data.scratch_addr.set(impl::load_cells(s, cells->address));
  out.data.scratch_size.set(impl::load_cells(s + 4 * cells->address, cells->size));
  out.kho_nodes = 1;
  out.from_chosen = true;
  return out;
}

/// Sets /chosen's linux,kho-fdt and linux,kho-scratch in the DTB at `dtb` (a buffer of
/// `bufsize` bytes, room to grow the tree), replacing earlier values and creating
/// /chosen if needed. Errors: bad_fdt (libfdt refuses the blob), the errors of
/// dt_root_cells, out_of_range (a value that does not fit one cell when the root says
/// 1), out_of_memory (no room in the buffer), invalid_argument (libfdt's other errors).
inline status add_kho_chosen(void* dtb, u64 bufsize, const kho_data& d) {
  if (impl::fdt_check_untrusted(dtb, bufsize) != 0) return make_error(errc::bad_fdt, "dtb", phys_addr{}, 0);
  if (fdt_open_into(dtb, dtb, static_cast<int>(bufsize)) != 0) return make_error(errc::out_of_memory, "dtb", phys_addr{});
  auto cells = dt_root_cells(dtb);
  if (!cells) return cells.err();
  unsigned char fdt_cells[16], scratch_cells[16];
  if (!impl::store_cells(fdt_cells, cells->address, d.fdt_addr.get()) ||
      !impl::store_cells(fdt_cells + 4 * cells->address, cells->size, d.fdt_size.get()) ||
      !impl::store_cells(scratch_cells, cells->address, d.scratch_addr.get()) ||
      !impl::store_cells(scratch_cells + 4 * cells->address, cells->size, d.scratch_size.get()))
    return make_error(errc::out_of_range, "chosen", phys_addr{});
  int chosen = fdt_path_offset(dtb, "/chosen");
  if (chosen < 0) chosen = fdt_add_subnode(dtb, 0, "chosen");
  int err = chosen < 0 ? chosen : 0;
  if (!err) err = fdt_setprop(dtb, chosen, chosen_kho_fdt, fdt_cells, static_cast<int>(cells->bytes()));
  if (!err) err = fdt_setprop(dtb, chosen, chosen_kho_scratch, scratch_cells, static_cast<int>(cells->bytes()));
  if (err == -FDT_ERR_NOSPACE) return make_error(errc::out_of_memory, "chosen", phys_addr{});
  if (err) return make_error(errc::invalid_argument, "chosen", phys_addr{});
  return {};
}

}  // namespace kho::upstream
