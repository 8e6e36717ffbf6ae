// ELF cores as memory (model/elf_core.hpp, model/image_memory.hpp): what the parser
// accepts and refuses, and how the segments read: by physical address, a hole between
// them, adjacent segments as one range, unaligned file offsets read on use, host and
// physical addresses congruent modulo the page, absent bytes past p_filesz.
#include <kho/model/elf_core.hpp>
#include <kho/model/image_memory.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

namespace kho::test::elf_core_test {
namespace {

using load_spec = model::elf_load;  // paddr, filesz, memsz, offset

/// An ELF64 core (model::elf_core_headers: a PT_NOTE first), then each segment's bytes
/// at its offset, byte i of a segment being (paddr + i) * 7 mod 251. Segment bytes must
/// not overlap the headers (64 + 56 * (loads + 1) bytes).
std::vector<unsigned char> make_core(const std::vector<load_spec>& loads, u64 size) {
  std::vector<unsigned char> f(size, 0);
  const auto head = model::elf_core_headers(model::elf::machine_aarch64, loads);
  std::memcpy(f.data(), head.data(), head.size());
  for (const load_spec& l : loads) {
    if (!range_within(l.offset, l.filesz, 0, size)) continue;  // a lying header
    for (u64 b = 0; b < l.filesz; ++b) f[l.offset + b] = static_cast<unsigned char>((l.paddr + b) * 7 % 251);
  }
  return f;
}

unsigned char expected_byte(u64 pa) { return static_cast<unsigned char>(pa * 7 % 251); }

model::elf_core parse(const std::vector<unsigned char>& f) {
  return model::parse_elf_core(
      [&](u64 offset, u64 len, void* out) { std::memcpy(out, f.data() + offset, len); }, f.size());
}

std::string refusal(const std::vector<unsigned char>& f) {
  try {
    parse(f);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "accepted";
}

/// The core in a memfd, opened as a memory_image.
std::unique_ptr<model::memory_image> open_core(const std::vector<unsigned char>& f) {
  int fd = ::memfd_create("core", 0);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::pwrite(fd, f.data(), f.size(), 0), static_cast<ssize_t>(f.size()));
  return model::memory_image::open_elf(fd, f.size());
}

constexpr u64 gib4 = u64{4} << 30;

TEST(ElfCore, SegmentsReadByPhysicalAddressWithHolesAndAbsentTails) {
  // [4G, +64K) at an unaligned offset; a hole; [4G+1M, +32K) and [4G+1M+32K, +32K)
  // adjacent in memory and in the file (one range), the second with 8 KiB absent.
  const auto f = make_core({{gib4, 0x10000, 0x10000, 300},
                            {gib4 + 0x100000, 0x8000, 0x8000, 0x20000},
                            {gib4 + 0x108000, 0x8000, 0xa000, 0x28000}},
                           0x30000);
  auto image = open_core(f);
  const model::image_memory mem = image->memory();
  ASSERT_EQ(image->ranges().size(), 2u);
  EXPECT_EQ(image->ranges()[1], (phys_range{phys_addr{gib4 + 0x100000}, phys_addr{gib4 + 0x110000}}));
  EXPECT_EQ(mem.size(), 0x20000u);
  EXPECT_EQ(image->copied_ranges(), 1u);
  EXPECT_EQ(image->machine(), model::elf::machine_aarch64);
  // every byte reads as the file holds it, across host pages of the copied range too
  for (u64 pa : {gib4, gib4 + 0xfff, gib4 + 0x1000, gib4 + 0xffff, gib4 + 0x100000, gib4 + 0x10ffff}) {
    const auto* b = static_cast<const unsigned char*>(mem.to_virt(phys_addr{pa}, 1));
    ASSERT_NE(b, nullptr) << std::hex << pa;
    EXPECT_EQ(*b, expected_byte(pa)) << std::hex << pa;
  }
  const auto* span = static_cast<const unsigned char*>(mem.to_virt(phys_addr{gib4 + 0xf00}, 0x2200));
  ASSERT_NE(span, nullptr);
  for (u64 i = 0; i < 0x2200; ++i) ASSERT_EQ(span[i], expected_byte(gib4 + 0xf00 + i)) << i;
  // a page-aligned structure is page-aligned in the host, in either kind of range
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(mem.to_virt(phys_addr{gib4 + 0x3000}, 8)) % 4096, 0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(mem.to_virt(phys_addr{gib4 + 0x107000}, 8)) % 4096, 0u);
  // straddling the two adjacent segments: one range
  EXPECT_NE(mem.to_virt(phys_addr{gib4 + 0x107800}, 0x1000), nullptr);
  // the hole, the absent tail, straddling a range's end, before the first range
  EXPECT_EQ(mem.to_virt(phys_addr{gib4 + 0x10000}, 1), nullptr);
  EXPECT_EQ(mem.to_virt(phys_addr{gib4 + 0x110000}, 1), nullptr);
  EXPECT_EQ(mem.to_virt(phys_addr{gib4 + 0xf000}, 0x2000), nullptr);
  EXPECT_EQ(mem.to_virt(phys_addr{gib4 - 1}, 1), nullptr);
  EXPECT_EQ(mem.to_virt(phys_addr{~u64{0}}, 1), nullptr);
}

TEST(ElfCore, ZeroFileSizeSegmentsAreAbsentButStillMayNotOverlap) {
  auto f = make_core({{gib4, 0x1000, 0x1000, 0x1000}, {gib4 + 0x1000, 0, 0x1000, 0}}, 0x2000);
  EXPECT_EQ(parse(f).loads.size(), 2u);
  EXPECT_EQ(open_core(f)->ranges().size(), 1u);
  f = make_core({{gib4, 0x1000, 0x1000, 0x1000}, {gib4 + 0xfff, 0, 0x1000, 0}}, 0x2000);
  EXPECT_NE(refusal(f).find("PT_LOAD segments overlap"), std::string::npos) << refusal(f);
}

TEST(ElfCore, ManyHeadersCountedInTheFirstSectionHeader) {
  // PN_XNUM: e_phnum 0xffff, the count in section header 0's sh_info.
  auto f = make_core({{gib4, 0x1000, 0x1000, 0x1000}, {gib4 + 0x2000, 0x1000, 0x1000, 0x2000}}, 0x3000 + 64);
  const u64 shoff = 0x3000;
  model::elf::header h{};
  std::memcpy(&h, f.data(), sizeof h);
  h.phnum.set(model::elf::pn_xnum);
  h.shoff.set(shoff);
  h.shentsize.set(sizeof(model::elf::section_header));
  h.shnum.set(0);
  std::memcpy(f.data(), &h, sizeof h);
  model::elf::section_header s0{};
  s0.info.set(3);
  std::memcpy(f.data() + shoff, &s0, sizeof s0);
  EXPECT_EQ(parse(f).loads.size(), 2u);
  s0.info.set(0xffffffff);
  std::memcpy(f.data() + shoff, &s0, sizeof s0);
  EXPECT_NE(refusal(f).find("4294967295 program headers, more than 1048576"), std::string::npos) << refusal(f);
  h.shoff.set(~u64{0} - 8);
  std::memcpy(f.data(), &h, sizeof h);
  EXPECT_NE(refusal(f).find("section header 0 at 0xfffffffffffffff7 is outside the file"), std::string::npos)
      << refusal(f);
}

TEST(ElfCore, RefusesWhatIsNotAGuestMemoryDump) {
  // a process core: every p_paddr 0
  auto f = make_core({{0, 0x1000, 0x1000, 0x1000}, {0, 0x1000, 0x1000, 0x2000}}, 0x3000);
  EXPECT_NE(refusal(f).find("a process core, not a memory dump?"), std::string::npos) << refusal(f);
  // no PT_LOAD with bytes
  f = make_core({{gib4, 0, 0x1000, 0}}, 0x1000);
  EXPECT_NE(refusal(f).find("no PT_LOAD segment with bytes in the file"), std::string::npos) << refusal(f);
  // program headers whose size wraps with their offset
  f = make_core({{gib4, 0x1000, 0x1000, 0x1000}}, 0x2000);
  model::elf::header h{};
  std::memcpy(&h, f.data(), sizeof h);
  h.phoff.set(~u64{0} - 16);
  std::memcpy(f.data(), &h, sizeof h);
  EXPECT_NE(refusal(f).find("program headers at 0xffffffffffffffef run past the end"), std::string::npos)
      << refusal(f);
  // a segment whose file range wraps
  f = make_core({{gib4, 0x1000, 0x1000, ~u64{0} - 0x10}}, 0x2000);
  EXPECT_NE(refusal(f).find("run past the end of the file"), std::string::npos) << refusal(f);
  // the flat-image check
  EXPECT_TRUE(model::has_elf_magic(f.data(), f.size()));
  EXPECT_FALSE(model::has_elf_magic(f.data(), 3));
}

}  // namespace
}  // namespace kho::test::elf_core_test
