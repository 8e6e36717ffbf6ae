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
