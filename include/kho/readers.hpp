// kho/readers.hpp: what kho's readers read and its writers write, family by family:
// the manifest (manifest.hpp) of an image that carries all of them.
//
// An image that includes kho's readers declares them with
//   KHO_MANIFEST_SECTION constinit const auto m = kho::make_manifest("my-6.20", kho::reader_lines);
// or with a subset of these lines if it carries fewer (the userspace model's images
// declare what their own reading code uses: model/model_images.hpp). Each line is tied
// to its format's constants by the static_asserts below, and
// tests/compat_matrix_test.cpp writes and reads every version a line declares.
#pragma once

#include <kho/handover.hpp>
#include <kho/linux/guest_memfd.hpp>
#include <kho/linux/hugetlb.hpp>
#include <kho/linux/kho_root_version.hpp>
#include <kho/linux/kvm.hpp>
#include <kho/linux/luo_feature.hpp>
#include <kho/linux/luo_v5.hpp>
#include <kho/linux/memfd.hpp>
#include <kho/linux/iommu.hpp>
#include <kho/linux/iommufd.hpp>
#include <kho/linux/kexec_metadata.hpp>
#include <kho/linux/pci.hpp>
#include <kho/linux/tmpfs.hpp>
#include <kho/linux/vfio_pci.hpp>
#include <kho/luo.hpp>
#include <kho/manifest.hpp>
#include <kho/xarray.hpp>

