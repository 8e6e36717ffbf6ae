// The device formats of LINUX-FORMATS-NEXT.md section 5: the PCI FLB (pci-v1, pci-v2,
// "pci" with version 1), the IOMMU FLB (iommu-liveupdate-v1 and the versioned
// "iommu-liveupdate"), iommufd-v1 and vfio-pci-v1. Images built byte by byte from the
// spec's tables (never by kho's writers) are read back; writer -> reader round trips,
// with rapidcheck against std::set / std::map oracles; every reader check refused with
// its errc and place after tampering; and a whole handover (kho-v4 root, luo-v5 with
// both FLBs and both files) through the whole-handover check, tampered and re-sealed.
#include <kho/linux/iommu.hpp>
#include <kho/linux/iommufd.hpp>
#include <kho/linux/kho_fdt_check.hpp>
#include <kho/linux/luo_handlers.hpp>
#include <kho/linux/pci.hpp>
#include <kho/linux/vfio_pci.hpp>
#include <kho/model/inspect_linux.hpp>
#include <kho/model/scratch_pages.hpp>
#include <kho/readers.hpp>
#include <kho/page_owners.hpp>
#include <kho/preserving_page_source.hpp>

#include "test_arena.hpp"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <map>
#include <set>
#include <vector>

namespace kho::test::linux_devices_test {
namespace {

using namespace kho::upstream;
using source = arena<12>::source_type;

// ---- the independent encoder: little-endian integers at byte offsets ----------------

void put(unsigned char* p, u64 off, u64 v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[off + i] = static_cast<unsigned char>(v >> (8 * i));
}
u64 get(const unsigned char* p, u64 off, int bytes) {
  u64 v = 0;
  for (int i = 0; i < bytes; ++i) v |= u64{p[off + i]} << (8 * i);
  return v;
}

struct raw_image {
  arena<12> mem{u64{4} << 20, u64{1} << 32};
  scratch_arena<12> scratch;
  phys_addr page(unsigned o = 0) {
    auto pa = mem.pages().alloc(order{o});
    EXPECT_TRUE(pa.has_value());
    std::memset(mem.bytes(*pa), 0, u64{4096} << o);
    return *pa;
  }
  unsigned char* at(phys_addr pa) { return mem.bytes(pa); }
};

using key_set = std::set<std::pair<u32, u16>>;

template <class View>
key_set devices_of(const View& v) {
  key_set s;
  v.for_each_device([&](const pci_device& d) { s.insert({d.domain, d.bdf}); });
  return s;
}

// ---- PCI FLB -------------------------------------------------------------------------

TEST(PciFlb, IndependentV2WithFreeSlots) {
  raw_image im;
  const phys_addr ser = im.page();
  unsigned char* p = im.at(ser);
  put(p, 0, 4, 4);  // max_nr_devices
  put(p, 4, 2, 4);  // nr_devices
  put(p, 8 + 0 * 8 + 0, 1, 4);       // slot 0: domain 1
  put(p, 8 + 0 * 8 + 4, 0x0300, 2);  // bdf 03:00.0
  put(p, 8 + 0 * 8 + 6, 1, 2);       // refcount 1
  put(p, 8 + 2 * 8 + 4, 0x0010, 2);  // slot 2: domain 0, bdf 00:02.0
  put(p, 8 + 2 * 8 + 6, 1, 2);
  auto v = attach_pci_flb(im.mem.remap(), ser, pci_variant::v2, im.scratch.pages());
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  EXPECT_EQ(devices_of(*v), (key_set{{1, 0x0300}, {0, 0x0010}}));
  EXPECT_EQ(v->nr_devices(), 2u);
  EXPECT_EQ(v->max_nr_devices(), 4u);
  EXPECT_TRUE(v->contains(1, 0x0300));
  EXPECT_FALSE(v->contains(0, 0x0300));
}

TEST(PciFlb, IndependentV1UsesTheFirstSlots) {
  raw_image im;
  const phys_addr ser = im.page();
  unsigned char* p = im.at(ser);
  put(p, 0, 3, 4);
  put(p, 4, 2, 4);
  put(p, 8, 7, 4);
  put(p, 12, 0x0101, 2);
  put(p, 16, 7, 4);
  put(p, 20, 0x0102, 2);
  put(p, 24, 9, 4);  // slot 2 is past nr_devices: not a device
  auto v = attach_pci_flb(im.mem.memory(), ser, pci_variant::v1, im.scratch.pages());
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  EXPECT_EQ(devices_of(*v), (key_set{{7, 0x0101}, {7, 0x0102}}));
  // The same bytes as v2: refcount 0 everywhere, so no device (the spec's inference).
  put(p, 4, 0, 4);
  put(p, 8, 0, 4), put(p, 12, 0, 2), put(p, 16, 0, 4), put(p, 20, 0, 2), put(p, 24, 0, 4);
  auto as_v2 = attach_pci_flb(im.mem.memory(), ser, pci_variant::v2, im.scratch.pages());
  ASSERT_TRUE(as_v2.has_value());
  EXPECT_TRUE(devices_of(*as_v2).empty());
}

TEST(PciFlb, IndependentVersionedOnABlockChain) {
  raw_image im;
  const phys_addr ser = im.page(), b0 = im.page(), b1 = im.page();
  put(im.at(ser), 0, 1, 4);    // version
  put(im.at(ser), 4, 512, 4);  // nr_devices: 510 + 2
  put(im.at(ser), 8, b0.value, 8);
  key_set want;
  put(im.at(b0), 0, b1.value, 8);
  put(im.at(b0), 8, 510, 8);
  for (u64 i = 0; i < 510; ++i) {
    put(im.at(b0), 16 + 8 * i, i / 256, 4);
    put(im.at(b0), 16 + 8 * i + 4, i % 256, 2);
    want.insert({static_cast<u32>(i / 256), static_cast<u16>(i % 256)});
  }
  put(im.at(b1), 8, 2, 8);
  for (u64 i = 0; i < 2; ++i) {
    put(im.at(b1), 16 + 8 * i, 5, 4);
    put(im.at(b1), 16 + 8 * i + 4, i, 2);
    want.insert({5, static_cast<u16>(i)});
  }
  auto v = attach_pci_flb(im.mem.remap(), ser, pci_variant::versioned, im.scratch.pages());
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  EXPECT_EQ(devices_of(*v), want);
  page_owners<scratch_arena<12>::source_type> owners(im.scratch.pages());
  ASSERT_TRUE(v->claim_pages(owners));
  EXPECT_EQ(owners.size(), 3u);
}

TEST(PciFlb, WriterBytesAreTheSpecs) {
  raw_image im;
  const pci_device devs[] = {{2, 0x1234}, {0x10000, 0x0008}};
  auto ser = write_pci_flb(im.mem.pages(), devs, 2, pci_variant::v2, 5);
  ASSERT_TRUE(ser.has_value());
  const unsigned char* p = im.at(*ser);
  EXPECT_EQ(get(p, 0, 4), 5u);
  EXPECT_EQ(get(p, 4, 4), 2u);
  EXPECT_EQ(get(p, 8 + 8 + 0, 4), 0x10000u);
  EXPECT_EQ(get(p, 8 + 8 + 4, 2), 0x0008u);
  EXPECT_EQ(get(p, 8 + 8 + 6, 2), 1u);
  EXPECT_EQ(get(p, 8 + 16 + 6, 2), 0u);
  auto v1 = write_pci_flb(im.mem.pages(), devs, 2, pci_variant::v1);
  ASSERT_TRUE(v1.has_value());
  EXPECT_EQ(get(im.at(*v1), 8 + 6, 2), 0u);  // v1 padding
  auto ver = write_pci_flb(im.mem.pages(), devs, 2, pci_variant::versioned);
  ASSERT_TRUE(ver.has_value());
  EXPECT_EQ(get(im.at(*ver), 0, 4), 1u);
  const phys_addr block{get(im.at(*ver), 8, 8)};
  EXPECT_EQ(get(im.at(block), 8, 8), 2u);
  EXPECT_EQ(get(im.at(block), 16 + 8 + 4, 2), 0x0008u);
  const pci_device twice[] = {{1, 1}, {1, 1}};
  EXPECT_EQ(write_pci_flb(im.mem.pages(), twice, 2, pci_variant::v2).code(), errc::invalid_argument);
}

RC_GTEST_PROP(PciFlbModel, RoundTripsAgainstASet, ()) {
  const auto keys = *rc::gen::container<std::set<std::pair<u32, u16>>>(
      *rc::gen::inRange<std::size_t>(0, 1200),
      rc::gen::pair(rc::gen::inRange<u32>(0, 4), rc::gen::arbitrary<u16>()));
  const auto variant = *rc::gen::element(pci_variant::v1, pci_variant::v2, pci_variant::versioned);
  const u64 spare = *rc::gen::inRange<u64>(0, 600);
  raw_image im;
  std::vector<pci_device> devs;
  for (auto [d, b] : keys) devs.push_back({d, b});
  auto ser = write_pci_flb(im.mem.pages(), devs.data(), devs.size(), variant, devs.size() + spare);
  RC_ASSERT(ser.has_value());
  auto v = attach_pci_flb(im.mem.remap(), *ser, variant, im.scratch.pages());
  RC_ASSERT(v.has_value());
  RC_ASSERT(devices_of(*v) == keys);
}

struct pci_case {
  raw_image im;
  phys_addr ser;
  explicit pci_case(pci_variant v, u64 spare = 2) {
    const pci_device devs[] = {{0, 0x0100}, {0, 0x0200}, {1, 0x0100}};
    ser = *write_pci_flb(im.mem.pages(), devs, 3, v, 3 + spare);
  }
  unsigned char* p() { return im.at(ser); }
  result<pci_flb_view<flat_memory>> attach(pci_variant v) {
    return attach_pci_flb(im.mem.memory(), ser, v, im.scratch.pages());
  }
};

void expect_error(const error& e, errc c, const char* structure, phys_addr at) {
  EXPECT_EQ(e.code, c) << to_string(e.code);
  EXPECT_STREQ(e.loc.structure, structure);
  EXPECT_EQ(e.loc.at, at) << std::hex << e.loc.at.value << " != " << at.value;
}

TEST(PciFlbCorrupt, Clean) {
  for (pci_variant v : {pci_variant::v1, pci_variant::v2, pci_variant::versioned}) {
    pci_case c(v);
    EXPECT_TRUE(c.attach(v).has_value());
  }
}

TEST(PciFlbCorrupt, V2RefcountOutsideZeroOne) {
  pci_case c(pci_variant::v2);
  put(c.p(), 8 + 8 + 6, 2, 2);
  expect_error(c.attach(pci_variant::v2).err(), errc::out_of_range, "pci", c.ser + 16);
}

TEST(PciFlbCorrupt, V2FreeSlotNotZero) {
  pci_case c(pci_variant::v2);
  put(c.p(), 8 + 4 * 8 + 4, 0x55, 2);  // slot 4 is free
  expect_error(c.attach(pci_variant::v2).err(), errc::reserved_nonzero, "pci", c.ser + 8 + 32);
}

TEST(PciFlbCorrupt, V2UsedSlotsDisagreeWithNrDevices) {
  pci_case c(pci_variant::v2);
  put(c.p(), 4, 2, 4);
  expect_error(c.attach(pci_variant::v2).err(), errc::bad_count, "pci", c.ser);
}

TEST(PciFlbCorrupt, NrAboveMax) {
  pci_case c(pci_variant::v1, 0);
  put(c.p(), 4, 4, 4);
  expect_error(c.attach(pci_variant::v1).err(), errc::bad_count, "pci", c.ser);
}

TEST(PciFlbCorrupt, DuplicateKey) {
  pci_case c(pci_variant::v2);
  put(c.p(), 8 + 16, 0, 4);  // slot 2 := (0, 0x0100), slot 0's key
  put(c.p(), 8 + 16 + 4, 0x0100, 2);
  expect_error(c.attach(pci_variant::v2).err(), errc::duplicate, "pci", c.ser + 8 + 16);
}

TEST(PciFlbCorrupt, DuplicateKeyInTheVersionedChain) {
  pci_case c(pci_variant::versioned);
  const phys_addr block{get(c.p(), 8, 8)};
  put(c.im.at(block), 16 + 8 + 4, 0x0100, 2);
  expect_error(c.attach(pci_variant::versioned).err(), errc::duplicate, "pci", block + 24);
}

TEST(PciFlbCorrupt, V1PaddingNotZero) {
  pci_case c(pci_variant::v1);
  put(c.p(), 8 + 6, 1, 2);
  expect_error(c.attach(pci_variant::v1).err(), errc::reserved_nonzero, "pci", c.ser + 8);
}

TEST(PciFlbCorrupt, ArrayPastMemory) {
  pci_case c(pci_variant::v2);
  put(c.p(), 0, 0xffffffff, 4);
  expect_error(c.attach(pci_variant::v2).err(), errc::out_of_bounds, "pci", c.ser);
}

TEST(PciFlbCorrupt, VersionedUnknownVersion) {
  pci_case c(pci_variant::versioned);
  put(c.p(), 0, 2, 4);
  expect_error(c.attach(pci_variant::versioned).err(), errc::bad_version, "pci", c.ser);
}

TEST(PciFlbCorrupt, VersionedCountDisagreesWithChain) {
  pci_case c(pci_variant::versioned);
  put(c.p(), 4, 4, 4);
  expect_error(c.attach(pci_variant::versioned).err(), errc::bad_count, "pci", c.ser);
}

TEST(PciFlbCorrupt, VersionedChainErrorsComeFromTheBlockReader) {
  pci_case c(pci_variant::versioned);
  const phys_addr block{get(c.p(), 8, 8)};
  put(c.im.at(block), 0, block.value, 8);  // a block naming itself
  expect_error(c.attach(pci_variant::versioned).err(), errc::cycle, "block_list", block);
}

TEST(PciFlbCorrupt, Misaligned) {
  pci_case c(pci_variant::v2);
  auto v = attach_pci_flb(c.im.mem.memory(), c.ser + 8, pci_variant::v2, c.im.scratch.pages());
  expect_error(v.err(), errc::misaligned, "pci", c.ser + 8);
}

// ---- IOMMU FLB -----------------------------------------------------------------------

// An IOMMU FLB built from the spec's tables: one Intel hw object, two domains (the
// second at an odd address), one device naming the second domain and the hw object.
struct raw_iommu {
  raw_image im;
  phys_addr ser, hw, dom, dev;
  bool v1;
  explicit raw_iommu(bool is_v1 = true) : v1(is_v1) {
    ser = im.page();
    hw = im.page();
    dom = im.page();
    dev = im.page();
    const u64 base = v1 ? 0 : 8;
    if (!v1) put(im.at(ser), 0, 1, 8);
    put(im.at(ser), base + 0, hw.value, 8);
    put(im.at(ser), base + 8, dom.value, 8);
    put(im.at(ser), base + 16, dev.value, 8);
    put(im.at(hw), 8, 1, 8);  // nr_objects
    unsigned char* h = im.at(hw) + 16;
    put(h, 0, 2, 4);                 // ref_count
    put(h, 8, 0xabc, 8);             // token
    put(h, 16, 1, 8);                // type: Intel
    if (v1) {
      put(h, 32, 0xfed90000, 8);     // MMIO, outside the image's memory
      put(h, 48 + 8, 0x5, 8);        // context_tables_bitmap word 1
    }
    put(im.at(dom), 8, 2, 8);
    for (u64 i = 0; i < 2; ++i) {
      unsigned char* d = im.at(dom) + 16 + 37 * i;
      put(d, 0, 1, 4);
      put(d, 16, 4 + i, 8);           // top_level
      put(d, 24, 48, 4);              // vasz
      d[28] = 1;                       // sign_extend
      put(d, 29, 0xffff888000000000 + i, 8);  // restored_domain: opaque
    }
    put(im.at(dev), 8, 1, 8);
    unsigned char* d = im.at(dev) + 16;
    put(d, 0, 1, 4);
    put(d, 8, 0x0310, 4);             // devid
    put(d, 12, 0, 4);                 // pci_domain_nr
    put(d, 16, 77, 8);                // attachment_id
    put(d, 24, (dom + 16 + 37).value, 8);
    put(d, 32, (hw + 16).value, 8);
    if (v1) put(d, 48, 0xfffff, 8);   // max_pasid
  }
  iommu_variant variant() const { return v1 ? iommu_variant::v1 : iommu_variant::versioned; }
  auto attach(const iommu_limits& l = {}) {
    return attach_iommu_flb(im.mem.memory(), ser, variant(), im.scratch.pages(), l);
  }
  unsigned char* device() { return im.at(dev) + 16; }
};

TEST(IommuFlb, IndependentV1) {
  raw_iommu r;
  auto v = attach_iommu_flb(r.im.mem.remap(), r.ser, iommu_variant::v1, r.im.scratch.pages());
  ASSERT_TRUE(v.has_value()) << to_string(v.code()) << " " << std::hex << v.err().loc.at.value;
  std::vector<iommu_domain> doms;
  v->for_each_domain([&](const iommu_domain& d) { doms.push_back(d); });
  ASSERT_EQ(doms.size(), 2u);
  EXPECT_EQ(doms[1].at, r.dom + 53);
  EXPECT_EQ(doms[1].top_level, 5u);
  EXPECT_EQ(doms[1].vasz, 48u);
  EXPECT_EQ(doms[1].sign_extend, 1u);
  EXPECT_EQ(doms[1].restored_domain, 0xffff888000000001u);
  std::vector<iommu_hw> hws;
  v->for_each_hw([&](const iommu_hw& h) { hws.push_back(h); });
  ASSERT_EQ(hws.size(), 1u);
  EXPECT_EQ(hws[0].token, 0xabcu);
  EXPECT_EQ(hws[0].mmio, 0xfed90000u);
  EXPECT_EQ(hws[0].context_tables_bitmap[1], 5u);
  std::vector<iommu_device> devs;
  v->for_each_device([&](const iommu_device& d) { devs.push_back(d); });
  ASSERT_EQ(devs.size(), 1u);
  EXPECT_EQ(devs[0].devid, 0x0310u);
  EXPECT_EQ(devs[0].attachment_id, 77u);
  EXPECT_EQ(devs[0].max_pasid, 0xfffffu);
  EXPECT_EQ(*v->find(iommu_list::domain, r.dom + 53), 1u);
  page_owners<scratch_arena<12>::source_type> owners(r.im.scratch.pages());
  ASSERT_TRUE(v->claim_pages(owners));
  EXPECT_EQ(owners.size(), 4u);
  v->release();
}

TEST(IommuFlb, IndependentVersioned) {
  raw_iommu r(false);
  auto v = r.attach();
  ASSERT_TRUE(v.has_value()) << to_string(v.code());
  std::vector<iommu_device> devs;
  v->for_each_device([&](const iommu_device& d) { devs.push_back(d); });
  ASSERT_EQ(devs.size(), 1u);
  EXPECT_EQ(devs[0].domain_phys, (r.dom + 53).value);
  EXPECT_EQ(devs[0].iommu_phys, (r.hw + 16).value);
  v->release();
  // Read as v1, the 40-byte device and the 24-byte hw object do not fit: the FLB's
  // heads sit 8 bytes later, so the version word is taken for the hw head.
  auto wrong = attach_iommu_flb(r.im.mem.memory(), r.ser, iommu_variant::v1, r.im.scratch.pages());
  EXPECT_FALSE(wrong.has_value());
}

TEST(IommuFlb, WriterBytesAreTheSpecs) {
  raw_image im;
  auto w = iommu_flb_writer<source>::create(im.mem.pages());
  ASSERT_TRUE(w.has_value());
  iommu_hw h;
  h.token = 9;
  h.mmio = 0xfed91000;
  const phys_addr hw = *w->add_hw(h);
  iommu_domain d;
  d.restored_domain = 0x1122334455667788;
  d.vasz = 57;
  const phys_addr d0 = *w->add_domain(d), d1 = *w->add_domain(d);
  EXPECT_EQ(d1 - d0, 37u);
  iommu_device dev;
  dev.devid = 0x100;
  dev.domain_phys = d1.value;
  dev.iommu_phys = hw.value;
  const phys_addr at = *w->add_device(dev);
  const unsigned char* s = im.at(w->data());
  const phys_addr dom_page{get(s, 8, 8)};
  EXPECT_EQ(d0, dom_page + 16);
  EXPECT_EQ(get(im.at(dom_page), 8, 8), 2u);
  EXPECT_EQ(get(im.at(d1), 29, 8), 0x1122334455667788u);
  EXPECT_EQ(get(im.at(d1), 24, 4), 57u);
  EXPECT_EQ(get(im.at(hw), 32, 8), 0xfed91000u);
  EXPECT_EQ(get(im.at(at), 24, 8), d1.value);
  EXPECT_EQ(get(im.at(at), 32, 8), hw.value);
  auto wv = iommu_flb_writer<source>::create(im.mem.pages(), iommu_variant::versioned);
  ASSERT_TRUE(wv.has_value());
  EXPECT_EQ(get(im.at(wv->data()), 0, 8), 1u);
  const phys_addr hw2 = *wv->add_hw(h), hw3 = *wv->add_hw(h);
  EXPECT_EQ(hw3 - hw2, 24u);
}

// Random FLBs through the writer, read back and compared with what was written.
template <unsigned Shift>
void iommu_round_trip() {
  const auto variant = *rc::gen::element(iommu_variant::v1, iommu_variant::versioned);
  const u64 nhw = *rc::gen::inRange<u64>(1, 60);
  const u64 ndom = *rc::gen::inRange<u64>(0, 260);
  const u64 ndev = *rc::gen::inRange<u64>(0, 160);
  arena<Shift> a(u64{8} << 20, u64{1} << 32);
  scratch_arena<Shift> scratch;
  auto w = iommu_flb_writer<typename arena<Shift>::source_type, Shift>::create(a.pages(), variant);
  RC_ASSERT(w.has_value());
  std::map<u64, iommu_hw> hws;
  std::map<u64, iommu_domain> doms;
  std::map<u64, iommu_device> devs;
  std::vector<u64> live_hw, live_dom;
  for (u64 i = 0; i < nhw; ++i) {
    iommu_hw h;
    h.token = i;
    h.type = variant == iommu_variant::v1 ? iommu_type_intel : *rc::gen::inRange<u64>(0, 2);
    if (variant == iommu_variant::v1) h.mmio = (u64{0xfe} << 32) + i * 4096;
    h.flags = *rc::gen::element(0u, iommu_flag_deleted, iommu_flag_incoming);
    const u64 at = w->add_hw(h)->value;
    hws[at] = h;
    if ((h.flags & iommu_flag_deleted) == 0) live_hw.push_back(at);
  }
  for (u64 i = 0; i < ndom; ++i) {
    iommu_domain d;
    d.top_level = *rc::gen::inRange<u64>(0, 6);
    d.vasz = *rc::gen::inRange<u32>(0, 65);
    d.sign_extend = *rc::gen::inRange<u8>(0, 2);
    d.restored_domain = *rc::gen::arbitrary<u64>();
    d.flags = *rc::gen::element(0u, iommu_flag_deleted);
    const u64 at = w->add_domain(d)->value;
    doms[at] = d;
    if (d.flags == 0) live_dom.push_back(at);
  }
  RC_PRE(!live_hw.empty());
  for (u64 i = 0; i < ndev; ++i) {
    iommu_device d;
    d.devid = static_cast<u32>(i);
    d.pci_domain_nr = 3;
    d.attachment_id = *rc::gen::arbitrary<u64>();
    d.iommu_phys = live_hw[*rc::gen::inRange<u64>(0, live_hw.size())];
    d.domain_phys = live_dom.empty() ? 0 : live_dom[*rc::gen::inRange<u64>(0, live_dom.size())];
    if (variant == iommu_variant::v1) d.max_pasid = i;
    devs[w->add_device(d)->value] = d;
  }
  auto v = attach_iommu_flb<Shift>(a.remap(), w->data(), variant, scratch.pages());
  RC_ASSERT(v.has_value());
  u64 seen = 0;
  v->for_each_hw([&](const iommu_hw& h) {
    const iommu_hw& e = hws.at(h.at.value);
    RC_ASSERT(h.token == e.token && h.type == e.type && h.flags == e.flags && h.mmio == e.mmio);
    ++seen;
  });
  v->for_each_domain([&](const iommu_domain& d) {
    const iommu_domain& e = doms.at(d.at.value);
    RC_ASSERT(d.top_level == e.top_level && d.vasz == e.vasz && d.sign_extend == e.sign_extend &&
              d.restored_domain == e.restored_domain && d.flags == e.flags);
    ++seen;
  });
  v->for_each_device([&](const iommu_device& d) {
    const iommu_device& e = devs.at(d.at.value);
    RC_ASSERT(d.devid == e.devid && d.attachment_id == e.attachment_id && d.domain_phys == e.domain_phys &&
              d.iommu_phys == e.iommu_phys && d.max_pasid == e.max_pasid);
    ++seen;
  });
  RC_ASSERT(seen == hws.size() + doms.size() + devs.size());
  for (u64 at : live_dom) RC_ASSERT(v->find(iommu_list::domain, phys_addr{at}).has_value());
  for (const auto& [at, d] : doms)
    if (d.flags != 0) RC_ASSERT(v->find(iommu_list::domain, phys_addr{at}).code() == errc::missing_dependency);
  v->release();
}

RC_GTEST_PROP(IommuFlbModel, RoundTripsAgainstMaps4K, ()) { iommu_round_trip<12>(); }
RC_GTEST_PROP(IommuFlbModel, RoundTripsAgainstMaps16K, ()) { iommu_round_trip<14>(); }

TEST(IommuFlbCorrupt, NrObjectsAboveCapacity) {
  raw_iommu r;
  put(r.im.at(r.dom), 8, 111, 8);
  expect_error(r.attach().err(), errc::bad_count, "iommu", r.dom);
}

TEST(IommuFlbCorrupt, PageBeforeTheLastNotFull) {
  raw_iommu r;
  const phys_addr more = r.im.page();
  put(r.im.at(r.dom), 0, more.value, 8);  // 2 of 110 objects, then a next page
  expect_error(r.attach().err(), errc::bad_count, "iommu", r.dom);
}

TEST(IommuFlbCorrupt, CycleInAList) {
  raw_iommu r;
  put(r.im.at(r.dom), 8, 110, 8);  // full, so a next page is allowed
  put(r.im.at(r.dom), 0, r.dom.value, 8);
  auto v = r.attach();
  expect_error(v.err(), errc::cycle, "iommu", r.dom);
}

TEST(IommuFlbCorrupt, PageInTwoLists) {
  raw_iommu r;
  put(r.im.at(r.ser), 16, r.dom.value, 8);  // the device head names the domain page
  expect_error(r.attach().err(), errc::aliased, "iommu", r.dom);
}

TEST(IommuFlbCorrupt, HeadZero) {
  raw_iommu r;
  put(r.im.at(r.ser), 0, 0, 8);
  expect_error(r.attach().err(), errc::missing_dependency, "iommu", r.ser);
}

TEST(IommuFlbCorrupt, ChainBudget) {
  raw_iommu r;
  expect_error(r.attach(iommu_limits{2}).err(), errc::budget_exceeded, "iommu", r.dev);
}

TEST(IommuFlbCorrupt, DomainOffAnObjectBoundary) {
  raw_iommu r;
  put(r.device(), 24, (r.dom + 16 + 36).value, 8);
  expect_error(r.attach().err(), errc::misaligned, "iommu", r.dev + 16);
}

TEST(IommuFlbCorrupt, DomainIndexPastNrObjects) {
  raw_iommu r;
  put(r.device(), 24, (r.dom + 16 + 2 * 37).value, 8);
  expect_error(r.attach().err(), errc::out_of_range, "iommu", r.dev + 16);
}

TEST(IommuFlbCorrupt, DomainPhysInTheWrongList) {
  raw_iommu r;
  put(r.device(), 24, (r.hw + 16).value, 8);
  expect_error(r.attach().err(), errc::missing_dependency, "iommu", r.dev + 16);
}

TEST(IommuFlbCorrupt, IommuPhysZero) {
  raw_iommu r;
  put(r.device(), 32, 0, 8);
  expect_error(r.attach().err(), errc::missing_dependency, "iommu", r.dev + 16);
}

TEST(IommuFlbCorrupt, DeviceNamesADeletedDomain) {
  raw_iommu r;
  put(r.im.at(r.dom) + 16 + 37, 4, iommu_flag_deleted, 4);
  expect_error(r.attach().err(), errc::missing_dependency, "iommu", r.dev + 16);
  // A deleted device names nothing the kernel restores: it is not checked.
  put(r.device(), 4, iommu_flag_deleted, 4);
  auto v = r.attach();
  EXPECT_TRUE(v.has_value());
  if (v) v->release();
}

TEST(IommuFlbCorrupt, UnknownFlag) {
  raw_iommu r;
  put(r.im.at(r.dom) + 16, 4, 0x4, 4);
  expect_error(r.attach().err(), errc::reserved_nonzero, "iommu", r.dom + 16);
}

TEST(IommuFlbCorrupt, SignExtendWiderThanItsBit) {
  raw_iommu r;
  r.im.at(r.dom)[16 + 37 + 28] = 2;
  expect_error(r.attach().err(), errc::reserved_nonzero, "iommu", r.dom + 53);
}

TEST(IommuFlbCorrupt, UnknownHwType) {
  raw_iommu r;
  put(r.im.at(r.hw) + 16, 16, 2, 8);
  expect_error(r.attach().err(), errc::out_of_range, "iommu", r.hw + 16);
}

TEST(IommuFlbCorrupt, MmioInsideMemory) {
  raw_iommu r;
  put(r.im.at(r.hw) + 16, 32, r.dom.value, 8);
  expect_error(r.attach().err(), errc::out_of_range, "iommu", r.hw + 16);
}

TEST(IommuFlbCorrupt, IntelPaddingNotZero) {
  raw_iommu r;
  r.im.at(r.hw)[16 + 27] = 1;
  expect_error(r.attach().err(), errc::reserved_nonzero, "iommu", r.hw + 16);
}

TEST(IommuFlbCorrupt, TwoLiveDevicesOneRequesterId) {
  raw_iommu r;
  put(r.im.at(r.dev), 8, 2, 8);
  std::memcpy(r.device() + 56, r.device(), 56);
  expect_error(r.attach().err(), errc::duplicate, "iommu", r.dev + 16 + 56);
}

TEST(IommuFlbCorrupt, VersionedUnknownVersion) {
  raw_iommu r(false);
  put(r.im.at(r.ser), 0, 2, 8);
  expect_error(r.attach().err(), errc::bad_version, "iommu", r.ser);
}

TEST(IommuFlbCorrupt, PageTablesMustBePreserved) {
  raw_iommu r;
  const phys_addr table = r.im.page();
  put(r.im.at(r.dom) + 16, 8, table.value, 8);  // top_table_phys
  auto v = r.attach();
  ASSERT_TRUE(v.has_value());
  std::set<u64> preserved;
  struct set_map {
    std::set<u64>* pages;
    bool is_preserved(phys_addr pa) const { return pages->count(pa.value & ~u64{4095}) != 0; }
  } map{&preserved};
  expect_error(v->check_references(map).err(), errc::not_preserved, "iommu", r.dom + 16);
  preserved.insert(table.value);
  EXPECT_TRUE(v->check_references(map));
  preserved.insert(0xfed90000);  // the MMIO base counted as preserved memory
  expect_error(v->check_references(map).err(), errc::out_of_range, "iommu", r.hw + 16);
  v->release();
}

// ---- iommufd and vfio-pci --------------------------------------------------------------

TEST(Iommufd, IndependentAndRoundTrip) {
  raw_image im;
  const phys_addr ser = im.page();
  put(im.at(ser), 0, 2, 8);
  put(im.at(ser), 8, 0x1234560, 8);
  put(im.at(ser), 16, 42, 8);
  put(im.at(ser), 32, 0x7770, 8);
  put(im.at(ser), 40, 43, 8);
  auto v = attach_iommufd(im.mem.remap(), ser);
  ASSERT_TRUE(v.has_value());
  std::vector<std::pair<u64, u64>> got;
  v->for_each_hwpt([&](const iommufd_hwpt& h, phys_addr) { got.push_back({h.domain_data, h.token}); });
  EXPECT_EQ(got, (std::vector<std::pair<u64, u64>>{{0x1234560, 42}, {0x7770, 43}}));

  std::vector<iommufd_hwpt> many;
  for (u64 i = 0; i < 400; ++i) many.push_back({i * 37, i + 1, 0});  // 8 + 9600 B: an order-2 folio
  auto w = write_iommufd(im.mem.pages(), many.data(), many.size());
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(get(im.at(*w), 0, 8), 400u);
  EXPECT_EQ(get(im.at(*w), 8 + 24 * 399 + 8, 8), 400u);
  auto r = attach_iommufd(im.mem.memory(), *w);
  ASSERT_TRUE(r.has_value());
  u64 i = 0;
  r->for_each_hwpt([&](const iommufd_hwpt& h, phys_addr) {
    EXPECT_EQ(h.domain_data, many[i].domain_data);
    EXPECT_EQ(h.token, many[i].token);
    ++i;
  });
  EXPECT_EQ(i, 400u);
  page_owners<scratch_arena<12>::source_type> owners(im.scratch.pages());
  ASSERT_TRUE(r->claim_pages(owners));
  EXPECT_EQ(owners.size(), 3u);  // 9608 bytes span three pages
  const iommufd_hwpt reclaimed{1, 1, 1};
  EXPECT_EQ(write_iommufd(im.mem.pages(), &reclaimed, 1).code(), errc::invalid_argument);
}

TEST(IommufdCorrupt, ReclaimedOrPaddingNotZero) {
  raw_image im;
  const iommufd_hwpt h[] = {{0, 1, 0}, {0, 2, 0}};
  const phys_addr ser = *write_iommufd(im.mem.pages(), h, 2);
  im.at(ser)[8 + 24 + 16] = 1;
  expect_error(attach_iommufd(im.mem.memory(), ser).err(), errc::reserved_nonzero, "iommufd", ser + 32);
  im.at(ser)[8 + 24 + 16] = 0;
  im.at(ser)[8 + 23] = 1;
  expect_error(attach_iommufd(im.mem.memory(), ser).err(), errc::reserved_nonzero, "iommufd", ser + 8);
}

TEST(IommufdCorrupt, CountPastMemory) {
  raw_image im;
  const phys_addr ser = *write_iommufd(im.mem.pages(), nullptr, 0);
  put(im.at(ser), 0, u64{1} << 60, 8);
  expect_error(attach_iommufd(im.mem.memory(), ser).err(), errc::out_of_bounds, "iommufd", ser);
}

TEST(VfioPci, IndependentAndRoundTrip) {
  raw_image im;
  const phys_addr ser = im.page();
  im.at(ser)[0] = 0x10, im.at(ser)[1] = 0x03, im.at(ser)[2] = 0x01, im.at(ser)[3] = 0x00, im.at(ser)[4] = 1;
  auto v = attach_vfio_pci(im.mem.remap(), ser);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->device().bdf, 0x0310u);
  EXPECT_EQ(v->device().domain, 1u);
  EXPECT_EQ(v->device().reset_works, 1u);
  auto w = write_vfio_pci(im.mem.pages(), vfio_pci_device{0xbeef, 0xffff, 0});
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(get(im.at(*w), 0, 5), 0x00ffffbeefu);
  EXPECT_EQ(attach_vfio_pci(im.mem.memory(), *w)->device().domain, 0xffffu);
  expect_error(attach_vfio_pci(im.mem.memory(), *w + 1).err(), errc::misaligned, "vfio-pci", *w + 1);
}

// ---- the whole handover ------------------------------------------------------------------

// A kho-v4 root with luo-v5: the PCI FLB (pci-v2), the IOMMU FLB with an Intel unit, a
// domain and a device, and a session holding an iommufd and a vfio-pci file, all
// written through a page source that preserves what it allocates.
struct device_handover {
  using source_type = arena<12>::source_type;
  using map_type = preserve_bitmap<source_type>;
  using tracked_type = preserving_page_source<source_type, map_type>;

