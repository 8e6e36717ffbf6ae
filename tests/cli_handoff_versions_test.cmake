cmake_minimum_required(VERSION 3.25)
# LINUX-FORMATS-NEXT.md sections 7 and 8.1 through the CLI: the kexec model's Linux
# handover found through a boot DTB's /chosen (`--dtb`) instead of setup_data, the DTB
# written here byte by byte from the spec (big-endian cells of the root's counts), and
# refused with the obsolete RFC names; then a next image carrying a .liveupdate_versions
# section (added with objcopy to a copy of the model's executable), printed by `kho
# manifest` and compared by `kho qualify` with the LUO versions the handover uses.
include(${CMAKE_CURRENT_LIST_DIR}/cli_helpers.cmake)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(image ${WORK}/linux.img)
set(base 4294967296)

expect_rc(0 ${MODEL} --json --inspect-only --kho-formats --size 67108864 --memory-file ${image})
string(JSON fdt GET "${last_out}" kho_data fdt)
string(JSON array GET "${last_out}" kho_data scratch)
string(JSON entries GET "${last_out}" kho_data scratch_entries)

# Octal printf escapes of a big-endian u32.
function(be32 out value)
  set(bytes "")
  foreach(shift 24 16 8 0)
    math(EXPR b "(${value} >> ${shift}) & 255")
    math(EXPR o1 "${b} / 64")
    math(EXPR o2 "(${b} / 8) % 8")
    math(EXPR o3 "${b} % 8")
    string(APPEND bytes "\\${o1}${o2}${o3}")
  endforeach()
  set(${out} "${bytes}" PARENT_SCOPE)
endfunction()
function(be64 out value)
  math(EXPR hi "(${value} >> 32) & 4294967295")
  math(EXPR lo "${value} & 4294967295")
  be32(a ${hi})
  be32(b ${lo})
  set(${out} "${a}${b}" PARENT_SCOPE)
endfunction()

# A DTB: header (40 bytes), an empty reservation map (16), the structure block (120),
# the strings "#address-cells\0#size-cells\0<fdt name>\0<scratch name>\0". The root has
# #address-cells = #size-cells = 2, so each property is 16 bytes: address then size.
# Both property names are 13 and 17 characters long, obsolete or not ("linux,kho-dt" +
# "linux,kho-mem" are 12 and 13: their strings block is padded to the same length).
function(write_dtb file fdt_name scratch_name fdt_addr fdt_size scratch_addr scratch_size)
  set(strings_len 59)
  set(h "")
  # magic 0xd00dfeed, totalsize, off_dt_struct, off_dt_strings, off_mem_rsvmap, version,
  # last_comp_version, boot_cpuid_phys, size_dt_strings, size_dt_struct
  foreach(v 3490578157 235 56 176 40 17 16 0 ${strings_len} 120)
    be32(w ${v})
    string(APPEND h "${w}")
  endforeach()
  string(REPEAT "\\000" 16 rsv)
  be32(begin 1)
  be32(prop 3)
  be32(end_node 2)
  be32(end 9)
  be32(zero 0)
  be32(four 4)
  be32(sixteen 16)
  be32(two 2)
  be32(off_ac 0)
  be32(off_sc 15)
  be32(off_fdt 27)
  be32(off_scratch 41)
  be64(fa ${fdt_addr})
  be64(fs ${fdt_size})
  be64(sa ${scratch_addr})
  be64(ss ${scratch_size})
  set(s "${begin}${zero}")
  string(APPEND s "${prop}${four}${off_ac}${two}${prop}${four}${off_sc}${two}")
  string(APPEND s "${begin}chosen\\000\\000")
  string(APPEND s "${prop}${sixteen}${off_fdt}${fa}${fs}${prop}${sixteen}${off_scratch}${sa}${ss}")
  string(APPEND s "${end_node}${end_node}${end}")
  set(str "#address-cells\\000#size-cells\\000${fdt_name}\\000${scratch_name}\\000")
  execute_process(COMMAND sh -c "printf '${h}${rsv}${s}${str}' > ${file}" RESULT_VARIABLE rc)
  file(SIZE ${file} size)
  if(NOT rc EQUAL 0 OR NOT size EQUAL 235)
    message(FATAL_ERROR "writing ${file}: rc ${rc}, ${size} bytes")
  endif()
endfunction()

math(EXPR scratch_bytes "${entries} * 16")
write_dtb(${WORK}/boot.dtb "linux,kho-fdt" "linux,kho-scratch" ${fdt} 4096 ${array} ${scratch_bytes})
# The same verdicts as through setup_data (cli_linux_test.cmake): kho reads all, a stock
# kernel asks for none of kho's own subtrees (exit 5).
expect_rc(5 ${KHO} verify --memory ${image} --base ${base} --dtb ${WORK}/boot.dtb)
if(NOT last_out MATCHES "^ok: kho-v4 handover, 5 subtrees verified")
  message(FATAL_ERROR "verify --dtb: ${last_out}")
endif()
expect_rc(5 ${KHO} dump --memory ${image} --base ${base} --dtb ${WORK}/boot.dtb)
if(NOT last_out MATCHES "the DTB's /chosen: FDT ${fdt} \\(4096 bytes\\), ${entries} KHO boot memory \\(scratch\\) ranges at ${array}"
   OR NOT last_out MATCHES "subtree LUO +luo-v5")
  message(FATAL_ERROR "dump --dtb: ${last_out}")
