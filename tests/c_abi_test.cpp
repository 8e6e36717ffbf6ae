// The C header and the C++ layouts are one contract: every size and offset equal.
#include <kho/c/kho_abi.h>
#include <kho/handover.hpp>
#include <kho/block_list.hpp>
#include <kho/luo.hpp>
#include <kho/preserve_bitmap.hpp>
#include <kho/xarray.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>

namespace c_abi_test {
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

static_assert(sizeof(kho_block_header) == sizeof(kho::block_header));
KHO_SAME_FIELD(kho_block_header, kho::block_header, next);
KHO_SAME_FIELD(kho_block_header, kho::block_header, count);
struct record16 {
  kho::u64 a, b;
};
static_assert(KHO_BLOCK_CAPACITY(12, sizeof(record16)) == kho::block_capacity<record16, 12>);
static_assert(KHO_BLOCK_CAPACITY(16, sizeof(kho::luo_file_entry)) == kho::block_capacity<kho::luo_file_entry, 16>);
static_assert(KHO_BLOCK_LINUX_MAX_BLOCKS == kho::linux_max_blocks);

static_assert(sizeof(kho_luo_root) == sizeof(kho::luo_root));
KHO_SAME_FIELD(kho_luo_root, kho::luo_root, magic);
KHO_SAME_FIELD(kho_luo_root, kho::luo_root, compatible);
KHO_SAME_FIELD(kho_luo_root, kho::luo_root, version_major);
KHO_SAME_FIELD(kho_luo_root, kho::luo_root, version_minor);
KHO_SAME_FIELD(kho_luo_root, kho::luo_root, page_shift);
KHO_SAME_FIELD(kho_luo_root, kho::luo_root, state);
KHO_SAME_FIELD(kho_luo_root, kho::luo_root, liveupdate_number);
KHO_SAME_FIELD(kho_luo_root, kho::luo_root, sessions);
KHO_SAME_FIELD(kho_luo_root, kho::luo_root, session_count);
KHO_SAME_FIELD(kho_luo_root, kho::luo_root, file_count);
KHO_SAME_FIELD(kho_luo_root, kho::luo_root, flbs);
KHO_SAME_FIELD(kho_luo_root, kho::luo_root, flb_count);
KHO_SAME_FIELD(kho_luo_root, kho::luo_root, block_count);
KHO_SAME_FIELD(kho_luo_root, kho::luo_root, content_checksum);
KHO_SAME_FIELD(kho_luo_root, kho::luo_root, checksum);
static_assert(sizeof(kho_luo_session_entry) == sizeof(kho::luo_session_entry));
KHO_SAME_FIELD(kho_luo_session_entry, kho::luo_session_entry, name);
KHO_SAME_FIELD(kho_luo_session_entry, kho::luo_session_entry, files);
KHO_SAME_FIELD(kho_luo_session_entry, kho::luo_session_entry, file_count);
static_assert(sizeof(kho_luo_file_entry) == sizeof(kho::luo_file_entry));
KHO_SAME_FIELD(kho_luo_file_entry, kho::luo_file_entry, token);
KHO_SAME_FIELD(kho_luo_file_entry, kho::luo_file_entry, compatible);
KHO_SAME_FIELD(kho_luo_file_entry, kho::luo_file_entry, data);
KHO_SAME_FIELD(kho_luo_file_entry, kho::luo_file_entry, flags);
KHO_SAME_FIELD(kho_luo_file_entry, kho::luo_file_entry, flb);
static_assert(sizeof(kho_luo_flb_entry) == sizeof(kho::luo_flb_entry));
KHO_SAME_FIELD(kho_luo_flb_entry, kho::luo_flb_entry, name);
KHO_SAME_FIELD(kho_luo_flb_entry, kho::luo_flb_entry, id);
KHO_SAME_FIELD(kho_luo_flb_entry, kho::luo_flb_entry, data);
KHO_SAME_FIELD(kho_luo_flb_entry, kho::luo_flb_entry, refs);
static_assert(KHO_LUO_MAGIC == kho::luo_magic);
static_assert(KHO_LUO_VERSION_MAJOR == kho::luo_version_major);
static_assert(KHO_LUO_SESSION_NAME_LEN == kho::luo_session_name_len);

static_assert(sizeof(kho_xarray_root) == sizeof(kho::xarray_root));
KHO_SAME_FIELD(kho_xarray_root, kho::xarray_root, magic);
KHO_SAME_FIELD(kho_xarray_root, kho::xarray_root, compatible);
KHO_SAME_FIELD(kho_xarray_root, kho::xarray_root, version_major);
KHO_SAME_FIELD(kho_xarray_root, kho::xarray_root, page_shift);
KHO_SAME_FIELD(kho_xarray_root, kho::xarray_root, value_size);
KHO_SAME_FIELD(kho_xarray_root, kho::xarray_root, height);
KHO_SAME_FIELD(kho_xarray_root, kho::xarray_root, marks);
KHO_SAME_FIELD(kho_xarray_root, kho::xarray_root, root);
KHO_SAME_FIELD(kho_xarray_root, kho::xarray_root, count);
KHO_SAME_FIELD(kho_xarray_root, kho::xarray_root, nodes);
KHO_SAME_FIELD(kho_xarray_root, kho::xarray_root, address_sum);
KHO_SAME_FIELD(kho_xarray_root, kho::xarray_root, address_mix);
KHO_SAME_FIELD(kho_xarray_root, kho::xarray_root, checksum);
static_assert(sizeof(kho_xa_node_header) == sizeof(kho::detail::xa_node_header));
KHO_SAME_FIELD(kho_xa_node_header, kho::detail::xa_node_header, magic);
KHO_SAME_FIELD(kho_xa_node_header, kho::detail::xa_node_header, level);
KHO_SAME_FIELD(kho_xa_node_header, kho::detail::xa_node_header, shift);
KHO_SAME_FIELD(kho_xa_node_header, kho::detail::xa_node_header, marks);
KHO_SAME_FIELD(kho_xa_node_header, kho::detail::xa_node_header, count);
KHO_SAME_FIELD(kho_xa_node_header, kho::detail::xa_node_header, base);
KHO_SAME_FIELD(kho_xa_node_header, kho::detail::xa_node_header, entries);
#undef KHO_SAME_FIELD  // the test files may share a translation unit (unity build)
static_assert(KHO_XARRAY_MAGIC == kho::xarray_magic);
static_assert(KHO_XA_BRANCH_MAGIC == kho::detail::xa_branch_magic);
static_assert(KHO_XA_COMPACT_MAGIC == kho::detail::xa_compact_magic);
static_assert(KHO_XA_SIDE_MAGIC == kho::detail::xa_side_magic);
static_assert(KHO_XA_KIND_MASK == kho::detail::xa_kind_mask);
static_assert(KHO_XA_RUN_SHIFT == kho::detail::xa_run_shift);
static_assert(KHO_XA_RUN_MASK == kho::detail::xa_run_mask);

TEST(CAbi, StringsAndKeysAgree) {
  EXPECT_STREQ(KHO_BLOCK_LIST_COMPATIBLE, kho::block_list_compatible);
  EXPECT_STREQ(KHO_LUO_COMPATIBLE, kho::luo_compatible);
  EXPECT_STREQ(KHO_LUO_ENTRY_NAME, kho::luo_entry_name);
  EXPECT_STREQ(KHO_XARRAY_COMPATIBLE, kho::xarray_compatible);
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
}  // namespace c_abi_test
