/*
 * kho/c/kho_abi.h: the wire layouts of kho's handover structures as plain C11.
 *
 * The same structures, names, sizes and offsets as the C++ headers (a C++ test
 * static_asserts every field against them), for a C kernel or tool that reads or
 * writes a kho handover without C++. Every integer is little-endian on the wire;
 * these declarations assume a little-endian host, as the kernels that use KHO do.
 * See docs/format.md for the validation rules a reader must apply.
 */
#ifndef KHO_C_KHO_ABI_H
#define KHO_C_KHO_ABI_H

#include <stdint.h>

#ifdef __cplusplus
#define KHO_ABI_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define KHO_ABI_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* ---- handover root ("kho-root-v1") -------------------------------------------- */

#define KHO_HANDOVER_MAGIC UINT64_C(0x31544f4f524f484b) /* "KHOROOT1" */
#define KHO_HANDOVER_COMPATIBLE "kho-root-v1"
#define KHO_HANDOVER_VERSION_MAJOR 1
#define KHO_HANDOVER_VERSION_MINOR 0
#define KHO_HANDOVER_STATE_OPEN UINT32_C(0x4e45504f)    /* "OPEN" */
#define KHO_HANDOVER_STATE_SEALING UINT32_C(0x474e4953) /* "SING" */
#define KHO_HANDOVER_STATE_SEALED UINT32_C(0x4c414553)  /* "SEAL" */
#define KHO_HANDOVER_NAME_LEN 32
#define KHO_HANDOVER_COMPATIBLE_LEN 48
/* Entries per root page: (page size - header) / entry size; 31 with 4 KiB pages. */
#define KHO_HANDOVER_CAPACITY(page_shift) \
  (((UINT64_C(1) << (page_shift)) - sizeof(struct kho_handover_header)) / sizeof(struct kho_handover_entry))

struct kho_handover_header {
  uint64_t magic;
  char compatible[16];
  uint16_t version_major;
  uint16_t version_minor;
  uint16_t page_shift;
  uint16_t entry_capacity;
  uint32_t state;       /* written last, with release ordering */
  uint32_t entry_count;
  uint64_t generation;
  uint64_t checksum;    /* XXH64 of the page, state and checksum counted as zero */
  uint64_t reserved;
};

struct kho_handover_entry {
  char name[KHO_HANDOVER_NAME_LEN];
  char compatible[KHO_HANDOVER_COMPATIBLE_LEN];
  uint64_t phys;
  uint64_t size;
  uint64_t checksum; /* XXH64 of [phys, phys + size) */
  uint64_t flags;    /* KHO_ENTRY_DEEP_CHECKSUM; other bits are refused */
  uint64_t deep_checksum;
  uint64_t reserved;
};
#define KHO_ENTRY_DEEP_CHECKSUM UINT64_C(1)

KHO_ABI_STATIC_ASSERT(sizeof(struct kho_handover_header) == 64, "kho_handover_header is 64 bytes");
KHO_ABI_STATIC_ASSERT(sizeof(struct kho_handover_entry) == 128, "kho_handover_entry is 128 bytes");

/* ---- preserved-memory radix tree ("kho-radix-v1", Linux kho-v2) --------------- */

#define KHO_RADIX_COMPATIBLE "kho-radix-v1"
/* Key of a block of order o at physical address pa (pa aligned to the block). */
#define KHO_RADIX_KEY(page_shift, pa, o) \
  ((UINT64_C(1) << (64 - (page_shift) - (o))) | ((uint64_t)(pa) >> ((page_shift) + (o))))
#define KHO_RADIX_LEAF_BITS(page_shift) ((page_shift) + 3)
#define KHO_RADIX_TABLE_BITS(page_shift) ((page_shift) - 3)
#define KHO_RADIX_KEY_BITS(page_shift) (65 - (page_shift))
#define KHO_RADIX_DEPTH(page_shift)                                                        \
  ((KHO_RADIX_KEY_BITS(page_shift) - KHO_RADIX_LEAF_BITS(page_shift) +                     \
    KHO_RADIX_TABLE_BITS(page_shift) - 1) / KHO_RADIX_TABLE_BITS(page_shift) + 1)

/* A table: page_size / 8 physical addresses (0 = absent). A leaf: page_size * 8 bits,
 * bit n in bit n % 64 of word n / 64. Declared for 4 KiB pages. */
struct kho_radix_table_4k {
  uint64_t entries[512];
};
struct kho_radix_leaf_4k {
  uint64_t words[512];
};

KHO_ABI_STATIC_ASSERT(sizeof(struct kho_radix_table_4k) == 4096, "a table is one page");
KHO_ABI_STATIC_ASSERT(KHO_RADIX_DEPTH(12) == 6, "6 levels with 4 KiB pages");
KHO_ABI_STATIC_ASSERT(KHO_RADIX_DEPTH(14) == 5, "5 levels with 16 KiB pages");
KHO_ABI_STATIC_ASSERT(KHO_RADIX_DEPTH(16) == 4, "4 levels with 64 KiB pages");

/* ---- KHO serialization blocks ("block-v1", Linux block.h) ---------------------- */