endif()
expect_rc(5 ${KHO} dump --memory ${image} --base ${base} --dtb ${WORK}/boot.dtb --json)
string(JSON route GET "${last_out}" kho_data route)
if(NOT route STREQUAL "dtb /chosen")
  message(FATAL_ERROR "dump --dtb --json route: ${route}")
endif()

# The obsolete RFC names (12 and 13 characters: padded with NULs to keep the layout).
write_dtb(${WORK}/old.dtb "linux,kho-dt\\000" "linux,kho-mem\\000\\000\\000\\000" ${fdt} 4096 ${array}
          ${scratch_bytes})
expect_rc(nonzero ${KHO} verify --memory ${image} --base ${base} --dtb ${WORK}/old.dtb)
if(NOT last_out MATCHES "obsolete RFC names linux,kho-dt / linux,kho-mem")
  message(FATAL_ERROR "obsolete names: ${last_out}")
endif()
# A scratch size that is not whole entries: kho_data's check, named.
write_dtb(${WORK}/odd.dtb "linux,kho-fdt" "linux,kho-scratch" ${fdt} 4096 ${array} 24)
expect_rc(nonzero ${KHO} verify --memory ${image} --base ${base} --dtb ${WORK}/odd.dtb)
if(NOT last_out MATCHES "bad count in kho_data")
  message(FATAL_ERROR "odd scratch size: ${last_out}")
endif()

# .liveupdate_versions: magic "PUVL" (LE 0x4c565550), version 1, 48-byte entries.
function(write_versions file)
  set(b "\\120\\125\\126\\114\\001\\000\\000\\000")
  foreach(name IN LISTS ARGN)
    string(LENGTH "${name}" n)
    math(EXPR pad "48 - ${n}")
    string(REPEAT "\\000" ${pad} zeros)
    string(APPEND b "${name}${zeros}")
  endforeach()
  execute_process(COMMAND sh -c "printf '${b}' > ${file}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "writing ${file}")
  endif()
endfunction()
find_program(OBJCOPY NAMES objcopy REQUIRED)
function(next_image out section)
  execute_process(COMMAND ${OBJCOPY} --add-section .liveupdate_versions=${section} ${MODEL} ${out}
                  RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "objcopy: ${err}")
  endif()
endfunction()

# Every file handler the model's handover uses (its VM host's too), memfd-v2 twice.
write_versions(${WORK}/all.bin "memfd-v2" "luo-v5" "memfd-v2" "huge-memfd-v1" "kvm_vm_luo_v1" "guest_memfd_luo_v1"
               "iommufd-v1" "vfio-pci-v1")
next_image(${WORK}/next-all ${WORK}/all.bin)
expect_rc(0 ${KHO} manifest ${WORK}/next-all)
if(NOT last_out MATCHES ".liveupdate_versions \\(8 entries, 1 duplicates; FLB names are not listed there\\)"
   OR NOT last_out MATCHES "\n  luo-v5\n")
  message(FATAL_ERROR "manifest: ${last_out}")
endif()
expect_rc(0 ${KHO} qualify --memory ${image} --base ${base} --next-image ${WORK}/next-all)
if(NOT last_out MATCHES "listed   LUO subtree LUO: luo-v5"
   OR NOT last_out MATCHES "the next kernel lists every LUO version the handover uses")
  message(FATAL_ERROR "qualify, all listed: ${last_out}")
endif()

write_versions(${WORK}/luo.bin "luo-v5")
next_image(${WORK}/next-luo ${WORK}/luo.bin)
expect_rc(2 ${KHO} qualify --memory ${image} --base ${base} --next-image ${WORK}/next-luo --json)
string(JSON missing GET "${last_out}" liveupdate_versions missing 0 compatible)
if(NOT missing STREQUAL "memfd-v2")
  message(FATAL_ERROR "qualify, memfd-v2 missing: ${last_out}")
endif()
# Without .kho_manifest (a stock vmlinux): only the LUO versions are compared.
execute_process(COMMAND ${OBJCOPY} --remove-section .kho_manifest ${WORK}/next-luo ${WORK}/stock RESULT_VARIABLE rc)
expect_rc(2 ${KHO} qualify --memory ${image} --base ${base} --next-image ${WORK}/stock)
if(NOT last_out MATCHES "MISSING  LUO session [^\n]*: memfd-v2 is not listed")
  message(FATAL_ERROR "qualify, stock next image: ${last_out}")
endif()
expect_rc(1 ${KHO} qualify --next-image ${WORK}/stock --writer-image ${MODEL})
# A malformed section: version 2.
execute_process(COMMAND sh -c "printf '\\120\\125\\126\\114\\002' > ${WORK}/bad.bin && tail -c +6 ${WORK}/luo.bin >> ${WORK}/bad.bin")
next_image(${WORK}/next-bad ${WORK}/bad.bin)
expect_rc(1 ${KHO} manifest ${WORK}/next-bad)
if(NOT last_out MATCHES "unsupported version at byte 4")
  message(FATAL_ERROR "bad section: ${last_out}")
endif()
done_with("")
message(STATUS "cli: /chosen hand-off and .liveupdate_versions checked")
