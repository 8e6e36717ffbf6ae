// kho/linux/luo_versions.hpp: one entry per structure family for a live update across
// kernel versions: write LUO or memfd state in a chosen version, detect the version of
// LUO bytes, and walk any of them the same way.
//
//   write_luo(source, version, number, content, refusal)  every luo_version: luo-v1 /
//                                                          v5 / v5;block-v1 / feature
//                                                          header, and luo_layouts.hpp's
//                                                          eight (luo-v1 (luo-flb) ... )
//   write_memfd_for(source, session, token, file, version, refusal)
//                                                          memfd-v1 / v2 / feature
//   detect_luo_version(mem, pa, blob_size)                 from the bytes
//   memfd_version_of(file record)                          from the compatible / name
//   for_each_luo_file(mem, pa, blob_size, scratch, f)      detect, validate, visit
//   walk_luo(mem, pa, blob_size, scratch, visitor)         the same for every layout,
//                                                          with the view (for its pages)
//                                                          and the FLBs: what kho verify,
//                                                          kho dump and the payload map use
//
// A version that cannot carry the content is refused (out_of_range) with the refusal
// naming the structure, the field, and for a file its session and token; nothing is
// ever dropped to make a downgrade fit. Layouts: kho/linux/luo_v5.hpp, luo_v1.hpp,
// memfd.hpp, luo_feature.hpp; bytes in docs/format.md.
#pragma once

#include <kho/linux/luo_feature.hpp>
#include <kho/linux/luo_layouts.hpp>
#include <kho/linux/luo_v1.hpp>
#include <kho/linux/luo_v5.hpp>
#include <kho/linux/memfd.hpp>
#include <kho/memory.hpp>
#include <kho/result.hpp>

#include <cstring>
#include <span>

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
  if (luo_layout_of(version) != nullptr) return write_luo_layout<PageShift>(source, version, content, refusal);
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

/// The LUO layout of the blob at `pa` (LINUX-FORMATS-NEXT.md 1.1): the form first,
/// then the whole string. An FDT (magic d00dfeed) is named by its root compatible:
/// "luo-v2", "luo-v3" (FDT), "luo-v4" (FDT), "luo-v1" with a luo-flb node; any other
/// FDT is luo-v1 (whose reader then says what is wrong with it). A raw luo_ser is
/// named by its whole field: "luo-v3" / "luo-v4" / "luo-v5" in 8 bytes,
/// "luo-v5;block-v1" in 16, "luo-vN-kho-block-v1" in 24. A blob of at least 152 bytes
/// that starts with neither is read as a feature header (which has no magic; its own
/// checks then decide). Complexity: O(1), O(FDT) for an FDT.
/// Errors (structure "luo-v5", as luo-v5's reader names them, at `pa`, depth 0):
/// bad_count (under 8 bytes), out_of_bounds, bad_compatible.
template <Memory M>
result<luo_version> detect_luo_version(const M& mem, phys_addr pa, u64 blob_size) {
  auto fail = [&](errc c) { return make_error(c, "luo-v5", pa, 0); };
  if (blob_size < 8) return fail(errc::bad_count);
  const u64 n = blob_size < luo_kho_block_compatible_len ? blob_size : luo_kho_block_compatible_len;
  const auto* b = static_cast<const char*>(mem.to_virt(pa, n));
  if (b == nullptr) return fail(errc::out_of_bounds);
  const auto* u = reinterpret_cast<const unsigned char*>(b);
  if (u[0] == 0xd0 && u[1] == 0x0d && u[2] == 0xfe && u[3] == 0xed) {
    // An FDT that does not fit its page or memory is luo-v1's to refuse.
    if (blob_size < sizeof(fdt_header) || blob_size > (u64{1} << 16)) return luo_version::v1;
    const void* fdt = mem.to_virt(pa, blob_size);
    return fdt != nullptr ? luo_fdt_layout(fdt, blob_size) : luo_version::v1;
  }
  if (std::memcmp(b, "luo-v5", 7) == 0) return luo_version::v5;
  // The 8-byte fields hold "luo-vN" and a NUL at byte 6 (the reader then wants byte 7
  // zero); the longer strings differ from them at byte 6.
  if (std::memcmp(b, "luo-v3", 7) == 0) return luo_version::v3;
  if (std::memcmp(b, "luo-v4", 7) == 0) return luo_version::v4;
  if (n >= luo_v5_block_v1_compatible_len && std::memcmp(b, luo_v5_block_v1_compatible, 16) == 0)
    return luo_version::v5_block_v1;
  if (n == luo_kho_block_compatible_len) {
    for (luo_version v : {luo_version::v3_kho_block_v1, luo_version::v4_kho_block_v1})
      if (std::memcmp(b, luo_layout_of(v)->compatible, 20) == 0) return v;
  }
  if (std::memcmp(b, "luo-", 4) != 0 && blob_size >= sizeof(luo_ser_feature)) return luo_version::feature;
  return fail(errc::bad_compatible);
}

/// Every layout kho reads and writes, in manifest order.
inline constexpr luo_version luo_all_versions[] = {
    luo_version::v1,     luo_version::v2,          luo_version::v3,     luo_version::v4,
    luo_version::v5,     luo_version::v5_block_v1, luo_version::feature, luo_version::v1_flb,
    luo_version::v3_fdt, luo_version::v4_fdt,      luo_version::v3_kho_block_v1, luo_version::v4_kho_block_v1,
};

