// LUO state, model-based: random session/file/FLB operations in the old kernel, a
// kexec (seal, map elsewhere, attach), then random retrieve/finish/report in the next
// kernel, all against a std::map model: retrieve exactly once, FLBs retrieved with
// their first dependent file and finished with their last, the unreclaimed report.
#include <kho/luo.hpp>

#include "rc_commands.hpp"
#include "test_arena.hpp"

#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <map>
#include <optional>
#include <set>
#include <string>

namespace kho::test::luo_model_test {
namespace {

using source = arena<12>::source_type;
using writer = luo_writer<source>;
using view = luo_view<flat_memory, source>;

struct file_model {
  std::string compatible;
  u64 data = 0;
  std::string flb;  // empty: none
};

struct luo_model {
  std::map<std::string, std::map<u64, file_model>> sessions;
  bool kexeced = false;
  std::set<std::pair<std::string, u64>> retrieved;
  std::set<std::string> finished;

  u64 refs(const std::string& flb) const {
    u64 n = 0;
    for (const auto& [s, files] : sessions)
      for (const auto& [t, f] : files) n += f.flb == flb;
    return n;
  }
  // Dependent files of `flb` not yet finished / already retrieved.
  u64 remaining(const std::string& flb) const {
    u64 n = 0;
    for (const auto& [s, files] : sessions)
      if (!finished.count(s))
        for (const auto& [t, f] : files) n += f.flb == flb;
    return n;
  }
  u64 retrieved_of(const std::string& flb) const {
    u64 n = 0;
    for (const auto& [s, t] : retrieved) n += sessions.at(s).at(t).flb == flb;
    return n;
  }
};

struct luo_sut {
  arena<12> mem{u64{64} << 20};
  arena<12> scratch{u64{64} << 20, u64{1} << 44};
  std::optional<writer> w;
  std::optional<view> v;
  luo_sut() { w.emplace(*writer::create(mem.pages(), 5)); }
};

using command = rc::state::Command<luo_model, luo_sut>;

const char* const flb_names[] = {"", "", "iommufd:0", "iommufd:1", "kvm"};
// Handler state: a page inside the arena's memory (4 GiB + 64 MiB), as the reader
// requires of a nonzero data.
u64 flb_data(const std::string& name) { return (u64{4} << 30) + name.size() * 0x1000; }
u64 file_data(u64 token) { return (u64{4} << 30) + (token % 0x4000) * 0x1000; }

rc::Gen<std::string> session_gen() {
  return rc::gen::map(rc::gen::inRange(0, 6), [](int i) { return "svc-" + std::to_string(i); });
}
rc::Gen<u64> token_gen() { return rc::gen::inRange<u64>(0, 8); }

struct create_session : command {
  std::string name = *session_gen();
  void checkPreconditions(const luo_model& m) const override { RC_PRE(!m.kexeced); }
  void apply(luo_model& m) const override { m.sessions.try_emplace(name); }
  void run(const luo_model& m, luo_sut& s) const override {
    RC_ASSERT(s.w->create_session(name.c_str()).code() ==
              (m.sessions.count(name) ? errc::already_exists : errc::ok));
  }
  void show(std::ostream& os) const override { os << "create " << name; }
};

struct destroy_session : command {
  std::string name = *session_gen();
  void checkPreconditions(const luo_model& m) const override { RC_PRE(!m.kexeced); }
  void apply(luo_model& m) const override { m.sessions.erase(name); }
  void run(const luo_model& m, luo_sut& s) const override {
    RC_ASSERT(s.w->destroy_session(name.c_str()).code() ==
              (m.sessions.count(name) ? errc::ok : errc::not_found));
    RC_ASSERT(!s.w->has_session(name.c_str()));
  }
  void show(std::ostream& os) const override { os << "destroy " << name; }
};

struct preserve : command {
  std::string session = *session_gen();
  u64 token = *token_gen();
  std::string flb = *rc::gen::elementOf(std::vector<std::string>(std::begin(flb_names), std::end(flb_names)));
  std::string compatible = *rc::gen::element<std::string>("memfd-v1", "vfio-v1", "iommufd-v1");
  void checkPreconditions(const luo_model& m) const override { RC_PRE(!m.kexeced); }
  void apply(luo_model& m) const override {
    auto it = m.sessions.find(session);
    if (it != m.sessions.end()) it->second.try_emplace(token, file_model{compatible, file_data(token), flb});
  }
  void run(const luo_model& m, luo_sut& s) const override {
    const luo_flb shared{flb.c_str(), phys_addr{flb_data(flb)}};
    const errc got = s.w->preserve_file(session.c_str(), {token, compatible.c_str(),
                                                          phys_addr{file_data(token)}, token},
                                        flb.empty() ? nullptr : &shared).code();
    auto it = m.sessions.find(session);
    RC_ASSERT(got == (it == m.sessions.end()       ? errc::not_found
                      : it->second.count(token) ? errc::already_exists
                                                : errc::ok));
    if (!flb.empty()) RC_ASSERT(s.w->flb_refs(flb.c_str()) == m.refs(flb) + (got == errc::ok));
  }
  void show(std::ostream& os) const override {
    os << "preserve " << session << "/" << token << " flb '" << flb << "'";
  }
};

struct unpreserve : command {
  std::string session = *session_gen();
  u64 token = *token_gen();
  void checkPreconditions(const luo_model& m) const override { RC_PRE(!m.kexeced); }
  void apply(luo_model& m) const override {
    if (auto it = m.sessions.find(session); it != m.sessions.end()) it->second.erase(token);
  }
  void run(const luo_model& m, luo_sut& s) const override {
    auto it = m.sessions.find(session);
    const bool there = it != m.sessions.end() && it->second.count(token);
    RC_ASSERT(s.w->unpreserve_file(session.c_str(), token).code() ==
              (there ? errc::ok : errc::not_found));
    if (there && !it->second.at(token).flb.empty()) {
      const std::string& flb = it->second.at(token).flb;
      RC_ASSERT(s.w->flb_refs(flb.c_str()) == m.refs(flb) - 1);
    }
  }
  void show(std::ostream& os) const override { os << "unpreserve " << session << "/" << token; }
};

struct kexec : command {
  void checkPreconditions(const luo_model& m) const override { RC_PRE(!m.kexeced); }
  void apply(luo_model& m) const override { m.kexeced = true; }
  void run(const luo_model& m, luo_sut& s) const override {
    auto sealed = s.w->seal();
    RC_ASSERT(sealed.has_value());
    auto v = attach_luo(s.mem.remap(), sealed->root, s.scratch.pages());
    RC_ASSERT(v.has_value());
    RC_ASSERT(v->liveupdate_number() == 5u);
    RC_ASSERT(v->session_count() == m.sessions.size());
    std::map<std::string, std::map<u64, file_model>> seen;
    for (const luo_session_entry& e : v->sessions()) {
      auto& files = seen[e.name];
      for (const luo_file_entry& f : v->files(e)) {
        std::string flb;
        for (const luo_flb_entry& b : v->flbs())
          if (f.flb.get() && b.id.get() == f.flb.get()) flb = b.name;
        RC_ASSERT(f.flags.get() == f.token.get());
        files[f.token.get()] = file_model{f.compatible, f.data.get(), flb};
      }
    }
    RC_ASSERT(seen.size() == m.sessions.size());
    for (const auto& [name, files] : m.sessions) {
      RC_ASSERT(seen[name].size() == files.size());
      for (const auto& [t, f] : files) {
        const file_model& g = seen[name][t];
        RC_ASSERT(g.compatible == f.compatible && g.data == f.data && g.flb == f.flb);
      }
    }
    for (const char* flb : flb_names) {
      if (!*flb) continue;
      auto st = v->flb_status(flb);
      RC_ASSERT(st.has_value() == (m.refs(flb) > 0));
      if (st) RC_ASSERT(st->refs == m.refs(flb) && st->retrieved == 0 && st->remaining == st->refs);
    }
    s.v.emplace(*v);
  }
  void show(std::ostream& os) const override { os << "kexec"; }
};

struct retrieve : command {
  std::string session = *session_gen();
  u64 token = *token_gen();
  void checkPreconditions(const luo_model& m) const override { RC_PRE(m.kexeced); }
  bool live(const luo_model& m) const {
    auto it = m.sessions.find(session);
    return it != m.sessions.end() && !m.finished.count(session) && it->second.count(token);
  }
  void apply(luo_model& m) const override {
    if (live(m)) m.retrieved.insert({session, token});
  }
  void run(const luo_model& m, luo_sut& s) const override {
    auto got = s.v->retrieve(session.c_str(), token);
    if (!live(m)) {
      RC_ASSERT(got.code() == errc::not_found);
      return;
    }
    if (m.retrieved.count({session, token})) {
      RC_ASSERT(got.code() == errc::already_retrieved);
      return;
    }
    RC_ASSERT(got.has_value());
    RC_ASSERT(got->file->token.get() == token);
    const std::string& flb = m.sessions.at(session).at(token).flb;
    RC_ASSERT((got->flb != nullptr) == !flb.empty());
    if (flb.empty()) return;
    RC_ASSERT(got->flb->data.get() == flb_data(flb));
    RC_ASSERT(got->flb_first == (m.retrieved_of(flb) == 0));
    RC_ASSERT(s.v->flb_status(flb.c_str())->retrieved == m.retrieved_of(flb) + 1);
  }
  void show(std::ostream& os) const override { os << "retrieve " << session << "/" << token; }
};

struct finish : command {
  std::string session = *session_gen();
  void checkPreconditions(const luo_model& m) const override { RC_PRE(m.kexeced); }
  bool live(const luo_model& m) const {
    return m.sessions.count(session) && !m.finished.count(session);
  }
  void apply(luo_model& m) const override {
    if (live(m)) m.finished.insert(session);
  }
  void run(const luo_model& m, luo_sut& s) const override {
    auto got = s.v->finish(session.c_str());
    if (!live(m)) {
      RC_ASSERT(got.code() == errc::not_found);
      return;
    }
    RC_ASSERT(got.has_value());
    const auto& files = m.sessions.at(session);
    u64 unreclaimed = 0;
    std::set<std::string> touched;
    for (const auto& [t, f] : files) {
      unreclaimed += !m.retrieved.count({session, t});
      if (!f.flb.empty()) touched.insert(f.flb);
    }
    luo_model after = m;
    after.finished.insert(session);
    u64 flbs = 0;
    for (const std::string& flb : touched) {
      flbs += after.remaining(flb) == 0;
      RC_ASSERT(s.v->flb_status(flb.c_str())->remaining == after.remaining(flb));
    }
    RC_ASSERT(got->files == files.size());
    RC_ASSERT(got->unreclaimed == unreclaimed);
    RC_ASSERT(got->flbs == flbs);
    RC_ASSERT(*s.v->is_finished(session.c_str()));
  }
  void show(std::ostream& os) const override { os << "finish " << session; }
};

struct report : command {
  void checkPreconditions(const luo_model& m) const override { RC_PRE(m.kexeced); }
  void run(const luo_model& m, luo_sut& s) const override {
    std::set<std::pair<std::string, u64>> got, want;
    s.v->for_each_unreclaimed([&](const luo_unreclaimed& u) {
      RC_ASSERT(u.session_finished == (m.finished.count(u.session->name) > 0));
      got.insert({u.session->name, u.file->token.get()});
    });
    for (const auto& [name, files] : m.sessions)
      for (const auto& [t, f] : files)
        if (!m.retrieved.count({name, t})) want.insert({name, t});
    RC_ASSERT(got == want);
  }
  void show(std::ostream& os) const override { os << "report"; }
};

RC_GTEST_PROP(LuoModel, MatchesMapModelAcrossKexec, ()) {
  luo_model m;
  luo_sut s;
  rc::state::check(m, s,
                   one_of_commands<create_session, create_session, destroy_session,
                                                     preserve, preserve, preserve, unpreserve, kexec,
                                                     retrieve, retrieve, finish, report>());
}

}  // namespace
}  // namespace kho::test::luo_model_test
