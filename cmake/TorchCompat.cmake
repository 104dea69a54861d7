# sx_torch: one interface target that carries libtorch's flags, libraries and the
# workarounds needed to use it next to the distro's spdlog/fmt.

add_library(sx_torch INTERFACE)
target_link_libraries(sx_torch INTERFACE ${TORCH_LIBRARIES})
separate_arguments(_sx_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
target_compile_options(sx_torch INTERFACE ${_sx_torch_flags})

# libtorch 2.x ships fmt headers in its include directory; they shadow the fmt that the
# distro's spdlog was built against, and spdlog then fails to compile. Put a directory
# holding only `fmt -> <spdlog's fmt>` ahead of torch's include path.
find_path(SX_SYSTEM_FMT_DIR fmt/format.h PATHS /usr/include /usr/local/include NO_DEFAULT_PATH)
set(_sx_torch_fmt "")
foreach(_dir ${TORCH_INCLUDE_DIRS})
  get_filename_component(_dir "${_dir}" REALPATH)
  if(EXISTS "${_dir}/fmt/format.h" AND NOT _dir STREQUAL SX_SYSTEM_FMT_DIR)
    set(_sx_torch_fmt "${_dir}/fmt")
  endif()
endforeach()
if(_sx_torch_fmt)
  if(SX_SYSTEM_FMT_DIR)
    set(_shim "${CMAKE_BINARY_DIR}/fmt-shim")
    file(MAKE_DIRECTORY "${_shim}")
    file(CREATE_LINK "${SX_SYSTEM_FMT_DIR}/fmt" "${_shim}/fmt" SYMBOLIC)
    target_include_directories(sx_torch SYSTEM BEFORE INTERFACE "${_shim}")
    message(STATUS "libtorch ships its own fmt (${_sx_torch_fmt}); using ${SX_SYSTEM_FMT_DIR}/fmt first")
  endif()
endif()

# NCCL only matters when libtorch was built with CUDA.
set(SX_WITH_CUDA OFF)
if(TARGET torch_cuda OR TARGET c10_cuda OR CUDA_FOUND OR CUDAToolkit_FOUND)
  set(SX_WITH_CUDA ON)
endif()
option(SX_REQUIRE_CUDA "fail unless libtorch has CUDA (the CUDA tree, launch/build-cuda.sh)" OFF)
if(SX_REQUIRE_CUDA AND NOT SX_WITH_CUDA)
  message(FATAL_ERROR "SX_REQUIRE_CUDA: libtorch ${Torch_VERSION} at ${TORCH_INSTALL_PREFIX} has no CUDA")
endif()
if(SX_WITH_CUDA)
  find_package(NCCL REQUIRED)
  target_link_libraries(sx_torch INTERFACE NCCL::NCCL)
  target_compile_definitions(sx_torch INTERFACE SX_WITH_CUDA=1 SX_WITH_NCCL=1)
endif()
# torch headers cost ~25 s per translation unit on 2 cores: every torch target reuses one
# precompiled <torch/torch.h>. (GCC falls back to the plain header if a target's flags ever
# made the PCH unusable, so this only affects speed, never correctness.)
add_library(sx_torch_pch OBJECT ${PROJECT_SOURCE_DIR}/src/model/torch_pch.cpp)
target_link_libraries(sx_torch_pch PRIVATE sx_torch spdlog::spdlog MPI::MPI_CXX)
target_precompile_headers(sx_torch_pch PRIVATE ${PROJECT_SOURCE_DIR}/src/model/torch_pch.h)
# EXCEPT: the target's sources that include no torch header. Loading the precompiled header
# costs them about as much as their own code (metrics.cpp: 22 s of CPU with it, 11 s
# without).
function(sx_use_torch_pch target)
  cmake_parse_arguments(ARG "" "" "EXCEPT" ${ARGN})
  target_precompile_headers(${target} REUSE_FROM sx_torch_pch)
  if(ARG_EXCEPT)
    set_source_files_properties(${ARG_EXCEPT} PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
  endif()
endfunction()

message(STATUS "siamese-xlmr: libtorch ${Torch_VERSION} (CUDA: ${SX_WITH_CUDA})")

