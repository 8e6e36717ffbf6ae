/*
 * kho/c/kho_linux_abi.h: Linux's own handover layouts, as plain C11.
 *
 * The upstream blob formats kho reads and writes byte for byte (include/kho/linux/),
 * at the snapshot pinned in shared/LINUX-FORMATS.md: kho_vmalloc ("kho-v4"), LUO
 * ("luo-v5"), memfd ("memfd-v2", "memfd-v1"), kexec-metadata (version 1) and the
 * x86 boot hand-off; and the other LUO / memfd versions kho reads and writes (luo-v1,
 * luo-v5;block-v1, the feature-header layouts). A C++ test static_asserts every field against the C++ structs.
 * Every integer is little-endian; these declarations assume a little-endian host, as
 * the kernels that use KHO do. Field names follow the kernel's; the structures are
 * declared here from the documented layout, not copied. The memblock subtree is a
 * device tree (see docs/format.md) and has no struct.
 */
#ifndef KHO_C_KHO_LINUX_ABI_H
#define KHO_C_KHO_LINUX_ABI_H

#include <stdint.h>

#ifdef __cplusplus
#define KHO_LINUX_ABI_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define KHO_LINUX_ABI_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* ---- x86 boot hand-off (setup_data type SETUP_KEXEC_KHO) ------------------------- */

#define KHO_LINUX_SETUP_KEXEC_KHO 10
struct kho_linux_setup_data {
  uint64_t next; /* the next node; 0 ends the list */
  uint32_t type; /* KHO_LINUX_SETUP_KEXEC_KHO: kho_data follows */
  uint32_t len;  /* bytes after this header: 32 for kho_data */
};
struct kho_linux_kho_data {
  uint64_t fdt_addr;     /* the KHO root FDT page */
  uint64_t fdt_size;     /* PAGE_SIZE */
  uint64_t scratch_addr; /* array of struct kho_linux_kho_scratch */
  uint64_t scratch_size; /* 16 bytes per entry */
};
struct kho_linux_kho_scratch {
  uint64_t addr;
  uint64_t size;
};
KHO_LINUX_ABI_STATIC_ASSERT(sizeof(struct kho_linux_setup_data) == 16, "setup_data's header is 16 bytes");
KHO_LINUX_ABI_STATIC_ASSERT(sizeof(struct kho_linux_kho_data) == 32, "kho_data is 32 bytes");
KHO_LINUX_ABI_STATIC_ASSERT(sizeof(struct kho_linux_kho_scratch) == 16, "kho_scratch is 16 bytes");

/* ---- vmalloc preservation ---------------------------------------------------------- */

#define KHO_LINUX_VMALLOC_ALLOC 0x1           /* VM_ALLOC */
#define KHO_LINUX_VMALLOC_HUGE_VMAP 0x2       /* VM_ALLOW_HUGE_VMAP */
struct kho_linux_vmalloc {
  uint64_t first;       /* first chunk page, 0: none */
  uint32_t total_pages;
  uint16_t flags;
  uint16_t order;
};
/* A chunk is one page: next, then PAGE_SIZE / 8 - 1 unit addresses (0 ends early). */
#define KHO_LINUX_VMALLOC_CHUNK_ENTRIES(page_shift) ((UINT64_C(1) << (page_shift)) / 8 - 1)
struct kho_linux_vmalloc_chunk_4k {
  uint64_t next;
  uint64_t phys[511];
};
KHO_LINUX_ABI_STATIC_ASSERT(sizeof(struct kho_linux_vmalloc) == 16, "kho_vmalloc is 16 bytes");
KHO_LINUX_ABI_STATIC_ASSERT(sizeof(struct kho_linux_vmalloc_chunk_4k) == 4096, "a chunk is a page");

/* ---- LUO ("luo-v5"; KHO subtree "LUO", blob-size 32) ------------------------------- */

#define KHO_LINUX_LUO_COMPATIBLE "luo-v5"
#define KHO_LINUX_LUO_SUBTREE "LUO"
#define KHO_LINUX_LUO_COMPATIBLE_LEN 8
#define KHO_LINUX_LUO_SESSION_NAME_LEN 64
#define KHO_LINUX_LUO_FILE_COMPATIBLE_LEN 48
#define KHO_LINUX_LUO_FLB_NAME_LEN 48
#define KHO_LINUX_LUO_FLB_PGCNT 1
#define KHO_LINUX_LUO_MAX_BLOCKS 10000 /* per block set */