namespace kho {

// The kho root's versions: kho_root_version's four and the granular string (5).
inline constexpr u64 kho_root_versions = version_set({1, 2, 3, 4, 5});
inline constexpr u64 luo_versions = version_set(
    {static_cast<u8>(upstream::luo_version::v1), static_cast<u8>(upstream::luo_version::v5),
     static_cast<u8>(upstream::luo_version::v5_block_v1), static_cast<u8>(upstream::luo_version::feature),
     // luo_layouts.hpp: every layout between luo-v1 and luo-v5
     static_cast<u8>(upstream::luo_version::v1_flb), static_cast<u8>(upstream::luo_version::v2),
     static_cast<u8>(upstream::luo_version::v3_fdt), static_cast<u8>(upstream::luo_version::v4_fdt),
     static_cast<u8>(upstream::luo_version::v3), static_cast<u8>(upstream::luo_version::v3_kho_block_v1),
     static_cast<u8>(upstream::luo_version::v4), static_cast<u8>(upstream::luo_version::v4_kho_block_v1)});
inline constexpr u64 memfd_versions = version_set({static_cast<u8>(upstream::memfd_version::v1),
                                                           static_cast<u8>(upstream::memfd_version::v2),
                                                           static_cast<u8>(upstream::memfd_version::feature)});

inline constexpr u64 pci_variants = version_set({static_cast<u8>(upstream::pci_variant::v1),
                                                 static_cast<u8>(upstream::pci_variant::v2),
                                                 static_cast<u8>(upstream::pci_variant::versioned)});
inline constexpr u64 iommu_variants =
    version_set({static_cast<u8>(upstream::iommu_variant::v1), static_cast<u8>(upstream::iommu_variant::versioned)});

inline constexpr manifest_line reader_lines[] = {
    {"kho", kho_root_versions, kho_root_versions},
    {"luo", luo_versions, luo_versions, upstream::luo_features_supported},
    {"memfd", memfd_versions, memfd_versions, upstream::memfd_features_supported},
    {"kexec-metadata", version_bit(static_cast<u8>(upstream::kexec_metadata_version)),
     version_bit(static_cast<u8>(upstream::kexec_metadata_version))},
    {"memblock", version_bit(1), version_bit(1)},
    {"kho-root", version_bit(static_cast<u8>(handover_version_major)), version_bit(static_cast<u8>(handover_version_major))},
    {"kho-radix", version_bit(1), version_bit(1)},
    {"kho-xarray", version_bit(static_cast<u8>(xarray_version_major)), version_bit(static_cast<u8>(xarray_version_major))},
    {"kho-luo", version_bit(static_cast<u8>(luo_version_major)), version_bit(static_cast<u8>(luo_version_major))},
    // -- LINUX-FORMATS-NEXT.md: hugetlb, guest_memfd, KVM, tmpfs --
    {"hugetlb", version_bit(1), version_bit(1)},
    {"huge-memfd", version_bit(1), version_bit(1)},
    {"guest_memfd", version_bit(1), version_bit(1)},
    {"kvm-vm", version_set({1, 2}), version_set({1, 2})},  // layout A and B, told by the caller
    {"kvm-vcpu", version_bit(1), version_bit(1)},
    {"tmpfs-mnt", version_bit(1), version_bit(1)},
    {"tmpfs-file", version_bit(1), version_bit(1)},

    // -- LINUX-FORMATS-NEXT.md: devices (PCI, IOMMU, iommufd, vfio-pci) --
    {"pci", pci_variants, pci_variants},
    {"iommu", iommu_variants, iommu_variants},
    {"iommufd", version_bit(1), version_bit(1)},
    {"vfio-pci", version_bit(1), version_bit(1)},

    // -- LINUX-FORMATS-NEXT.md: MSHV --
    {"mshv", version_bit(1), version_bit(1)},

};

// The names manifest.hpp gives these numbers are the formats' own.
static_assert(detail::same_string(wire_name_of("kho", static_cast<u8>(upstream::kho_root_version::v4)),
                                  upstream::kho_root_compatible(upstream::kho_root_version::v4)));
static_assert(detail::same_string(wire_name_of("luo", static_cast<u8>(upstream::luo_version::v5_block_v1)),
                                  upstream::luo_version_name(upstream::luo_version::v5_block_v1)));
static_assert(detail::same_string(wire_name_of("memfd", static_cast<u8>(upstream::memfd_version::v2)),
                                  upstream::memfd_v2_compatible));
static_assert(detail::same_string(wire_name_of("hugetlb", 1), upstream::hugetlb_flb_name));
static_assert(detail::same_string(wire_name_of("huge-memfd", 1), upstream::huge_memfd_compatible));
static_assert(detail::same_string(wire_name_of("guest_memfd", 1), upstream::guest_memfd_compatible));
static_assert(detail::same_string(wire_name_of("kvm-vm", 1), upstream::kvm_vm_compatible));
static_assert(detail::same_string(wire_name_of("kvm-vcpu", 1), upstream::kvm_vcpu_compatible));
static_assert(detail::same_string(wire_name_of("tmpfs-mnt", 1), upstream::tmpfs_mnt_compatible));
static_assert(detail::same_string(wire_name_of("tmpfs-file", 1), upstream::tmpfs_file_compatible));

static_assert(detail::same_string(wire_name_of("pci", static_cast<u8>(upstream::pci_variant::versioned)),
                                  upstream::pci_flb_name(upstream::pci_variant::versioned)));
static_assert(detail::same_string(wire_name_of("pci", static_cast<u8>(upstream::pci_variant::v2)),
                                  upstream::pci_flb_name(upstream::pci_variant::v2)));
static_assert(detail::same_string(wire_name_of("iommu", static_cast<u8>(upstream::iommu_variant::v1)),
                                  upstream::iommu_flb_name(upstream::iommu_variant::v1)));
static_assert(detail::same_string(wire_name_of("iommu", static_cast<u8>(upstream::iommu_variant::versioned)),
                                  upstream::iommu_flb_name(upstream::iommu_variant::versioned)));
static_assert(detail::same_string(wire_name_of("iommufd", 1), upstream::iommufd_v1_compatible));
static_assert(detail::same_string(wire_name_of("vfio-pci", 1), upstream::vfio_pci_v1_compatible));

}  // namespace kho