#define KHO_BLOCK_LIST_COMPATIBLE "block-v1"
#define KHO_BLOCK_LINUX_MAX_BLOCKS 10000
/* Each block is one page: this header, then count packed entries (1 <= count). */
struct kho_block_header {
  uint64_t next;  /* physical address of the next block, 0 at the end */
  uint64_t count;
};
#define KHO_BLOCK_CAPACITY(page_shift, entry_size) \
  (((UINT64_C(1) << (page_shift)) - sizeof(struct kho_block_header)) / (entry_size))
KHO_ABI_STATIC_ASSERT(sizeof(struct kho_block_header) == 16, "the block header is 16 bytes");

/* ---- LUO state ("kho-luo-v1") --------------------------------------------------- */

#define KHO_LUO_MAGIC UINT64_C(0x31304f554c4f484b) /* "KHOLUO01" */
#define KHO_LUO_COMPATIBLE "kho-luo-v1"
#define KHO_LUO_ENTRY_NAME "LUO"
#define KHO_LUO_VERSION_MAJOR 1
#define KHO_LUO_STATE_OPEN UINT32_C(0x4e45504f)
#define KHO_LUO_STATE_SEALED UINT32_C(0x4c414553)
#define KHO_LUO_SESSION_NAME_LEN 64
#define KHO_LUO_COMPATIBLE_LEN 48
#define KHO_LUO_FLB_NAME_LEN 48

struct kho_luo_root {
  uint64_t magic;
  char compatible[16];
  uint16_t version_major;
  uint16_t version_minor;
  uint16_t page_shift;
  uint16_t reserved0;
  uint32_t state;
  uint32_t reserved1;
  uint64_t liveupdate_number;
  uint64_t sessions;      /* head block of the session list, 0 if none */
  uint64_t session_count;
  uint64_t file_count;
  uint64_t flbs;          /* head block of the FLB list, 0 if none */
  uint64_t flb_count;
  uint64_t block_count;
  uint64_t content_checksum; /* XXH64 of every block's used bytes, in walk order */
  uint64_t checksum;         /* XXH64 of this root, this field counted as zero */
};

struct kho_luo_session_entry {
  char name[KHO_LUO_SESSION_NAME_LEN];
  uint64_t files; /* head block of the session's files */
  uint64_t file_count;
};

struct kho_luo_file_entry {
  uint64_t token;
  char compatible[KHO_LUO_COMPATIBLE_LEN];
  uint64_t data;
  uint64_t flags;
  uint64_t flb; /* id of the FLB it depends on, 0 for none */
};

struct kho_luo_flb_entry {
  char name[KHO_LUO_FLB_NAME_LEN];
  uint64_t id;
  uint64_t data;
  uint64_t refs;
  uint64_t reserved;
};

KHO_ABI_STATIC_ASSERT(sizeof(struct kho_luo_root) == 112, "the LUO root is 112 bytes");
KHO_ABI_STATIC_ASSERT(sizeof(struct kho_luo_session_entry) == 80, "session entries are 80 bytes");
KHO_ABI_STATIC_ASSERT(sizeof(struct kho_luo_file_entry) == 80, "file entries are 80 bytes");
KHO_ABI_STATIC_ASSERT(sizeof(struct kho_luo_flb_entry) == 80, "FLB entries are 80 bytes");

/* ---- sparse KHO xarray ("kho-xarray-v1") ---------------------------------------- */

#define KHO_XARRAY_MAGIC UINT64_C(0x31525241584f484b) /* "KHOXARR1" */
#define KHO_XARRAY_COMPATIBLE "kho-xarray-v1"
#define KHO_XARRAY_VERSION_MAJOR 1
#define KHO_XA_BRANCH_MAGIC UINT32_C(0x31424158)  /* "XAB1" */
#define KHO_XA_COMPACT_MAGIC UINT32_C(0x31434158) /* "XAC1" */
#define KHO_XA_SIDE_MAGIC UINT32_C(0x31534158)    /* "XAS1" */
/* A link: node physical address | run << 2 | kind (0 null, 1 branch, 2 compact, 3 dense). */
#define KHO_XA_KIND_MASK UINT64_C(3)
#define KHO_XA_RUN_SHIFT 2
#define KHO_XA_RUN_MASK UINT64_C(31)

struct kho_xarray_root {
  uint64_t magic;
  char compatible[16];
  uint16_t version_major;
  uint16_t version_minor;
  uint16_t page_shift;
  uint16_t value_size;
  uint32_t height;
  uint32_t marks;
  uint64_t root;
  uint64_t count;
  uint64_t nodes;
  uint64_t address_sum;
  uint64_t address_mix;
  uint64_t checksum; /* XXH64 of these 128 bytes, this field counted as zero */
  uint64_t reserved[5];
};

/* The header of branches, compact leaves and side nodes (dense leaves have none). */
struct kho_xa_node_header {
  uint32_t magic;
  uint8_t level;
  uint8_t shift;
  uint8_t marks;
  uint8_t reserved0;
  uint32_t count;
  uint32_t reserved1;
  uint64_t base;
  uint64_t entries;
  uint64_t reserved[4];
};

KHO_ABI_STATIC_ASSERT(sizeof(struct kho_xarray_root) == 128, "the xarray root is 128 bytes");
KHO_ABI_STATIC_ASSERT(sizeof(struct kho_xa_node_header) == 64, "node headers are 64 bytes");

#endif /* KHO_C_KHO_ABI_H */
