// A VM host's memory state (LINUX-FORMATS-NEXT.md sections 2 to 4): hugetlb-v1,
// huge-memfd-v1, guest_memfd_luo_v1, kvm_vm_luo_v1 (layouts A and B),
// kvm_vcpu_luo_v1, tmpfs-mnt-v1 and tmpfs-file-v1. Each layout is built here by an
// independent encoder (raw bytes at the spec's offsets, kho's writers not used) and
// read by kho's reader; kho's writers must produce the same bytes; every reader check
// is refused with its errc and place after tampering; folios are adopted into a kho
// xarray and checked against a std::map; and a whole handover carrying all of them
// passes the whole-handover check (kho verify), then fails it with the named error
// after each cross-file fault.
#include <kho/linux/adopt_folios.hpp>
#include <kho/linux/guest_memfd.hpp>
#include <kho/linux/hugetlb.hpp>
#include <kho/linux/kho_fdt_check.hpp>
#include <kho/linux/kvm.hpp>
#include <kho/linux/tmpfs.hpp>
#include <kho/model/inspect_linux.hpp>
#include <kho/model/kernel_verdict.hpp>
#include <kho/model/scratch_pages.hpp>
#include <kho/page_owners.hpp>
#include <kho/preserving_page_source.hpp>
#include <kho/xarray.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <bit>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

namespace kho::test::linux_vmmem_test {
namespace {

using namespace kho::upstream;
static_assert(std::endian::native == std::endian::little, "the raw encoder writes host-order integers");

constexpr unsigned shift = 12;
constexpr u64 page = u64{1} << shift;

// ---- the independent encoder ---------------------------------------------------------

struct raw {
  arena<shift>& a;

