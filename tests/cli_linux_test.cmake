cmake_minimum_required(VERSION 3.25)
# kho verify / dump on Linux's handover (kho-v4 root FDT) as the kexec model writes it:
# found through setup_data and kho_data at the image's base, through --fdt, through an
# FDT file beside the memory (as saved from debugfs); a stock handover (no kho seal);
# and refusals by name when kho_data, scratch or the root FDT is wrong.
include(${CMAKE_CURRENT_LIST_DIR}/cli_helpers.cmake)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(image ${WORK}/linux.img)
set(base 4294967296)  # the model's default base, 4 GiB

expect_rc(0 ${MODEL} --json --inspect-only --kho-formats --size 67108864 --memory-file ${image})
string(JSON fdt GET "${last_out}" kho_data fdt)
string(JSON array GET "${last_out}" kho_data scratch)
math(EXPR fdt_page "(${fdt} - ${base}) / 4096")
math(EXPR array_offset "${array} - ${base}")

# kho reads all five subtrees; a stock kernel asks for none of kho's two (exit 5): their
# pages would stay reserved.
expect_rc(5 ${KHO} verify --memory ${image} --base ${base})
if(NOT last_out MATCHES "^ok: kho-v4 handover, 5 subtrees verified \\(sealed by kho\\)"
   OR NOT last_out MATCHES "loses data: kho-fdt at [^\n]*subtree \"kho-memfd-demo\" \\(kho-xarray-v1\\)")
  message(FATAL_ERROR "verify: ${last_out}")
endif()
expect_rc(5 ${KHO} dump --memory ${image} --base ${base} --json)
string(JSON status GET "${last_out}" status)
string(JSON first GET "${last_out}" subtrees 0 name)
if(NOT status STREQUAL "ok" OR NOT first STREQUAL "kho-memfd-demo")
  message(FATAL_ERROR "dump --json: ${last_out}")
endif()
expect_rc(5 ${KHO} dump --memory ${image} --base ${base} --holes)
foreach(line "kho_data at 0x100000000: FDT ${fdt}" "subtree LUO +luo-v5" "file memfd-v2 token 7"
             "region trace" "written by 6.20.0-kho-model" "holes: largest hole")
  if(NOT last_out MATCHES "${line}")
    message(FATAL_ERROR "dump lacks '${line}':\n${last_out}")
  endif()
endforeach()
expect_rc(5 ${KHO} verify --memory ${image} --base ${base} --fdt ${fdt})

# The FDT saved on its own, as debugfs shows it: read beside the memory.
execute_process(COMMAND dd if=${image} of=${WORK}/fdt.bin bs=4096 skip=${fdt_page} count=1 status=none)
expect_rc(5 ${KHO} verify --memory ${image} --base ${base} --fdt-file ${WORK}/fdt.bin)
expect_rc(5 ${KHO} dump --memory ${image} --base ${base} --fdt-file ${WORK}/fdt.bin --json)
string(JSON address GET "${last_out}" root address)
if(NOT address STREQUAL "null" AND NOT address STREQUAL "")
  message(FATAL_ERROR "an FDT file owns no page of memory: ${address}")
endif()
execute_process(COMMAND dd if=/dev/zero of=${WORK}/big.bin bs=4097 count=1 status=none)
expect_rc(1 ${KHO} verify --memory ${image} --base ${base} --fdt-file ${WORK}/big.bin)

# A stock kernel's handover: no kho seal, validated structurally.
expect_rc(0 ${MODEL} --json --inspect-only --stock --size 67108864 --memory-file ${WORK}/stock.img)
expect_rc(0 ${KHO} verify --memory ${WORK}/stock.img --base ${base})
if(NOT last_out MATCHES "no kho seal" OR NOT last_out MATCHES "stock kernel, linux [^\n]*: accepts")
  message(FATAL_ERROR "stock verify: ${last_out}")
endif()

# Two verdicts, kho's and a stock kernel's, and the exit status that tells them apart
# (README: 0 both keep it, 2 refused, 4 only kho refuses, 5 the kernel fails).
expect_rc(0 ${KHO} dump --memory ${WORK}/stock.img --base ${base} --json)
string(JSON stock_fdt GET "${last_out}" kho_data fdt)
string(JSON subtree_count LENGTH "${last_out}" subtrees)
math(EXPR last_subtree "${subtree_count} - 1")
foreach(i RANGE ${last_subtree})
  string(JSON name GET "${last_out}" subtrees ${i} name)
  if(name STREQUAL "kexec-metadata")
    string(JSON metadata GET "${last_out}" subtrees ${i} phys)
  endif()
