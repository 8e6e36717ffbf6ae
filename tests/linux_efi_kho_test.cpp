// LoongArch's EFI hand-off (LINUX-FORMATS-NEXT.md section 8.2; the blob's layout is
// inferred and the GUID unknown, so the tests pick one): a configuration table and blob
// encoded here byte by byte, found by kho's reader; the memsz-rounded scratch array with
// trailing {0, 0} entries trimmed before check_kho_boot; writer round trip; refusals.
#include <kho/linux/efi_kho.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace kho::test::linux_efi_kho_test {
namespace {

using namespace kho::upstream;

constexpr efi_guid test_guid{{0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8}};
constexpr efi_guid other_guid{{0xee, 0xee, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9}};

void put64(unsigned char* p, u64 v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

// Independent encoder: at the arena's base, a table of 3 entries (24 B each: GUID then
// pointer), the KHO entry last, at an odd address; the blob (4 u64) after it; a scratch
// array of two ranges padded with zero entries to a page, as memsz rounding leaves it.
struct efi_image {
  arena<12> a{u64{4} << 20};
  phys_addr table{}, blob{}, array{};

  efi_image() {
    const phys_addr page = *a.pages().alloc(order{0});
    table = page + 4;  // not 8-byte aligned: read by copies
    unsigned char* t = a.bytes(table);
    std::memset(a.bytes(page), 0, 4096);
    std::memcpy(t, other_guid.bytes, 16);
    put64(t + 16, 0x1234);
    std::memcpy(t + 24, other_guid.bytes, 16);
    blob = page + 1024;
    std::memcpy(t + 48, test_guid.bytes, 16);
    put64(t + 64, blob.value);
    array = *a.pages().alloc(order{0});
    std::memset(a.bytes(array), 0, 4096);
    const phys_addr r0 = *a.pages().alloc(order{2}), r1 = *a.pages().alloc(order{2});
    put64(a.bytes(array), r0.value);
    put64(a.bytes(array) + 8, 4 * 4096);
    put64(a.bytes(array) + 16, r1.value);
    put64(a.bytes(array) + 24, 4 * 4096);
    unsigned char* b = a.bytes(blob);
    put64(b, (a.pages().alloc(order{0}))->value);
    put64(b + 8, 4096);
    put64(b + 16, array.value);
    put64(b + 24, 4096);  // memsz: a page, 256 entries of which 2 are used
  }
};

TEST(LinuxEfiKho, FindsTheEntryAndTrimsZeroEntries) {
  efi_image img;
  auto k = find_efi_kho(img.a.memory(), img.table, 3, test_guid);
  ASSERT_TRUE(k.has_value()) << to_string(k.code());
  EXPECT_EQ(k->at, img.blob);
  EXPECT_EQ(k->kho_nodes, 1u);
  EXPECT_EQ(k->data.scratch_addr.get(), img.array.value);
  EXPECT_EQ(kho_scratch_count(k->data), 256u);
  // Untrimmed, the zero entries are empty ranges: refused.
  EXPECT_EQ(check_kho_boot(img.a.memory(), *k).code(), errc::out_of_range);
  const located_kho_data trimmed = trim_efi_kho_scratch(img.a.memory(), *k);
  EXPECT_EQ(kho_scratch_count(trimmed.data), 2u);
  EXPECT_TRUE(check_kho_boot(img.a.memory(), trimmed));
}

TEST(LinuxEfiKho, ZeroEntryInsideTheArrayIsNotTrimmed) {
  efi_image img;
  put64(img.a.bytes(img.array), 0);  // entry 0 {0, 16K}: not trailing, not all zero
  put64(img.a.bytes(img.array) + 8, 0);  // now {0, 0} but entry 1 follows
  auto k = find_efi_kho(img.a.memory(), img.table, 3, test_guid);
  const located_kho_data trimmed = trim_efi_kho_scratch(img.a.memory(), *k);
  EXPECT_EQ(kho_scratch_count(trimmed.data), 2u);
  EXPECT_EQ(check_kho_boot(img.a.memory(), trimmed).code(), errc::out_of_range);
}

TEST(LinuxEfiKho, Refusals) {
  efi_image img;
  const efi_guid absent{{1}};
  EXPECT_EQ(find_efi_kho(img.a.memory(), img.table, 3, absent).code(), errc::not_found);
  EXPECT_EQ(find_efi_kho(img.a.memory(), img.table, 2, test_guid).code(), errc::not_found);  // entry cut off
  EXPECT_EQ(find_efi_kho(img.a.memory(), img.table, max_efi_tables + 1, test_guid).code(), errc::bad_count);
  EXPECT_EQ(find_efi_kho(img.a.memory(), phys_addr{u64{1} << 40}, 3, test_guid).code(), errc::out_of_bounds);
  put64(img.a.bytes(img.table) + 64, u64{1} << 40);  // the blob outside memory
  auto k = find_efi_kho(img.a.memory(), img.table, 3, test_guid);
  EXPECT_EQ(k.code(), errc::out_of_bounds);
  EXPECT_EQ(k.err().loc.at, img.table + 48);
}

TEST(LinuxEfiKho, WriterRoundTripAfterFirmwareEntries) {
  arena<12> a(u64{4} << 20);
  std::vector<efi_config_table_entry> firmware(200);  // two pages of table
  for (size_t i = 0; i < firmware.size(); ++i) {
    firmware[i].guid = other_guid;
    firmware[i].table.set(i);
  }
  linux_efi_kho_data d{};
  d.fdt_addr.set(0x9000'0000);
  d.fdt_size.set(4096);
  d.scratch_addr.set(0x9000'1000);
  d.scratch_size.set(4096);
  auto w = write_efi_kho(a.pages(), d, test_guid, firmware);
  ASSERT_TRUE(w.has_value()) << to_string(w.code());
  EXPECT_EQ(w->count, 201u);
  auto k = find_efi_kho(a.remap(), w->table, w->count, test_guid);
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->at, w->blob);
  EXPECT_EQ(std::memcmp(&k->data, &d, sizeof d), 0);
  // The same GUID twice: the first is read, both counted.
  const phys_addr first_blob = w->blob;
  firmware[5].guid = test_guid;
  firmware[5].table.set(first_blob.value);
  w = write_efi_kho(a.pages(), d, test_guid, firmware);
  k = find_efi_kho(a.memory(), w->table, w->count, test_guid);
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->kho_nodes, 2u);
  EXPECT_EQ(k->at, first_blob);
  EXPECT_NE(w->blob, first_blob);
}

}  // namespace
}  // namespace kho::test::linux_efi_kho_test