  arena<12> a{u64{16} << 20, u64{1} << 32};
  map_type map = *map_type::create(a.pages());
  tracked_type tracked{a.pages(), map};
  kho_fdt_writer<tracked_type> w = *kho_fdt_writer<tracked_type>::create(tracked, map.root());
  phys_addr pci{}, iommu{}, domain{}, fd{}, vfio{}, device_obj{}, luo{};

  explicit device_handover(pci_variant pv = pci_variant::v2, iommu_variant iv = iommu_variant::v1) {
    const pci_device devs[] = {{0, 0x0310}, {1, 0x0008}};
    pci = *write_pci_flb(tracked, devs, 2, pv, 4);
    auto iw = iommu_flb_writer<tracked_type>::create(tracked, iv);
    EXPECT_TRUE(iw.has_value());
    iommu_hw h;
    h.token = 1;
    h.mmio = 0xfed90000;
    h.root_table = tracked.alloc(order{0})->value;
    const phys_addr hw = *iw->add_hw(h);
    iommu_domain d;
    d.top_table_phys = tracked.alloc(order{0})->value;
    d.vasz = 48;
    EXPECT_TRUE(iw->add_domain(d).has_value());
    d.top_table_phys = tracked.alloc(order{0})->value;  // each domain its own I/O page table
    domain = *iw->add_domain(d);
    iommu_device dev;
    dev.devid = 0x0310;
    dev.domain_phys = domain.value;
    dev.iommu_phys = hw.value;
    device_obj = *iw->add_device(dev);
    iommu = iw->data();
    const iommufd_hwpt hwpt{domain.value, 100, 0};
    fd = *write_iommufd(tracked, &hwpt, 1);
    vfio = *write_vfio_pci(tracked, vfio_pci_device{0x0310, 0, 1});
    auto l = luo_v5_writer<tracked_type>::create(tracked, 1);
    EXPECT_TRUE(l.has_value());
    EXPECT_TRUE(l->add_flb(pci_flb_name(pv), pci.value, 1));
    EXPECT_TRUE(l->add_flb(iommu_flb_name(iv), iommu.value, 1));
    EXPECT_TRUE(l->create_session("vm"));
    EXPECT_TRUE(l->preserve_file("vm", iommufd_v1_compatible, fd.value, 1));
    EXPECT_TRUE(l->preserve_file("vm", vfio_pci_v1_compatible, vfio.value, 2));
    luo = l->blob().phys;
    EXPECT_TRUE(w.add(luo_v5_subtree, luo, l->blob().size, luo_v5_compatible));
    EXPECT_TRUE(w.set_memory_map_checksum(map.deep_checksum()));
    EXPECT_TRUE(w.seal());
  }
  status check() {
    EXPECT_TRUE(w.seal());  // re-sealed after any tampering: only the readers stand
    const flat_memory moved = a.remap();
    model::scratch_pages<12> scratch(moved);
    auto v = attach_kho_handover<12>(moved, w.root(), scratch.pages());
    return v ? status{} : status{v.err()};
  }
};

TEST(DevicesHandover, ValidatesElsewhere) {
  for (pci_variant pv : {pci_variant::v1, pci_variant::v2, pci_variant::versioned})
    for (iommu_variant iv : {iommu_variant::v1, iommu_variant::versioned}) {
      device_handover h(pv, iv);
      const status s = h.check();
      EXPECT_TRUE(s) << to_string(s.code()) << " " << (s ? "" : s.err().loc.structure) << " at " << std::hex
                     << s.err().loc.at.value;
    }
}

// An I/O page table is one domain's: a second domain naming the same top table page
// gives the page two owners, though both are preserved.
TEST(DevicesHandover, TwoDomainsOnOnePageTableAreAliased) {
  device_handover h;
  const phys_addr first{h.domain.value - 37};  // the domain added before it, on the same page
  const u64 shared = get(h.a.bytes(first), 8, 8);
  put(h.a.bytes(h.domain), 8, shared, 8);
  const status s = h.check();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.code(), errc::aliased);
  EXPECT_EQ(s.err().loc.at.value, shared);
}

