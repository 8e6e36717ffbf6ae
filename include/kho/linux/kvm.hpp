// kho/linux/kvm.hpp: a KVM VM's and vCPU's live-update state, files "kvm_vm_luo_v1"
// and "kvm_vcpu_luo_v1", and the caretaker control block a vCPU may name
// (shared/LINUX-FORMATS-NEXT.md sections 4.2 and 4.3).
//
// "kvm_vm_luo_v1" names TWO layouts, and LUO carries no size for file data, so the
// bytes cannot tell them apart: the reader is told the dialect and never guesses.
//   A (linux-mm): kvm_luo_ser (32 B): type u64 @0, nr_mem_attrs u64 @8,
//      mem_attrs kho_vmalloc @16 of kvm_luo_mem_attr {gfn u64, attributes u64} (16 B).
//      Checks: the array as record_array.hpp says; each gfn's address fits 64 bits.
//      KVM validates `type` itself; kho does not.
//   B (soleen): {type u64 @0, arch_state u64 @8} (16 B). arch_state is the phys of
//      the x86 kvm_vm_arch_luo_state: cpuid_nent u32 @0, then cpuid_nent packed
//      40-byte uAPI kvm_cpuid_entry2 {function, index, flags, eax, ebx, ecx, edx,
//      padding[3]} (all u32) from @4; 0 = none. Checks: the blob page-aligned (a
//      preserved allocation) and inside memory; cpuid_nent at most 256
//      (KVM_MAX_CPUID_ENTRIES); entry flags within 0x7 (the three uAPI flags).
// In the whole-handover check the dialect comes from handover_check_options; when it
// is not given, a kvm_vm_luo_v1 file's own page is claimed and nothing it points at is
// followed (kvm_vm_dialect::undecided).
//
// kvm_vcpu_luo_ser (32 B): vcpu_id u32 @0, flags u32 @4 (bit 0 CARETAKER, others 0),
// vm_token u64 @8, arch_state u64 @16 (phys), cb u64 @24 (phys of caretaker_cb).
// arch_state is a concatenation of uAPI structs whose offsets depend on the uAPI
// headers and the architecture: kho claims its page and never reads it.
// caretaker_cb (48 B): attachment_state u64 @0 (0 attached, 1 detached, 2 attaching),
// pcpu_id u32 @8 (0xFFFFFFFF unassigned), vcpu_id u32 @12, vm_token u64 @16,
// vcpu_token u64 @24, runtime_pa u64 @32 (opaque: hypervisor-private, never followed),
// runtime_size u64 @40. Checks: attachment_state <= 2.
//
// Complexity: every reader O(1) except A's array (O(nr_mem_attrs + pages)) and B's
// CPUID entries (O(cpuid_nent)).
#pragma once

#include <kho/detail/endian.hpp>
#include <kho/linux/kho_vmalloc.hpp>
#include <kho/linux/kvm_dialect.hpp>
#include <kho/linux/record_array.hpp>
#include <kho/memory.hpp>
#include <kho/page_owners.hpp>
#include <kho/phys.hpp>
#include <kho/result.hpp>

#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>

