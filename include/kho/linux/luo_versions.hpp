// kho/linux/luo_versions.hpp: one entry per structure family for a live update across
// kernel versions: write LUO or memfd state in a chosen version, detect the version of
// LUO bytes, and walk any of them the same way.
//
//   write_luo(source, version, number, content, refusal)  luo-v1 / v5 / v5;block-v1 /
//                                                          feature header
//   write_memfd_for(source, session, token, file, version, refusal)
//                                                          memfd-v1 / v2 / feature
//   detect_luo_version(mem, pa, blob_size)                 from the bytes
//   memfd_version_of(file record)                          from the compatible / name
//   for_each_luo_file(mem, pa, blob_size, scratch, f)      detect, validate, visit
//
// A version that cannot carry the content is refused (out_of_range) with the refusal
// naming the structure, the field, and for a file its session and token; nothing is
// ever dropped to make a downgrade fit. Layouts: kho/linux/luo_v5.hpp, luo_v1.hpp,
// memfd.hpp, luo_feature.hpp; bytes in docs/format.md.
#pragma once

#include <kho/linux/luo_feature.hpp>
#include <kho/linux/luo_v1.hpp>
#include <kho/linux/luo_v5.hpp>
#include <kho/linux/memfd.hpp>
#include <kho/memory.hpp>
#include <kho/result.hpp>

#include <cstring>