TEST(DevicesHandover, IommufdDomainOffBoundary) {
  device_handover h;
  put(h.a.bytes(h.fd), 8, h.domain.value + 1, 8);
  const status s = h.check();
  expect_error(s.err(), errc::misaligned, "iommufd", h.fd + 8);
}

TEST(DevicesHandover, IommufdNamesADevice) {
  device_handover h;
  put(h.a.bytes(h.fd), 8, h.device_obj.value, 8);
  expect_error(h.check().err(), errc::missing_dependency, "iommufd", h.fd + 8);
}

TEST(DevicesHandover, VfioDeviceMissingFromThePciFlb) {
  device_handover h;
  h.a.bytes(h.vfio)[0] = 0x11;  // bdf 03:02.1: not preserved in the PCI FLB
  expect_error(h.check().err(), errc::missing_dependency, "vfio-pci", h.vfio);
}

TEST(DevicesHandover, VfioDomainIsSixteenBits) {
  device_handover h;
  h.a.bytes(h.vfio)[0] = 0x08, h.a.bytes(h.vfio)[1] = 0, h.a.bytes(h.vfio)[2] = 1;  // (1, 00:01.0)
  EXPECT_TRUE(h.check());
}

TEST(DevicesHandover, PciArrayPastItsPreservedBlock) {
  // max_nr_devices raised so the slots run past the order-0 block (still in memory,
  // zero, so the reader alone accepts them): the kernel reads them, kho refuses.
  device_handover h;
  put(h.a.bytes(h.pci), 0, 600, 4);
  expect_error(h.check().err(), errc::out_of_bounds, "pci", h.pci);
}

