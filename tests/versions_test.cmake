cmake_minimum_required(VERSION 3.25)
# Live updates across versions, decided before kexec (issue 13): the model's two
# next-image flavours (kexec_model, kexec_model_legacy), negotiation, the legacy
# image's own gate, and `kho qualify` / `kho manifest` on the same executables.
include(${CMAKE_CURRENT_LIST_DIR}/cli_helpers.cmake)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

function(expect_json_eq json want)
  string(JSON got GET "${json}" ${ARGN})
  if(NOT got STREQUAL want)
    message(FATAL_ERROR "${ARGN}: ${got}, expected ${want}\n${json}")
  endif()
endfunction()

# 1. current -> legacy -> current -> current, unsealed memfds: each hop negotiated with
# the image after it. A and B write what the legacy image reads (kho-v3, memfd-v1),
# C is back to the newest (kho-v4, memfd-v2), D checks the final state.
expect_rc(0 ${MODEL} --json --unsealed --next-image ${LEGACY} --next-image ${MODEL} --next-image ${MODEL})
set(out "${last_out}")
expect_json_eq("${out}" ok status)
expect_json_eq("${out}" ON chain final ok)
foreach(hop_want "0;kho-v3;memfd-v1" "1;kho-v3;memfd-v1" "2;kho-v4;memfd-v2")
  list(GET hop_want 0 i)
  list(GET hop_want 1 root)
  list(GET hop_want 2 memfd)
  expect_json_eq("${out}" ${root} chain hops ${i} formats root)
  expect_json_eq("${out}" ${memfd} chain hops ${i} formats memfd)
  expect_json_eq("${out}" ON chain hops ${i} read_by digest_ok)
endforeach()
expect_json_eq("${out}" kho-model-B chain hops 1 release)

# 2. Sealed memfds cannot go to the legacy image (memfd-v1 has no seals): refused by A
# before anything is written, every file named.
expect_rc(2 ${MODEL} --json --next-image ${LEGACY})
set(out "${last_out}")
expect_json_eq("${out}" "refused before kexec" status)
string(JSON rows LENGTH "${out}" qualify structures)
math(EXPR last "${rows} - 1")
set(refused 0)
foreach(i RANGE 0 ${last})
  string(JSON ok GET "${out}" qualify structures ${i} ok)
  if(NOT ok)
    math(EXPR refused "${refused} + 1")
    expect_json_eq("${out}" memfd qualify structures ${i} family)
    expect_json_eq("${out}" seals qualify structures ${i} would_lose)
  endif()
endforeach()
if(NOT refused EQUAL 4)
  message(FATAL_ERROR "${refused} structures refused, expected the 4 memfds\n${out}")
endif()
string(JSON hops LENGTH "${out}" chain hops)
if(NOT hops EQUAL 0)
  message(FATAL_ERROR "a hop was written before the refusal\n${out}")
endif()

# 3. Without negotiation A writes its newest versions; the legacy image's gate refuses
# them after kexec, naming the root and every memfd: what negotiation exists to avoid.
expect_rc(1 ${MODEL} --json --next-image ${LEGACY} --no-negotiate)
expect_json_eq("${last_out}" "version not read" status)
expect_json_eq("${last_out}" kho error structures 0 family)
expect_json_eq("${last_out}" "no version both images know" error structures 0 refusal)

# 4. The legacy image alone writes only its versions, and a legacy -> legacy chain works.
expect_rc(0 ${LEGACY} --json --chain 3)
expect_json_eq("${last_out}" ok status)
expect_json_eq("${last_out}" kho-v3 chain hops 1 formats root)

# 5. kho manifest and kho qualify on the executables and on a handover.
expect_rc(0 ${KHO} manifest ${LEGACY} --json)
expect_json_eq("${last_out}" kho-model-legacy image)
expect_json_eq("${last_out}" kho-v3 families 0 reads)
expect_rc(0 ${KHO} qualify --writer-image ${MODEL} --next-image ${MODEL})
expect_rc(2 ${KHO} qualify --writer-image ${MODEL} --next-image ${LEGACY})
if(NOT last_out MATCHES "REFUSED  any kho-xarray \\(kho-xarray\\): the next image reads no version of it")
  message(FATAL_ERROR "qualify by manifests: ${last_out}")
endif()
set(image ${WORK}/linux.img)
set(base 4294967296)
expect_rc(0 ${MODEL} --json --inspect-only --size 67108864 --memory-file ${image})
expect_rc(0 ${KHO} qualify --memory ${image} --base ${base} --next-image ${MODEL})
expect_rc(2 ${KHO} qualify --memory ${image} --base ${base} --next-image ${LEGACY} --json)
expect_json_eq("${last_out}" "no version both images know" structures 0 refusal)
expect_rc(2 ${KHO} qualify --memory ${image} --base ${base} --writer-image ${MODEL} --next-image ${LEGACY} --json)
expect_json_eq("${last_out}" kho-v3 structures 0 version)
expect_json_eq("${last_out}" seals structures 2 would_lose)
message(STATUS "versions: negotiation, gate, qualify and manifest checked")
