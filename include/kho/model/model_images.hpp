// kho/model/model_images.hpp: the model's two next-image flavours, what each reads and
// writes, and how an image of the chain picks the versions of its hop (hosted only).
//
// kexec_model is built twice from one source (examples/CMakeLists.txt):
//   kexec_model         "current": reads every version kho reads, writes the newest;
//   kexec_model_legacy  "legacy": a kernel of an older release, which reads and writes
//                       kho-v3 roots, luo-v5 and memfd-v1 only, and none of kho's own
//                       formats.
// Each carries its manifest in its ELF section ".kho_manifest" (KHO_MANIFEST_SECTION),
// and each holds itself to it: it writes only versions its manifest writes, and as a
// next image it refuses a handover holding a version its manifest does not read (the
// reader gate), as an older kernel would.
//
// Before it writes a hop, an image negotiates (negotiate.hpp) its own manifest against
// the next image's, over the structures the hop will hold (hop_structures): per family
// the highest version both know that carries the content, or a refusal of the whole
// update before anything is written.
#pragma once

#include <kho/manifest.hpp>
#include <kho/model/demo_chain.hpp>
#include <kho/model/qualify.hpp>
#include <kho/negotiate.hpp>

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace kho::model {

/// The current model image. Its chain reader reads LUO through luo-v5's view and
/// memfds through memfd-v1/-v2's, and its next image the VM host's state
/// (demo_vm_host.hpp: hugetlb-v1, huge-memfd-v1, kvm_vm_luo_v1 layout A,
/// guest_memfd_luo_v1, iommu-liveupdate-v1, pci-v2, iommufd-v1, vfio-pci-v1), so those
/// are what it declares, though the library under it reads more (kho/readers.hpp).
inline constexpr manifest_line current_image_lines[] = {
    {"kho", version_set({3, 4}), version_set({3, 4})},
    {"luo", version_set({5}), version_set({5})},
    {"memfd", version_set({1, 2}), version_set({1, 2})},
    {"kexec-metadata", version_set({1}), version_set({1})},
    {"memblock", version_set({1}), version_set({1})},
    {"kho-root", version_set({1}), version_set({1})},
    {"kho-radix", version_set({1}), version_set({1})},
    {"kho-xarray", version_set({1}), version_set({1})},
    {"kho-luo", version_set({1}), version_set({1})},
    // The VM host's state (demo_vm_host.hpp), read through each format's own view.
    {"hugetlb", version_set({1}), version_set({1})},
    {"huge-memfd", version_set({1}), version_set({1})},
    {"guest_memfd", version_set({1}), version_set({1})},
    {"kvm-vm", version_set({1}), version_set({1})},
    {"iommu", version_set({1}), version_set({1})},
    {"pci", version_set({2}), version_set({2})},
    {"iommufd", version_set({1}), version_set({1})},
    {"vfio-pci", version_set({1}), version_set({1})},
};

/// An older release: kho-v3, luo-v5, memfd-v1; no kho formats.
inline constexpr manifest_line legacy_image_lines[] = {
    {"kho", version_set({3}), version_set({3})},
    {"luo", version_set({5}), version_set({5})},
    {"memfd", version_set({1}), version_set({1})},
    {"kexec-metadata", version_set({1}), version_set({1})},
    {"memblock", version_set({1}), version_set({1})},
};

/// The structures hop `in.image` will hold, with the versions that carry each: the
/// root (raw blobs need kho-v3 or later: kho-v1 names FDTs only, kho-v2 has no
/// blob-size), LUO, every planned memfd (one with seals excludes memfd-v1),
/// kexec-metadata, memblock, and kho's own formats when asked.
inline std::vector<handover_structure> hop_structures(const hop_input& in, const chain_carry& carry) {
  std::vector<handover_structure> out;
  out.push_back({"kho", "KHO root", 0, ~(version_bit(1) | version_bit(2) | 1), 0,
                 "blob-size of a subtree that is not an FDT (LUO, kexec-metadata)"});
  out.push_back({"luo", "subtree LUO", 0, ~u64{1}, 0, ""});
  for (const chain_session_plan& s : plan_after(in.image))
    for (const chain_file_plan& f : s.files) {
      const u32 seals = chain_file_seals(carry, s.name, f.token, in.new_file_seals);
      out.push_back({"memfd", fmt::format("LUO session {}, file token {}", s.name, f.token), 0,
                     seals != 0 ? ~(version_bit(1) | 1) : ~u64{1}, 0, seals != 0 ? "seals" : ""});
    }
  out.push_back({"kexec-metadata", "subtree kexec-metadata", 0, ~u64{1}, 0, ""});
  out.push_back({"memblock", "subtree memblock", 0, ~u64{1}, 0, ""});
  if (in.formats.kho_formats) {
    out.push_back({"kho-xarray", "subtree kho-memfd-demo", 0, ~u64{1}, 0, ""});
    out.push_back({"kho-luo", "subtree kho-LUO", 0, ~u64{1}, 0, ""});
  }
  return out;
}

/// What negotiation decided for a hop: the versions to write, or the refusal.
struct hop_decision {
  hop_formats formats;
  qualify_result table;
};

/// Negotiates hop `in.image` between this image (`own`) and the next (`next`).
inline hop_decision negotiate_hop(const manifest_view& own, const manifest_view& next, const hop_input& in,
                                  const chain_carry& carry) {
  hop_decision d{in.formats, qualify(hop_structures(in, carry), &own, next)};
  if (!d.table.ok()) return d;
  auto family_version = [&](const char* family) {
    u8 v = 0;
    for (const qualify_row& r : d.table.rows)
      if (r.structure.family == family && (v == 0 || r.decision.version < v)) v = r.decision.version;
    return static_cast<int>(v);
  };
  d.formats.root = family_version("kho");
  d.formats.luo = family_version("luo");
  // Every file of a hop is written in one version: the lowest any file needs (all
  // files negotiate the same highest common version unless their content differs).
  if (const int m = family_version("memfd")) d.formats.memfd = m;
  return d;
}

/// The next image's gate: the handover (a dump report) holds only versions `own`
/// reads. Returns the table; ok() false names every structure it cannot read.
inline qualify_result reader_gate(const manifest_view& own, const nlohmann::json& report) {
  return qualify(structures_of_report(report), nullptr, own);
}

}  // namespace kho::model
