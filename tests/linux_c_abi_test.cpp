// The C header of Linux's formats and the C++ layouts are one contract: every size and
// offset equal, every constant the same.
#include <kho/c/kho_linux_abi.h>
#include <kho/linux/kexec_metadata.hpp>
#include <kho/linux/kho_vmalloc.hpp>
#include <kho/linux/luo_v1.hpp>
#include <kho/linux/luo_v5.hpp>
#include <kho/linux/memblock.hpp>
#include <kho/linux/memfd.hpp>
#include <kho/linux/x86_boot.hpp>

#include <gtest/gtest.h>

#include <cstddef>

namespace linux_c_abi_test {
namespace {

namespace up = kho::upstream;

#define KHO_SAME_FIELD(c_type, cpp_type, field)                                \
  static_assert(offsetof(c_type, field) == offsetof(cpp_type, field), #field); \
  static_assert(sizeof(c_type::field) == sizeof(cpp_type::field), #field " size")

static_assert(sizeof(kho_linux_setup_data) == sizeof(up::setup_data_header));
KHO_SAME_FIELD(kho_linux_setup_data, up::setup_data_header, next);
KHO_SAME_FIELD(kho_linux_setup_data, up::setup_data_header, type);
KHO_SAME_FIELD(kho_linux_setup_data, up::setup_data_header, len);
static_assert(KHO_LINUX_SETUP_KEXEC_KHO == up::setup_kexec_kho);
static_assert(sizeof(kho_linux_kho_data) == sizeof(up::kho_data));
KHO_SAME_FIELD(kho_linux_kho_data, up::kho_data, fdt_addr);
KHO_SAME_FIELD(kho_linux_kho_data, up::kho_data, fdt_size);
KHO_SAME_FIELD(kho_linux_kho_data, up::kho_data, scratch_addr);
KHO_SAME_FIELD(kho_linux_kho_data, up::kho_data, scratch_size);
static_assert(sizeof(kho_linux_kho_scratch) == sizeof(up::kho_scratch));
KHO_SAME_FIELD(kho_linux_kho_scratch, up::kho_scratch, addr);
KHO_SAME_FIELD(kho_linux_kho_scratch, up::kho_scratch, size);
static_assert(KHO_LINUX_SETUP_KEXEC_KHO == up::setup_kexec_kho);

static_assert(sizeof(kho_linux_vmalloc) == sizeof(up::kho_vmalloc));
KHO_SAME_FIELD(kho_linux_vmalloc, up::kho_vmalloc, first);
KHO_SAME_FIELD(kho_linux_vmalloc, up::kho_vmalloc, total_pages);
KHO_SAME_FIELD(kho_linux_vmalloc, up::kho_vmalloc, flags);
KHO_SAME_FIELD(kho_linux_vmalloc, up::kho_vmalloc, order);
static_assert(sizeof(kho_linux_vmalloc_chunk_4k) == sizeof(up::kho_vmalloc_chunk<12>));
KHO_SAME_FIELD(kho_linux_vmalloc_chunk_4k, up::kho_vmalloc_chunk<12>, next);
KHO_SAME_FIELD(kho_linux_vmalloc_chunk_4k, up::kho_vmalloc_chunk<12>, phys);
static_assert(KHO_LINUX_VMALLOC_CHUNK_ENTRIES(12) == up::kho_vmalloc_chunk<12>::entries);
static_assert(KHO_LINUX_VMALLOC_CHUNK_ENTRIES(16) == up::kho_vmalloc_chunk<16>::entries);
static_assert(KHO_LINUX_VMALLOC_ALLOC == up::vmalloc_flag_alloc);
static_assert(KHO_LINUX_VMALLOC_HUGE_VMAP == up::vmalloc_flag_huge_vmap);

static_assert(sizeof(kho_linux_luo_ser) == sizeof(up::luo_ser));
KHO_SAME_FIELD(kho_linux_luo_ser, up::luo_ser, compatible);
KHO_SAME_FIELD(kho_linux_luo_ser, up::luo_ser, liveupdate_num);
KHO_SAME_FIELD(kho_linux_luo_ser, up::luo_ser, sessions_pa);
KHO_SAME_FIELD(kho_linux_luo_ser, up::luo_ser, flbs_pa);
static_assert(sizeof(kho_linux_luo_file_set_ser) == sizeof(up::luo_file_set_ser));
KHO_SAME_FIELD(kho_linux_luo_file_set_ser, up::luo_file_set_ser, files);
KHO_SAME_FIELD(kho_linux_luo_file_set_ser, up::luo_file_set_ser, count);
static_assert(sizeof(kho_linux_luo_session_ser) == sizeof(up::luo_session_ser));
KHO_SAME_FIELD(kho_linux_luo_session_ser, up::luo_session_ser, name);
KHO_SAME_FIELD(kho_linux_luo_session_ser, up::luo_session_ser, file_set_ser);
static_assert(sizeof(kho_linux_luo_file_ser) == sizeof(up::luo_file_ser));
KHO_SAME_FIELD(kho_linux_luo_file_ser, up::luo_file_ser, compatible);
KHO_SAME_FIELD(kho_linux_luo_file_ser, up::luo_file_ser, data);
KHO_SAME_FIELD(kho_linux_luo_file_ser, up::luo_file_ser, token);
static_assert(sizeof(kho_linux_luo_flb_header_ser) == sizeof(up::luo_flb_header_ser));
KHO_SAME_FIELD(kho_linux_luo_flb_header_ser, up::luo_flb_header_ser, pgcnt);
KHO_SAME_FIELD(kho_linux_luo_flb_header_ser, up::luo_flb_header_ser, count);
static_assert(sizeof(kho_linux_luo_flb_ser) == sizeof(up::luo_flb_ser));
KHO_SAME_FIELD(kho_linux_luo_flb_ser, up::luo_flb_ser, name);
KHO_SAME_FIELD(kho_linux_luo_flb_ser, up::luo_flb_ser, data);
KHO_SAME_FIELD(kho_linux_luo_flb_ser, up::luo_flb_ser, count);
static_assert(sizeof(kho_linux_luo_feature_hdr) == sizeof(up::luo_feature_hdr));
KHO_SAME_FIELD(kho_linux_luo_feature_hdr, up::luo_feature_hdr, supp);
KHO_SAME_FIELD(kho_linux_luo_feature_hdr, up::luo_feature_hdr, req);
KHO_SAME_FIELD(kho_linux_luo_feature_hdr, up::luo_feature_hdr, active);
KHO_SAME_FIELD(kho_linux_luo_feature_hdr, up::luo_feature_hdr, reserved);
static_assert(KHO_LINUX_LUO_FEATURE_NUMBER == up::luo_feature_number);
static_assert(KHO_LINUX_LUO_FEATURE_SESSIONS == up::luo_feature_sessions);
static_assert(KHO_LINUX_LUO_FEATURE_FLBS == up::luo_feature_flbs);
static_assert(KHO_LINUX_LUO_FEATURES_SUPPORTED == up::luo_features_supported);
static_assert(KHO_LINUX_MEMFD_FEATURE_SEALS == up::memfd_feature_seals);
static_assert(KHO_LINUX_MEMFD_FEATURE_FOLIOS == up::memfd_feature_folios);
static_assert(KHO_LINUX_MEMFD_FEATURES_SUPPORTED == up::memfd_features_supported);
static_assert(sizeof(kho_linux_luo_ser_block_v1) == sizeof(up::luo_ser_block_v1));
static_assert(offsetof(kho_linux_luo_ser_block_v1, liveupdate_num) == offsetof(up::luo_ser_block_v1, tail));
static_assert(sizeof(kho_linux_luo_ser_feature) == sizeof(up::luo_ser_feature));
static_assert(offsetof(kho_linux_luo_ser_feature, liveupdate_num) == offsetof(up::luo_ser_feature, tail));
static_assert(offsetof(kho_linux_luo_ser_feature, flbs_pa) ==
              offsetof(up::luo_ser_feature, tail) + offsetof(up::luo_ser_tail, flbs_pa));
static_assert(sizeof(kho_linux_memfd_ser_feature) == sizeof(up::memfd_luo_ser_feature));
KHO_SAME_FIELD(kho_linux_memfd_ser_feature, up::memfd_luo_ser_feature, fields);
static_assert(KHO_LINUX_LUO_V1_SESSION_PAGES == kho::u64{1} << up::luo_v1_session_order);
static_assert(KHO_LINUX_LUO_V1_FILE_PAGES == kho::u64{1} << up::luo_v1_file_order);
static_assert(sizeof(kho_linux_luo_v1_session_header) == sizeof(up::luo_v1_session_header));
static_assert(KHO_LINUX_LUO_FLB_CAPACITY(12) == up::luo_v5_flb_capacity<12>);
static_assert(KHO_LINUX_LUO_FLB_CAPACITY(16) == up::luo_v5_flb_capacity<16>);
static_assert(KHO_LINUX_LUO_FLB_PGCNT == up::luo_v5_flb_pgcnt);
static_assert(KHO_LINUX_LUO_MAX_BLOCKS == kho::linux_max_blocks);
static_assert(KHO_LINUX_LUO_SESSION_NAME_LEN == up::luo_v5_session_name_len);

static_assert(sizeof(kho_linux_memfd_folio_ser) == sizeof(up::memfd_luo_folio_ser));
KHO_SAME_FIELD(kho_linux_memfd_folio_ser, up::memfd_luo_folio_ser, pfn_flags);
KHO_SAME_FIELD(kho_linux_memfd_folio_ser, up::memfd_luo_folio_ser, index);
static_assert(sizeof(kho_linux_memfd_ser_v2) == sizeof(up::memfd_luo_ser_v2));
KHO_SAME_FIELD(kho_linux_memfd_ser_v2, up::memfd_luo_ser_v2, pos);
KHO_SAME_FIELD(kho_linux_memfd_ser_v2, up::memfd_luo_ser_v2, size);
KHO_SAME_FIELD(kho_linux_memfd_ser_v2, up::memfd_luo_ser_v2, seals);
KHO_SAME_FIELD(kho_linux_memfd_ser_v2, up::memfd_luo_ser_v2, flags);
KHO_SAME_FIELD(kho_linux_memfd_ser_v2, up::memfd_luo_ser_v2, nr_folios);
KHO_SAME_FIELD(kho_linux_memfd_ser_v2, up::memfd_luo_ser_v2, folios);
static_assert(sizeof(kho_linux_memfd_ser_v1) == sizeof(up::memfd_luo_ser_v1));
KHO_SAME_FIELD(kho_linux_memfd_ser_v1, up::memfd_luo_ser_v1, pos);
KHO_SAME_FIELD(kho_linux_memfd_ser_v1, up::memfd_luo_ser_v1, size);
KHO_SAME_FIELD(kho_linux_memfd_ser_v1, up::memfd_luo_ser_v1, nr_folios);
KHO_SAME_FIELD(kho_linux_memfd_ser_v1, up::memfd_luo_ser_v1, folios);
static_assert(KHO_LINUX_MEMFD_KNOWN_SEALS == up::memfd_known_seals);
static_assert(KHO_LINUX_MEMFD_FOLIO_DIRTY == up::memfd_folio_dirty);
static_assert(KHO_LINUX_MEMFD_FOLIO_UPTODATE == up::memfd_folio_uptodate);
static_assert(KHO_LINUX_MEMFD_PFN(0x0030000000012345ull) == 0x12345);
static_assert(KHO_LINUX_MEMFD_FLAGS(0x0030000000012345ull) == 3);

static_assert(sizeof(kho_linux_kexec_metadata) == sizeof(up::kexec_metadata));
KHO_SAME_FIELD(kho_linux_kexec_metadata, up::kexec_metadata, version);
KHO_SAME_FIELD(kho_linux_kexec_metadata, up::kexec_metadata, previous_release);
KHO_SAME_FIELD(kho_linux_kexec_metadata, up::kexec_metadata, kexec_count);
#undef KHO_SAME_FIELD  // the test files may share a translation unit (unity build)
static_assert(KHO_LINUX_KEXEC_METADATA_VERSION == up::kexec_metadata_version);

TEST(CLinuxAbi, StringsAgree) {
  EXPECT_STREQ(KHO_LINUX_LUO_COMPATIBLE, up::luo_v5_compatible);
  EXPECT_STREQ(KHO_LINUX_LUO_SUBTREE, up::luo_v5_subtree);
  EXPECT_STREQ(KHO_LINUX_MEMFD_V2_COMPATIBLE, up::memfd_v2_compatible);
  EXPECT_STREQ(KHO_LINUX_MEMFD_V1_COMPATIBLE, up::memfd_v1_compatible);
  EXPECT_STREQ(KHO_LINUX_KEXEC_METADATA_SUBTREE, up::kexec_metadata_subtree);
  EXPECT_STREQ(KHO_LINUX_MEMBLOCK_SUBTREE, up::memblock_subtree);
  EXPECT_STREQ(KHO_LINUX_MEMBLOCK_COMPATIBLE, up::memblock_compatible);
  EXPECT_STREQ(KHO_LINUX_RESERVE_MEM_COMPATIBLE, up::reserve_mem_compatible);
}

}  // namespace
}  // namespace linux_c_abi_test
