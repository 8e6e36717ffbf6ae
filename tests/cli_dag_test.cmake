cmake_minimum_required(VERSION 3.25)
# kho verify on a 1 TiB sparse image whose radix entry is a six-page DAG (every slot a
# key can use points to the same next-level page: 4 * 512^4 paths in six pages). The
# reader must refuse it by name, at once, whatever the image's size. The image is
# made here and removed, pass or fail.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(image ${WORK}/dag.img)
set(base 0x100000000)
include(${CMAKE_CURRENT_LIST_DIR}/cli_helpers.cmake)

execute_process(COMMAND ${HOSTILE} dag --out ${image} --base ${base} --size 1099511627776
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  done_with("kho_hostile_image dag: exit ${rc}\n${out}${err}")
endif()
execute_process(COMMAND ${KHO} verify --memory ${image} --base ${base} TIMEOUT 60
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT "${out}" MATCHES "${EXPECT}")
  done_with("kho verify on the DAG: exit ${rc}, expected 2 and '${EXPECT}'\n${out}${err}")
endif()
message(STATUS "${out}")
done_with("")
