// This image's manifest, in its own ELF section: what the next image's negotiation reads.
// The one part of kexec_model that differs between the current image and the legacy
// one (-DKHO_MODEL_LEGACY), so the two executables share the rest compiled once.
#include <kho/manifest.hpp>
#include <kho/model/model_images.hpp>

#include <cstddef>

#ifdef KHO_MODEL_LEGACY
KHO_MANIFEST_SECTION constinit const auto image_manifest =
    kho::make_manifest("kho-model-legacy", kho::model::legacy_image_lines);
extern const bool kho_image_is_legacy = true;
#else
KHO_MANIFEST_SECTION constinit const auto image_manifest =
    kho::make_manifest("kho-model-current", kho::model::current_image_lines);
extern const bool kho_image_is_legacy = false;
#endif

extern const void* const kho_image_manifest = &image_manifest;
extern const std::size_t kho_image_manifest_size = sizeof image_manifest;
