// SPDX-License-Identifier: MIT
/*
 * tests/kernel/kho_kexec_nofdt.c: the libfdt entry points kho's FDT readers call, for a
 * kernel that has none to link against (Debian's x86 kernel is built without CONFIG_OF
 * and exports no fdt_*). Each answers "not a device tree", so an FDT-based format
 * (luo-v1's blob, among the layouts the LUO reader accepts) is refused by name in this
 * module; the formats the stages write are not FDTs and never reach here.
 */
#include <linux/types.h>

#include "kho_kexec.h"

#define FDT_ERR_BADMAGIC 9

int fdt_check_full(const void *fdt, size_t bufsize);
const void *fdt_getprop(const void *fdt, int nodeoffset, const char *name, int *lenp);
int fdt_first_subnode(const void *fdt, int offset);
int fdt_next_subnode(const void *fdt, int offset);
const char *fdt_get_name(const void *fdt, int nodeoffset, int *lenp);
int fdt_node_check_compatible(const void *fdt, int nodeoffset, const char *compatible);

int fdt_check_full(const void *fdt, size_t bufsize)
{
	return -FDT_ERR_BADMAGIC;
}

const void *fdt_getprop(const void *fdt, int nodeoffset, const char *name, int *lenp)
{
	if (lenp)
		*lenp = -FDT_ERR_BADMAGIC;
	return NULL;
}

int fdt_first_subnode(const void *fdt, int offset)
{
	return -FDT_ERR_BADMAGIC;
}

int fdt_next_subnode(const void *fdt, int offset)
{
	return -FDT_ERR_BADMAGIC;
}

const char *fdt_get_name(const void *fdt, int nodeoffset, int *lenp)
{
	if (lenp)
		*lenp = -FDT_ERR_BADMAGIC;
	return NULL;
}

int fdt_node_check_compatible(const void *fdt, int nodeoffset, const char *compatible)
{
	return -FDT_ERR_BADMAGIC;
}
