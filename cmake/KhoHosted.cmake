# Hosted (userspace) code: the kexec model, the CLI, tests. Warnings are errors here
# with KHO_WERROR (CI); KHO_SANITIZE adds ASan+UBSan to exactly these targets (never to the shim check).
find_package(fmt REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(CLI11 REQUIRED)

add_library(kho_hosted INTERFACE)
target_link_libraries(kho_hosted INTERFACE kho::kho fmt::fmt nlohmann_json::nlohmann_json CLI11::CLI11)
target_compile_options(kho_hosted INTERFACE -Wall -Wextra ${KHO_WERROR_FLAGS})
if(KHO_SANITIZE)
  target_compile_options(kho_hosted INTERFACE -fsanitize=address,undefined -fno-sanitize-recover=all
                         -fno-omit-frame-pointer)
  target_link_options(kho_hosted INTERFACE -fsanitize=address,undefined)
endif()