endforeach()
function(stock_copy)
  file(COPY_FILE ${WORK}/stock.img ${WORK}/verdict.img)
endfunction()
function(expect_verdicts rc kho kernel)
  expect_rc(${rc} ${KHO} verify --memory ${WORK}/verdict.img --base ${base} --json)
  string(JSON got_kho GET "${last_out}" status)
  string(JSON got_kernel GET "${last_out}" kernel verdict)
  if(NOT got_kho STREQUAL kho OR NOT got_kernel STREQUAL kernel)
    message(FATAL_ERROR "expected kho '${kho}' and kernel '${kernel}':\n${last_out}")
  endif()
  set(last_out "${last_out}" PARENT_SCOPE)
endfunction()
# kexec-metadata version 2: kho refuses the handover, the kernel boots on without it.
stock_copy()
math(EXPR metadata_offset "${metadata} - ${base}")
patch_bytes(${WORK}/verdict.img ${metadata_offset} 2 4)
expect_verdicts(4 "unsupported version" "ignores")
# Root "kho-v3" (the same properties): kho reads it, a kho-v4 kernel boots cold.
stock_copy()
math(EXPR stock_fdt_offset "${stock_fdt} - ${base}")
file(READ ${WORK}/verdict.img fdt_hex OFFSET ${stock_fdt_offset} LIMIT 4096 HEX)
string(FIND "${fdt_hex}" "6b686f2d763400" compatible_at)  # "kho-v4\0"
if(compatible_at LESS 0)
  message(FATAL_ERROR "no kho-v4 string in the stock root FDT")
endif()
math(EXPR version_digit "${stock_fdt_offset} + ${compatible_at} / 2 + 5")
patch_bytes(${WORK}/verdict.img ${version_digit} 51 1)  # '3'
expect_verdicts(5 "ok" "refuses")
if(NOT last_out MATCHES "kho_populate wants")
  message(FATAL_ERROR "kho-v3 root: ${last_out}")
endif()
# setup_data's next pointing at itself: both refuse, the kernel by never finishing.
stock_copy()
patch_bytes(${WORK}/verdict.img 0 0 4)
patch_bytes(${WORK}/verdict.img 4 1 4)  # next = 0x100000000, the node itself
expect_verdicts(2 "cycle" "hangs")
expect_rc(2 ${KHO} verify --memory ${WORK}/verdict.img --base ${base})
if(NOT last_out MATCHES "^cycle in setup_data at 0x100000000" OR NOT last_out MATCHES "hangs: setup_data")
  message(FATAL_ERROR "setup_data cycle: ${last_out}")
endif()

# Refusals, each by name. The image is rewritten between them.
function(fresh)
  file(COPY_FILE ${image} ${WORK}/bad.img)
endfunction()
fresh()
patch_bytes(${WORK}/bad.img 40 24 4)  # kho_data.scratch_size (16 + 24): not a multiple of 16
expect_rc(2 ${KHO} verify --memory ${WORK}/bad.img --base ${base})
if(NOT last_out MATCHES "^bad count in kho_data at 0x100000000")
  message(FATAL_ERROR "scratch_size: ${last_out}")
endif()
fresh()
patch_bytes(${WORK}/bad.img 12 16 4)  # setup_data len 16, not 32
expect_rc(2 ${KHO} verify --memory ${WORK}/bad.img --base ${base})
if(NOT last_out MATCHES "^bad count in setup_data at 0x100000000")
  message(FATAL_ERROR "setup_data len: ${last_out}")
endif()
fresh()
math(EXPR entry1_addr "${array_offset} + 16")
patch_bytes(${WORK}/bad.img ${entry1_addr} 4096 4)  # scratch range 1 moved onto preserved memory
expect_rc(2 ${KHO} verify --memory ${WORK}/bad.img --base ${base})
if(NOT last_out MATCHES "^page has two owners in kho_scratch")
  message(FATAL_ERROR "scratch over preserved memory: ${last_out}")
endif()
fresh()
math(EXPR fdt_byte "${fdt} - ${base} + 100")
patch_bytes(${WORK}/bad.img ${fdt_byte} 255 1)  # a byte of the sealed FDT
expect_rc(2 ${KHO} verify --memory ${WORK}/bad.img --base ${base})
if(NOT last_out MATCHES "in kho-fdt at ${fdt}")
  message(FATAL_ERROR "changed FDT byte: ${last_out}")
endif()
