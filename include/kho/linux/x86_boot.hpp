// kho/linux/x86_boot.hpp: how an x86 kernel learns where the KHO root FDT and the
// scratch areas are: a `setup_data` entry of type SETUP_KEXEC_KHO carrying
// `struct kho_data`, whose scratch fields point at an array of `struct kho_scratch`.
//
// Upstream: arch/x86/include/uapi/asm/setup_data.h (torvalds 512a93a9) and
// kernel/liveupdate/kexec_handover.c; shared/LINUX-FORMATS.md, section 2. Devicetree
// architectures pass the same two ranges in /chosen (`linux,kho-fdt`,
// `linux,kho-scratch`) instead.
//
//   kho_data (32 B, packed; setup_data len 32)        kho_scratch (16 B) x count
//   +----------+----------+--------------+--------------+   +--------+--------+
//   | fdt_addr | fdt_size | scratch_addr | scratch_size |   | addr   | size   |
//   | u64      | u64      | u64 ------------> array       |   | u64    | u64    |
//   +----------+----------+--------------+--------------+   +--------+--------+
//   fdt_size is PAGE_SIZE (the root FDT is one page); scratch_size = 16 * count.
//   Scratch [0] is lowmem, [1] global, [2..] one per NUMA node.
//
// Layouts only: the model's use of them (boot hand-off, scratch restore) comes later.
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/phys.hpp>

#include <cstddef>
#include <type_traits>

namespace kho::upstream {

inline constexpr u32 setup_kexec_kho = 10;  // SETUP_KEXEC_KHO, the setup_data type

struct kho_data {
  detail::le64 fdt_addr;      // physical address of the KHO root FDT page
  detail::le64 fdt_size;      // PAGE_SIZE
  detail::le64 scratch_addr;  // physical address of the kho_scratch array
  detail::le64 scratch_size;  // bytes of that array: 16 per entry
};

struct kho_scratch {
  detail::le64 addr;  // phys_addr_t
  detail::le64 size;
};

static_assert(sizeof(kho_data) == 32);
static_assert(offsetof(kho_data, fdt_addr) == 0);
static_assert(offsetof(kho_data, fdt_size) == 8);
static_assert(offsetof(kho_data, scratch_addr) == 16);
static_assert(offsetof(kho_data, scratch_size) == 24);
static_assert(std::has_unique_object_representations_v<kho_data>);
static_assert(sizeof(kho_scratch) == 16);
static_assert(offsetof(kho_scratch, addr) == 0);
static_assert(offsetof(kho_scratch, size) == 8);
static_assert(std::has_unique_object_representations_v<kho_scratch>);

/// Scratch entries a kho_data names (the kernel's count = scratch_len / 16).
constexpr u64 kho_scratch_count(const kho_data& d) { return d.scratch_size.get() / sizeof(kho_scratch); }

}  // namespace kho::upstream
