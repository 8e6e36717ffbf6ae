// kho/luo/layout.hpp: the LUO wire layout: the root, the session, file and FLB
// entries, their constants, and the static_asserts that pin every field.
//
// The picture, the checksums and the invariants are in kho/luo.hpp.
#pragma once

#include <kho/block_list.hpp>
#include <kho/detail/endian.hpp>
#include <kho/phys.hpp>

#include <cstddef>
#include <type_traits>

namespace kho {

inline constexpr u64 luo_magic = 0x31304f554c4f484bULL;  // "KHOLUO01" little-endian
/// Not upstream's "luo-v1": the entries carry flags and FLB references it lacks.
inline constexpr const char* luo_compatible = "kho-luo-v1";
inline constexpr const char* luo_entry_name = "LUO";  // the handover root's name for it
inline constexpr u16 luo_version_major = 1;
inline constexpr u16 luo_version_minor = 0;

inline constexpr u64 luo_session_name_len = 64;  // 63 characters and the NUL
inline constexpr u64 luo_compatible_len = 48;    // handler names: 47 and the NUL
inline constexpr u64 luo_flb_name_len = 48;

enum class luo_state : u32 {
  open = 0x4e45504f,    // "OPEN": changed since the last seal
  sealed = 0x4c414553,  // "SEAL"
};

struct luo_root {
  detail::le64 magic;
  char compatible[16];
  detail::le16 version_major;
  detail::le16 version_minor;
  detail::le16 page_shift;
  detail::le16 reserved0;
  detail::le32 state;
  detail::le32 reserved1;
  detail::le64 liveupdate_number;  // how many live updates this machine went through
  detail::le64 sessions;           // head block of the session list, 0 if none
  detail::le64 session_count;
  detail::le64 file_count;         // over all sessions
  detail::le64 flbs;               // head block of the FLB list, 0 if none
  detail::le64 flb_count;
  detail::le64 block_count;        // blocks of every list together
  detail::le64 content_checksum;   // XXH64 of every block's used bytes, in walk order
  detail::le64 checksum;           // XXH64 of this root, this field counted as zero
};

struct luo_session_entry {
  char name[luo_session_name_len];
  detail::le64 files;       // head block of this session's files, 0 if none
  detail::le64 file_count;  // entries in that list
};

struct luo_file_entry {
  detail::le64 token;                    // the service's key, unique in the session
  char compatible[luo_compatible_len];   // handler that serialized it, e.g. "memfd-v1"
  detail::le64 data;                     // 0, or the page where the handler's state starts
  detail::le64 flags;                    // the handler's; opaque to LUO
  detail::le64 flb;                      // id of the FLB it depends on, 0 for none
};

struct luo_flb_entry {
  char name[luo_flb_name_len];  // e.g. "iommufd:0"
  detail::le64 id;              // nonzero; what files refer to
  detail::le64 data;            // 0, or the page where the object's state starts
  detail::le64 refs;            // files that depend on it
  detail::le64 reserved;        // zero throughout major version 1 (reserved_nonzero)
};

static_assert(sizeof(luo_root) == 112);
static_assert(offsetof(luo_root, compatible) == 8);
static_assert(offsetof(luo_root, version_major) == 24);
static_assert(offsetof(luo_root, page_shift) == 28);
static_assert(offsetof(luo_root, state) == 32);
static_assert(offsetof(luo_root, liveupdate_number) == 40);
static_assert(offsetof(luo_root, sessions) == 48);
static_assert(offsetof(luo_root, session_count) == 56);
static_assert(offsetof(luo_root, file_count) == 64);
static_assert(offsetof(luo_root, flbs) == 72);
static_assert(offsetof(luo_root, flb_count) == 80);
static_assert(offsetof(luo_root, block_count) == 88);
static_assert(offsetof(luo_root, content_checksum) == 96);
static_assert(offsetof(luo_root, checksum) == 104);
static_assert(sizeof(luo_session_entry) == 80);
static_assert(offsetof(luo_session_entry, files) == 64);
static_assert(offsetof(luo_session_entry, file_count) == 72);
static_assert(sizeof(luo_file_entry) == 80);
static_assert(offsetof(luo_file_entry, compatible) == 8);
static_assert(offsetof(luo_file_entry, data) == 56);
static_assert(offsetof(luo_file_entry, flags) == 64);
static_assert(offsetof(luo_file_entry, flb) == 72);
static_assert(sizeof(luo_flb_entry) == 80);
static_assert(offsetof(luo_flb_entry, id) == 48);
static_assert(offsetof(luo_flb_entry, data) == 56);
static_assert(offsetof(luo_flb_entry, refs) == 64);
static_assert(std::has_unique_object_representations_v<luo_root>);
static_assert(std::has_unique_object_representations_v<luo_session_entry>);
static_assert(std::has_unique_object_representations_v<luo_file_entry>);
static_assert(std::has_unique_object_representations_v<luo_flb_entry>);
static_assert(block_capacity<luo_session_entry> == 51 && block_capacity<luo_file_entry> == 51);

}  // namespace kho
