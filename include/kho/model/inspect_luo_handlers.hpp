// kho/model/inspect_luo_handlers.hpp: the JSON of what a LUO file's or an FLB's data
// names, by the string of its handler (hosted only): the report's side of
// kho/linux/luo_handlers.hpp. Each format reads with its own validating reader; a
// refusal is {"ok": false, "error", "summary"} and clears `ok`, never an exception. A
// string no reader knows is shown as it is: name or compatible, token or count, data.
#pragma once

#include <kho/detail/fixed_string.hpp>
#include <kho/linux/guest_memfd.hpp>
#include <kho/linux/hugetlb.hpp>
#include <kho/linux/kvm.hpp>
#include <kho/linux/luo_handlers.hpp>
#include <kho/linux/tmpfs.hpp>
#include <kho/linux/luo_versions.hpp>
#include <kho/linux/memfd.hpp>
#include <kho/manifest.hpp>
#include <kho/model/report.hpp>
#include <kho/model/scratch_pages.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <string>

namespace kho::model::linux_inspect {

using namespace kho::upstream;

/// A fixed-size name field up to its NUL (the readers proved there is one).
inline std::string field_string(const char* field, u64 cap) {
  return std::string(field, kho::detail::bounded_length(field, cap));
}

inline nlohmann::json refused(const char* what, const error& e) {
  return {{"ok", false}, {"error", describe_error(e)}, {"summary", fmt::format("{}: {}", what, format_error(e))}};
}

/// A memfd-v2/v1 file's state: pos, size, seals, nr_folios and its first
/// `max_folios` folios.
template <unsigned PageShift, Memory M>
nlohmann::json memfd_json(const M& mem, phys_addr ser, memfd_version version, u64 max_folios) {
  auto m = attach_memfd<PageShift>(mem, ser, version);
  if (!m) return refused("memfd refused", m.err());
  nlohmann::json folios = nlohmann::json::array();
  m->for_each_folio([&](const memfd_folio& f) {
    if (folios.size() < max_folios)
      folios.push_back({{"pfn", hex(f.frame.value)}, {"index", f.index}, {"flags", f.flags}});
  });
  return {{"ok", true},
          {"version", wire_name_of("memfd", static_cast<u8>(version))},
          {"address", hex(ser.value)},
          {"pos", m->pos()},
          {"size", m->size()},
          {"seals", m->seals()},
          {"flags", m->flags()},
          {"nr_folios", m->nr_folios()},
          {"folios", folios},
          {"folios_truncated", m->nr_folios() > folios.size()}};
}

// -- devices (PCI, IOMMU, iommufd, vfio-pci) --

/// A PCI FLB: variant, counts and the devices in use (the first `max_devices`).
template <unsigned PageShift, Memory M>
nlohmann::json pci_flb_json(const M& mem, phys_addr ser, pci_variant v, u64 max_devices) {
  scratch_pages<PageShift> scratch(mem);
  auto p = attach_pci_flb<PageShift>(mem, ser, v, scratch.pages());
  if (!p) return refused("PCI FLB refused", p.err());
  nlohmann::json devices = nlohmann::json::array();
  p->for_each_device([&](const pci_device& d) {
    if (devices.size() < max_devices) devices.push_back({{"domain", d.domain}, {"bdf", hex(u64{d.bdf})}});
  });
  return {{"ok", true},
          {"version", wire_name_of("pci", static_cast<u8>(v))},
          {"address", hex(ser.value)},
          {"nr_devices", p->nr_devices()},
          {"max_nr_devices", p->max_nr_devices()},
          {"devices", devices},
          {"devices_truncated", p->nr_devices() > devices.size()}};
}

/// An IOMMU FLB: its three lists, each object with its phys. restored_domain is the
/// next kernel's virtual pointer: shown as a number, never followed. At most
/// `max_objects` objects a list.
template <unsigned PageShift, Memory M>
nlohmann::json iommu_flb_json(const M& mem, phys_addr ser, iommu_variant v, u64 max_objects) {
  scratch_pages<PageShift> scratch(mem);
  auto view = attach_iommu_flb<PageShift>(mem, ser, v, scratch.pages());
  if (!view) return refused("IOMMU FLB refused", view.err());
  nlohmann::json hw = nlohmann::json::array(), domains = nlohmann::json::array(),
                 devices = nlohmann::json::array();
  u64 nhw = 0, ndom = 0, ndev = 0;
  view->for_each_hw([&](const iommu_hw& h) {
    if (nhw++ >= max_objects) return;
    nlohmann::json j{{"at", hex(h.at.value)}, {"ref_count", h.ref_count}, {"flags", h.flags},
                     {"token", h.token},      {"type", h.type}};
    if (v == iommu_variant::v1 && h.type == iommu_type_intel) {
      nlohmann::json bitmap = nlohmann::json::array();
      for (u64 w : h.context_tables_bitmap) bitmap.push_back(hex(w));
      j["intel"] = {{"restored", h.restored}, {"mmio", hex(h.mmio)}, {"root_table", hex(h.root_table)},
                    {"context_tables_bitmap", bitmap}};
    }
    hw.push_back(j);
  });
  view->for_each_domain([&](const iommu_domain& d) {
    if (ndom++ >= max_objects) return;
    domains.push_back({{"at", hex(d.at.value)}, {"ref_count", d.ref_count}, {"flags", d.flags},
                       {"top_table_phys", hex(d.top_table_phys)}, {"top_level", d.top_level}, {"vasz", d.vasz},
                       {"sign_extend", d.sign_extend}, {"restored_domain_opaque", hex(d.restored_domain)}});
  });
  view->for_each_device([&](const iommu_device& d) {
    if (ndev++ >= max_objects) return;
    nlohmann::json j{{"at", hex(d.at.value)},
                     {"ref_count", d.ref_count},
                     {"flags", d.flags},
                     {"devid", hex(u64{d.devid})},
                     {"pci_domain_nr", d.pci_domain_nr},
                     {"attachment_id", d.attachment_id},
                     {"domain_phys", hex(d.domain_phys)},
                     {"iommu_phys", hex(d.iommu_phys)}};
    if (v == iommu_variant::v1) j["intel"] = {{"pasid_table", hex(d.pasid_table)}, {"max_pasid", d.max_pasid}};
    devices.push_back(j);
  });
  view->release();
  return {{"ok", true},          {"version", wire_name_of("iommu", static_cast<u8>(v))},
          {"address", hex(ser.value)}, {"hw", hw}, {"domains", domains}, {"devices", devices},
          {"objects_truncated", nhw > max_objects || ndom > max_objects || ndev > max_objects}};
}

/// An iommufd: its HWPTs (the first `max_hwpts`).
template <unsigned PageShift, Memory M>
nlohmann::json iommufd_json(const M& mem, phys_addr ser, u64 max_hwpts) {
  auto fd = attach_iommufd<PageShift>(mem, ser);
  if (!fd) return refused("iommufd refused", fd.err());
  nlohmann::json hwpts = nlohmann::json::array();
  fd->for_each_hwpt([&](const iommufd_hwpt& h, phys_addr) {
    if (hwpts.size() < max_hwpts)
      hwpts.push_back({{"domain_data", hex(h.domain_data)}, {"token", h.token}, {"reclaimed", h.reclaimed}});
  });
  return {{"ok", true},           {"address", hex(ser.value)}, {"nr_hwpts", fd->nr_hwpts()},
          {"hwpts", hwpts}, {"hwpts_truncated", fd->nr_hwpts() > hwpts.size()}};
}

/// A vfio-pci file's device.
template <unsigned PageShift, Memory M>
nlohmann::json vfio_pci_json(const M& mem, phys_addr ser) {
  auto dev = attach_vfio_pci<PageShift>(mem, ser);
  if (!dev) return refused("vfio-pci refused", dev.err());
  return {{"ok", true},
          {"address", hex(ser.value)},
          {"domain", dev->device().domain},
          {"bdf", hex(u64{dev->device().bdf})},
          {"reset_works", dev->device().reset_works != 0}};
}

// ---- hugetlb, guest_memfd, KVM, tmpfs (LINUX-FORMATS-NEXT.md sections 2 to 4) ----------

/// The hugetlb-v1 FLB: its hstates (order, huge page bytes, preserved pages).
template <unsigned PageShift, Memory M>
nlohmann::json hugetlb_flb_json(const M& mem, phys_addr ser) {
  auto h = attach_hugetlb_flb<PageShift>(mem, ser);
  if (!h) return refused("hugetlb-v1 refused", h.err());
  nlohmann::json hstates = nlohmann::json::array();
  for (u64 i = 0; i < h->nr_hstates(); ++i) {
    const hugetlb_hstate e = h->hstate(i);
    hstates.push_back({{"order", e.order}, {"page_bytes", u64{1} << (e.order + PageShift)}, {"nr_pages", e.nr_pages}});
  }
  return {{"ok", true}, {"address", hex(ser.value)}, {"nr_hstates", h->nr_hstates()}, {"hstates", hstates}};
}

/// A huge-memfd-v1 file: size, pos, order and its first `max_folios` folios.
template <unsigned PageShift, Memory M>
nlohmann::json huge_memfd_json(const M& mem, phys_addr ser, u64 max_folios) {
  auto h = attach_huge_memfd<PageShift>(mem, ser);
  if (!h) return refused("huge-memfd-v1 refused", h.err());
  nlohmann::json folios = nlohmann::json::array();
  h->for_each_folio([&](const huge_folio& f) {
    if (folios.size() < max_folios)
      folios.push_back({{"pfn", hex(f.frame.value)}, {"index", f.index}, {"page_index", f.index >> h->folio_order()}});
  });
  return {{"ok", true},          {"address", hex(ser.value)}, {"size", h->size()},
          {"pos", h->pos()},     {"order", h->folio_order()}, {"nr_folios", h->nr_folios()},
          {"folios", folios},    {"folios_truncated", h->nr_folios() > folios.size()}};
}

/// A guest_memfd_luo_v1 file: size, flags, vm_token and its first `max_folios` folios.
template <unsigned PageShift, Memory M>
nlohmann::json guest_memfd_json(const M& mem, phys_addr ser, u64 max_folios) {
  auto g = attach_guest_memfd<PageShift>(mem, ser);
  if (!g) return refused("guest_memfd_luo_v1 refused", g.err());
  nlohmann::json folios = nlohmann::json::array();
  g->for_each_folio([&](const guest_memfd_folio& f) {
    if (folios.size() < max_folios)
      folios.push_back({{"pfn", hex(f.frame.value)}, {"index", f.index}, {"flags", f.flags}});
  });
  return {{"ok", true},          {"address", hex(ser.value)}, {"size", g->size()},
          {"flags", g->flags()}, {"vm_token", g->vm_token()}, {"nr_folios", g->nr_folios()},
          {"folios", folios},    {"folios_truncated", g->nr_folios() > folios.size()}};
}

/// A kvm_vm_luo_v1 file in `dialect`; undecided says so and reads nothing.
template <unsigned PageShift, Memory M>
nlohmann::json kvm_vm_json(const M& mem, phys_addr ser, kvm_vm_dialect dialect, u64 max_entries) {
  if (dialect == kvm_vm_dialect::undecided)
    return {{"ok", true},
            {"address", hex(ser.value)},
            {"dialect", kvm_vm_dialect_name(dialect)},
            {"summary", "two layouts carry this string (A linux-mm, B soleen); not read without a dialect"}};
  auto v = attach_kvm_vm<PageShift>(mem, ser, dialect);
  if (!v) return refused("kvm_vm_luo_v1 refused", v.err());
  nlohmann::json j{{"ok", true}, {"address", hex(ser.value)}, {"dialect", kvm_vm_dialect_name(dialect)}, {"type", v->type()}};
  nlohmann::json list = nlohmann::json::array();
  if (dialect == kvm_vm_dialect::linux_mm) {
    v->for_each_mem_attr([&](const kvm_mem_attr& a) {
      if (list.size() < max_entries) list.push_back({{"gfn", hex(a.gfn)}, {"attributes", hex(a.attributes)}});
    });
    j["nr_mem_attrs"] = v->nr_mem_attrs();
    j["mem_attrs"] = std::move(list);
    return j;
  }
  for (u32 i = 0; i < v->cpuid_nent() && list.size() < max_entries; ++i) {
    const kvm_cpuid_entry2 e = v->cpuid_entry(i);
    list.push_back({{"function", hex(u64{e.function.get()})}, {"index", e.index.get()}, {"flags", e.flags.get()},
                    {"eax", hex(u64{e.eax.get()})}, {"ebx", hex(u64{e.ebx.get()})}, {"ecx", hex(u64{e.ecx.get()})},
                    {"edx", hex(u64{e.edx.get()})}});
  }
  j["arch_state"] = hex(v->arch_state().value);
  j["cpuid_nent"] = v->cpuid_nent();
  j["cpuid"] = std::move(list);
  return j;
}

/// A kvm_vcpu_luo_v1 file; arch_state is shown as an address only (opaque), the
/// caretaker block field by field (runtime_pa is an address, never followed).
template <unsigned PageShift, Memory M>
nlohmann::json kvm_vcpu_json(const M& mem, phys_addr ser) {
  auto v = attach_kvm_vcpu<PageShift>(mem, ser);
  if (!v) return refused("kvm_vcpu_luo_v1 refused", v.err());
  nlohmann::json j{{"ok", true},           {"address", hex(ser.value)},
                   {"vcpu_id", v->vcpu_id()}, {"flags", v->flags()},
                   {"vm_token", v->vm_token()}, {"arch_state", hex(v->arch_state().value)},
                   {"cb", hex(v->cb_address().value)}};
  if (v->cb_address()) {
    const caretaker_cb& c = v->cb();
    j["caretaker"] = {{"attachment_state", c.attachment_state.get()}, {"pcpu_id", c.pcpu_id.get()},
                      {"vcpu_id", c.vcpu_id.get()},                   {"vm_token", c.vm_token.get()},
                      {"vcpu_token", c.vcpu_token.get()},             {"runtime_pa", hex(c.runtime_pa.get())},
                      {"runtime_size", c.runtime_size.get()}};
  }
  return j;
}

template <unsigned PageShift, Memory M>
nlohmann::json tmpfs_mnt_json(const M& mem, phys_addr ser) {
  auto m = attach_tmpfs_mnt<PageShift>(mem, ser);
  if (!m) return refused("tmpfs-mnt-v1 refused", m.err());
  return {{"ok", true}, {"address", hex(ser.value)}, {"max_blocks", m->max_blocks()}, {"mode", m->mode()}};
}

template <unsigned PageShift, Memory M>
nlohmann::json tmpfs_file_json(const M& mem, phys_addr ser, u64 max_folios) {
  auto t = attach_tmpfs_file<PageShift>(mem, ser);
  if (!t) return refused("tmpfs-file-v1 refused", t.err());
  nlohmann::json folios = nlohmann::json::array();
  t->for_each_folio([&](const memfd_folio& f) {
    if (folios.size() < max_folios)
      folios.push_back({{"pfn", hex(f.frame.value)}, {"index", f.index}, {"flags", f.flags}});
  });
  return {{"ok", true},          {"address", hex(ser.value)},        {"name", std::string(t->name())},
          {"mnt_token", t->mnt_token()}, {"pos", t->pos()},          {"size", t->size()},
          {"mode", t->mode()},   {"nr_folios", t->nr_folios()},      {"folios", folios},
          {"folios_truncated", t->nr_folios() > folios.size()}};
}

/// The JSON of a file of LINUX-FORMATS-NEXT.md sections 2 to 4, keyed by its handler,
/// or null if `f` names none of them.
template <unsigned PageShift, Memory M>
nlohmann::json vm_memory_file_json(const M& mem, const luo_file_ser& f, u64 max_folios, kvm_vm_dialect dialect) {
  const phys_addr data{f.data.get()};
  if (names_handler(f, huge_memfd_compatible)) return huge_memfd_json<PageShift>(mem, data, max_folios);
  if (names_handler(f, guest_memfd_compatible)) return guest_memfd_json<PageShift>(mem, data, max_folios);
  if (names_handler(f, kvm_vm_compatible)) return kvm_vm_json<PageShift>(mem, data, dialect, max_folios);
  if (names_handler(f, kvm_vcpu_compatible)) return kvm_vcpu_json<PageShift>(mem, data);
  if (names_handler(f, tmpfs_mnt_compatible)) return tmpfs_mnt_json<PageShift>(mem, data);
  if (names_handler(f, tmpfs_file_compatible)) return tmpfs_file_json<PageShift>(mem, data, max_folios);
  return nullptr;
}

/// One LUO file, and the state its data names when a reader knows its compatible.
/// `dialect`: the layout of a kvm_vm_luo_v1 file (kho/linux/kvm.hpp).
template <unsigned PageShift, Memory M>
nlohmann::json luo_file_json(const M& mem, const luo_file_ser& f, u64 max_folios, bool& ok,
                             kvm_vm_dialect dialect = kvm_vm_dialect::undecided) {
  nlohmann::json j{{"compatible", field_string(f.compatible, luo_v5_file_compatible_len)},
                   {"token", f.token.get()},
                   {"data", hex(f.data.get())}};
  const auto version = memfd_version_of(f);
  if (version) j["format"] = wire_name_of("memfd", static_cast<u8>(*version));
  if (version && f.data.get() != 0) {
    j["memfd"] = memfd_json<PageShift>(mem, phys_addr{f.data.get()}, *version, max_folios);
    ok = ok && j["memfd"]["ok"].get<bool>();
  }
  // -- file handlers: hugetlb, guest_memfd, KVM, tmpfs --
  if (dialect == kvm_vm_dialect::soleen && names_handler(f, kvm_vm_compatible))
    j["format"] = wire_name_of("kvm-vm", 2);  // what qualify negotiates: the string alone means A
  if (f.data.get() != 0) {
    if (nlohmann::json state = vm_memory_file_json<PageShift>(mem, f, max_folios, dialect); !state.is_null()) {
      ok = ok && state["ok"].get<bool>();
      j["state"] = std::move(state);
    }
  }

  // -- file handlers: devices (iommufd, vfio-pci) --
  if (f.data.get() != 0 && names_handler(f, iommufd_v1_compatible)) {
    j["format"] = iommufd_v1_compatible;
    j["iommufd"] = iommufd_json<PageShift>(mem, phys_addr{f.data.get()}, max_folios);
    ok = ok && j["iommufd"]["ok"].get<bool>();
  }
  if (f.data.get() != 0 && names_handler(f, vfio_pci_v1_compatible)) {
    j["format"] = vfio_pci_v1_compatible;
    j["vfio_pci"] = vfio_pci_json<PageShift>(mem, phys_addr{f.data.get()});
    ok = ok && j["vfio_pci"]["ok"].get<bool>();
  }

  return j;
}

/// One FLB entry, and the state its data names when a reader knows its name.
template <unsigned PageShift, Memory M>
nlohmann::json luo_flb_json(const M& mem, const luo_flb_ser& b, u64 max_folios, bool& ok) {
  (void)mem, (void)max_folios, (void)ok;
  nlohmann::json j{{"name", field_string(b.name, luo_v5_flb_name_len)},
                   {"count", b.count.get()},
                   {"data", hex(b.data.get())}};
  // -- FLB handlers: hugetlb --
  if (detail::string_equals(b.name, luo_v5_flb_name_len, hugetlb_flb_name) && b.data.get() != 0) {
    j["state"] = hugetlb_flb_json<PageShift>(mem, phys_addr{b.data.get()});
    ok = ok && j["state"]["ok"].get<bool>();
  }

  // -- FLB handlers: devices (PCI, IOMMU) --
  if (b.data.get() != 0) {
    if (const pci_variant v = pci_variant_of_name(b.name, luo_v5_flb_name_len); v != pci_variant{0}) {
      j["format"] = wire_name_of("pci", static_cast<u8>(v));
      j["pci"] = pci_flb_json<PageShift>(mem, phys_addr{b.data.get()}, v, max_folios);
      ok = ok && j["pci"]["ok"].get<bool>();
    }
    if (const iommu_variant v = iommu_variant_of_name(b.name, luo_v5_flb_name_len); v != iommu_variant{0}) {
      j["format"] = wire_name_of("iommu", static_cast<u8>(v));
      j["iommu"] = iommu_flb_json<PageShift>(mem, phys_addr{b.data.get()}, v, max_folios);
      ok = ok && j["iommu"]["ok"].get<bool>();
    }
  }

  return j;
}

}  // namespace kho::model::linux_inspect