namespace kho::upstream {

inline constexpr const char* kvm_vm_compatible = "kvm_vm_luo_v1";
inline constexpr const char* kvm_vcpu_compatible = "kvm_vcpu_luo_v1";
inline constexpr u32 kvm_max_cpuid_entries = 256;
inline constexpr u32 kvm_cpuid_known_flags = 0x7;
inline constexpr u32 kvm_vcpu_flag_caretaker = 0x1;
inline constexpr u64 caretaker_max_state = 2;

struct kvm_luo_ser_a {
  detail::le64 type;
  detail::le64 nr_mem_attrs;
  kho_vmalloc mem_attrs;
};
static_assert(sizeof(kvm_luo_ser_a) == 32);
static_assert(offsetof(kvm_luo_ser_a, mem_attrs) == 16);

struct kvm_luo_ser_b {
  detail::le64 type;
  detail::le64 arch_state;
};
static_assert(sizeof(kvm_luo_ser_b) == 16);

struct kvm_cpuid_entry2 {
  detail::le32 function, index, flags, eax, ebx, ecx, edx, padding[3];
};
static_assert(sizeof(kvm_cpuid_entry2) == 40);
static_assert(offsetof(kvm_cpuid_entry2, flags) == 8);
static_assert(offsetof(kvm_cpuid_entry2, edx) == 24);

struct kvm_vcpu_luo_ser {
  detail::le32 vcpu_id;
  detail::le32 flags;
  detail::le64 vm_token;
  detail::le64 arch_state;
  detail::le64 cb;
};
static_assert(sizeof(kvm_vcpu_luo_ser) == 32);
static_assert(offsetof(kvm_vcpu_luo_ser, vm_token) == 8);
static_assert(offsetof(kvm_vcpu_luo_ser, arch_state) == 16);
static_assert(offsetof(kvm_vcpu_luo_ser, cb) == 24);

struct caretaker_cb {
  detail::le64 attachment_state;
  detail::le32 pcpu_id;
  detail::le32 vcpu_id;
  detail::le64 vm_token;
  detail::le64 vcpu_token;
  detail::le64 runtime_pa;
  detail::le64 runtime_size;
};
static_assert(sizeof(caretaker_cb) == 48);
static_assert(offsetof(caretaker_cb, vm_token) == 16);
static_assert(offsetof(caretaker_cb, runtime_pa) == 32);

// ---- kvm_vm_luo_v1 ------------------------------------------------------------------

struct kvm_mem_attr {
  u64 gfn = 0;
  u64 attributes = 0;
};

/// A VM to write. Layout A uses mem_attrs; layout B uses cpuid (written into a blob of
/// its own, its phys in arch_state; none when write_arch_state is false).
struct kvm_vm_file {
  u64 type = 0;
  const kvm_mem_attr* mem_attrs = nullptr;  // A
  u64 nr_mem_attrs = 0;
  const kvm_cpuid_entry2* cpuid = nullptr;  // B
  u32 cpuid_nent = 0;
  bool write_arch_state = true;  // B
};

/// Writes `vm` in `dialect` (undecided is invalid_argument). Returns luo_file_ser.data.
/// Errors: invalid_argument (dialect, a gfn too wide, more than 256 CPUID entries or
/// unknown CPUID flags), out_of_range, out_of_memory.
template <unsigned PageShift = 12, PageSource Source>
result<phys_addr> write_kvm_vm(Source& source, const kvm_vm_file& vm, kvm_vm_dialect dialect) {
  using geometry = page_geometry<PageShift>;
  if (dialect == kvm_vm_dialect::linux_mm) {
    for (u64 i = 0; i < vm.nr_mem_attrs; ++i)
      if ((vm.mem_attrs[i].gfn >> (64 - PageShift)) != 0) return errc::invalid_argument;
    auto array = write_record_array<PageShift>(source, vm.nr_mem_attrs, [&](u64 i) {
      return std::pair<u64, u64>{vm.mem_attrs[i].gfn, vm.mem_attrs[i].attributes};
    });
    if (!array) return array.err();
    kvm_luo_ser_a s{};
    s.type.set(vm.type);
    s.nr_mem_attrs.set(vm.nr_mem_attrs);
    s.mem_attrs = *array;
    return write_ser<PageShift>(source, &s, sizeof s);
  }
  if (dialect != kvm_vm_dialect::soleen || vm.cpuid_nent > kvm_max_cpuid_entries) return errc::invalid_argument;
  for (u32 i = 0; i < vm.cpuid_nent; ++i)
    if ((vm.cpuid[i].flags.get() & ~kvm_cpuid_known_flags) != 0) return errc::invalid_argument;
  kvm_luo_ser_b s{};
  s.type.set(vm.type);
  if (vm.write_arch_state) {
    const u64 bytes = 4 + u64{vm.cpuid_nent} * sizeof(kvm_cpuid_entry2);
    unsigned o = 0;
    while (geometry::block_bytes(order{o}) < bytes) ++o;
    auto blob = alloc_zeroed(source, order{o}, geometry::block_bytes(order{o}));
    if (!blob) return blob.err();
    auto* p = static_cast<unsigned char*>(source.memory().to_virt(*blob, bytes));
    const u32 n = detail::to_little(vm.cpuid_nent);
    std::memcpy(p, &n, 4);
    if (vm.cpuid_nent != 0) std::memcpy(p + 4, vm.cpuid, u64{vm.cpuid_nent} * sizeof(kvm_cpuid_entry2));
    s.arch_state.set(blob->value);
  }
  return write_ser<PageShift>(source, &s, sizeof s);
}

/// A validated kvm_vm_luo_v1 state in one dialect.
template <Memory M, unsigned PageShift = 12>
class kvm_vm_view {
 public:
  using geometry = page_geometry<PageShift>;
  using array_view = record_array_view<M, PageShift>;
  static constexpr const char* structure = "kvm_vm_luo_v1";

