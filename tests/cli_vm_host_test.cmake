cmake_minimum_required(VERSION 3.25)
# A VM host's live update in the kexec model (issue 21, item 10): the old image
# preserves a hugetlb-backed file, a KVM VM and its guest_memfd, and the IOMMU and PCI
# FLBs with an iommufd and a vfio-pci file; the next image adopts and checks them; kho
# verify and kho dump read each through its own reader. Each part can be left out.
include(${CMAKE_CURRENT_LIST_DIR}/cli_helpers.cmake)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(base 4294967296)

# The whole update: every part comes back, or the status says so.
expect_rc(0 ${MODEL} --json)
string(JSON status GET "${last_out}" status)
if(NOT status STREQUAL "ok")
  done_with("the VM host's update: ${last_out}")
endif()
foreach(line "4 huge folios of order 9 adopted as 4 xarray entries covering 2048 pages; every page reads back"
             "32 pages adopted into a kho xarray; every page reads back"
             "1 of 1 devices lead to their domain and unit; device 00:03.0 is in the pci-v2 FLB"
             "4 preserved 2 MiB pages to keep out of the pool" "KVM VM of type 0 \\(layout A\\)")
  if(NOT last_out MATCHES "${line}")
    done_with("the next image did not report '${line}':\n${last_out}")
  endif()
endforeach()

# The image as the old kernel left it: kho reads and claims every part; a stock kernel
# (memfd-v2 only) lacks their handlers and loses every session (exit 5).
set(image ${WORK}/vm.img)
expect_rc(0 ${MODEL} --json --inspect-only --size 67108864 --memory-file ${image})
expect_rc(5 ${KHO} verify --memory ${image} --base ${base})
foreach(line "^ok: kho-v4 handover, 3 subtrees verified" "file handler \"huge-memfd-v1\" \\(token 10\\) is not one the kernel has")
  if(NOT last_out MATCHES "${line}")
    done_with("verify lacks '${line}':\n${last_out}")
  endif()
endforeach()
# Every preserved page is reached: the I/O page tables the IOMMU objects name too.
if(last_out MATCHES "no structure reaches")
  done_with("a preserved page of the VM host is reached by nothing:\n${last_out}")
endif()
expect_rc(5 ${KHO} dump --memory ${image} --base ${base})
foreach(line "file huge-memfd-v1 token 10" "nr_folios 4, order 9" "file guest_memfd_luo_v1 token 21" "vm_token 20"
             "FLB hugetlb-v1" "iommu-liveupdate-v1: 1 hw units, 1 domains, 1 devices" "pci-v2: 1 of 1 devices"
             "vfio-pci-v1: domain 0 bdf 0x18" "iommufd-v1: 1 HWPTs")
  if(NOT last_out MATCHES "${line}")
    done_with("dump lacks '${line}':\n${last_out}")
  endif()
endforeach()

# Without them: the same update, none of their files or FLBs.
set(image ${WORK}/plain.img)
expect_rc(0 ${MODEL} --json --inspect-only --no-hugetlb --no-guest-memfd --no-iommu --size 67108864
          --memory-file ${image})
expect_rc(0 ${KHO} verify --memory ${image} --base ${base})
expect_rc(0 ${KHO} dump --memory ${image} --base ${base})
foreach(name "huge-memfd" "guest_memfd" "kvm_vm" "iommu" "pci-v2" "vfio" "hugetlb")
  if(last_out MATCHES "${name}")
    done_with("--no-* left ${name} in the handover:\n${last_out}")
  endif()
endforeach()
done_with("")
