// The x86 boot hand-off: the setup_data walk to SETUP_KEXEC_KHO, kho_data and the
// scratch array checked before use, and scratch that must hold no preserved page.
#include <kho/linux/x86_boot.hpp>
#include <kho/preserve_bitmap.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>

#include <cstring>

namespace kho::test::linux_x86_boot_test {
namespace {

using namespace kho::upstream;

constexpr u64 base = u64{1} << 32;

struct X86Boot : ::testing::Test {
  arena<12> a{u64{4} << 20, base};
  phys_addr fdt = *a.pages().alloc(order{0});
  phys_addr array = *a.pages().alloc(order{0});
  phys_addr scratch0 = *a.pages().alloc(order{4});
  phys_addr scratch1 = *a.pages().alloc(order{4});

  // A node at `at`: {next, type, len} then `len` bytes of `data`.
  void node(phys_addr at, phys_addr next, u32 type, u32 len, const void* data = nullptr) {
    setup_data_header h{};
    h.next.set(next.value);
    h.type.set(type);
    h.len.set(len);
    std::memcpy(a.bytes(at), &h, sizeof h);
    if (data) std::memcpy(a.bytes(at) + sizeof h, data, len);
  }
  kho_data data(u64 entries = 2) {
    kho_scratch s[2]{};
    s[0].addr.set(scratch0.value);
    s[0].size.set(u64{16} << 12);
    s[1].addr.set(scratch1.value);
    s[1].size.set(u64{16} << 12);
    std::memcpy(a.bytes(array), s, sizeof s);
    kho_data d{};
    d.fdt_addr.set(fdt.value);
    d.fdt_size.set(4096);
    d.scratch_addr.set(array.value);
    d.scratch_size.set(entries * sizeof(kho_scratch));
    return d;
  }
  kho_scratch* entries() { return reinterpret_cast<kho_scratch*>(a.bytes(array)); }
  located_kho_data located(const kho_data& d) { return {d, phys_addr{base}}; }
};

TEST_F(X86Boot, FindsTheKhoNodeDownTheList) {
  const kho_data d = data();
  const u32 other = 0x1234;
  node(phys_addr{base}, phys_addr{base + 100}, 1, 4, &other);  // an unaligned next node: allowed
  node(phys_addr{base + 100}, phys_addr{base + 300}, 7, 0);
  node(phys_addr{base + 300}, phys_addr{}, setup_kexec_kho, sizeof d, &d);
  auto k = find_kho_data(a.memory(), phys_addr{base});
  ASSERT_TRUE(k.has_value()) << to_string(k.code());
  EXPECT_EQ(k->at, phys_addr{base + 300});
  EXPECT_EQ(k->data.fdt_addr.get(), fdt.value);
  EXPECT_TRUE(check_kho_boot(a.memory(), *k));
}

TEST_F(X86Boot, ListRefusals) {
  const kho_data d = data();
  node(phys_addr{base}, phys_addr{}, 1, 0);
  EXPECT_EQ(find_kho_data(a.memory(), phys_addr{base}).code(), errc::not_found);
  node(phys_addr{base}, phys_addr{base + 64}, 1, 0);
  node(phys_addr{base + 64}, phys_addr{base}, 1, 0);  // a cycle
  auto k = find_kho_data(a.memory(), phys_addr{base});
  EXPECT_EQ(k.code(), errc::cycle);
  node(phys_addr{base}, phys_addr{base - 4096}, 1, 0);  // next outside memory
  k = find_kho_data(a.memory(), phys_addr{base});
  EXPECT_EQ(k.code(), errc::out_of_bounds);
  EXPECT_EQ(k.err().loc.at, phys_addr{base - 4096});
  node(phys_addr{base}, phys_addr{}, setup_kexec_kho, 24, &d);  // len is not 32
  k = find_kho_data(a.memory(), phys_addr{base});
  EXPECT_EQ(k.code(), errc::bad_count);
  EXPECT_STREQ(k.err().loc.structure, "setup_data");
}

// The kernel's parse_setup_data walks the whole list, whatever it has found: a cycle
// anywhere hangs its boot, and each SETUP_KEXEC_KHO node is populated in turn, the
// last one winning. kho walks it the same way and refuses the cycle.
TEST_F(X86Boot, TheWholeListIsWalkedAsTheKernelWalksIt) {
  const kho_data d = data();
  kho_data other = data();
  other.fdt_addr.set(fdt.value + 4096);
  node(phys_addr{base}, phys_addr{base + 64}, setup_kexec_kho, sizeof d, &d);
  node(phys_addr{base + 64}, phys_addr{base + 200}, 7, 0);
  node(phys_addr{base + 200}, phys_addr{}, setup_kexec_kho, sizeof other, &other);
  auto k = find_kho_data(a.memory(), phys_addr{base});
  ASSERT_TRUE(k.has_value()) << to_string(k.code());
  EXPECT_EQ(k->kho_nodes, 2u);
  EXPECT_EQ(k->at, phys_addr{base + 200});  // the last, as the kernel reads it
  EXPECT_EQ(k->data.fdt_addr.get(), fdt.value + 4096);

  node(phys_addr{base + 200}, phys_addr{base + 64}, 1, 0);  // past the KHO node: a cycle
  k = find_kho_data(a.memory(), phys_addr{base});
  EXPECT_EQ(k.code(), errc::cycle);
  node(phys_addr{base}, phys_addr{base}, setup_kexec_kho, sizeof d, &d);  // next: itself
  k = find_kho_data(a.memory(), phys_addr{base});
  EXPECT_EQ(k.code(), errc::cycle);
  EXPECT_EQ(k.err().loc.at, phys_addr{base});

  // A list with no cycle but more nodes than any boot loader writes.
  for (u64 i = 0; i < max_setup_nodes; ++i)
    node(phys_addr{base + 32 * i}, phys_addr{base + 32 * (i + 1)}, 1, 0);
  node(phys_addr{base + 32 * max_setup_nodes}, phys_addr{}, setup_kexec_kho, sizeof d, &d);
  EXPECT_EQ(find_kho_data(a.memory(), phys_addr{base}).code(), errc::budget_exceeded);
  node(phys_addr{base + 32 * (max_setup_nodes - 1)}, phys_addr{}, setup_kexec_kho, sizeof d, &d);
  k = find_kho_data(a.memory(), phys_addr{base});
  ASSERT_TRUE(k.has_value()) << to_string(k.code());
  EXPECT_EQ(k->kho_nodes, 1u);
}

TEST_F(X86Boot, KhoDataRefusals) {
  auto code = [&](const kho_data& d) { return check_kho_boot(a.memory(), located(d)).code(); };
  kho_data d = data();
  EXPECT_EQ(code(d), errc::ok);
  d.fdt_addr.set(fdt.value + 8);
  EXPECT_EQ(code(d), errc::misaligned);
  d = data();
  d.fdt_size.set(8192);
  EXPECT_EQ(code(d), errc::out_of_range);
  d.fdt_size.set(16);
  EXPECT_EQ(code(d), errc::out_of_range);
  d = data();
  d.scratch_size.set(24);
  EXPECT_EQ(code(d), errc::bad_count);
  EXPECT_EQ(code(data(0)), errc::bad_count);
  d = data();
  d.scratch_size.set((max_scratch_entries + 1) * 16);
  EXPECT_EQ(code(d), errc::bad_count);
  d = data();
  d.scratch_addr.set(base - 4096);
  EXPECT_EQ(code(d), errc::out_of_bounds);
}

TEST_F(X86Boot, ScratchEntryRefusals) {
  auto check = [&]() { return check_kho_boot(a.memory(), located(data())); };
  const kho_data d = data();  // data() rewrites the array: each case patches it after
  entries()[1].addr.set(scratch0.value + 4096);  // overlaps entry 0
  status s = check_kho_boot(a.memory(), located(d));
  EXPECT_EQ(s.code(), errc::aliased);
  EXPECT_EQ(s.err().loc.at, array + 16);
  EXPECT_EQ(s.err().other.at, array);
  data();  // entry 1 starts a page before entry 0 and runs into it
  entries()[1].addr.set(scratch0.value - 4096);
  entries()[1].size.set(2 * 4096);
  s = check_kho_boot(a.memory(), located(d));
  EXPECT_EQ(s.code(), errc::aliased);
  EXPECT_EQ(s.err().loc.at, array + 16);
  EXPECT_EQ(s.err().other.at, array);
  entries()[1].size.set(4096);  // ends where entry 0 begins: nothing shared
  EXPECT_TRUE(check_kho_boot(a.memory(), located(d)));
  data();
  entries()[0].size.set(0);
  s = check_kho_boot(a.memory(), located(d));
  EXPECT_EQ(s.code(), errc::out_of_range);
  EXPECT_EQ(s.err().loc.at, array);
  data();
  entries()[1].addr.set(~u64{0} & ~u64{4095});  // wraps
  EXPECT_EQ(check_kho_boot(a.memory(), located(d)).code(), errc::out_of_range);
  data();
  entries()[0].size.set(100);
  EXPECT_EQ(check_kho_boot(a.memory(), located(d)).code(), errc::misaligned);
  EXPECT_TRUE(check());
}

TEST_F(X86Boot, ScratchMustHoldNoPreservedPage) {
  const kho_data d = data();
  auto map = preserve_bitmap<arena<12>::source_type>::create(a.pages());
  ASSERT_TRUE(map.has_value());
  ASSERT_TRUE(map->preserve(fdt, order{0}));
  EXPECT_TRUE(check_scratch_unpreserved(a.memory(), d, *map));
  ASSERT_TRUE(map->preserve(scratch1 + 5 * 4096, order{0}));
  const status s = check_scratch_unpreserved(a.memory(), d, *map);
  EXPECT_EQ(s.code(), errc::aliased);
  EXPECT_EQ(s.err().loc.at, array + 16);
  EXPECT_EQ(s.err().other.at, scratch1 + 5 * 4096);
}

// The kernel reads the scratch array at any byte address; kho copies entries out
// instead of referencing a misaligned kho_scratch (fuzz_linux_boot's UBSan finding).
TEST_F(X86Boot, ScratchArrayAtAnUnalignedAddress) {
  const kho_data aligned = data();
  std::memmove(a.bytes(array) + 2, a.bytes(array), 2 * sizeof(kho_scratch));
  kho_data d = aligned;
  d.scratch_addr.set(array.value + 2);
  EXPECT_TRUE(check_kho_boot(a.memory(), located(d)));
  kho_scratch e{};
  e.addr.set(scratch0.value + 4096);  // entry 1 now overlaps entry 0
  e.size.set(4096);
  std::memcpy(a.bytes(array) + 2 + sizeof e, &e, sizeof e);
  const status s = check_kho_boot(a.memory(), located(d));
  EXPECT_EQ(s.code(), errc::aliased);
  EXPECT_EQ(s.err().loc.at, array + 2 + 16);
  EXPECT_EQ(s.err().other.at, array + 2);
  auto map = preserve_bitmap<arena<12>::source_type>::create(a.pages());
  ASSERT_TRUE(map.has_value());
  ASSERT_TRUE(map->preserve(scratch0 + 3 * 4096, order{0}));
  const status u = check_scratch_unpreserved(a.memory(), d, *map);
  EXPECT_EQ(u.code(), errc::aliased);
  EXPECT_EQ(u.err().loc.at, array + 2);
  EXPECT_EQ(u.err().other.at, scratch0 + 3 * 4096);
}

}  // namespace
}  // namespace kho::test::linux_x86_boot_test