TEST(DevicesHandover, IommuPageTableNotPreserved) {
  device_handover h;
  const phys_addr loose = *h.a.pages().alloc(order{0});  // allocated behind the map's back
  put(h.a.bytes(h.domain), 8, loose.value, 8);
  expect_error(h.check().err(), errc::not_preserved, "iommu", h.domain);
}

TEST(DevicesHandover, IommuArrayPageSharedWithAFile) {
  device_handover h;
  // The vfio file's data repointed at the IOMMU FLB's top page: two owners.
  unsigned char* luo = h.a.bytes(h.luo);
  const phys_addr sessions{get(luo, 16, 8)};
  const phys_addr files{get(h.a.bytes(sessions), 16 + 64, 8)};
  put(h.a.bytes(files), 16 + 64 + 48, h.iommu.value, 8);
  EXPECT_EQ(h.check().code(), errc::aliased);
}

// ---- dump and manifest --------------------------------------------------------------------

luo_flb_ser flb_entry(const char* name, phys_addr data) {
  luo_flb_ser b{};
  std::memcpy(b.name, name, std::strlen(name));
  b.data.set(data.value);
  b.count.set(1);
  return b;
}

luo_file_ser file_entry(const char* compatible, phys_addr data, u64 token) {
  luo_file_ser f{};
  std::memcpy(f.compatible, compatible, std::strlen(compatible));
  f.data.set(data.value);
  f.token.set(token);
  return f;
}