  /// Errors: invalid_argument (dialect undecided); at the structure: misaligned,
  /// out_of_bounds; A: the array's, out_of_range at a record (gfn too wide, depth 1);
  /// B, at arch_state (depth 1): misaligned, out_of_bounds, out_of_range (cpuid_nent
  /// above 256), reserved_nonzero at an entry (unknown flags, depth 2).
  static result<kvm_vm_view> attach(const M& mem, phys_addr ser, kvm_vm_dialect dialect) {
    if (dialect == kvm_vm_dialect::undecided) return make_error(errc::invalid_argument, structure, ser, 0);
    kvm_vm_view v(mem, ser, dialect);
    if (dialect == kvm_vm_dialect::linux_mm) {
      KHO_TRY(read_ser<PageShift>(mem, ser, &v.a_, sizeof v.a_, structure));
      auto array = array_view::attach(mem, v.a_.mem_attrs, v.a_.nr_mem_attrs.get(), structure, ser);
      if (!array) return array.err();
      v.array_ = *array;
      error bad{};
      v.array_.for_each([&](u64 gfn, u64, phys_addr at) {
        if ((gfn >> (64 - PageShift)) == 0) return errc::ok;
        bad = make_error(errc::out_of_range, structure, at, 1);
        return errc::out_of_range;
      });
      if (bad.code != errc::ok) return bad;
      return v;
    }
    KHO_TRY(read_ser<PageShift>(mem, ser, &v.b_, sizeof v.b_, structure));
    const phys_addr arch{v.b_.arch_state.get()};
    if (!arch) return v;
    if (!geometry::is_aligned(arch)) return make_error(errc::misaligned, structure, arch, 1);
    const void* head = mem.to_virt(arch, 4);
    if (head == nullptr) return make_error(errc::out_of_bounds, structure, arch, 1);
    u32 n = 0;
    std::memcpy(&n, head, 4);
    n = detail::to_little(n);
    if (n > kvm_max_cpuid_entries) return make_error(errc::out_of_range, structure, arch, 1);
    v.nent_ = n;
    const auto* bytes = static_cast<const unsigned char*>(mem.to_virt(arch, v.arch_bytes()));
    if (bytes == nullptr) return make_error(errc::out_of_bounds, structure, arch, 1);
    for (u32 i = 0; i < n; ++i) {
      const kvm_cpuid_entry2 e = v.cpuid_entry(i);
      if ((e.flags.get() & ~kvm_cpuid_known_flags) != 0)
        return make_error(errc::reserved_nonzero, structure, arch + 4 + u64{i} * sizeof e, 2);
    }
    return v;
  }

  /// Claims the structure's page, and A's array or B's arch-state pages.
  template <class Owners>
  status claim_pages(Owners& owners) const {
    const page_owner who{structure, ser_};
    KHO_TRY(owners.claim(ser_, 1, who));
    if (dialect_ == kvm_vm_dialect::linux_mm) return array_.claim_pages(owners, who);
    if (!arch_state()) return {};
    return owners.claim(arch_state(), (arch_bytes() + geometry::size - 1) >> PageShift, who);
  }

  /// A: calls f(kvm_mem_attr) for every attribute record.
  template <class F>
  void for_each_mem_attr(F&& f) const {
    array_.for_each([&](u64 gfn, u64 attrs, phys_addr) {
      f(kvm_mem_attr{gfn, attrs});
      return errc::ok;
    });
  }
  /// B: entry i < cpuid_nent(), copied out (the blob packs them at offset 4).
  kvm_cpuid_entry2 cpuid_entry(u32 i) const {
    kvm_cpuid_entry2 e{};
    std::memcpy(&e, static_cast<const unsigned char*>(mem_.to_virt(arch_state(), arch_bytes())) + 4 + u64{i} * sizeof e,
                sizeof e);
    return e;
  }

  kvm_vm_dialect dialect() const { return dialect_; }
  u64 type() const { return dialect_ == kvm_vm_dialect::linux_mm ? a_.type.get() : b_.type.get(); }
  u64 nr_mem_attrs() const { return a_.nr_mem_attrs.get(); }
  phys_addr arch_state() const { return phys_addr{b_.arch_state.get()}; }
  u32 cpuid_nent() const { return nent_; }
  u64 arch_bytes() const { return 4 + u64{nent_} * sizeof(kvm_cpuid_entry2); }
  phys_addr address() const { return ser_; }

