// kho/model/elf_core.hpp: the physical memory an ELF core file holds (hosted only).
//
// A guest's memory as QEMU's `dump-guest-memory` (its ELF format, not kdump-compressed)
// or a kdump kernel's /proc/vmcore writes it: an ELF64 little-endian file of type
// ET_CORE for x86-64 or aarch64, whose PT_LOAD program headers each say "the physical
// range [p_paddr, p_paddr + p_memsz) starts with the p_filesz bytes at file offset
// p_offset". Only the ELF facts are used (the ELF-64 object file format; the Linux
// and QEMU writers only fill them in):
//
//   ELF header (64 bytes)             program header (56 bytes)
//    0 e_ident "\x7fELF", class 2       0 p_type (1 = PT_LOAD)   4 p_flags
//      (64-bit), data 1 (LSB),          8 p_offset              16 p_vaddr
//      version 1                       24 p_paddr               32 p_filesz
//   16 e_type (4 = ET_CORE)            40 p_memsz               48 p_align
//   18 e_machine (62 x86-64, 183 aarch64)
//   32 e_phoff   40 e_shoff   52 e_ehsize   54 e_phentsize   56 e_phnum
//   58 e_shentsize   60 e_shnum       e_phnum 0xffff (PN_XNUM): the count is the first
//                                     section header's sh_info (offset 44, u32)
//
// The file is untrusted input: every size, offset and count is checked (overflow-safe)
// against the file before it is used, and the physical ranges may neither wrap nor
// overlap. What a refusal says names the field and its value. The bytes of a segment
// past p_filesz (p_memsz > p_filesz: memory the dumper left out) are *absent*: they
// are not part of the memory the reader sees, so a structure there reads as outside
// memory rather than as zeros nobody wrote.
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/phys.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace kho::model {

namespace elf {

struct header {
  unsigned char ident[16];
  detail::le16 type;
  detail::le16 machine;
  detail::le32 version;
  detail::le64 entry;
  detail::le64 phoff;
  detail::le64 shoff;
  detail::le32 flags;
  detail::le16 ehsize;
  detail::le16 phentsize;
  detail::le16 phnum;
  detail::le16 shentsize;
  detail::le16 shnum;
  detail::le16 shstrndx;
};
static_assert(sizeof(header) == 64 && offsetof(header, phoff) == 32 && offsetof(header, phnum) == 56);
static_assert(std::has_unique_object_representations_v<header>);

struct program_header {
  detail::le32 type;
  detail::le32 flags;
  detail::le64 offset;
  detail::le64 vaddr;
  detail::le64 paddr;
  detail::le64 filesz;
  detail::le64 memsz;
  detail::le64 align;
};
static_assert(sizeof(program_header) == 56 && offsetof(program_header, paddr) == 24);
static_assert(std::has_unique_object_representations_v<program_header>);

struct section_header {
  detail::le32 name;
  detail::le32 type;
  detail::le64 flags;
  detail::le64 addr;
  detail::le64 offset;
  detail::le64 size;
  detail::le32 link;
  detail::le32 info;
  detail::le64 addralign;
  detail::le64 entsize;
};
static_assert(sizeof(section_header) == 64 && offsetof(section_header, info) == 44);

inline constexpr unsigned char magic[4] = {0x7f, 'E', 'L', 'F'};
inline constexpr unsigned char class64 = 2;
inline constexpr unsigned char data_lsb = 1;
inline constexpr u16 type_core = 4;
inline constexpr u16 machine_x86_64 = 62;
inline constexpr u16 machine_aarch64 = 183;
inline constexpr u32 pt_load = 1;
inline constexpr u16 pn_xnum = 0xffff;
// A QEMU dump has one PT_LOAD per guest RAM block, kdump one per System RAM range:
// dozens. 2^20 headers (56 MiB of them) is far past both and bounds what a hostile
// count can make the reader allocate.
inline constexpr u64 max_program_headers = u64{1} << 20;

}  // namespace elf

/// One PT_LOAD: physical [paddr, paddr + memsz), of which the first filesz bytes are
/// in the file at `offset`.
struct elf_load {
  u64 paddr = 0;
  u64 filesz = 0;
  u64 memsz = 0;
  u64 offset = 0;
};

/// What a core file says about memory: its machine and its PT_LOADs sorted by address.
struct elf_core {
  u16 machine = 0;
  std::vector<elf_load> loads;
};

/// True if the first bytes are the ELF magic. The caller decides by this alone: a file
/// that starts like an ELF file is read as one (and refused if it is not a valid core),
/// never silently as a flat image.
inline bool has_elf_magic(const void* bytes, u64 size) {
  return size >= sizeof elf::magic && std::memcmp(bytes, elf::magic, sizeof elf::magic) == 0;
}

/// Parses and checks the core file's headers. `read_at(offset, len, out)` copies file
/// bytes [offset, offset + len), which the parser has checked lie inside `file_size`.
/// Complexity: O(program headers), at most elf::max_program_headers.
/// Errors (std::runtime_error, "ELF core: ..."): not ELF64, not little-endian, not
/// version 1, not ET_CORE, another machine, header sizes other than ELF64's, program
/// or section headers outside the file, too many program headers, a PT_LOAD with
/// p_filesz > p_memsz, file bytes past the end of the file, a physical range that wraps
/// or overlaps another, or no PT_LOAD with file bytes at all.
template <class ReadAt>
elf_core parse_elf_core(ReadAt&& read_at, u64 file_size) {
  auto refuse = [](const std::string& what) { throw std::runtime_error("ELF core: " + what); };
  elf::header h{};
  if (file_size < sizeof h) refuse(fmt::format("{} bytes, shorter than an ELF64 header (64)", file_size));
  read_at(0, sizeof h, &h);
  if (!has_elf_magic(h.ident, sizeof h.ident)) refuse("no ELF magic");
  if (h.ident[4] != elf::class64) refuse(fmt::format("class {} is not ELFCLASS64 (2)", h.ident[4]));
  if (h.ident[5] != elf::data_lsb) refuse(fmt::format("data encoding {} is not little-endian (1)", h.ident[5]));
  if (h.ident[6] != 1 || h.version.get() != 1)
    refuse(fmt::format("version {}/{} is not 1", h.ident[6], h.version.get()));
  if (h.type.get() != elf::type_core) refuse(fmt::format("e_type {} is not ET_CORE (4)", h.type.get()));
  const u16 machine = h.machine.get();
  if (machine != elf::machine_x86_64 && machine != elf::machine_aarch64)
    refuse(fmt::format("e_machine {} is neither x86-64 (62) nor aarch64 (183)", machine));
  if (h.ehsize.get() != sizeof(elf::header)) refuse(fmt::format("e_ehsize {} is not 64", h.ehsize.get()));
  if (h.phentsize.get() != sizeof(elf::program_header))
    refuse(fmt::format("e_phentsize {} is not 56", h.phentsize.get()));

  u64 phnum = h.phnum.get();
  if (phnum == elf::pn_xnum) {
    // More headers than 16 bits count: the first section header holds the number.
    if (h.shentsize.get() != sizeof(elf::section_header))
      refuse(fmt::format("e_phnum is PN_XNUM but e_shentsize {} is not 64", h.shentsize.get()));
    if (!range_within(h.shoff.get(), sizeof(elf::section_header), 0, file_size))
      refuse(fmt::format("e_phnum is PN_XNUM but section header 0 at {:#x} is outside the file", h.shoff.get()));
    elf::section_header s0{};
    read_at(h.shoff.get(), sizeof s0, &s0);
    phnum = s0.info.get();
  }
  if (phnum > elf::max_program_headers)
    refuse(fmt::format("{} program headers, more than {}", phnum, elf::max_program_headers));
  if (!range_within(h.phoff.get(), phnum * sizeof(elf::program_header), 0, file_size))
    refuse(fmt::format("{} program headers at {:#x} run past the end of the file ({} bytes)", phnum,
                       h.phoff.get(), file_size));

  std::vector<elf::program_header> ph(phnum);
  if (phnum != 0) read_at(h.phoff.get(), phnum * sizeof(elf::program_header), ph.data());
  elf_core core;
  core.machine = machine;
  bool any_bytes = false, any_paddr = false;
  for (u64 i = 0; i < phnum; ++i) {
    const elf::program_header& p = ph[i];
    if (p.type.get() != elf::pt_load) continue;
    const elf_load l{p.paddr.get(), p.filesz.get(), p.memsz.get(), p.offset.get()};
    if (l.filesz > l.memsz)
      refuse(fmt::format("PT_LOAD {} has p_filesz {:#x} > p_memsz {:#x}", i, l.filesz, l.memsz));
    if (!range_within(l.offset, l.filesz, 0, file_size))
      refuse(fmt::format("PT_LOAD {} bytes [{:#x}, +{:#x}) run past the end of the file ({} bytes)", i, l.offset,
                         l.filesz, file_size));
    u64 end = 0;
    if (!checked_add(l.paddr, l.memsz, end))
      refuse(fmt::format("PT_LOAD {} at {:#x} (+{:#x}) wraps the physical address space", i, l.paddr, l.memsz));
    if (l.memsz == 0) continue;
    any_bytes |= l.filesz != 0;
    any_paddr |= l.paddr != 0;
    core.loads.push_back(l);
  }
  if (!any_bytes) refuse("no PT_LOAD segment with bytes in the file");
  std::sort(core.loads.begin(), core.loads.end(),
            [](const elf_load& a, const elf_load& b) { return a.paddr < b.paddr; });
  for (std::size_t i = 1; i < core.loads.size(); ++i) {
    const elf_load& a = core.loads[i - 1];
    const elf_load& b = core.loads[i];
    if (b.paddr < a.paddr + a.memsz)
      refuse(fmt::format("PT_LOAD segments overlap: [{:#x}, +{:#x}) and [{:#x}, +{:#x}){}", a.paddr, a.memsz,
                         b.paddr, b.memsz,
                         any_paddr ? "" : " (every p_paddr is 0: a process core, not a memory dump?)"));
  }
  return core;
}

/// Bytes of the ELF header and program headers of a core describing `loads` (for
/// tools and tests that write cores): an empty PT_NOTE (where dumpers put CPU state)
/// right after the headers, then one PT_LOAD per load, in order. The caller writes each
/// load's bytes at its offset. Size: 64 + 56 * (loads + 1).
inline std::vector<unsigned char> elf_core_headers(u16 machine, const std::vector<elf_load>& loads) {
  const u64 phnum = loads.size() + 1;
  std::vector<unsigned char> out(sizeof(elf::header) + phnum * sizeof(elf::program_header));
  elf::header h{};
  std::memcpy(h.ident, elf::magic, sizeof elf::magic);
  h.ident[4] = elf::class64;
  h.ident[5] = elf::data_lsb;
  h.ident[6] = 1;
  h.type.set(elf::type_core);
  h.machine.set(machine);
  h.version.set(1);
  h.phoff.set(sizeof h);
  h.ehsize.set(sizeof h);
  h.phentsize.set(sizeof(elf::program_header));
  h.phnum.set(static_cast<u16>(phnum));
  std::memcpy(out.data(), &h, sizeof h);
  elf::program_header note{};
  note.type.set(4);  // PT_NOTE
  note.offset.set(out.size());
  std::memcpy(out.data() + sizeof h, &note, sizeof note);
  for (std::size_t i = 0; i < loads.size(); ++i) {
    elf::program_header p{};
    p.type.set(elf::pt_load);
    p.flags.set(7);  // RWX, as QEMU and kdump mark memory
    p.offset.set(loads[i].offset);
    p.paddr.set(loads[i].paddr);
    p.filesz.set(loads[i].filesz);
    p.memsz.set(loads[i].memsz);
    std::memcpy(out.data() + sizeof h + (i + 1) * sizeof p, &p, sizeof p);
  }
  return out;
}

}  // namespace kho::model
