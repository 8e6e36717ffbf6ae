// kho/model/elf_section.hpp: one named section of an ELF64 executable (hosted only).
//
// How a tool reads an image's manifest: the next kernel (or the model's next image)
// is an ELF64 little-endian file, and KHO_MANIFEST_SECTION put its manifest in a
// section named ".kho_manifest". The section is found by name through the section
// header table and its string table (e_shstrndx), the ELF-64 object format's facts
// only; elf_core.hpp has the header layouts. The file is untrusted: every offset,
// size and count is checked against the file, overflow-safe, before it is used.
#pragma once

#include <kho/model/elf_core.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace kho::model {

namespace elf {
inline constexpr u32 sht_nobits = 8;
inline constexpr u16 shn_undef = 0;
// Executables have a few dozen sections; 2^16 - 256 is ELF's own ceiling before
// the extended-numbering escape, which an executable has no reason to use.
inline constexpr u64 max_sections = 0xff00;
}  // namespace elf

/// Reads a whole file (an executable: megabytes).
/// Errors (std::runtime_error): cannot open or read.
inline std::vector<unsigned char> read_whole_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw std::runtime_error(fmt::format("{}: cannot open", path));
  std::vector<unsigned char> bytes;
  unsigned char buf[1 << 16];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) bytes.insert(bytes.end(), buf, buf + n);
  const bool bad = std::ferror(f) != 0;
  std::fclose(f);
  if (bad) throw std::runtime_error(fmt::format("{}: read error", path));
  return bytes;
}

/// The bytes of section `name` of the ELF64 little-endian file `file`.
/// Complexity: O(sections).
/// Errors (std::runtime_error, "ELF: ..."): not ELF64 little-endian version 1, a
/// section header table or string table outside the file, a section name outside its
/// string table or unterminated, no section of that name, two of them, or one with
/// no file bytes (SHT_NOBITS) or bytes outside the file.
inline std::optional<std::vector<unsigned char>> find_elf_section(const std::vector<unsigned char>& file,
                                                                  const char* name);

inline std::vector<unsigned char> elf_section(const std::vector<unsigned char>& file, const char* name) {
  auto found = find_elf_section(file, name);
  if (!found) throw std::runtime_error(fmt::format("ELF: no section named {}", name));
  return std::move(*found);
}

/// As elf_section, but a section that is absent is std::nullopt rather than an error
/// (an optional section: a kernel built without it). The other errors are the same.
inline std::optional<std::vector<unsigned char>> find_elf_section(const std::vector<unsigned char>& file,
                                                                  const char* name) {
  auto refuse = [](const std::string& what) { throw std::runtime_error("ELF: " + what); };
  const u64 size = file.size();
  elf::header h{};
  if (size < sizeof h || !has_elf_magic(file.data(), size)) refuse("not an ELF file");
  std::memcpy(&h, file.data(), sizeof h);
  if (h.ident[4] != elf::class64 || h.ident[5] != elf::data_lsb || h.ident[6] != 1)
    refuse("not ELF64 little-endian version 1");
  const u64 shoff = h.shoff.get(), shnum = h.shnum.get(), stridx = h.shstrndx.get();
  if (h.shentsize.get() != sizeof(elf::section_header)) refuse(fmt::format("e_shentsize {}", h.shentsize.get()));
  if (shnum == 0 || shnum > elf::max_sections) refuse(fmt::format("e_shnum {}", shnum));
  if (shoff > size || (size - shoff) / sizeof(elf::section_header) < shnum)
    refuse(fmt::format("section headers at {:#x} ({} of them) outside the file", shoff, shnum));
  auto section = [&](u64 i) {
    elf::section_header s{};
    std::memcpy(&s, file.data() + shoff + i * sizeof s, sizeof s);
    return s;
  };
  auto bytes_of = [&](const elf::section_header& s, u64 i) {
    const u64 off = s.offset.get(), len = s.size.get();
    if (s.type.get() == elf::sht_nobits) refuse(fmt::format("section {} has no file bytes", i));
    if (off > size || size - off < len) refuse(fmt::format("section {} at {:#x}+{:#x} outside the file", i, off, len));
    return std::pair<u64, u64>{off, len};
  };
  if (stridx == elf::shn_undef || stridx >= shnum) refuse(fmt::format("e_shstrndx {}", stridx));
  const auto [str_off, str_len] = bytes_of(section(stridx), stridx);
  const auto* strings = reinterpret_cast<const char*>(file.data() + str_off);
  const u64 want = std::strlen(name);
  std::vector<unsigned char> found;
  bool seen = false;
  for (u64 i = 1; i < shnum; ++i) {
    const elf::section_header s = section(i);
    const u64 at = s.name.get();
    if (at >= str_len) refuse(fmt::format("section {} name offset {} outside the string table", i, at));
    const u64 n = detail::bounded_length(strings + at, str_len - at);
    if (n == str_len - at) refuse(fmt::format("section {} name unterminated", i));
    if (n != want || std::memcmp(strings + at, name, n) != 0) continue;
    if (seen) refuse(fmt::format("two sections named {}", name));
    seen = true;
    const auto [off, len] = bytes_of(s, i);
    found.assign(file.begin() + static_cast<std::ptrdiff_t>(off), file.begin() + static_cast<std::ptrdiff_t>(off + len));
  }
  if (!seen) return std::nullopt;
  return found;
}

}  // namespace kho::model
