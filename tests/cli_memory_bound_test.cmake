cmake_minimum_required(VERSION 3.25)
# kho verify's memory is set by the handover, not by the size of the image: a valid
# handover in a 2 GiB image verifies within `ulimit -v 4000000` (the image's mapping
# included), and one in a 15 TiB sparse image within its mapping plus 4 GB.
# Before, the CLI mapped scratch of twice the image and a radix node list of one slot
# per page of it (30 GiB for 15 TiB). Not run under ASan, whose shadow memory needs
# terabytes of address space. Images are made here and removed, pass or fail.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(base 0x100000000)
include(${CMAKE_CURRENT_LIST_DIR}/cli_helpers.cmake)

function(verify_within size label limit_kib)
  set(image ${WORK}/${label}.img)
  execute_process(COMMAND ${HOSTILE} sample --out ${image} --base ${base} --size ${size}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 AND "${err}" MATCHES "File too large")
    # A file system whose files stop short of this size (ext4 with 1 KiB blocks).
    message(STATUS "${label}: this file system holds no ${size}-byte file: not checked here")
    return()
  endif()
  if(NOT rc EQUAL 0)
    done_with("kho_hostile_image sample --size ${size}: exit ${rc}\n${out}${err}")
  endif()
  execute_process(COMMAND sh -c "ulimit -v ${limit_kib} && exec \"$0\" verify --memory \"$1\" --base ${base}"
                          ${KHO} ${image}
                  TIMEOUT 120 RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    done_with("kho verify, ${label} image, ulimit -v ${limit_kib}: exit ${rc}\n${out}${err}")
  endif()
  message(STATUS "${label}, ulimit -v ${limit_kib} KiB: ${out}")
  file(REMOVE ${image})
endfunction()

verify_within(2147483648 2GiB 4000000)
math(EXPR limit "16492674416640 / 1024 + 4000000")
verify_within(16492674416640 15TiB ${limit})
done_with("")
