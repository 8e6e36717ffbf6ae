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

#endif /* KHO_C_KHO_ABI_H */
