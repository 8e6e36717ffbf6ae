// kho/model/boot_page.hpp: what kexec hands the next kernel, in the model (hosted only).
//
// A real kexec passes the next kernel one physical address (the root's). The model
// writes it, with facts to cross-check it by, into the first 64 bytes of its
// physical memory (docs/format.md, "Boot page"):
//
//   0 magic "KHOBOOT1"   8 root   16 memory_base   24 memory_size
//  32 generation        40 writer_virt   48 page_shift   56 reserved (zero)
//
// A reader trusts none of it: the base, size and page shift must describe the memory
// it was found in, the reserved word must be zero, and the generation must be the
// root's (else the handover is `stale`: left over from an older one). Each check has
// its own error, reported at the offending field's physical address.
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/model/physical_memory.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <fmt/format.h>

#include <cstddef>
#include <cstring>
#include <optional>
#include <string>

namespace kho::model {

inline constexpr u64 boot_magic = 0x31544f4f424f484bULL;  // "KHOBOOT1"

/// What kexec would hand over: the root's address, and facts to cross-check it with.
struct boot_page {
  detail::le64 magic;
  detail::le64 root;         // physical address of the handover root
  detail::le64 memory_base;  // physical base the writer used
  detail::le64 memory_size;
  detail::le64 generation;   // must equal the root's generation (else: stale)
  detail::le64 writer_virt;  // where the writer mapped memory (the reader must differ)
  detail::le64 page_shift;
  detail::le64 reserved;
};
static_assert(sizeof(boot_page) == 64);
static_assert(offsetof(boot_page, generation) == 32 && offsetof(boot_page, reserved) == 56);

inline void write_boot_page(const physical_memory& pm, phys_addr root, u64 generation,
                            unsigned page_shift) {
  auto* b = static_cast<boot_page*>(pm.virt());
  boot_page page{};
  page.magic.set(boot_magic);
  page.root.set(root.value);
  page.memory_base.set(pm.base().value);
  page.memory_size.set(pm.size());
  page.generation.set(generation);
  page.writer_virt.set(reinterpret_cast<u64>(pm.virt()));
  page.page_shift.set(page_shift);
  std::memcpy(b, &page, sizeof page);
}

/// The boot page, if the file starts with one.
inline bool read_boot_page(const physical_memory& pm, boot_page& out) {
  if (pm.size() < sizeof out) return false;
  std::memcpy(&out, pm.virt(), sizeof out);
  return out.magic.get() == boot_magic;
}

/// A boot page that does not describe the memory it was found in: the error (at the
/// field's physical address, structure "boot page") and the two values in words.
struct boot_page_problem {
  error err;
  std::string detail;
};

namespace detail_boot {
inline boot_page_problem problem(errc code, const physical_memory& pm, std::size_t field, std::string detail) {
  return {make_error(code, "boot page", pm.base() + field), std::move(detail)};
}
}  // namespace detail_boot

/// Checks what can be checked before the root is read: memory_base is the base the
/// memory is read at (invalid_argument), memory_size its size (out_of_bounds: the
/// image was truncated or extended), page_shift the reader's (page_size_mismatch),
/// reserved zero (reserved_nonzero). Complexity: O(1).
inline std::optional<boot_page_problem> check_boot_page(const boot_page& b, const physical_memory& pm,
                                                        unsigned page_shift = page_geometry<>::shift) {
  using detail_boot::problem;
  if (b.memory_base.get() != pm.base().value)
    return problem(errc::invalid_argument, pm, offsetof(boot_page, memory_base),
                   fmt::format("written for memory at {:#x}, read at {:#x}", b.memory_base.get(), pm.base().value));
  if (b.memory_size.get() != pm.size())
    return problem(errc::out_of_bounds, pm, offsetof(boot_page, memory_size),
                   fmt::format("written for {} bytes of memory, the image has {}", b.memory_size.get(), pm.size()));
  if (b.page_shift.get() != page_shift)
    return problem(errc::page_size_mismatch, pm, offsetof(boot_page, page_shift),
                   fmt::format("page shift {}, this reader's is {}", b.page_shift.get(), page_shift));
  if (b.reserved.get() != 0)
    return problem(errc::reserved_nonzero, pm, offsetof(boot_page, reserved),
                   fmt::format("reserved word {:#x}", b.reserved.get()));
  return std::nullopt;
}

/// The generation check, once the root has been attached: a boot page naming another
/// generation than the root's is left over from an older handover (stale).
inline std::optional<boot_page_problem> check_boot_generation(const boot_page& b, const physical_memory& pm,
                                                              u64 root_generation) {
  if (b.generation.get() == root_generation) return std::nullopt;
  return detail_boot::problem(errc::stale, pm, offsetof(boot_page, generation),
                              fmt::format("boot page generation {}, root generation {}", b.generation.get(),
                                          root_generation));
}

/// Opens a memory image read-only; `base` must be a multiple of `page_size`. If it
/// starts with a boot page, the mapping avoids the writer's address, so that the reader
/// finds everything by physical address.
inline physical_memory open_image(const std::string& path, u64 base, u64 page_size = page_geometry<>::size) {
  auto pm = physical_memory::open(path, base, /*writable=*/false, nullptr, page_size);
  boot_page b{};
  if (!read_boot_page(pm, b) || reinterpret_cast<u64>(pm.virt()) != b.writer_virt.get()) return pm;
  // Same address as the writer by chance: map again while the first mapping holds it.
  return physical_memory::open(path, base, /*writable=*/false, pm.virt(), page_size);
}

}  // namespace kho::model