  phys_addr alloc(unsigned o = 0) {
    auto pa = a.pages().alloc(order{o});
    EXPECT_TRUE(pa.has_value());
    std::memset(a.bytes(*pa), 0, page << o);
    return *pa;
  }
  void put(phys_addr at, u64 v, unsigned bytes) { std::memcpy(a.bytes(at), &v, bytes); }
  void put64(phys_addr at, u64 v) { put(at, v, 8); }
  u64 get64(phys_addr at) {
    u64 v;
    std::memcpy(&v, a.bytes(at), 8);
    return v;
  }
  // A kho_vmalloc descriptor at `desc` (LF section 4): one chunk page {next u64, then
  // unit addresses}, order-0 units holding the 16-byte records packed; none for 0.
  void records(phys_addr desc, const std::vector<std::pair<u64, u64>>& recs) {
    if (recs.empty()) return;
    const u64 per_page = page / 16, pages = (recs.size() + per_page - 1) / per_page;
    const phys_addr chunk = alloc();
    for (u64 p = 0; p < pages; ++p) {
      const phys_addr unit = alloc();
      put64(chunk + 8 + 8 * p, unit.value);
      for (u64 i = 0; i < per_page && p * per_page + i < recs.size(); ++i) {
        put64(unit + 16 * i, recs[p * per_page + i].first);
        put64(unit + 16 * i + 8, recs[p * per_page + i].second);
      }
    }
    put64(desc, chunk.value);
    put(desc + 8, pages, 4);
    put(desc + 12, 1, 2);  // VM_ALLOC
    put(desc + 14, 0, 2);  // order 0
  }
  // The address of record i of the array the descriptor at `desc` names.
  phys_addr record(phys_addr desc, u64 i) {
    const phys_addr chunk{get64(desc)};
    return phys_addr{get64(chunk + 8 + 8 * (i / (page / 16)))} + 16 * (i % (page / 16));
  }
};

template <class R>
void expect_error(const R& r, errc code, phys_addr at, u32 depth = ~u32{0}) {
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.code(), code) << to_string(r.code());
  EXPECT_EQ(r.err().loc.at, at) << std::hex << r.err().loc.at.value << " != " << at.value;
  if (depth != ~u32{0}) {
    EXPECT_EQ(r.err().loc.depth, depth);
  }
}

// ---- hugetlb-v1 -------------------------------------------------------------------------

phys_addr raw_hugetlb(raw& r, const std::vector<std::pair<u64, u8>>& hs, u8 nr) {
  const phys_addr s = r.alloc();
  for (u64 i = 0; i < hs.size(); ++i) {
    r.put(s + 9 * i, hs[i].first, 8);  // unaligned: offsets 9, 18, 27
    r.put(s + 9 * i + 8, hs[i].second, 1);
  }
  r.put(s + 36, nr, 1);
  return s;
}

TEST(LinuxHugetlbFlb, IndependentBytesReadAndWriterMatches) {
  arena<shift> a;
  raw r{a};
  const phys_addr s = raw_hugetlb(r, {{0x0102030405060708, 9}, {7, 18}}, 2);
  auto v = attach_hugetlb_flb<shift>(a.memory(), s);
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  ASSERT_EQ(v->nr_hstates(), 2u);
  EXPECT_EQ(v->hstate(0).nr_pages, 0x0102030405060708u);
  EXPECT_EQ(v->hstate(0).order, 9);
  EXPECT_EQ(v->hstate(1).nr_pages, 7u);
  u64 n = 0;
  EXPECT_TRUE(v->find(18, n));
  EXPECT_EQ(n, 7u);
  EXPECT_FALSE(v->find(10, n));
  const hugetlb_hstate hs[2] = {{9, 0x0102030405060708}, {18, 7}};
  auto w = write_hugetlb_flb<shift>(a.pages(), hs, 2);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(std::memcmp(a.bytes(*w), a.bytes(s), page), 0) << "the writer's page differs from the spec's bytes";
  page_owners<arena<shift>::source_type, shift> owners(a.pages());
  ASSERT_TRUE(v->claim_pages(owners));
  EXPECT_EQ(owners.size(), 1u);
}

TEST(LinuxHugetlbFlb, TamperedFieldsAreRefused) {
  arena<shift> a;
  raw r{a};
  // nr_hstates past the array: the kernel would scan past it.
  phys_addr s = raw_hugetlb(r, {{1, 9}}, 5);
  expect_error(attach_hugetlb_flb<shift>(a.memory(), s), errc::out_of_range, s + 36, 0);
  s = raw_hugetlb(r, {{1, 9}, {1, 0}}, 2);
  expect_error(attach_hugetlb_flb<shift>(a.memory(), s), errc::out_of_range, s + 9, 1);
  s = raw_hugetlb(r, {{1, 9}, {1, 60}}, 2);
  expect_error(attach_hugetlb_flb<shift>(a.memory(), s), errc::out_of_range, s + 9, 1);
  s = raw_hugetlb(r, {{1, 9}, {2, 9}}, 2);
  expect_error(attach_hugetlb_flb<shift>(a.memory(), s), errc::duplicate, s + 9, 1);
  s = raw_hugetlb(r, {{1, 9}, {0, 0}, {5, 0}}, 1);
  expect_error(attach_hugetlb_flb<shift>(a.memory(), s), errc::reserved_nonzero, s + 18, 1);
  s = raw_hugetlb(r, {{1, 9}}, 1);
  expect_error(attach_hugetlb_flb<shift>(a.memory(), s + 8), errc::misaligned, s + 8, 0);
  const hugetlb_hstate five[5] = {{9, 0}, {18, 0}, {10, 0}, {11, 0}, {12, 0}};
  EXPECT_EQ(write_hugetlb_flb<shift>(a.pages(), five, 5).code(), errc::invalid_argument);
  const hugetlb_hstate twice[2] = {{9, 0}, {9, 0}};
  EXPECT_EQ(write_hugetlb_flb<shift>(a.pages(), twice, 2).code(), errc::invalid_argument);
}

// ---- huge-memfd-v1 ----------------------------------------------------------------------

phys_addr raw_huge_memfd(raw& r, u64 size, u64 pos, u8 o, const std::vector<std::pair<u64, u64>>& recs,
                         u64 nr_folios = ~u64{0}) {
  const phys_addr s = r.alloc();
  r.put64(s, size);  // size before pos
  r.put64(s + 8, pos);
  r.put64(s + 16, nr_folios == ~u64{0} ? recs.size() : nr_folios);
  r.records(s + 24, recs);
  r.put(s + 40, o, 1);
  return s;
}

constexpr u64 mib2 = u64{2} << 20;

TEST(LinuxHugeMemfd, IndependentBytesRead) {
  arena<shift> a;
  raw r{a};
  const phys_addr s = raw_huge_memfd(r, 4 * mib2, 77, 9, {{0x200, 0}, {0xA00, 1024}});
  auto v = attach_huge_memfd<shift>(a.memory(), s);
  ASSERT_TRUE(v.has_value()) << to_string(v.code()) << " " << std::hex << v.err().loc.at.value;
  EXPECT_EQ(v->size(), 4 * mib2);
  EXPECT_EQ(v->pos(), 77u);
  EXPECT_EQ(v->folio_order(), 9u);
  EXPECT_EQ(v->nr_folios(), 2u);
  std::vector<std::pair<u64, u64>> got;
  v->for_each_folio([&](const huge_folio& f) { got.emplace_back(f.frame.value, f.index); });
  EXPECT_EQ(got, (std::vector<std::pair<u64, u64>>{{0x200, 0}, {0xA00, 1024}}));
  page_owners<arena<shift>::source_type, shift> owners(a.pages());
  ASSERT_TRUE(v->claim_pages(owners));
  EXPECT_EQ(owners.size(), 3u);  // structure, chunk, one record page; never a folio
  EXPECT_EQ(owners.find(phys_addr{0x200 << shift}), nullptr);
}

TEST(LinuxHugeMemfd, WriterMatchesTheSpecsBytes) {
  arena<shift> a;
  raw r{a};
  const huge_folio folios[2] = {{pfn{0x40000}, 0}, {pfn{0x80000}, u64{1} << 18}};
  auto w = write_huge_memfd<shift>(a.pages(), huge_memfd_file{u64{4} << 30, 5, 18, folios, 2});
  ASSERT_TRUE(w.has_value());
  const u8* b = a.bytes(*w);
  u64 size, pos, nr;
  std::memcpy(&size, b, 8), std::memcpy(&pos, b + 8, 8), std::memcpy(&nr, b + 16, 8);
  EXPECT_EQ(size, u64{4} << 30);
  EXPECT_EQ(pos, 5u);
  EXPECT_EQ(nr, 2u);
  EXPECT_EQ(b[40], 18);
  for (u64 i = 41; i < page; ++i) ASSERT_EQ(b[i], 0) << i;
  EXPECT_EQ(r.get64(r.record(*w + 24, 1)), 0x80000u);
  EXPECT_EQ(r.get64(r.record(*w + 24, 1) + 8), u64{1} << 18);
  const huge_memfd_file empty{0, 0, 9, nullptr, 0};
  auto e = write_huge_memfd<shift>(a.pages(), empty);
  ASSERT_TRUE(e.has_value());
  for (u64 i = 16; i < 40; ++i) ASSERT_EQ(a.bytes(*e)[i], 0) << "no folios: a zero descriptor";
  ASSERT_TRUE(attach_huge_memfd<shift>(a.memory(), *e).has_value());
}

TEST(LinuxHugeMemfd, TamperedFieldsAreRefused) {
  arena<shift> a;
  raw r{a};
  auto at_record = [&](phys_addr s, u64 i) { return r.record(s + 24, i); };
  phys_addr s = raw_huge_memfd(r, 4 * mib2, 0, 9, {{0x200, 0}, {0x200 | u64{1} << 52, 512}});
  expect_error(attach_huge_memfd<shift>(a.memory(), s), errc::reserved_nonzero, at_record(s, 1), 1);
  s = raw_huge_memfd(r, 4 * mib2, 0, 9, {{0x201, 0}});
  expect_error(attach_huge_memfd<shift>(a.memory(), s), errc::misaligned, at_record(s, 0), 1);
  s = raw_huge_memfd(r, 4 * mib2, 0, 9, {{0x200, 1}});
  expect_error(attach_huge_memfd<shift>(a.memory(), s), errc::misaligned, at_record(s, 0), 1);
  s = raw_huge_memfd(r, 4 * mib2, 0, 9, {{0x200, 512}, {0x400, 0}});
  expect_error(attach_huge_memfd<shift>(a.memory(), s), errc::already_exists, at_record(s, 1), 1);
  s = raw_huge_memfd(r, 4 * mib2, 0, 9, {{0x200, 512}, {0x400, 512}});
  expect_error(attach_huge_memfd<shift>(a.memory(), s), errc::already_exists, at_record(s, 1), 1);
  s = raw_huge_memfd(r, 4 * mib2, 0, 9, {{0x200, 2048}});
  expect_error(attach_huge_memfd<shift>(a.memory(), s), errc::out_of_range, at_record(s, 0), 1);
  s = raw_huge_memfd(r, 4 * mib2, 0, 9, {{0, 0}});
  expect_error(attach_huge_memfd<shift>(a.memory(), s), errc::out_of_range, at_record(s, 0), 1);
  s = raw_huge_memfd(r, 4 * mib2, 0, 0, {});
  expect_error(attach_huge_memfd<shift>(a.memory(), s), errc::out_of_range, s + 40, 0);
  s = raw_huge_memfd(r, 4 * mib2 + page, 0, 9, {});
  expect_error(attach_huge_memfd<shift>(a.memory(), s), errc::misaligned, s, 0);
  s = raw_huge_memfd(r, 4 * mib2, 0, 9, {{0x200, 0}}, 300);
  expect_error(attach_huge_memfd<shift>(a.memory(), s), errc::bad_count, s, 0);
  s = raw_huge_memfd(r, 4 * mib2, 0, 9, {});
  r.put64(s + 24, 0x1000);
  expect_error(attach_huge_memfd<shift>(a.memory(), s), errc::reserved_nonzero, s, 0);
  const huge_folio overlap[2] = {{pfn{0x200}, 512}, {pfn{0x400}, 512}};
  EXPECT_EQ(write_huge_memfd<shift>(a.pages(), huge_memfd_file{4 * mib2, 0, 9, overlap, 2}).code(),
            errc::invalid_argument);
}

// ---- guest_memfd_luo_v1 -----------------------------------------------------------------

phys_addr raw_guest_memfd(raw& r, u64 size, u64 flags, u64 token, const std::vector<std::pair<u64, u64>>& recs) {
  const phys_addr s = r.alloc();
  r.put64(s, size);
  r.put64(s + 8, flags);
  r.put64(s + 16, recs.size());
  r.put64(s + 24, token);
  r.records(s + 32, recs);
  return s;
}

constexpr u64 uptodate = u64{1} << 52;  // guest_memfd's UPTODATE: word bit 52

TEST(LinuxGuestMemfd, IndependentBytesReadAndWriterMatches) {
  arena<shift> a;
  raw r{a};
  const phys_addr s = raw_guest_memfd(r, 16 * page, 3, 42, {{0x77 | uptodate, 1}, {0, 0}, {0x78, 15}});
  auto v = attach_guest_memfd<shift>(a.memory(), s);
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  EXPECT_EQ(v->size(), 16 * page);
  EXPECT_EQ(v->flags(), 3u);
  EXPECT_EQ(v->vm_token(), 42u);
  EXPECT_EQ(v->nr_folios(), 3u);
  std::vector<std::tuple<u64, u64, u16>> got;
  v->for_each_folio([&](const guest_memfd_folio& f) { got.emplace_back(f.frame.value, f.index, f.flags); });
  // The record with pfn 0 is skipped, as the kernel skips it.
  EXPECT_EQ(got, (std::vector<std::tuple<u64, u64, u16>>{{0x77, 1, 1}, {0x78, 15, 0}}));
  const guest_memfd_folio folios[2] = {{pfn{0x77}, 1, guest_memfd_folio_uptodate}, {pfn{0x78}, 15, 0}};
  auto w = write_guest_memfd<shift>(a.pages(), guest_memfd_file{16 * page, 3, 42, folios, 2});
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(std::memcmp(a.bytes(*w), a.bytes(s), 16), 0);
  EXPECT_EQ(r.get64(*w + 16), 2u);  // the raw image has a third record, with pfn 0
  EXPECT_EQ(r.get64(*w + 24), 42u);
  EXPECT_EQ(r.get64(r.record(*w + 32, 0)), 0x77 | uptodate);
  EXPECT_EQ(r.get64(r.record(*w + 32, 1) + 8), 15u);
}

TEST(LinuxGuestMemfd, TamperedFieldsAreRefused) {
  arena<shift> a;
  raw r{a};
  phys_addr s = raw_guest_memfd(r, 16 * page, 4, 1, {});
  expect_error(attach_guest_memfd<shift>(a.memory(), s), errc::reserved_nonzero, s + 8, 0);
  s = raw_guest_memfd(r, 0, 0, 1, {});
  expect_error(attach_guest_memfd<shift>(a.memory(), s), errc::out_of_range, s, 0);
  s = raw_guest_memfd(r, 100, 0, 1, {});
  expect_error(attach_guest_memfd<shift>(a.memory(), s), errc::misaligned, s, 0);
  s = raw_guest_memfd(r, 16 * page, 0, 1, {{0x77 | u64{2} << 52, 0}});  // memfd's UPTODATE value
  expect_error(attach_guest_memfd<shift>(a.memory(), s), errc::reserved_nonzero, r.record(s + 32, 0), 1);
  s = raw_guest_memfd(r, 16 * page, 0, 1, {{0x77, 16}});  // the kernel would take it
  expect_error(attach_guest_memfd<shift>(a.memory(), s), errc::out_of_range, r.record(s + 32, 0), 1);
  s = raw_guest_memfd(r, 16 * page, 0, 1, {{0x77, 3}, {0x78, 3}});
  expect_error(attach_guest_memfd<shift>(a.memory(), s), errc::duplicate, r.record(s + 32, 1), 1);
  s = raw_guest_memfd(r, 16 * page, 0, 1, {{0x77, 3}, {0x78, 2}});
  expect_error(attach_guest_memfd<shift>(a.memory(), s), errc::out_of_range, r.record(s + 32, 1), 1);
}

// ---- kvm_vm_luo_v1, kvm_vcpu_luo_v1 -------------------------------------------------------

TEST(LinuxKvmVm, LayoutAIndependentBytesRead) {
  arena<shift> a;
  raw r{a};
  const phys_addr s = r.alloc();
  r.put64(s, 2);
  r.put64(s + 8, 2);
  r.records(s + 16, {{0x100, 8}, {0x180, 0}});
  auto v = attach_kvm_vm<shift>(a.memory(), s, kvm_vm_dialect::linux_mm);
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  EXPECT_EQ(v->type(), 2u);
  std::vector<std::pair<u64, u64>> got;
  v->for_each_mem_attr([&](const kvm_mem_attr& m) { got.emplace_back(m.gfn, m.attributes); });
  EXPECT_EQ(got, (std::vector<std::pair<u64, u64>>{{0x100, 8}, {0x180, 0}}));
  // The reader is never left to guess.
  expect_error(attach_kvm_vm<shift>(a.memory(), s, kvm_vm_dialect::undecided), errc::invalid_argument, s, 0);
  // The same bytes as layout B: arch_state would be nr_mem_attrs (2), not an address.
  expect_error(attach_kvm_vm<shift>(a.memory(), s, kvm_vm_dialect::soleen), errc::misaligned, phys_addr{2}, 1);
  const kvm_mem_attr attrs[2] = {{0x100, 8}, {0x180, 0}};
  kvm_vm_file vm;
  vm.type = 2, vm.mem_attrs = attrs, vm.nr_mem_attrs = 2;
  auto w = write_kvm_vm<shift>(a.pages(), vm, kvm_vm_dialect::linux_mm);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(std::memcmp(a.bytes(*w), a.bytes(s), 16), 0);
  EXPECT_EQ(r.get64(r.record(*w + 16, 1)), 0x180u);
}

TEST(LinuxKvmVm, LayoutBIndependentBytesRead) {
  arena<shift> a;
  raw r{a};
  const phys_addr s = r.alloc(), arch = r.alloc(2);
  r.put64(s, 1);
  r.put64(s + 8, arch.value);
  const u32 nent = 110;  // 4 + 110 * 40 bytes: the blob spans two pages
  r.put(arch, nent, 4);
  for (u32 i = 0; i < nent; ++i) {
    const phys_addr e = arch + 4 + 40 * i;  // packed: entries at unaligned offsets
    r.put(e, 0x40000000 + i, 4);       // function
    r.put(e + 8, i % 2, 4);            // flags
    r.put(e + 24, 0xd000 + i, 4);      // edx
  }
  auto v = attach_kvm_vm<shift>(a.memory(), s, kvm_vm_dialect::soleen);
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  EXPECT_EQ(v->type(), 1u);
  EXPECT_EQ(v->cpuid_nent(), nent);
  EXPECT_EQ(v->cpuid_entry(109).function.get(), 0x40000000u + 109);
  EXPECT_EQ(v->cpuid_entry(99).flags.get(), 1u);
  EXPECT_EQ(v->cpuid_entry(7).edx.get(), 0xd007u);
  page_owners<arena<shift>::source_type, shift> owners(a.pages());
  ASSERT_TRUE(v->claim_pages(owners));
  EXPECT_EQ(owners.size(), 3u);  // the structure and the blob's two pages
  r.put(arch + 4 + 40 * 5 + 8, 8, 4);
  expect_error(attach_kvm_vm<shift>(a.memory(), s, kvm_vm_dialect::soleen), errc::reserved_nonzero,
               arch + 4 + 40 * 5, 2);
  r.put(arch, 257, 4);
  expect_error(attach_kvm_vm<shift>(a.memory(), s, kvm_vm_dialect::soleen), errc::out_of_range, arch, 1);
  // The writer's bytes read back the same.
  std::vector<kvm_cpuid_entry2> entries(3);
  for (u32 i = 0; i < 3; ++i) entries[i].function.set(i), entries[i].eax.set(i * 7);
  kvm_vm_file vm;
  vm.type = 1, vm.cpuid = entries.data(), vm.cpuid_nent = 3;
  auto w = write_kvm_vm<shift>(a.pages(), vm, kvm_vm_dialect::soleen);
  ASSERT_TRUE(w.has_value());
  const phys_addr warch{r.get64(*w + 8)};
  u32 n;
  std::memcpy(&n, a.bytes(warch), 4);
  EXPECT_EQ(n, 3u);
  u32 eax2;
  std::memcpy(&eax2, a.bytes(warch + 4 + 80 + 12), 4);
  EXPECT_EQ(eax2, 14u);
  EXPECT_EQ(write_kvm_vm<shift>(a.pages(), vm, kvm_vm_dialect::undecided).code(), errc::invalid_argument);
}

TEST(LinuxKvmVcpu, IndependentBytesReadWithCaretaker) {
  arena<shift> a;
  raw r{a};
  const phys_addr s = r.alloc(), arch = r.alloc(), cb = r.alloc();
  r.put(s, 3, 4);
  r.put(s + 4, 1, 4);
  r.put64(s + 8, 9);
  r.put64(s + 16, arch.value);
  r.put64(s + 24, cb.value);
  r.put64(cb, 2);
  r.put(cb + 8, 0xffffffff, 4);
  r.put(cb + 12, 3, 4);
  r.put64(cb + 16, 9);
  r.put64(cb + 24, 10);
  r.put64(cb + 32, 0xdead000);  // opaque: never followed
  r.put64(cb + 40, 4096);
  r.put64(arch, ~u64{0});  // opaque contents: never read
  auto v = attach_kvm_vcpu<shift>(a.memory(), s);
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  EXPECT_EQ(v->vcpu_id(), 3u);
  EXPECT_EQ(v->vm_token(), 9u);
  EXPECT_EQ(v->cb().pcpu_id.get(), 0xffffffffu);
  EXPECT_EQ(v->cb().vcpu_token.get(), 10u);
  EXPECT_EQ(v->cb().runtime_pa.get(), 0xdead000u);
  page_owners<arena<shift>::source_type, shift> owners(a.pages());
  ASSERT_TRUE(v->claim_pages(owners));
  EXPECT_EQ(owners.size(), 3u);
  kvm_vcpu_file file;
  file.vcpu_id = 3, file.vm_token = 9, file.arch_state = arch, file.caretaker = true;
  std::memcpy(&file.cb, a.bytes(cb), 48);
  auto w = write_kvm_vcpu<shift>(a.pages(), file);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(std::memcmp(a.bytes(*w), a.bytes(s), 24), 0);
  EXPECT_EQ(std::memcmp(a.bytes(phys_addr{r.get64(*w + 24)}), a.bytes(cb), 48), 0);
  r.put64(cb, 3);
  expect_error(attach_kvm_vcpu<shift>(a.memory(), s), errc::out_of_range, cb, 1);
  r.put(s + 4, 3, 4);
  expect_error(attach_kvm_vcpu<shift>(a.memory(), s), errc::reserved_nonzero, s + 4, 0);
  r.put(s + 4, 0, 4);
  r.put64(s + 16, arch.value + 8);
  expect_error(attach_kvm_vcpu<shift>(a.memory(), s), errc::misaligned, arch + 8, 1);
}

// ---- tmpfs ------------------------------------------------------------------------------

phys_addr raw_tmpfs_file(raw& r, u64 mnt, const char* name, u64 name_len,
                         const std::vector<std::pair<u64, u64>>& recs, u32 mode = 0600) {
  const phys_addr s = r.alloc();
  r.put64(s, mnt);
  r.put64(s + 8, 11);
  r.put64(s + 16, 8 * page);
  r.put(s + 24, mode, 4);
  r.put64(s + 32, recs.size());
  r.records(s + 40, recs);
  std::memcpy(r.a.bytes(s + 56), name, name_len);
  return s;
}

TEST(LinuxTmpfs, IndependentBytesReadAndWriterMatches) {
  arena<shift> a;
  raw r{a};
  const phys_addr m = r.alloc();
  r.put64(m, 1000);
  r.put(m + 8, 01777, 4);
  auto mv = attach_tmpfs_mnt<shift>(a.memory(), m);
  ASSERT_TRUE(mv.has_value());
  EXPECT_EQ(mv->max_blocks(), 1000u);
  EXPECT_EQ(mv->mode(), 01777u);
  auto wm = write_tmpfs_mnt<shift>(a.pages(), tmpfs_mount{1000, 01777});
  ASSERT_TRUE(wm.has_value());
  EXPECT_EQ(std::memcmp(a.bytes(*wm), a.bytes(m), page), 0);
  r.put(m + 12, 1, 4);
  expect_error(attach_tmpfs_mnt<shift>(a.memory(), m), errc::reserved_nonzero, m + 12, 0);

  const phys_addr f = raw_tmpfs_file(r, 5, "disk.img", 8, {{0x90 | u64{3} << 52, 0}, {0x91 | u64{1} << 52, 4}});
  auto fv = attach_tmpfs_file<shift>(a.memory(), f);
  ASSERT_TRUE(fv.has_value()) << to_string(fv.code());
  EXPECT_STREQ(fv->name(), "disk.img");
  EXPECT_EQ(fv->mnt_token(), 5u);
  EXPECT_EQ(fv->pos(), 11u);
  EXPECT_EQ(fv->size(), 8 * page);
  std::vector<std::tuple<u64, u64, u16>> got;
  fv->for_each_folio([&](const memfd_folio& x) { got.emplace_back(x.frame.value, x.index, x.flags); });
  EXPECT_EQ(got, (std::vector<std::tuple<u64, u64, u16>>{{0x90, 0, 3}, {0x91, 4, 1}}));
  const memfd_folio folios[2] = {{pfn{0x90}, 0, 3}, {pfn{0x91}, 4, 1}};
  auto wf = write_tmpfs_file<shift>(a.pages(), tmpfs_file{5, 11, 8 * page, 0600, "disk.img", folios, 2});
  ASSERT_TRUE(wf.has_value());
  EXPECT_EQ(std::memcmp(a.bytes(*wf), a.bytes(f), 40), 0);
  EXPECT_EQ(std::memcmp(a.bytes(*wf + 56), a.bytes(f + 56), 256), 0);
  EXPECT_EQ(write_tmpfs_file<shift>(a.pages(), tmpfs_file{5, 0, 0, 0600, "a/b"}).code(), errc::invalid_argument);
}

TEST(LinuxTmpfs, NameRulesAndTamperedFieldsAreRefused) {
  arena<shift> a;
  raw r{a};
  struct bad_name {
    const char* bytes;
    u64 len;
  };
  const char full[256] = {'x', 'x', 'x'};
  std::vector<bad_name> names = {{"a/b", 3}, {".", 1}, {"..", 2}, {"", 0}, {"ab\0c", 4}, {"/", 1}};
  for (const bad_name& n : names) {
    const phys_addr f = raw_tmpfs_file(r, 5, n.bytes, n.len, {});
    expect_error(attach_tmpfs_file<shift>(a.memory(), f), errc::bad_string, f + 56, 0);
  }
  std::vector<char> no_nul(256, 'y');
  phys_addr f = raw_tmpfs_file(r, 5, no_nul.data(), 256, {});
  expect_error(attach_tmpfs_file<shift>(a.memory(), f), errc::bad_string, f + 56, 0);
  f = raw_tmpfs_file(r, 5, full, 3, {});  // "xxx" is fine, "..." too
  EXPECT_TRUE(attach_tmpfs_file<shift>(a.memory(), f).has_value());
  f = raw_tmpfs_file(r, 5, "...", 3, {});
  EXPECT_TRUE(attach_tmpfs_file<shift>(a.memory(), f).has_value());
  f = raw_tmpfs_file(r, 5, "x", 1, {}, 0100644);  // type bits: a regular file's are not stored
  expect_error(attach_tmpfs_file<shift>(a.memory(), f), errc::reserved_nonzero, f + 24, 0);
  f = raw_tmpfs_file(r, 5, "x", 1, {});
  r.put(f + 28, 2, 4);
  expect_error(attach_tmpfs_file<shift>(a.memory(), f), errc::reserved_nonzero, f + 28, 0);
  f = raw_tmpfs_file(r, 5, "x", 1, {{0x90 | u64{4} << 52, 0}});
  expect_error(attach_tmpfs_file<shift>(a.memory(), f), errc::reserved_nonzero, r.record(f + 40, 0), 1);
  f = raw_tmpfs_file(r, 5, "x", 1, {{0x90, 1}, {0x91, 1}});
  expect_error(attach_tmpfs_file<shift>(a.memory(), f), errc::duplicate, r.record(f + 40, 1), 1);
}

// ---- adoption into a kho xarray, against a std::map oracle -------------------------------

using xa_type = xarray<u64, shift, arena<shift>::source_type>;

RC_GTEST_PROP(LinuxVmmemAdopt, HugeFoliosAreOneEntryEach, ()) {
  const u8 o = *rc::gen::element<u8>(1, 4, 9);
  const u64 n = *rc::gen::inRange<u64>(0, 300);  // past one record page (256) at times
  // Distinct huge-page slots in a file of 1024 of them, kept in order.
  std::map<u64, u64> slots;  // page-cache index -> head pfn
  for (u64 i = 0; i < n; ++i) slots[*rc::gen::inRange<u64>(0, 1024)] = (i + 1) << o;
  std::vector<huge_folio> folios;
  for (const auto& [slot, frame] : slots) folios.push_back({pfn{frame}, slot << o});
  arena<shift> a(u64{4} << 20);
  auto w = write_huge_memfd<shift>(a.pages(), huge_memfd_file{u64{1024} << (o + shift), 0, o, folios.data(),
                                                              folios.size()});
  RC_ASSERT(w.has_value());
  auto v = attach_huge_memfd<shift>(a.memory(), *w);
  RC_ASSERT(v.has_value());
  auto xa = xa_type::create(a.pages());
  RC_ASSERT(xa.has_value());
  auto added = adopt_folios(*xa, *v);
  RC_ASSERT(added.has_value());
  RC_ASSERT(*added == slots.size());
  u64 entries = 0;
  for (auto e = xa->find(0); e; e = xa->find_after(e->index)) {
    ++entries;
    RC_ASSERT(e->span.value == o);  // one entry per folio, of the folio's order
  }
  RC_ASSERT(entries == slots.size());
  // Every base page of a folio resolves to it; every other index is absent.
  for (int k = 0; k < 64; ++k) {
    const u64 index = *rc::gen::inRange<u64>(0, u64{1024} << o);
    auto got = xa->load(index);
    auto it = slots.find(index >> o);
    if (it == slots.end()) {
      RC_ASSERT(!got.has_value());
    } else {
      RC_ASSERT(got.has_value());
      RC_ASSERT(*got == it->second);
    }
  }
}

RC_GTEST_PROP(LinuxVmmemAdopt, GuestMemfdFoliosMatchTheMap, ()) {
  const auto indices = *rc::gen::container<std::set<u64>>(rc::gen::inRange<u64>(0, 4096));
  std::map<u64, u64> oracle;
  std::vector<guest_memfd_folio> folios;
  u64 frame = 1;
  for (u64 i : indices) {
    oracle[i] = frame;
    folios.push_back({pfn{frame++}, i, guest_memfd_folio_uptodate});
  }
  arena<shift> a(u64{4} << 20);
  auto w = write_guest_memfd<shift>(a.pages(), guest_memfd_file{4096 * page, 1, 7, folios.data(), folios.size()});
  RC_ASSERT(w.has_value());
  auto v = attach_guest_memfd<shift>(a.memory(), *w);
  RC_ASSERT(v.has_value());
  auto xa = xa_type::create(a.pages());
  RC_ASSERT(xa.has_value());
  RC_ASSERT(adopt_folios(*xa, *v).has_value());
  for (u64 i = 0; i < 4096; i += 1 + i % 29) {
    auto got = xa->load(i);
    auto it = oracle.find(i);
    RC_ASSERT(got.has_value() == (it != oracle.end()));
    if (got) RC_ASSERT(*got == it->second);
  }
}

// ---- the whole handover ------------------------------------------------------------------

struct vm_handover {
  using source = arena<shift>::source_type;
  using map_type = preserve_bitmap<source, shift>;
  using tracked_type = preserving_page_source<source, map_type>;