/// The LUO layout kho names `name` (luo_version_name), for kho's kho,compatible.
/// Errors: not_found.
inline result<luo_version> luo_version_of_name(const char* name) {
  for (luo_version v : luo_all_versions)
    if (detail::same_string(name, luo_version_name(v))) return v;
  return errc::not_found;
}

/// The memfd layout a file record names, or not_found for another handler.
inline result<memfd_version> memfd_version_of(const luo_file_ser& f) {
  for (memfd_version v : {memfd_version::v2, memfd_version::v1, memfd_version::feature})
    if (detail::string_equals(f.compatible, luo_v5_file_compatible_len, memfd_file_name(v))) return v;
  return errc::not_found;
}

namespace impl {
// for_each_luo_file's visitor: sessions and files only.
template <class OnSession, class OnFile>
struct luo_file_visitor {
  OnSession& on_session;
  OnFile& on_file;
  template <class View>
  status view(const View&) { return {}; }
  status flbs(const luo_flb_ser*, u64) { return {}; }
  template <class Files>
  status session(const luo_session_ser& s, const Files& files) {
    on_session(s);
    for (const luo_file_ser& f : files) on_file(s, f);
    return {};
  }
};
}  // namespace impl

/// What walk_luo found, whatever the layout.
struct luo_walk_info {
  luo_version version{};
  u64 liveupdate_num = 0, sessions = 0, files = 0, flbs = 0, blocks = 0;
};

/// The one walk over LUO in any layout: detects the layout, validates it with its
/// reader, then calls
///   visitor.view(const auto& view) -> status          first (the view has
///                                                      claim_pages(owners))
///   visitor.flbs(const luo_flb_ser* flbs, u64 n) -> status
///   visitor.session(const luo_session_ser&, const auto& files) -> status
///                                                      each session in order, `files`
///                                                      a range of luo_file_ser
/// stopping at the first error. Scratch is returned before it returns.
/// Complexity: the reader's attach, then O(entries + blocks).
/// Errors: detect_luo_version's, the reader's, the visitor's.
template <unsigned PageShift = 12, Memory M, PageSource Scratch, class Visitor>
result<luo_walk_info> walk_luo(const M& mem, phys_addr pa, u64 blob_size, Scratch& scratch, Visitor&& visitor) {
  auto v = detect_luo_version(mem, pa, blob_size);
  if (!v) return v.err();
  luo_walk_info info;
  info.version = *v;
  auto run = [&](auto& view, const luo_flb_ser* flbs, u64 flb_count, auto&& each_session) -> status {
    info.liveupdate_num = view.liveupdate_num();
    info.sessions = view.session_count();
    info.files = view.file_count();
    info.flbs = flb_count;
    status s = visitor.view(view);
    if (s) s = visitor.flbs(flbs, flb_count);
    if (s) s = each_session();
    view.release();
    return s;
  };
  status s;
  if (*v == luo_version::v1) {
    auto view = attach_luo_v1<PageShift>(mem, pa, scratch, blob_size);
    if (!view) return view.err();
    s = run(*view, nullptr, 0, [&]() -> status {
      for (u64 i = 0; i < view->session_count(); ++i) {
        const luo_session_ser& e = view->sessions()[i];
        const u64 n = e.file_set_ser.files.get() ? e.file_set_ser.count.get() : 0;
        KHO_TRY(visitor.session(e, std::span<const luo_file_ser>(view->files(e), n)));
      }
      return {};
    });
  } else if (luo_layout_of(*v) != nullptr) {
    auto view = attach_luo_layout<PageShift>(mem, pa, scratch, blob_size, *v);
    if (!view) return view.err();
    info.blocks = view->block_count();
    s = run(*view, view->flbs(), view->flb_count(), [&]() -> status {
      for (const luo_session_ser& e : view->sessions()) KHO_TRY(visitor.session(e, view->files(e)));
      return {};
    });
  } else {
    auto view = attach_luo_v5<PageShift>(mem, pa, scratch, blob_size, {}, *v);
    if (!view) return view.err();
    info.blocks = view->block_count();
    s = run(*view, view->flbs(), view->flb_count(), [&]() -> status {
      for (const luo_session_ser& e : view->sessions()) KHO_TRY(visitor.session(e, view->files(e)));
      return {};
    });
  }
  if (!s) return s.err();
  return info;
}

/// Detects the layout of the LUO blob at `pa`, validates it, calls
/// on_session(const luo_session_ser&) for every session and then
/// on_file(session, const luo_file_ser&) for each of its files, and reports the
/// version. Scratch is returned before it returns.
/// Complexity: the view's attach. Errors: detect_luo_version's, then the view's.
template <unsigned PageShift = 12, Memory M, PageSource Scratch, class OnSession, class OnFile>
result<luo_version> for_each_luo_file(const M& mem, phys_addr pa, u64 blob_size, Scratch& scratch,
                                      OnSession&& on_session, OnFile&& on_file) {
  auto r = walk_luo<PageShift>(mem, pa, blob_size, scratch, impl::luo_file_visitor<OnSession, OnFile>{on_session, on_file});
  if (!r) return r.err();
  return r->version;
}

}  // namespace kho::upstream