struct kho_linux_luo_ser {
  char compatible[KHO_LINUX_LUO_COMPATIBLE_LEN];
  uint64_t liveupdate_num;
  uint64_t sessions_pa; /* first session block (KHO block chain), 0: none */
  uint64_t flbs_pa;     /* the FLB page */
};
struct kho_linux_luo_file_set_ser {
  uint64_t files; /* first file block, 0: none */
  uint64_t count;
};
struct kho_linux_luo_session_ser {
  char name[KHO_LINUX_LUO_SESSION_NAME_LEN];
  struct kho_linux_luo_file_set_ser file_set_ser;
};
struct kho_linux_luo_file_ser {
  char compatible[KHO_LINUX_LUO_FILE_COMPATIBLE_LEN];
  uint64_t data;
  uint64_t token;
};
struct kho_linux_luo_flb_header_ser {
  uint64_t pgcnt;
  uint64_t count;
};
struct kho_linux_luo_flb_ser {
  char name[KHO_LINUX_LUO_FLB_NAME_LEN];
  uint64_t data;
  uint64_t count;
};
/* FLB entries in the FLB page: 63 with 4 KiB pages. */
#define KHO_LINUX_LUO_FLB_CAPACITY(page_shift)                                      \
  ((KHO_LINUX_LUO_FLB_PGCNT * (UINT64_C(1) << (page_shift)) -                       \
    sizeof(struct kho_linux_luo_flb_header_ser)) / sizeof(struct kho_linux_luo_flb_ser))
KHO_LINUX_ABI_STATIC_ASSERT(sizeof(struct kho_linux_luo_ser) == 32, "luo_ser is 32 bytes");
KHO_LINUX_ABI_STATIC_ASSERT(sizeof(struct kho_linux_luo_session_ser) == 80, "luo_session_ser is 80 bytes");
KHO_LINUX_ABI_STATIC_ASSERT(sizeof(struct kho_linux_luo_file_ser) == 64, "luo_file_ser is 64 bytes");
KHO_LINUX_ABI_STATIC_ASSERT(sizeof(struct kho_linux_luo_flb_header_ser) == 16, "luo_flb_header_ser is 16 bytes");
KHO_LINUX_ABI_STATIC_ASSERT(sizeof(struct kho_linux_luo_flb_ser) == 64, "luo_flb_ser is 64 bytes");

/* ---- memfd ("memfd-v2", "memfd-v1") --------------------------------------------- */

#define KHO_LINUX_MEMFD_V2_COMPATIBLE "memfd-v2"
#define KHO_LINUX_MEMFD_V1_COMPATIBLE "memfd-v1"
#define KHO_LINUX_MEMFD_KNOWN_SEALS 0x3f
#define KHO_LINUX_MEMFD_FOLIO_DIRTY 0x1
#define KHO_LINUX_MEMFD_FOLIO_UPTODATE 0x2
/* Word 0 of a folio record: pfn in bits 0..51, flags in bits 52..63. */
#define KHO_LINUX_MEMFD_PFN(word) ((word) & ((UINT64_C(1) << 52) - 1))
#define KHO_LINUX_MEMFD_FLAGS(word) ((uint64_t)(word) >> 52)
struct kho_linux_memfd_folio_ser {
  uint64_t pfn_flags;
  uint64_t index;
};
struct kho_linux_memfd_ser_v2 {
  uint64_t pos;
  uint64_t size;
  uint32_t seals;
  uint32_t flags; /* zero */
  uint64_t nr_folios;
  struct kho_linux_vmalloc folios;
};
struct kho_linux_memfd_ser_v1 {
  uint64_t pos;
  uint64_t size;
  uint64_t nr_folios;
  struct kho_linux_vmalloc folios;
};
KHO_LINUX_ABI_STATIC_ASSERT(sizeof(struct kho_linux_memfd_folio_ser) == 16, "a folio record is 16 bytes");
KHO_LINUX_ABI_STATIC_ASSERT(sizeof(struct kho_linux_memfd_ser_v2) == 48, "memfd-v2 is 48 bytes");
KHO_LINUX_ABI_STATIC_ASSERT(sizeof(struct kho_linux_memfd_ser_v1) == 40, "memfd-v1 is 40 bytes");

/* ---- kexec-metadata (version 1; packed, 73 bytes) --------------------------------- */

