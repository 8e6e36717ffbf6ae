/* tests/kernel/kho_kexec.h: what the C glue (kho_kexec_glue.c) and the C++ stages
 * (kho_kexec_stages.cpp) say to each other. Plain C types only: the glue sees the
 * kernel's headers, the stages see kho's, and neither sees the other's.
 */
#ifndef KHO_KEXEC_H
#define KHO_KEXEC_H

#ifdef __cplusplus
extern "C" {
#endif

struct kho_kexec_args {
	void *virt;                /* the region, memremap()ed */
	unsigned long long phys;   /* its physical address */
	unsigned long long size;   /* its bytes */
	const char *crash_at;      /* stage 1: leave the seal as a crash at this step would ("" none) */
	unsigned long long stale_seed; /* stage 1: after sealing, one sealed byte stale (0 none) */
	char *out;                 /* one JSON line, NUL-terminated */
	unsigned long long out_size;
};

/* The old kernel: builds and seals a handover in the region. 0 when written. */
int kho_kexec_stage1(struct kho_kexec_args *args);
/* The next kernel: checks and reads back everything. 0 when every check passed. */
int kho_kexec_stage2(struct kho_kexec_args *args);

/* The hook the glue provides: ktime_get_ns(). */
unsigned long long kho_shim_now_ns(void);

#ifdef __cplusplus
}
#endif

#endif
