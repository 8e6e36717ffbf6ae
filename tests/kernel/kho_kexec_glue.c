// SPDX-License-Identifier: MIT
/*
 * tests/kernel/kho_kexec_glue.c: the module's C side. It takes the parameters,
 * memremap()s the region that memmap= kept from both kernels, runs a stage (C++,
 * kho_kexec_stages.cpp) and prints its JSON line. Everything kho does happens there.
 */
#include <linux/io.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/timekeeping.h>

#include "kho_kexec.h"

static int stage;
module_param(stage, int, 0444);
MODULE_PARM_DESC(stage, "1: write the handover (old kernel); 2: read it back (next kernel)");
static unsigned long region = 0x40000000;
module_param(region, ulong, 0444);
MODULE_PARM_DESC(region, "physical address of the region kept by memmap=");
static unsigned long region_size = 16 << 20;
module_param(region_size, ulong, 0444);
static char *crash_at = "";
module_param(crash_at, charp, 0444);
MODULE_PARM_DESC(crash_at, "stage 1: leave the seal as a crash at seal-began, seal-entries or seal-root would");
static unsigned long stale_seed;
module_param(stale_seed, ulong, 0444);
MODULE_PARM_DESC(stale_seed, "stage 1: after sealing leave one sealed byte stale, chosen by this seed");

static char out[1024];

unsigned long long kho_shim_now_ns(void)
{
	return ktime_get_ns();
}

static int __init kho_kexec_init(void)
{
	struct kho_kexec_args args = {
		.phys = region, .size = region_size, .crash_at = crash_at,
		.stale_seed = stale_seed, .out = out, .out_size = sizeof(out),
	};
	int rc;

	if (stage != 1 && stage != 2) {
		pr_info("kho_kexec: loaded without a stage: nothing to do\n");
		return 0;
	}
	args.virt = memremap(region, region_size, MEMREMAP_WB);
	if (!args.virt) {
		pr_err("kho_kexec: {\"stage\": %d, \"status\": \"cannot map the region\"}\n", stage);
		return -ENOMEM;
	}
	rc = stage == 1 ? kho_kexec_stage1(&args) : kho_kexec_stage2(&args);
	pr_info("kho_kexec: %s\n", out);
	memunmap(args.virt);
	return 0;
}

static void __exit kho_kexec_exit(void)
{
}

module_init(kho_kexec_init);
module_exit(kho_kexec_exit);
MODULE_LICENSE("Dual MIT/GPL");
MODULE_DESCRIPTION("kho's containers across a real kexec");
