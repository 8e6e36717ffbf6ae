// Linux's LUO state ("luo-v5"), model-based: random sessions, files and FLBs written
// by the old kernel, a kexec (the memory mapped at another address, attach), then
// random retrieves in the next kernel, all against a std::map model: what was written
// comes back in order, sessions and files are retrieved exactly once, a file only
// through its retrieved session, FLBs found by name.
#include <kho/linux/luo_v5.hpp>

#include "rc_commands.hpp"
#include "test_arena.hpp"

#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace kho::test::linux_luo_v5_model_test {
namespace {

using namespace kho::upstream;
using source = arena<12>::source_type;
using writer = luo_v5_writer<source>;
using view = luo_v5_view<flat_memory, source>;

struct file_model {
  u64 token = 0;
  std::string compatible;
  u64 data = 0;
};

struct model {
  std::vector<std::pair<std::string, std::vector<file_model>>> sessions;  // creation order
  std::map<std::string, std::pair<u64, u64>> flbs;                        // name -> data, count
  bool kexeced = false;
  std::set<std::string> sessions_retrieved;
  std::set<std::pair<std::string, u64>> files_retrieved;

  const std::vector<file_model>* files(const std::string& name) const {
    for (const auto& [n, f] : sessions)
      if (n == name) return &f;
    return nullptr;
  }
  std::vector<file_model>* files(const std::string& name) {
    return const_cast<std::vector<file_model>*>(static_cast<const model*>(this)->files(name));
  }
  bool has_file(const std::string& s, u64 token) const {
    const auto* f = files(s);
    if (f == nullptr) return false;
    for (const file_model& x : *f)
      if (x.token == token) return true;
    return false;
  }
};

struct sut {
  arena<12> mem{u64{32} << 20};
  arena<12> scratch{u64{32} << 20, u64{1} << 44};
  std::optional<writer> w;
  std::optional<view> v;
  sut() { w.emplace(*writer::create(mem.pages(), 77)); }
  ~sut() {
    if (v) v->release();
  }
};

using command = rc::state::Command<model, sut>;

rc::Gen<std::string> session_gen() {
  return rc::gen::map(rc::gen::inRange(0, 8), [](int i) { return "svc-" + std::to_string(i); });
}
rc::Gen<u64> token_gen() { return rc::gen::inRange<u64>(0, 100); }

struct create_session : command {
  std::string name = *session_gen();
  void checkPreconditions(const model& m) const override { RC_PRE(!m.kexeced); }
  void apply(model& m) const override {
    if (!m.files(name)) m.sessions.push_back({name, {}});
  }
  void run(const model& m, sut& s) const override {
    RC_ASSERT(s.w->create_session(name.c_str()).code() == (m.files(name) ? errc::already_exists : errc::ok));
  }
  void show(std::ostream& os) const override { os << "create " << name; }
};

struct preserve : command {
  std::string session = *session_gen();
  u64 token = *token_gen();
  std::string compatible = *rc::gen::element<std::string>("memfd-v2", "memfd-v1", "vfio-v1");
  u64 data = *rc::gen::arbitrary<u64>();
  void checkPreconditions(const model& m) const override { RC_PRE(!m.kexeced); }
  void apply(model& m) const override {
    if (m.files(session) && !m.has_file(session, token)) m.files(session)->push_back({token, compatible, data});
  }
  void run(const model& m, sut& s) const override {
    const errc want = !m.files(session) ? errc::not_found
                      : m.has_file(session, token) ? errc::already_exists
                                                   : errc::ok;
    RC_ASSERT(s.w->preserve_file(session.c_str(), compatible.c_str(), data, token).code() == want);
  }
  void show(std::ostream& os) const override { os << "preserve " << session << "/" << token; }
};

struct add_flb : command {
  std::string name = "liveupdate-test-flb-v" + std::to_string(*rc::gen::inRange(0, 80));
  u64 data = *rc::gen::arbitrary<u64>();
  u64 count = *rc::gen::inRange<u64>(0, 5);
  void checkPreconditions(const model& m) const override { RC_PRE(!m.kexeced); }
  void apply(model& m) const override {
    if (!m.flbs.count(name) && m.flbs.size() < 63) m.flbs[name] = {data, count};
  }
  void run(const model& m, sut& s) const override {
    const errc want = m.flbs.count(name) ? errc::already_exists
                      : m.flbs.size() == 63 ? errc::table_full
                                            : errc::ok;
    RC_ASSERT(s.w->add_flb(name.c_str(), data, count).code() == want);
  }
  void show(std::ostream& os) const override { os << "flb " << name; }
};

struct kexec : command {
  void checkPreconditions(const model& m) const override { RC_PRE(!m.kexeced); }
  void apply(model& m) const override { m.kexeced = true; }
  void run(const model& m, sut& s) const override {
    auto v = attach_luo_v5(s.mem.remap(), s.w->blob().phys, s.scratch.pages());
    RC_ASSERT(v.has_value());
    RC_ASSERT(v->liveupdate_num() == 77u);
    RC_ASSERT(v->session_count() == m.sessions.size());
    std::size_t i = 0;
    for (const luo_session_ser& e : v->sessions()) {
      RC_ASSERT(std::string(e.name) == m.sessions[i].first);
      const auto& want = m.sessions[i].second;
      std::size_t j = 0;
      for (const luo_file_ser& f : v->files(e)) {
        RC_ASSERT(j < want.size());
        RC_ASSERT(f.token.get() == want[j].token && f.data.get() == want[j].data &&
                  std::string(f.compatible) == want[j].compatible);
        ++j;
      }
      RC_ASSERT(j == want.size());
      ++i;
    }
    RC_ASSERT(v->flb_count() == m.flbs.size());
    for (const auto& [name, dc] : m.flbs) {
      auto b = v->find_flb(name.c_str());
      RC_ASSERT(b.has_value());
      RC_ASSERT((*b)->data.get() == dc.first && (*b)->count.get() == dc.second);
    }
    s.v.emplace(*v);
  }
  void show(std::ostream& os) const override { os << "kexec"; }
};

struct retrieve_session : command {
  std::string name = *session_gen();
  void checkPreconditions(const model& m) const override { RC_PRE(m.kexeced); }
  void apply(model& m) const override {
    if (m.files(name)) m.sessions_retrieved.insert(name);
  }
  void run(const model& m, sut& s) const override {
    auto got = s.v->retrieve_session(name.c_str());
    if (!m.files(name)) {
      RC_ASSERT(got.code() == errc::not_found);
    } else if (m.sessions_retrieved.count(name)) {
      RC_ASSERT(got.code() == errc::already_retrieved);
    } else {
      RC_ASSERT(got.has_value());
      RC_ASSERT(std::string((*got)->name) == name);
      RC_ASSERT((*got)->file_set_ser.count.get() == m.files(name)->size());
    }
  }
  void show(std::ostream& os) const override { os << "retrieve session " << name; }
};

struct retrieve_file : command {
  std::string session = *session_gen();
  u64 token = *token_gen();
  void checkPreconditions(const model& m) const override { RC_PRE(m.kexeced); }
  bool reachable(const model& m) const {
    return m.sessions_retrieved.count(session) && m.has_file(session, token);
  }
  void apply(model& m) const override {
    if (reachable(m)) m.files_retrieved.insert({session, token});
  }
  void run(const model& m, sut& s) const override {
    auto got = s.v->retrieve_file(session.c_str(), token);
    if (!reachable(m)) {
      RC_ASSERT(got.code() == errc::not_found);
    } else if (m.files_retrieved.count({session, token})) {
      RC_ASSERT(got.code() == errc::already_retrieved);
    } else {
      RC_ASSERT(got.has_value());
      RC_ASSERT((*got)->token.get() == token);
    }
    if (m.has_file(session, token))
      RC_ASSERT(*s.v->file_retrieved(session.c_str(), token) ==
                (m.files_retrieved.count({session, token}) > 0 || (reachable(m) && got.has_value())));
  }
  void show(std::ostream& os) const override { os << "retrieve file " << session << "/" << token; }
};

struct find_flb : command {
  std::string name = "liveupdate-test-flb-v" + std::to_string(*rc::gen::inRange(0, 80));
  void checkPreconditions(const model& m) const override { RC_PRE(m.kexeced); }
  void run(const model& m, sut& s) const override {
    auto b = s.v->find_flb(name.c_str());
    RC_ASSERT(b.has_value() == (m.flbs.count(name) > 0));
  }
  void show(std::ostream& os) const override { os << "find flb " << name; }
};

RC_GTEST_PROP(LuoV5Model, MatchesMapModelAcrossKexec, ()) {
  model m;
  sut s;
  rc::state::check(m, s,
                   one_of_commands<create_session, create_session, preserve, preserve,
                                                     preserve, preserve, add_flb, kexec, retrieve_session,
                                                     retrieve_file, retrieve_file, find_flb>());
}

}  // namespace
}  // namespace kho::test::linux_luo_v5_model_test
