// mwi_service_test.cpp — the message-summary body, mailbox names, and the counts behind MWI:
// stored on update, unchanged counts notify nobody, and with a persistence hook they outlive
// the service (a restart).
#include <doctest/doctest.h>

#include <map>

#include "authenticator.hpp"
#include "event_loop.hpp"
#include "mwi_service.hpp"
#include "sip_stack.hpp"

using namespace relais;

namespace {

// No phone is registered: the only thing MWI asks the store here is who to NOTIFY unsolicited.
class EmptyStore final : public LocationStore {
 public:
  const char* backend_name() const override { return "empty"; }
  void lookup(const std::string& aor, int64_t, LookupDone done) override {
    lookups.push_back(aor);
    done("", {});
  }
  void replace(const std::string&, std::vector<Binding>, SaveDone done) override { done(""); }
  void find_user(const std::string&, const std::string&, UserDone done) override { done("", std::nullopt); }
  void put_user(const UserRecord&, SaveDone done) override { done(""); }
  void flush() override {}
  std::vector<std::string> lookups;
};

struct Fixture {
  Config cfg;
  EventLoop loop;
  EmptyStore store;
  std::unique_ptr<SipStack> stack;
  std::unique_ptr<Authenticator> auth;
  Fixture() {
    cfg.domain = "office.example";
    cfg.auth.realm = "office.example";
    cfg.auth.secret = "unit-secret";
    std::string error;
    REQUIRE(loop.init(error));
    stack = std::make_unique<SipStack>(loop);
    auth = std::make_unique<Authenticator>(cfg, store);
  }
};

}  // namespace

TEST_CASE("the message-summary body says yes only for new messages and names the account") {
  CHECK(message_summary_body("sip:101@office.example", {2, 1}) ==
        "Messages-Waiting: yes\r\nMessage-Account: sip:101@office.example\r\nVoice-Message: 2/1\r\n");
  CHECK(message_summary_body("sip:101@office.example", {0, 7}) ==
        "Messages-Waiting: no\r\nMessage-Account: sip:101@office.example\r\nVoice-Message: 0/7\r\n");
}

TEST_CASE("mailbox names are SIP user parts of bounded length") {
  CHECK(valid_mailbox("101"));
  CHECK(valid_mailbox("alice.smith-2"));
  CHECK_FALSE(valid_mailbox(""));
  CHECK_FALSE(valid_mailbox("101@office.example"));
  CHECK_FALSE(valid_mailbox("a b"));
  CHECK_FALSE(valid_mailbox("line\r\nX-Injected: 1"));
  CHECK_FALSE(valid_mailbox(std::string(65, '1')));
  CHECK(valid_mailbox(std::string(64, '1')));
}

TEST_CASE("update stores the counts; unchanged counts reach no phone; bad input is refused") {
  Fixture f;
  MwiService mwi(f.cfg, f.loop, *f.stack, f.store, *f.auth);
  CHECK(mwi.counts("101") == MwiCounts{0, 0});
  CHECK(mwi.update("101", 2, 1));
  CHECK(mwi.counts("101") == MwiCounts{2, 1});
  // No subscription: the registered contacts are looked up for an unsolicited NOTIFY, once.
  CHECK(f.store.lookups == std::vector<std::string>{"101@office.example"});
  CHECK(mwi.update("101", 2, 1));
  CHECK(f.store.lookups.size() == 1);
  CHECK(mwi.counters().updates == 1);
  CHECK_FALSE(mwi.update("101", -1, 0));
  CHECK_FALSE(mwi.update("bad user", 1, 0));
  CHECK(mwi.update("101", 0, 0));
  CHECK(mwi.counts("101") == MwiCounts{0, 0});
}

TEST_CASE("with unsolicited off an update asks the store nothing") {
  Fixture f;
  MwiSettings settings;
  settings.unsolicited = false;
  MwiService mwi(f.cfg, f.loop, *f.stack, f.store, *f.auth, settings);
  CHECK(mwi.update("101", 1, 0));
  CHECK(f.store.lookups.empty());
}

TEST_CASE("with a persistence hook the counts outlive the service") {
  Fixture f;
  std::map<std::string, std::pair<int, int>> kv;  // stands in for the key-value store
  int saves = 0;
  auto load = [&kv](const std::string& user) -> std::optional<std::pair<int, int>> {
    auto it = kv.find(user);
    if (it == kv.end()) return std::nullopt;
    return it->second;
  };
  auto save = [&kv, &saves](const std::string& user, int n, int o) {
    kv[user] = {n, o};
    ++saves;
  };
  {
    MwiService before(f.cfg, f.loop, *f.stack, f.store, *f.auth);
    before.set_persistence(load, save);
    CHECK(before.update("101", 3, 4));
    CHECK(before.update("101", 3, 4));  // unchanged: not written again
    CHECK(saves == 1);
  }
  MwiService after(f.cfg, f.loop, *f.stack, f.store, *f.auth);
  CHECK(after.counts("101") == MwiCounts{0, 0});  // memory only: gone
  after.set_persistence(load, save);
  CHECK(after.counts("101") == MwiCounts{3, 4});
}
