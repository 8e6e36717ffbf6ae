# Helpers for the CLI's ctest scripts (include()d by them).

# Removes ${WORK} (large sparse images must not outlive their test), then fails with
# `msg` unless it is empty.
function(done_with msg)
  file(REMOVE_RECURSE ${WORK})
  if(msg)
    message(FATAL_ERROR "${msg}")
  endif()
endfunction()

# Runs ARGN; the exit status must be `want` ("nonzero": any failure but a crash is fine).
# Leaves stdout and stderr together in last_out.
function(expect_rc want)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(want STREQUAL "nonzero" AND rc MATCHES "^[1-9][0-9]*$")
    set(last_out "${out}${err}" PARENT_SCOPE)
    return()
  endif()
  if(NOT rc STREQUAL want)
    message(FATAL_ERROR "expected exit ${want}, got ${rc}: ${ARGN}\n${out}\n${err}")
  endif()
  set(last_out "${out}${err}" PARENT_SCOPE)
endfunction()

function(patch_bytes file offset value count)
  # `count` little-endian bytes of a value below 2^32, as octal printf escapes (POSIX sh)
  set(bytes "")
  math(EXPR last "8 * (${count} - 1)")
  foreach(shift RANGE 0 ${last} 8)
    set(b 0)
    if(shift LESS 32)
      math(EXPR b "(${value} >> ${shift}) & 255")
    endif()
    math(EXPR o1 "${b} / 64")
    math(EXPR o2 "(${b} / 8) % 8")
    math(EXPR o3 "${b} % 8")
    string(APPEND bytes "\\${o1}${o2}${o3}")
  endforeach()
  execute_process(COMMAND sh -c "printf '${bytes}' | dd of=${file} bs=1 seek=${offset} conv=notrunc status=none"
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "patching ${file} failed")
  endif()
endfunction()
