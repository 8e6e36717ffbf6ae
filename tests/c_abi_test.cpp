// The C header and the C++ layouts are one contract: every size and offset equal.
#include <kho/c/kho_abi.h>
#include <kho/handover.hpp>
#include <kho/preserve_bitmap.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>

namespace {

#define KHO_SAME_FIELD(c_type, cpp_type, field)                                     \
  static_assert(offsetof(c_type, field) == offsetof(cpp_type, field), #field);      \
  static_assert(sizeof(c_type::field) == sizeof(cpp_type::field), #field " size")

static_assert(sizeof(kho_handover_header) == sizeof(kho::handover_header));
KHO_SAME_FIELD(kho_handover_header, kho::handover_header, magic);
KHO_SAME_FIELD(kho_handover_header, kho::handover_header, compatible);
KHO_SAME_FIELD(kho_handover_header, kho::handover_header, version_major);
KHO_SAME_FIELD(kho_handover_header, kho::handover_header, version_minor);
KHO_SAME_FIELD(kho_handover_header, kho::handover_header, page_shift);
KHO_SAME_FIELD(kho_handover_header, kho::handover_header, entry_capacity);
KHO_SAME_FIELD(kho_handover_header, kho::handover_header, state);
KHO_SAME_FIELD(kho_handover_header, kho::handover_header, entry_count);
KHO_SAME_FIELD(kho_handover_header, kho::handover_header, generation);
KHO_SAME_FIELD(kho_handover_header, kho::handover_header, checksum);
KHO_SAME_FIELD(kho_handover_header, kho::handover_header, reserved);

static_assert(sizeof(kho_handover_entry) == sizeof(kho::handover_entry));
KHO_SAME_FIELD(kho_handover_entry, kho::handover_entry, name);
KHO_SAME_FIELD(kho_handover_entry, kho::handover_entry, compatible);
KHO_SAME_FIELD(kho_handover_entry, kho::handover_entry, phys);
KHO_SAME_FIELD(kho_handover_entry, kho::handover_entry, size);
KHO_SAME_FIELD(kho_handover_entry, kho::handover_entry, checksum);
KHO_SAME_FIELD(kho_handover_entry, kho::handover_entry, flags);
KHO_SAME_FIELD(kho_handover_entry, kho::handover_entry, deep_checksum);
KHO_SAME_FIELD(kho_handover_entry, kho::handover_entry, reserved);

static_assert(KHO_HANDOVER_MAGIC == kho::handover_magic);
static_assert(KHO_ENTRY_DEEP_CHECKSUM == kho::entry_deep_checksum);
static_assert(KHO_HANDOVER_VERSION_MAJOR == kho::handover_version_major);
static_assert(KHO_HANDOVER_STATE_SEALED == static_cast<kho::u32>(kho::handover_state::sealed));
static_assert(KHO_HANDOVER_STATE_SEALING == static_cast<kho::u32>(kho::handover_state::sealing));
static_assert(KHO_HANDOVER_STATE_OPEN == static_cast<kho::u32>(kho::handover_state::open));
static_assert(KHO_HANDOVER_CAPACITY(12) == kho::handover_capacity<12>);
static_assert(KHO_HANDOVER_CAPACITY(16) == kho::handover_capacity<16>);
static_assert(KHO_RADIX_DEPTH(12) == kho::radix_geometry<12>::depth);
static_assert(KHO_RADIX_DEPTH(14) == kho::radix_geometry<14>::depth);
static_assert(KHO_RADIX_DEPTH(16) == kho::radix_geometry<16>::depth);

TEST(CAbi, StringsAndKeysAgree) {
  EXPECT_STREQ(KHO_HANDOVER_COMPATIBLE, kho::handover_compatible);
  EXPECT_STREQ(KHO_RADIX_COMPATIBLE, kho::radix_compatible);
  for (unsigned o : {0u, 1u, 9u, 18u}) {
    const kho::u64 pa = kho::u64{0x40000000} << 3;
    kho::u64 key = 0;
    ASSERT_EQ(kho::radix_geometry<12>::encode(kho::phys_addr{pa}, kho::order{o}, key), kho::errc::ok);
    EXPECT_EQ(KHO_RADIX_KEY(12, pa, o), key) << o;
  }
}

}  // namespace
