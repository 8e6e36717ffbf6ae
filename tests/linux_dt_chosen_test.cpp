// The devicetree hand-off (LINUX-FORMATS-NEXT.md section 8.1): /chosen's
// linux,kho-fdt and linux,kho-scratch in big-endian cells of the root's counts. An
// independent encoder (libfdt's sequential writer and cells by hand) read by kho's
// reader; writer round trips with a rapidcheck property; every refusal by its errc.
#include <kho/linux/dt_chosen.hpp>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cstring>
#include <vector>

#include <libfdt.h>

namespace kho::test::linux_dt_chosen_test {
namespace {

using namespace kho::upstream;

void be32(std::vector<unsigned char>& v, u32 x) {
  for (int i = 3; i >= 0; --i) v.push_back(static_cast<unsigned char>(x >> (8 * i)));
}

// A pair in `a` address cells and `s` size cells, most significant cell first.
std::vector<unsigned char> pair(u32 a, u32 s, u64 addr, u64 size) {
  std::vector<unsigned char> v;
  if (a == 2) be32(v, static_cast<u32>(addr >> 32));
  be32(v, static_cast<u32>(addr));
  if (s == 2) be32(v, static_cast<u32>(size >> 32));
  be32(v, static_cast<u32>(size));
  return v;
}

struct dtb_spec {
  int address_cells = 2;  // -1: no property
  int size_cells = 2;
  bool chosen = true;
  const char* fdt_name = "linux,kho-fdt";
  const char* scratch_name = "linux,kho-scratch";
  std::vector<unsigned char> fdt = pair(2, 2, 0x1'2345'6000, 4096);
  std::vector<unsigned char> scratch = pair(2, 2, 0x1'0000'0000, 48);
};

std::vector<unsigned char> make_dtb(const dtb_spec& d) {
  std::vector<unsigned char> buf(4096);
  void* f = buf.data();
  EXPECT_EQ(fdt_create(f, 4096), 0);
  EXPECT_EQ(fdt_finish_reservemap(f), 0);
  EXPECT_EQ(fdt_begin_node(f, ""), 0);
  int err = 0;
  if (d.address_cells >= 0) err |= fdt_property_u32(f, "#address-cells", u32(d.address_cells));
  if (d.size_cells >= 0) err |= fdt_property_u32(f, "#size-cells", u32(d.size_cells));
  EXPECT_EQ(fdt_property_string(f, "compatible", "test,board"), 0);
  if (d.chosen) {
    EXPECT_EQ(fdt_begin_node(f, "chosen"), 0);
    EXPECT_EQ(fdt_property_string(f, "bootargs", "console=ttyS0"), 0);
    if (d.fdt_name != nullptr) err |= fdt_property(f, d.fdt_name, d.fdt.data(), int(d.fdt.size()));
    if (d.scratch_name != nullptr) err |= fdt_property(f, d.scratch_name, d.scratch.data(), int(d.scratch.size()));
    EXPECT_EQ(fdt_end_node(f), 0);
  }
  EXPECT_EQ(fdt_end_node(f), 0);
  EXPECT_EQ(fdt_finish(f), 0);
  EXPECT_EQ(err, 0);
  buf.resize(fdt_totalsize(f));
  return buf;
}

TEST(LinuxDtChosen, ReadsTwoCellPairs) {
  const auto dtb = make_dtb({});
  auto k = find_kho_chosen(dtb.data(), dtb.size());
  ASSERT_TRUE(k.has_value()) << to_string(k.code());
  EXPECT_EQ(k->data.fdt_addr.get(), 0x1'2345'6000u);
  EXPECT_EQ(k->data.fdt_size.get(), 4096u);
  EXPECT_EQ(k->data.scratch_addr.get(), 0x1'0000'0000u);
  EXPECT_EQ(k->data.scratch_size.get(), 48u);
  EXPECT_EQ(kho_scratch_count(k->data), 3u);
}

TEST(LinuxDtChosen, ReadsMixedCellCounts) {
  // Address 2 cells, size 1 (the combination old kernels mis-decoded).
  dtb_spec d;
  d.size_cells = 1;
  d.fdt = pair(2, 1, 0x8'0000'1000, 4096);
  d.scratch = pair(2, 1, 0x8'0000'0000, 32);
  auto dtb = make_dtb(d);
  auto k = find_kho_chosen(dtb.data(), dtb.size());
  ASSERT_TRUE(k.has_value()) << to_string(k.code());
  EXPECT_EQ(k->data.fdt_addr.get(), 0x8'0000'1000u);
  EXPECT_EQ(k->data.scratch_size.get(), 32u);
  // No counts at all: one cell each.
  d = dtb_spec{};
  d.address_cells = d.size_cells = -1;
  d.fdt = pair(1, 1, 0x4000'0000, 4096);
  d.scratch = pair(1, 1, 0x5000'0000, 16);
  dtb = make_dtb(d);
  k = find_kho_chosen(dtb.data(), dtb.size());
  ASSERT_TRUE(k.has_value()) << to_string(k.code());
  EXPECT_EQ(k->data.fdt_addr.get(), 0x4000'0000u);
  EXPECT_EQ(k->data.scratch_addr.get(), 0x5000'0000u);
}

TEST(LinuxDtChosen, LengthMustBeExact) {
  dtb_spec d;
  d.fdt = pair(2, 1, 0x1000, 4096);  // 12 bytes where 16 are due
  auto dtb = make_dtb(d);
  auto k = find_kho_chosen(dtb.data(), dtb.size());
  EXPECT_EQ(k.code(), errc::bad_count);
  EXPECT_EQ(k.err().loc.depth, 0u);
  d = dtb_spec{};
  d.scratch.push_back(0);  // 17 bytes
  dtb = make_dtb(d);
  k = find_kho_chosen(dtb.data(), dtb.size());
  EXPECT_EQ(k.code(), errc::bad_count);
  EXPECT_EQ(k.err().loc.depth, 1u);
  EXPECT_STREQ(k.err().loc.structure, "chosen");
}

TEST(LinuxDtChosen, BothPropertiesNeeded) {
  dtb_spec d;
  d.scratch_name = nullptr;
  auto dtb = make_dtb(d);
  EXPECT_EQ(find_kho_chosen(dtb.data(), dtb.size()).code(), errc::not_found);
  d = dtb_spec{};
  d.fdt_name = nullptr;
  dtb = make_dtb(d);
  EXPECT_EQ(find_kho_chosen(dtb.data(), dtb.size()).code(), errc::not_found);
  d = dtb_spec{};
  d.chosen = false;
  dtb = make_dtb(d);
  EXPECT_EQ(find_kho_chosen(dtb.data(), dtb.size()).code(), errc::not_found);
}

TEST(LinuxDtChosen, ObsoleteNamesRefused) {
  dtb_spec d;
  d.fdt_name = "linux,kho-dt";
  d.scratch_name = "linux,kho-mem";
  auto dtb = make_dtb(d);
  auto k = find_kho_chosen(dtb.data(), dtb.size());
  EXPECT_EQ(k.code(), errc::bad_version);
  EXPECT_STREQ(k.err().loc.structure, "chosen");
  // Beside the current names they are ignored, as a kernel ignores them.
  d = dtb_spec{};
  d.scratch_name = "linux,kho-mem";
  dtb = make_dtb(d);
  EXPECT_EQ(find_kho_chosen(dtb.data(), dtb.size()).code(), errc::not_found);
}

TEST(LinuxDtChosen, CellCountsAndBlobChecked) {
  dtb_spec d;
  d.address_cells = 3;
  auto dtb = make_dtb(d);
  EXPECT_EQ(find_kho_chosen(dtb.data(), dtb.size()).code(), errc::out_of_range);
  d.address_cells = 0;
  dtb = make_dtb(d);
  EXPECT_EQ(find_kho_chosen(dtb.data(), dtb.size()).code(), errc::out_of_range);
  dtb = make_dtb({});
  EXPECT_EQ(find_kho_chosen(dtb.data(), dtb.size() - 1).code(), errc::bad_fdt);  // truncated
  dtb[0] ^= 1;
  EXPECT_EQ(find_kho_chosen(dtb.data(), dtb.size()).code(), errc::bad_fdt);
}

TEST(LinuxDtChosen, WriterAddsChosenAndReplaces) {
  dtb_spec d;
  d.chosen = false;
  std::vector<unsigned char> dtb = make_dtb(d);
  dtb.resize(dtb.size() + 512);
  kho_data k{};
  k.fdt_addr.set(0x2'0000'0000);
  k.fdt_size.set(4096);
  k.scratch_addr.set(0x2'0000'1000);
  k.scratch_size.set(64);
  ASSERT_TRUE(add_kho_chosen(dtb.data(), dtb.size(), k));
  k.scratch_size.set(80);  // a second call replaces, it does not append
  ASSERT_TRUE(add_kho_chosen(dtb.data(), dtb.size(), k));
  auto got = find_kho_chosen(dtb.data(), dtb.size());
  ASSERT_TRUE(got.has_value()) << to_string(got.code());
  EXPECT_EQ(std::memcmp(&got->data, &k, sizeof k), 0);
  // The bytes are the pair the spec describes: BE cells at /chosen.
  int len = 0;
  const void* p = fdt_getprop(dtb.data(), fdt_path_offset(dtb.data(), "/chosen"), "linux,kho-scratch", &len);
  ASSERT_EQ(len, 16);
  EXPECT_EQ(std::memcmp(p, pair(2, 2, 0x2'0000'1000, 80).data(), 16), 0);
}

TEST(LinuxDtChosen, WriterRefusesWhatOneCellCannotHold) {
  dtb_spec d;
  d.address_cells = d.size_cells = 1;
  d.fdt = pair(1, 1, 0, 0);
  d.scratch = pair(1, 1, 0, 0);
  std::vector<unsigned char> dtb = make_dtb(d);
  dtb.resize(dtb.size() + 256);
  kho_data k{};
  k.fdt_addr.set(u64{1} << 32);
  EXPECT_EQ(add_kho_chosen(dtb.data(), dtb.size(), k).code(), errc::out_of_range);
  std::vector<unsigned char> tight = make_dtb({});
  EXPECT_EQ(add_kho_chosen(tight.data(), tight.size(), kho_data{}).code(), errc::ok);  // same size: fits in place
}

RC_GTEST_PROP(LinuxDtChosen, WriterReaderRoundTrip, (u64 fdt, u64 scratch, u32 count, bool one_size_cell)) {
  dtb_spec d;
  d.chosen = *rc::gen::arbitrary<bool>();
  if (one_size_cell) d.size_cells = 1;
  d.fdt = pair(2, u32(d.size_cells), 0, 0);
  d.scratch = d.fdt;
  std::vector<unsigned char> dtb = make_dtb(d);
  dtb.resize(dtb.size() + 256);
  kho_data k{};
  k.fdt_addr.set(fdt);
  k.fdt_size.set(4096);
  k.scratch_addr.set(scratch);
  k.scratch_size.set(u64{count % 1026} * 16);
  RC_ASSERT(bool(add_kho_chosen(dtb.data(), dtb.size(), k)));
  auto got = find_kho_chosen(dtb.data(), dtb.size());
  RC_ASSERT(got.has_value());
  RC_ASSERT(got->data.fdt_addr.get() == fdt);
  RC_ASSERT(got->data.scratch_addr.get() == scratch);
  RC_ASSERT(got->data.scratch_size.get() == u64{count % 1026} * 16);
}

}  // namespace
}  // namespace kho::test::linux_dt_chosen_test