TEST(DevicesDump, JsonAndText) {
  using namespace kho::model::linux_inspect;
  device_handover h;
  const flat_memory mem = h.a.memory();
  bool ok = true;
  const auto pci = luo_flb_json<12>(mem, flb_entry(pci_v2_name, h.pci), 100, ok);
  const auto iommu = luo_flb_json<12>(mem, flb_entry(iommu_v1_name, h.iommu), 100, ok);
  const auto fd = luo_file_json<12>(mem, file_entry(iommufd_v1_compatible, h.fd, 1), 100, ok);
  const auto vfio = luo_file_json<12>(mem, file_entry(vfio_pci_v1_compatible, h.vfio, 2), 100, ok);
  ASSERT_TRUE(ok);
  EXPECT_EQ(pci["pci"]["version"], "pci-v2");
  EXPECT_EQ(pci["pci"]["devices"].size(), 2u);
  EXPECT_EQ(pci["pci"]["devices"][1]["bdf"], "0x8");
  EXPECT_EQ(iommu["iommu"]["domains"].size(), 2u);
  EXPECT_EQ(iommu["iommu"]["devices"][0]["domain_phys"], fmt::format("{:#x}", h.domain.value));
  EXPECT_EQ(iommu["iommu"]["hw"][0]["intel"]["mmio"], "0xfed90000");
  EXPECT_EQ(fd["iommufd"]["hwpts"][0]["token"], 100u);
  EXPECT_EQ(vfio["vfio_pci"]["bdf"], "0x310");
  std::string text;
  append_luo(text, nlohmann::json{{"sessions", {{{"name", "vm"}, {"files", {fd, vfio}}}}}, {"flbs", {pci, iommu}}});
  EXPECT_NE(text.find("iommufd-v1: 1 HWPTs"), std::string::npos) << text;
  EXPECT_NE(text.find("vfio-pci-v1: domain 0 bdf 0x310 reset works"), std::string::npos) << text;
  EXPECT_NE(text.find("pci-v2: 2 of 4 devices"), std::string::npos) << text;
  EXPECT_NE(text.find("iommu-liveupdate-v1: 1 hw units, 2 domains, 1 devices"), std::string::npos) << text;
  // A refused FLB is reported, and clears ok.
  put(h.a.bytes(h.iommu), 0, 0, 8);
  const auto bad = luo_flb_json<12>(mem, flb_entry(iommu_v1_name, h.iommu), 100, ok);
  EXPECT_FALSE(ok);
  EXPECT_FALSE(bad["iommu"]["ok"].get<bool>());
}