  arena<shift> a{u64{64} << 20, u64{1} << 32};
  map_type map = *map_type::create(a.pages());
  tracked_type tracked{a.pages(), map};
  kho_fdt_writer<tracked_type, shift> w = *kho_fdt_writer<tracked_type, shift>::create(tracked, map.root());
  phys_addr flb{}, huge{}, gmem{}, vm{}, vcpu{}, mnt{}, file{}, luo{};
  phys_addr huge_heads[2]{}, gmem_pages[3]{};
  u64 huge_pages_in_flb = 2;
  unsigned huge_folio_order = 9;

  explicit vm_handover(u64 flb_pages = 2, unsigned folio_order = 9, kvm_vm_dialect d = kvm_vm_dialect::linux_mm)
      : huge_pages_in_flb(flb_pages), huge_folio_order(folio_order) {
    const hugetlb_hstate hs[2] = {{9, flb_pages}, {18, 0}};
    flb = *write_hugetlb_flb<shift>(tracked, hs, 2);
    huge_folio hf[2];
    for (u64 i = 0; i < 2; ++i) {
      huge_heads[i] = *tracked.alloc(order{folio_order});
      hf[i] = {pfn{huge_heads[i].value >> shift}, i * 1024};  // slots 0 and 2 of 4
    }
    huge = *write_huge_memfd<shift>(tracked, huge_memfd_file{4 * mib2, 0, 9, hf, 2});
    guest_memfd_folio gf[3];
    for (u64 i = 0; i < 3; ++i) {
      gmem_pages[i] = *tracked.alloc(order{0});
      gf[i] = {pfn{gmem_pages[i].value >> shift}, i * 5, guest_memfd_folio_uptodate};
    }
    gmem = *write_guest_memfd<shift>(tracked, guest_memfd_file{16 * page, 1, 100, gf, 3});
    const kvm_mem_attr attrs[1] = {{0x10, 8}};
    kvm_vm_file v;
    v.mem_attrs = attrs, v.nr_mem_attrs = 1;
    vm = *write_kvm_vm<shift>(tracked, v, d);
    kvm_vcpu_file c;
    c.vm_token = 100, c.arch_state = *tracked.alloc(order{0}), c.caretaker = true;
    c.cb.vm_token.set(100);
    vcpu = *write_kvm_vcpu<shift>(tracked, c);
    mnt = *write_tmpfs_mnt<shift>(tracked, tmpfs_mount{});
    const memfd_folio tf[1] = {{pfn{tracked.alloc(order{0})->value >> shift}, 0, 3}};
    file = *write_tmpfs_file<shift>(tracked, tmpfs_file{200, 0, page, 0644, "rootfs", tf, 1});
    auto l = luo_v5_writer<tracked_type, shift>::create(tracked, 1);
    EXPECT_TRUE(l.has_value());
    EXPECT_TRUE(l->create_session("vm0"));
    EXPECT_TRUE(l->add_flb(hugetlb_flb_name, flb.value, 1));
    EXPECT_TRUE(l->preserve_file("vm0", kvm_vm_compatible, vm.value, 100));
    EXPECT_TRUE(l->preserve_file("vm0", huge_memfd_compatible, huge.value, 101));
    EXPECT_TRUE(l->preserve_file("vm0", guest_memfd_compatible, gmem.value, 102));
    EXPECT_TRUE(l->preserve_file("vm0", kvm_vcpu_compatible, vcpu.value, 103));
    EXPECT_TRUE(l->preserve_file("vm0", tmpfs_mnt_compatible, mnt.value, 200));
    EXPECT_TRUE(l->preserve_file("vm0", tmpfs_file_compatible, file.value, 201));
    luo = l->blob().phys;
    EXPECT_TRUE(w.add(luo_v5_subtree, luo, l->blob().size, luo_v5_compatible));
    EXPECT_TRUE(w.set_memory_map_checksum(map.deep_checksum()));
    EXPECT_TRUE(w.seal());
  }
  status check(kvm_vm_dialect d = kvm_vm_dialect::linux_mm) {
    const flat_memory moved = a.remap();
    model::scratch_pages<shift> scratch(moved);
    handover_check_options opt;
    opt.kvm_vm_dialect = d;
    auto v = attach_kho_handover<shift>(moved, w.root(), scratch.pages(), page, opt);
    return v ? status{} : status{v.err()};
  }
  void put64(phys_addr at, u64 v) {
    std::memcpy(a.bytes(at), &v, 8);
    ASSERT_TRUE(w.seal());  // re-sealed: only the check stands between the bytes and a reader
  }
};

TEST(LinuxVmmemHandover, WholeHandoverVerifies) {
  vm_handover h;
  status s = h.check();
  EXPECT_TRUE(s) << to_string(s.code()) << " " << s.err().loc.structure << " " << std::hex << s.err().loc.at.value;
  s = h.check(kvm_vm_dialect::undecided);  // the VM's own page only
  EXPECT_TRUE(s) << to_string(s.code());
  // Layout A's bytes told to be B: arch_state would be nr_mem_attrs (1), not an address.
  s = h.check(kvm_vm_dialect::soleen);
  EXPECT_EQ(s.code(), errc::misaligned);
  EXPECT_STREQ(s.err().loc.structure, "kvm_vm_luo_v1");
  vm_handover b(2, 9, kvm_vm_dialect::soleen);
  s = b.check(kvm_vm_dialect::soleen);
  EXPECT_TRUE(s) << to_string(s.code());
}

TEST(LinuxVmmemHandover, DumpShowsEveryState) {
  vm_handover h;
  handover_check_options opt;
  opt.kvm_vm_dialect = kvm_vm_dialect::linux_mm;
  const flat_memory mem = h.a.memory();
  auto view = attach_kho_fdt<shift>(mem, h.w.root(), page);
  ASSERT_TRUE(view.has_value());
  const nlohmann::json j = model::linux_inspect::report(*view, 8, opt);
  ASSERT_EQ(j["status"], "ok") << j.dump(1);
  const auto& luo_json = j["subtrees"][0];
  EXPECT_EQ(luo_json["flbs"][0]["state"]["hstates"][0]["nr_pages"], 2);
  const auto& files = luo_json["sessions"][0]["files"];
  ASSERT_EQ(files.size(), 6u);
  for (const auto& f : files) EXPECT_TRUE(f["state"]["ok"].get<bool>()) << f.dump(1);
  std::map<std::string, nlohmann::json> by;
  for (const auto& f : files) by[f["compatible"].get<std::string>()] = f["state"];
  EXPECT_EQ(by["huge-memfd-v1"]["folios"][1]["page_index"], 2);
  EXPECT_EQ(by["guest_memfd_luo_v1"]["vm_token"], 100);
  EXPECT_EQ(by["kvm_vm_luo_v1"]["nr_mem_attrs"], 1);
  EXPECT_EQ(by["kvm_vcpu_luo_v1"]["caretaker"]["vm_token"], 100);
  EXPECT_EQ(by["tmpfs-file-v1"]["name"], "rootfs");
  EXPECT_NE(model::format_kho_fdt_report(j).find("rootfs"), std::string::npos);
}

TEST(LinuxVmmemHandover, CrossFileFaultsAreNamed) {
  {
    vm_handover h;  // the guest_memfd names the vCPU, not the VM
    h.put64(h.gmem + 24, 103);
    const status s = h.check();
    EXPECT_EQ(s.code(), errc::missing_dependency);
    EXPECT_EQ(s.err().loc.at, h.gmem + 24);
  }
  {
    vm_handover h;  // the tmpfs file names a token no file has
    h.put64(h.file, 999);
    const status s = h.check();
    EXPECT_EQ(s.code(), errc::missing_dependency);
    EXPECT_EQ(s.err().loc.at, h.file);
  }
  {
    vm_handover h;  // the vCPU names the tmpfs mount as its VM
    h.put64(h.vcpu + 8, 200);
    EXPECT_EQ(h.check().code(), errc::missing_dependency);
  }
  {
    vm_handover h(1);  // the FLB counts one huge page of order 9; the file holds two
    const status s = h.check();
    EXPECT_EQ(s.code(), errc::bad_count);
    EXPECT_EQ(s.err().loc.at, h.huge + 16);
  }
  {
    vm_handover h(2, 10);  // the huge folios were preserved as order-10 blocks
    const status s = h.check();
    EXPECT_EQ(s.code(), errc::out_of_range);
    EXPECT_STREQ(s.err().loc.structure, "huge-memfd-v1");
    EXPECT_EQ(s.err().loc.at, h.huge_heads[0]);
  }
  {
    vm_handover h;  // the FLB's order-9 entry becomes order 10: the file's order 9 has no hstate
    std::memcpy(h.a.bytes(h.flb + 8), "\x0a", 1);
    ASSERT_TRUE(h.w.seal());
    const status s = h.check();
    EXPECT_EQ(s.code(), errc::missing_dependency);
    EXPECT_EQ(s.err().loc.at, h.huge + 40);
  }
  {
    vm_handover h;  // a guest_memfd folio moved onto a page no one preserved
    const u64 word = (h.gmem_pages[1].value >> shift) + 0x100000;
    raw r{h.a};
    h.put64(r.record(h.gmem + 32, 1), word | uptodate);
    const status s = h.check();
    EXPECT_EQ(s.code(), errc::not_preserved);
    EXPECT_EQ(s.err().loc.at, phys_addr{word << shift});
  }
  {
    vm_handover h;  // two files over one guest page
    raw r{h.a};
    h.put64(r.record(h.gmem + 32, 1), (h.gmem_pages[0].value >> shift) | uptodate);
    const status s = h.check();
    EXPECT_EQ(s.code(), errc::aliased);
  }
  {
    vm_handover h;  // nr_hstates past the array, through the whole check
    std::memcpy(h.a.bytes(h.flb + 36), "\x05", 1);
    ASSERT_TRUE(h.w.seal());
    const status s = h.check();
    EXPECT_EQ(s.code(), errc::out_of_range);
    EXPECT_STREQ(s.err().loc.structure, "hugetlb-v1");
  }
}

// Where kho refuses what a kernel with these handlers takes, the report says so.
TEST(LinuxVmmemHandover, VerdictDifferencesAreRecorded) {
  {
    vm_handover h;
    std::memcpy(h.a.bytes(h.flb + 36), "\x05", 1);
    ASSERT_TRUE(h.w.seal());
    const status s = h.check();
    ASSERT_EQ(s.code(), errc::out_of_range);
    model::kernel_verdict v;
    model::kernel_on_refusal(v, s.err());
    EXPECT_EQ(v.outcome(), model::kernel_outcome::accepts) << v.json().dump(1);
  }
  {
    vm_handover h;  // a guest_memfd folio past the file's 16 pages
    raw r{h.a};
    h.put64(r.record(h.gmem + 32, 2) + 8, 16);
    const status s = h.check();
    ASSERT_EQ(s.code(), errc::out_of_range);
    EXPECT_EQ(s.err().loc.depth, 1u);
    model::kernel_verdict v;
    model::kernel_on_refusal(v, s.err());
    EXPECT_EQ(v.outcome(), model::kernel_outcome::accepts) << v.json().dump(1);
  }
}

}  // namespace
}  // namespace kho::test::linux_vmmem_test
