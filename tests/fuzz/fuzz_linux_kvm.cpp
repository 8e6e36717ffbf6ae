// Fuzz target: KVM's state at the root (kho/linux/kvm.hpp), read as kvm_vm_luo_v1 in
// both layouts (A linux-mm, B soleen) and as kvm_vcpu_luo_v1. After a successful
// attach every read is through the armed memory: A's attribute records, B's CPUID
// entries (at most 256, known flags only), the vCPU's caretaker block (state <= 2);
// the pages are claimed once each.
#include <kho/linux/kvm.hpp>
#include <kho/page_owners.hpp>

#include "fuzz_pages.hpp"
#include "fuzz_input.hpp"

namespace {

kho::fuzz::pages<16 << 20> scratch_memory;

template <class View>
void claim(const View& v) {
  kho::flat_memory scratch_mem(kho::phys_addr{kho::u64{1} << 46}, scratch_memory.size, scratch_memory);
  kho::bump_page_source<kho::flat_memory> scratch(scratch_mem, scratch_mem.base(), scratch_mem.end());
  kho::page_owners<decltype(scratch)> owners(scratch);
  (void)v.claim_pages(owners);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kho::upstream;
  {
    kho::fuzz::image img(data, size);
    if (auto vm = attach_kvm_vm<12>(img.memory(), img.root(), kvm_vm_dialect::linux_mm)) {
      img.arm();
      kho::u64 n = 0;
      vm->for_each_mem_attr([&](const kvm_mem_attr& a) {
        if ((a.gfn >> 52) != 0) __builtin_trap();
        ++n;
      });
      if (n != vm->nr_mem_attrs()) __builtin_trap();
      claim(*vm);
    }
  }
  {
    kho::fuzz::image img(data, size);
    if (auto vm = attach_kvm_vm<12>(img.memory(), img.root(), kvm_vm_dialect::soleen)) {
      img.arm();
      if (vm->cpuid_nent() > kvm_max_cpuid_entries) __builtin_trap();
      for (kho::u32 i = 0; i < vm->cpuid_nent(); ++i)
        if ((vm->cpuid_entry(i).flags.get() & ~kvm_cpuid_known_flags) != 0) __builtin_trap();
      claim(*vm);
    }
  }
  kho::fuzz::image img(data, size);
  auto vcpu = attach_kvm_vcpu<12>(img.memory(), img.root());
  if (!vcpu) return 0;
  img.arm();
  if (vcpu->cb().attachment_state.get() > caretaker_max_state) __builtin_trap();
  claim(*vcpu);
  return 0;
}
