// kho/linux/kvm_dialect.hpp: which of the two layouts that both carry the string
// "kvm_vm_luo_v1" a reader is to read (kho/linux/kvm.hpp). The bytes cannot tell, so
// the choice is the caller's: kho never guesses. Kept apart so that the
// whole-handover options (kho/handover_check.hpp) can name it without the readers.
#pragma once

#include <kho/phys.hpp>

namespace kho::upstream {

enum class kvm_vm_dialect : u8 {
  undecided = 0,  // not told: a kvm_vm_luo_v1 file's own page is claimed, nothing it names is read
  linux_mm = 1,   // layout A: 32-byte kvm_luo_ser with a kho_vmalloc of memory attributes
  soleen = 2,     // layout B: 16-byte {type, arch_state phys} (x86 CPUID blob)
};

constexpr const char* kvm_vm_dialect_name(kvm_vm_dialect d) {
  return d == kvm_vm_dialect::linux_mm ? "A (linux-mm)" : d == kvm_vm_dialect::soleen ? "B (soleen)" : "undecided";
}

}  // namespace kho::upstream