 private:
  kvm_vm_view(const M& mem, phys_addr ser, kvm_vm_dialect d)
      : mem_(mem), ser_(ser), dialect_(d), array_(array_view::none(mem)) {}
  M mem_;
  phys_addr ser_;
  kvm_vm_dialect dialect_;
  kvm_luo_ser_a a_{};
  kvm_luo_ser_b b_{};
  u32 nent_ = 0;
  array_view array_;
};

template <unsigned PageShift = 12, Memory M>
result<kvm_vm_view<M, PageShift>> attach_kvm_vm(const M& mem, phys_addr ser, kvm_vm_dialect dialect) {
  return kvm_vm_view<M, PageShift>::attach(mem, ser, dialect);
}

// ---- kvm_vcpu_luo_v1 ----------------------------------------------------------------

/// A vCPU to write. arch_state is the phys of a blob the caller has preserved (kho
/// never writes nor reads its contents); the caretaker block is written when
/// `caretaker` is set (flags then carry CARETAKER).
struct kvm_vcpu_file {
  u32 vcpu_id = 0;
  u64 vm_token = 0;
  phys_addr arch_state{};
  bool caretaker = false;
  caretaker_cb cb{};
};

/// Writes `vcpu`. Returns luo_file_ser.data. Errors: invalid_argument (attachment_state
/// above 2), out_of_memory.
template <unsigned PageShift = 12, PageSource Source>
result<phys_addr> write_kvm_vcpu(Source& source, const kvm_vcpu_file& vcpu) {
  kvm_vcpu_luo_ser s{};
  s.vcpu_id.set(vcpu.vcpu_id);
  s.vm_token.set(vcpu.vm_token);
  s.arch_state.set(vcpu.arch_state.value);
  if (vcpu.caretaker) {
    if (vcpu.cb.attachment_state.get() > caretaker_max_state) return errc::invalid_argument;
    auto cb = write_ser<PageShift>(source, &vcpu.cb, sizeof vcpu.cb);
    if (!cb) return cb.err();
    s.flags.set(kvm_vcpu_flag_caretaker);
    s.cb.set(cb->value);
  }
  return write_ser<PageShift>(source, &s, sizeof s);
}

/// A validated kvm_vcpu_luo_v1 state.
template <Memory M, unsigned PageShift = 12>
class kvm_vcpu_view {
 public:
  static constexpr const char* structure = "kvm_vcpu_luo_v1";

  /// Errors: at the structure: misaligned, out_of_bounds, reserved_nonzero (flags
  /// other than CARETAKER); at arch_state or cb (depth 1): misaligned, out_of_bounds;
  /// out_of_range (the block's attachment_state above 2).
  static result<kvm_vcpu_view> attach(const M& mem, phys_addr ser) {
    kvm_vcpu_view v(ser);
    KHO_TRY(read_ser<PageShift>(mem, ser, &v.s_, sizeof v.s_, structure));
    if ((v.s_.flags.get() & ~kvm_vcpu_flag_caretaker) != 0)
      return make_error(errc::reserved_nonzero, structure, ser + offsetof(kvm_vcpu_luo_ser, flags), 0);
    if (const phys_addr a = v.arch_state()) {
      if (!page_geometry<PageShift>::is_aligned(a)) return make_error(errc::misaligned, structure, a, 1);
      if (mem.to_virt(a, page_geometry<PageShift>::size) == nullptr)
        return make_error(errc::out_of_bounds, structure, a, 1);
    }
    if (const phys_addr c = v.cb_address()) {
      status s = read_ser<PageShift>(mem, c, &v.cb_, sizeof v.cb_, structure);
      if (!s) return make_error(s.code(), structure, c, 1);
      if (v.cb_.attachment_state.get() > caretaker_max_state) return make_error(errc::out_of_range, structure, c, 1);
    }
    return v;
  }

  /// Claims the structure's page, the first page of arch_state (opaque: its size is
  /// not known without the architecture's uAPI) and the caretaker block's page.
  template <class Owners>
  status claim_pages(Owners& owners) const {
    const page_owner who{structure, ser_};
    KHO_TRY(owners.claim(ser_, 1, who));
    if (arch_state()) KHO_TRY(owners.claim(arch_state(), 1, who));
    if (cb_address()) KHO_TRY(owners.claim(cb_address(), 1, who));
    return {};
  }

  u32 vcpu_id() const { return s_.vcpu_id.get(); }
  u32 flags() const { return s_.flags.get(); }
  u64 vm_token() const { return s_.vm_token.get(); }
  phys_addr arch_state() const { return phys_addr{s_.arch_state.get()}; }
  phys_addr cb_address() const { return phys_addr{s_.cb.get()}; }
  /// The caretaker block (all zero when cb_address() is 0).
  const caretaker_cb& cb() const { return cb_; }
  phys_addr address() const { return ser_; }

 private:
  explicit kvm_vcpu_view(phys_addr ser) : ser_(ser) {}
  phys_addr ser_;
  kvm_vcpu_luo_ser s_{};
  caretaker_cb cb_{};
};

template <unsigned PageShift = 12, Memory M>
result<kvm_vcpu_view<M, PageShift>> attach_kvm_vcpu(const M& mem, phys_addr ser) {
  return kvm_vcpu_view<M, PageShift>::attach(mem, ser);
}

}  // namespace kho::upstream
