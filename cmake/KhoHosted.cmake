# Hosted (userspace) code: the kexec model, the CLI, tests. Warnings are errors here
# with KHO_WERROR (CI); KHO_SANITIZE adds ASan+UBSan to exactly these targets (never to the shim check).
find_package(fmt REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(CLI11 REQUIRED)
# libfdt (Debian libfdt-dev) for the device-tree blobs of Linux's formats
# (include/kho/linux/memblock.hpp); a kernel links its own copy instead.
find_path(KHO_FDT_INCLUDE_DIR libfdt.h REQUIRED)
find_library(KHO_FDT_LIBRARY fdt REQUIRED)

add_library(kho_hosted INTERFACE)
target_link_libraries(kho_hosted INTERFACE kho::kho fmt::fmt nlohmann_json::nlohmann_json CLI11::CLI11
                      ${KHO_FDT_LIBRARY})
target_include_directories(kho_hosted INTERFACE ${KHO_FDT_INCLUDE_DIR})
target_compile_options(kho_hosted INTERFACE -Wall -Wextra ${KHO_WERROR_FLAGS})
if(KHO_SANITIZE)
  target_compile_options(kho_hosted INTERFACE -fsanitize=address,undefined -fno-sanitize-recover=all
                         -fno-omit-frame-pointer)
  target_link_options(kho_hosted INTERFACE -fsanitize=address,undefined)
endif()

# The hosted programs (the model, the CLI, the fuzz corpora, the image writers) share one
# precompiled header of the heavy third-party and standard headers: a sanitized compile
# of one of them spent about a third of its time parsing them. kho_hosted_pch compiles it;
# kho_use_hosted_pch(TARGET) reuses it (same flags: every such target links only kho_hosted).
add_library(kho_hosted_pch OBJECT ${CMAKE_CURRENT_LIST_DIR}/hosted_pch.cpp)
target_link_libraries(kho_hosted_pch PRIVATE kho_hosted)
target_precompile_headers(kho_hosted_pch PRIVATE <CLI/CLI.hpp> <nlohmann/json.hpp> <fmt/format.h>
                          <libfdt.h> <algorithm> <filesystem> <map> <memory> <optional> <set>
                          <string> <vector>)
function(kho_use_hosted_pch target)
  target_precompile_headers(${target} REUSE_FROM kho_hosted_pch)
endfunction()
