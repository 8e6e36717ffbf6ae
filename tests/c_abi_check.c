/* Compiled as C11 with -Wall -Werror: the C header must stand on its own. */
#include <kho/c/kho_abi.h>
#include <kho/c/kho_linux_abi.h>

#include <stddef.h>

_Static_assert(offsetof(struct kho_handover_header, state) == 32, "state at 32");
_Static_assert(offsetof(struct kho_handover_entry, phys) == 80, "phys at 80");
_Static_assert(KHO_HANDOVER_CAPACITY(12) == 31, "31 entries per 4 KiB root");
_Static_assert(KHO_RADIX_KEY(12, 0x1000, 0) == UINT64_C(0x0010000000000001), "golden key");

_Static_assert(offsetof(struct kho_linux_memfd_ser_v2, folios) == 32, "folios at 32");
_Static_assert(offsetof(struct kho_linux_memfd_ser_feature, fields) == 128, "memfd-v2 fields after the feature header");
_Static_assert(offsetof(struct kho_linux_luo_ser_block_v1, liveupdate_num) == 16, "number at 16");
_Static_assert(offsetof(struct kho_linux_luo_ser_feature, liveupdate_num) == 128, "number at 128");
_Static_assert(offsetof(struct kho_linux_kexec_metadata, kexec_count) == 69, "kexec_count at 69");

int kho_c_abi_check(void) { return (int)sizeof(struct kho_handover_entry); }