#define KHO_LINUX_KEXEC_METADATA_SUBTREE "kexec-metadata"
#define KHO_LINUX_KEXEC_METADATA_VERSION 1
/* Packed upstream: the u32s are byte arrays here, little-endian. */
struct kho_linux_kexec_metadata {
  unsigned char version[4];
  char previous_release[65];
  unsigned char kexec_count[4]; /* at offset 69 */
};
KHO_LINUX_ABI_STATIC_ASSERT(sizeof(struct kho_linux_kexec_metadata) == 73, "kexec_metadata is 73 bytes");

/* ---- memblock (a device tree; no struct) ------------------------------------------- */

#define KHO_LINUX_MEMBLOCK_SUBTREE "memblock"
#define KHO_LINUX_MEMBLOCK_COMPATIBLE "memblock-v1"
#define KHO_LINUX_RESERVE_MEM_COMPATIBLE "reserve-mem-v1"

/* ---- other LUO and memfd versions (a live update across kernel versions) ---------- */

/* The 128-byte feature header that newer layouts put first instead of a compatible. */
struct kho_linux_luo_feature_hdr {
  uint64_t supp;   /* features the producer could write */
  uint64_t req;    /* features the reader must understand (else refused) */
  uint64_t active; /* features the bytes use; within supp */
  uint64_t reserved[13];
};
#define KHO_LINUX_LUO_FEATURE_NUMBER 0x1
#define KHO_LINUX_LUO_FEATURE_SESSIONS 0x2
#define KHO_LINUX_LUO_FEATURE_FLBS 0x4
#define KHO_LINUX_LUO_FEATURES_SUPPORTED 0x7
#define KHO_LINUX_MEMFD_FEATURE_SEALS 0x1
#define KHO_LINUX_MEMFD_FEATURE_FOLIOS 0x2
#define KHO_LINUX_MEMFD_FEATURES_SUPPORTED 0x3
#define KHO_LINUX_MEMFD_HANDLER_NAME "memfd"

/* luo-v5;block-v1 (RFC): a 16-byte compatible, the same three u64s after it. */
#define KHO_LINUX_LUO_BLOCK_V1_COMPATIBLE "luo-v5;block-v1"
struct kho_linux_luo_ser_block_v1 {
  char compatible[16];
  uint64_t liveupdate_num;
  uint64_t sessions_pa;
  uint64_t flbs_pa;
};
/* LUO with the feature header (file records carry handler names). */
struct kho_linux_luo_ser_feature {
  struct kho_linux_luo_feature_hdr features;
  uint64_t liveupdate_num;
  uint64_t sessions_pa;
  uint64_t flbs_pa;
};
/* memfd with the feature header: memfd-v2's fields after it. */
struct kho_linux_memfd_ser_feature {
  struct kho_linux_luo_feature_hdr features;
  struct kho_linux_memfd_ser_v2 fields;
};
KHO_LINUX_ABI_STATIC_ASSERT(sizeof(struct kho_linux_luo_feature_hdr) == 128, "the feature header is 128 bytes");
KHO_LINUX_ABI_STATIC_ASSERT(sizeof(struct kho_linux_luo_ser_block_v1) == 40, "luo_ser (block-v1) is 40 bytes");
KHO_LINUX_ABI_STATIC_ASSERT(sizeof(struct kho_linux_luo_ser_feature) == 152, "luo_ser (feature) is 152 bytes");
KHO_LINUX_ABI_STATIC_ASSERT(sizeof(struct kho_linux_memfd_ser_feature) == 176, "memfd (feature) is 176 bytes");

/* luo-v1: the "LUO" subtree is a one-page FDT (see docs/format.md) naming a 16-page
 * session area {count, luo_session_ser[]}; each session's files are a 2-page array. */
#define KHO_LINUX_LUO_V1_COMPATIBLE "luo-v1"
#define KHO_LINUX_LUO_V1_NUMBER_PROP "liveupdate-number"
#define KHO_LINUX_LUO_V1_SESSION_NODE "luo-session"
#define KHO_LINUX_LUO_V1_SESSION_COMPATIBLE "luo-session-v2"
#define KHO_LINUX_LUO_V1_SESSION_HEADER_PROP "luo-session-header"
#define KHO_LINUX_LUO_V1_SESSION_PAGES 16
#define KHO_LINUX_LUO_V1_FILE_PAGES 2
struct kho_linux_luo_v1_session_header {
  uint64_t count; /* kho_linux_luo_session_ser entries that follow */
};

#endif /* KHO_C_KHO_LINUX_ABI_H */