TEST(DevicesManifest, FamiliesAndVersions) {
  EXPECT_STREQ(wire_name_of("pci", 1), "pci-v1");
  EXPECT_STREQ(wire_name_of("pci", 2), "pci-v2");
  EXPECT_STREQ(wire_name_of("pci", 3), "pci");
  EXPECT_STREQ(wire_name_of("iommu", 1), "iommu-liveupdate-v1");
  EXPECT_STREQ(wire_name_of("iommu", 2), "iommu-liveupdate");
  EXPECT_STREQ(wire_name_of("iommufd", 1), "iommufd-v1");
  EXPECT_STREQ(wire_name_of("vfio-pci", 1), "vfio-pci-v1");
  int found = 0;
  for (const manifest_line& line : reader_lines) {
    const std::string f = line.family;
    if (f == "pci") {
      EXPECT_EQ(line.reads, version_set({1, 2, 3}));
    }
    if (f == "iommu") {
      EXPECT_EQ(line.reads, version_set({1, 2}));
    }
    if (f == "iommufd" || f == "vfio-pci") {
      EXPECT_EQ(line.writes, version_bit(1));
    }
    found += f == "pci" || f == "iommu" || f == "iommufd" || f == "vfio-pci";
  }
  EXPECT_EQ(found, 4);
}

}  // namespace
}  // namespace kho::test::linux_devices_test