namespace kho::upstream {

/// A file to preserve: the string its record carries (a compatible, or with the
/// feature layout a handler name), the handler's data, the user's token.
struct luo_file_content {
  const char* handler = nullptr;
  u64 data = 0;
  u64 token = 0;
};
struct luo_session_content {
  const char* name = nullptr;
  const luo_file_content* files = nullptr;
  u64 file_count = 0;
};
struct luo_flb_content {
  const char* name = nullptr;
  u64 data = 0;
  u64 count = 0;
};
/// Everything one LUO handover carries, independent of the layout.
struct luo_content {
  u64 liveupdate_num = 0;
  const luo_session_content* sessions = nullptr;
  u64 session_count = 0;
  const luo_flb_content* flbs = nullptr;
  u64 flb_count = 0;
};

namespace impl {

// Fills `w` (either writer) with `c`; on a refusal copies the writer's into `out`.
template <class Writer>
status fill_luo(Writer& w, const luo_content& c) {
  for (u64 i = 0; i < c.session_count; ++i) {
    const luo_session_content& s = c.sessions[i];
    KHO_TRY(w.create_session(s.name));
    for (u64 j = 0; j < s.file_count; ++j)
      KHO_TRY(w.preserve_file(s.name, s.files[j].handler, s.files[j].data, s.files[j].token));
  }
  for (u64 i = 0; i < c.flb_count; ++i) KHO_TRY(w.add_flb(c.flbs[i].name, c.flbs[i].data, c.flbs[i].count));
  return {};
}

}  // namespace impl

/// Writes `content` as LUO `version` and returns what the KHO root names ("LUO").
/// The writer's bookkeeping is returned to `source`; the written pages stay.
/// Complexity: O(content) (luo-v1: O(sessions^2 + files^2) within its fixed caps).
/// Errors: out_of_range with `*refusal` filled when the version cannot carry the
/// content (luo-v1: "flbs", "sessions", "files" + session; feature header without a
/// bit: "sessions", "flbs", "liveupdate_num"); otherwise the writer's (bad_string,
/// already_exists, table_full, invalid_argument, out_of_memory). On error nothing is
/// left allocated.
template <unsigned PageShift = 12, PageSource Source>
result<luo_v5_blob> write_luo(Source& source, luo_version version, const luo_content& content,
                              downgrade_refusal* refusal = nullptr,
                              const feature_masks& masks = luo_default_features) {
  auto refused = [&](const char* field, const char* structure) {
    if (refusal != nullptr) {
      *refusal = {};
      refusal->structure = structure;
      refusal->field = field;
    }
  };
  if (version == luo_version::v1) {
    auto w = luo_v1_writer<Source, PageShift>::create(source, content.liveupdate_num);
    if (!w) return w.err();
    if (status s = impl::fill_luo(*w, content); !s) {
      if (s.code() == errc::out_of_range && refusal != nullptr) *refusal = w->refusal();
      w->destroy();
      return s.err();
    }
    return w->blob();
  }
  auto w = luo_v5_writer<Source, PageShift>::create(source, content.liveupdate_num, {}, version, masks);
  if (!w) {
    if (w.code() == errc::out_of_range) refused("liveupdate_num", luo_version_name(luo_version::feature));
    return w.err();
  }
  if (status s = impl::fill_luo(*w, content); !s) {
    if (s.code() == errc::out_of_range)
      refused(w->carries(luo_feature_sessions) ? "flbs" : "sessions", luo_version_name(version));
    w->destroy();
    return s.err();
  }
  const luo_v5_blob blob = w->blob();
  w->release_index();
  return blob;
}

/// Writes one memfd file as `version` for file `token` of `session`, so a refusal
/// names all three (session, token, field). Complexity and errors: write_memfd's.
template <unsigned PageShift = 12, PageSource Source>
result<phys_addr> write_memfd_for(Source& source, const char* session, u64 token, const memfd_file& file,
                                  memfd_version version, downgrade_refusal* refusal = nullptr,
                                  const feature_masks& masks = memfd_default_features) {
  auto r = write_memfd<PageShift>(source, file, version, refusal, masks);
  if (!r && r.code() == errc::out_of_range && refusal != nullptr && refusal->field != nullptr) {
    detail::store_string(refusal->session, sizeof refusal->session, session);
    refusal->token = token;
    refusal->has_file = true;
  }
  return r;
}

/// The LUO layout of the blob at `pa`: an FDT (magic d00dfeed) is luo-v1, the
/// compatibles "luo-v5" and "luo-v5;block-v1" name theirs, and a blob of at least 152
/// bytes that starts with neither is read as a feature header (which has no magic; its
/// own checks then decide). Complexity: O(1).
/// Errors (structure "luo-v5", as luo-v5's reader names them, at `pa`, depth 0):
/// bad_count (under 8 bytes), out_of_bounds, bad_compatible.
template <Memory M>
result<luo_version> detect_luo_version(const M& mem, phys_addr pa, u64 blob_size) {
  auto fail = [&](errc c) { return make_error(c, "luo-v5", pa, 0); };
  if (blob_size < 8) return fail(errc::bad_count);
  const u64 n = blob_size < luo_v5_block_v1_compatible_len ? blob_size : luo_v5_block_v1_compatible_len;
  const auto* b = static_cast<const char*>(mem.to_virt(pa, n));
  if (b == nullptr) return fail(errc::out_of_bounds);
  const auto* u = reinterpret_cast<const unsigned char*>(b);
  if (u[0] == 0xd0 && u[1] == 0x0d && u[2] == 0xfe && u[3] == 0xed) return luo_version::v1;
  if (std::memcmp(b, "luo-v5", 7) == 0) return luo_version::v5;
  if (n == luo_v5_block_v1_compatible_len && std::memcmp(b, luo_v5_block_v1_compatible, 16) == 0)
    return luo_version::v5_block_v1;
  if (std::memcmp(b, "luo-", 4) != 0 && blob_size >= sizeof(luo_ser_feature)) return luo_version::feature;
  return fail(errc::bad_compatible);
}

/// The LUO layout kho names `name` (luo_version_name), for kho's kho,compatible.
/// Errors: not_found.
inline result<luo_version> luo_version_of_name(const char* name) {
  for (luo_version v : {luo_version::v1, luo_version::v5, luo_version::v5_block_v1, luo_version::feature})
    if (detail::same_string(name, luo_version_name(v))) return v;
  return errc::not_found;
}

/// The memfd layout a file record names, or not_found for another handler.
inline result<memfd_version> memfd_version_of(const luo_file_ser& f) {
  for (memfd_version v : {memfd_version::v2, memfd_version::v1, memfd_version::feature})
    if (detail::string_equals(f.compatible, luo_v5_file_compatible_len, memfd_file_name(v))) return v;
  return errc::not_found;
}

/// Detects the layout of the LUO blob at `pa`, validates it, calls
/// on_session(const luo_session_ser&) for every session and then
/// on_file(session, const luo_file_ser&) for each of its files, and reports the
/// version. Scratch is returned before it returns.
/// Complexity: the view's attach. Errors: detect_luo_version's, then the view's.
template <unsigned PageShift = 12, Memory M, PageSource Scratch, class OnSession, class OnFile>
result<luo_version> for_each_luo_file(const M& mem, phys_addr pa, u64 blob_size, Scratch& scratch,
                                      OnSession&& on_session, OnFile&& on_file) {
  auto v = detect_luo_version(mem, pa, blob_size);
  if (!v) return v.err();
  if (*v == luo_version::v1) {
    auto view = attach_luo_v1<PageShift>(mem, pa, scratch, blob_size);
    if (!view) return view.err();
    for (u64 i = 0; i < view->session_count(); ++i) {
      const luo_session_ser& s = view->sessions()[i];
      on_session(s);
      for (u64 j = 0; j < s.file_set_ser.count.get(); ++j) on_file(s, view->files(s)[j]);
    }
    view->release();
    return *v;
  }
  auto view = attach_luo_v5<PageShift>(mem, pa, scratch, blob_size, {}, *v);
  if (!view) return view.err();
  for (const luo_session_ser& s : view->sessions()) {
    on_session(s);
    for (const luo_file_ser& f : view->files(s)) on_file(s, f);
  }
  view->release();
  return *v;
}

}  // namespace kho::upstream
