// location_store_test.cpp — one behaviour suite run against both backends (SQLite on a temp file,
// Redis on a real redis-server started on a free port), plus what only one backend promises.
#include <doctest/doctest.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "location_store.hpp"
#include "redis_store.hpp"
#include "sqlite_store.hpp"

extern char** environ;

using namespace std::chrono_literals;
using relais::Binding;
using relais::LocationStore;
using relais::StoreSettings;
using relais::UserRecord;

namespace {

int64_t now_s() { return static_cast<int64_t>(std::time(nullptr)); }

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "relais-store-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// Drives the async API the way relais does: one event_base, run until something happened.
struct Loop {
  std::unique_ptr<event_base, decltype(&event_base_free)> base{event_base_new(), &event_base_free};

  template <typename Pred>
  bool run_until(Pred done, std::chrono::milliseconds timeout = 5000ms) {
    // The tick bounds each EVLOOP_ONCE so a silent store cannot block past the deadline.
    std::unique_ptr<event, decltype(&event_free)> tick(
        evtimer_new(base.get(), [](int, short, void*) {}, nullptr), &event_free);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      timeval tv{0, 10'000};
      evtimer_add(tick.get(), &tv);
      event_base_loop(base.get(), EVLOOP_ONCE);
    }
    return true;
  }
  void run_for(std::chrono::milliseconds d) { run_until([] { return false; }, d); }
};

// Results live on the heap so a completion arriving after a failed REQUIRE has somewhere to go.
struct Outcome {
  int calls = 0;
  std::string error;
  std::vector<Binding> bindings;
  std::optional<UserRecord> user;
};
using OutcomePtr = std::shared_ptr<Outcome>;

LocationStore::LookupDone on_lookup(OutcomePtr o) {
  return [o](const std::string& e, std::vector<Binding> b) {
    ++o->calls;
    o->error = e;
    o->bindings = std::move(b);
  };
}
LocationStore::SaveDone on_save(OutcomePtr o) {
  return [o](const std::string& e) {
    ++o->calls;
    o->error = e;
  };
}
LocationStore::UserDone on_user(OutcomePtr o) {
  return [o](const std::string& e, std::optional<UserRecord> u) {
    ++o->calls;
    o->error = e;
    o->user = std::move(u);
  };
}

// Starts a request with `start(outcome)`, runs the loop until it completed, checks it did once.
template <typename Start>
OutcomePtr await(Loop& loop, const char* what, Start start) {
  auto o = std::make_shared<Outcome>();
  start(o);
  REQUIRE_MESSAGE(loop.run_until([&] { return o->calls > 0; }), what << " never completed");
  CHECK(o->calls == 1);
  return o;
}

OutcomePtr lookup(Loop& loop, LocationStore& s, const std::string& aor, int64_t now = now_s()) {
  return await(loop, "lookup", [&](OutcomePtr o) { s.lookup(aor, now, on_lookup(o)); });
}
OutcomePtr replace(Loop& loop, LocationStore& s, const std::string& aor,
                   std::vector<Binding> set) {
  return await(loop, "replace", [&](OutcomePtr o) { s.replace(aor, std::move(set), on_save(o)); });
}
OutcomePtr find_user(Loop& loop, LocationStore& s, const std::string& user,
                     const std::string& domain) {
  return await(loop, "find_user", [&](OutcomePtr o) { s.find_user(user, domain, on_user(o)); });
}
OutcomePtr put_user(Loop& loop, LocationStore& s, const UserRecord& u) {
  return await(loop, "put_user", [&](OutcomePtr o) { s.put_user(u, on_save(o)); });
}

Binding make_binding(const std::string& host, int64_t expires_at) {
  Binding b;
  b.contact = "sip:100@" + host + ":5062;transport=udp";
  b.key = "sip:100@" + host + ":5062;transport=udp";
  b.call_id = "call-" + host;
  b.cseq = 42;
  b.expires_at = expires_at;
  b.q_milli = 500;
  b.received = "udp:203.0.113.5:5060";
  b.user_agent = "Test UA \"1.0\"";
  b.instance = "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";
  b.node = "node-a";
  b.registered_at = expires_at - 3600;
  b.attrs = {{"tenant", "clinic"}, {"room", "3"}};
  return b;
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

using ReplyPtr = std::unique_ptr<redisReply, decltype(&freeReplyObject)>;

// A plain synchronous connection, to look at what the store left in Redis.
struct SyncRedis {
  std::unique_ptr<redisContext, decltype(&redisFree)> c;
  explicit SyncRedis(int port) : c(redisConnect("127.0.0.1", port), &redisFree) {}
  bool ok() const { return c && !c->err; }
  ReplyPtr cmd(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    void* r = redisCommandArgv(c.get(), static_cast<int>(argv.size()), argv.data(), lens.data());
    return ReplyPtr(static_cast<redisReply*>(r), &freeReplyObject);
  }
};

// A real redis-server child on 127.0.0.1; stopped (and reaped) when it goes out of scope.
class RedisServer {
 public:
  explicit RedisServer(std::string dir, std::vector<std::string> extra = {})
      : dir_(std::move(dir)), extra_(std::move(extra)), port_(free_port()) {
    // hiredis writes with write(2): a request sent to a dead server must be an error, not a
    // process-killing SIGPIPE. relais's main() ignores it too.
    signal(SIGPIPE, SIG_IGN);
    start();
  }
  ~RedisServer() { stop(); }
  int port() const { return port_; }

  void start() {
    std::vector<std::string> args = {"redis-server", "--port", std::to_string(port_), "--bind",
                                      "127.0.0.1", "--save", "", "--appendonly", "no",
                                      "--daemonize", "no", "--dir", dir_, "--logfile",
                                      dir_ + "/redis.log"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = posix_spawnp(&pid_, "redis-server", nullptr, nullptr, argv.data(), environ);
    if (rc != 0) pid_ = -1;
    REQUIRE_MESSAGE(rc == 0, "cannot start redis-server (is it on PATH?): "
                                 << std::string(std::strerror(rc)));
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL("redis-server exited at start: " << log_text());
      }
      SyncRedis probe(port_);
      if (probe.ok() && probe.cmd({"PING"})) return;  // any reply (even NOAUTH) means it is up
      std::this_thread::sleep_for(20ms);
    }
    stop();
    FAIL("redis-server did not answer on port " << port_ << ": " << log_text());
  }

  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  std::string log_text() const {
    std::ifstream f(dir_ + "/redis.log");
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }
  std::string dir_;
  std::vector<std::string> extra_;
  int port_;
  pid_t pid_ = -1;
};

struct SqliteEnv {
  TempDir dir;
  StoreSettings settings() const {
    StoreSettings s;
    s.sqlite_path = dir.path + "/var/relais.db";
    s.sqlite_flush_ms = 50;
    return s;
  }
};

struct RedisEnv {
  TempDir dir;
  RedisServer server{dir.path};
  StoreSettings settings() const {
    StoreSettings s;
    s.backend = "redis";
    s.redis_port = server.port();
    return s;
  }
};

// A backend under test: its environment outlives the loop, which outlives the store. `open`
// again after `store.reset()` is a restart.
template <typename Env>
struct Backend {
  Env env;
  Loop loop;
  std::unique_ptr<LocationStore> store;
  Backend() { open(); }
  void open() {
    std::string error;
    store = relais::open_location_store(env.settings(), loop.base.get(), error);
    REQUIRE_MESSAGE(store != nullptr, error);
  }
};
using SqliteBackend = Backend<SqliteEnv>;
using RedisBackend = Backend<RedisEnv>;

}  // namespace

TYPE_TO_STRING(SqliteBackend);
TYPE_TO_STRING(RedisBackend);

// ---- behaviours every backend shares ----

#define STORE_CASE(name) TEST_CASE_TEMPLATE(name, B, SqliteBackend, RedisBackend)

STORE_CASE("a store returns no bindings for an unknown AoR") {
  B b;
  auto r = lookup(b.loop, *b.store, "nobody@example.com");
  CHECK(r->error.empty());
  CHECK(r->bindings.empty());
}

STORE_CASE("a store returns replaced bindings with every field intact") {
  B b;
  std::vector<Binding> set = {make_binding("10.0.0.6", now_s() + 300),
                              make_binding("10.0.0.5", now_s() + 3600)};
  set[1].attrs["note"] = "ünïcode ☎";
  CHECK(replace(b.loop, *b.store, "100@example.com", set)->error.empty());
  auto r = lookup(b.loop, *b.store, "100@example.com");
  CHECK(r->error.empty());
  relais::normalize_bindings(set);  // stores answer in key order
  CHECK(r->bindings == set);
  CHECK(lookup(b.loop, *b.store, "101@example.com")->bindings.empty());
}

STORE_CASE("a store replaces the whole binding set of an AoR") {
  B b;
  replace(b.loop, *b.store, "100@example.com",
          {make_binding("10.0.0.5", now_s() + 60), make_binding("10.0.0.6", now_s() + 60)});
  std::vector<Binding> second = {make_binding("10.0.0.7", now_s() + 60)};
  CHECK(replace(b.loop, *b.store, "100@example.com", second)->error.empty());
  CHECK(lookup(b.loop, *b.store, "100@example.com")->bindings == second);
}

STORE_CASE("a store removes an AoR replaced with an empty set") {
  B b;
  replace(b.loop, *b.store, "100@example.com", {make_binding("10.0.0.5", now_s() + 60)});
  CHECK(replace(b.loop, *b.store, "100@example.com", {})->error.empty());
  CHECK(lookup(b.loop, *b.store, "100@example.com")->bindings.empty());
  b.store.reset();
  b.open();
  CHECK(lookup(b.loop, *b.store, "100@example.com")->bindings.empty());
}

STORE_CASE("a store does not return expired bindings") {
  B b;
  int64_t now = now_s();
  Binding live = make_binding("10.0.0.5", now + 60);
  replace(b.loop, *b.store, "100@example.com", {make_binding("10.0.0.4", now - 1), live,
                                                make_binding("10.0.0.6", now)});
  auto r = lookup(b.loop, *b.store, "100@example.com", now);
  CHECK(r->error.empty());
  CHECK(r->bindings == std::vector<Binding>{live});
  CHECK(lookup(b.loop, *b.store, "100@example.com", now + 60)->bindings.empty());
  replace(b.loop, *b.store, "200@example.com", {make_binding("10.0.0.4", now - 10)});
  CHECK(lookup(b.loop, *b.store, "200@example.com", now)->bindings.empty());
}

STORE_CASE("a store round-trips users through put and find") {
  B b;
  UserRecord u{"100", "example.com", "0123456789abcdef0123456789abcdef", std::string(64, 'e')};
  CHECK(put_user(b.loop, *b.store, u)->error.empty());
  auto r = find_user(b.loop, *b.store, "100", "example.com");
  CHECK(r->error.empty());
  CHECK(r->user == u);
  u.ha1_md5 = std::string(32, 'f');
  u.ha1_sha256.clear();
  put_user(b.loop, *b.store, u);
  CHECK(find_user(b.loop, *b.store, "100", "example.com")->user == u);
  CHECK_FALSE(find_user(b.loop, *b.store, "100", "other.example.com")->user.has_value());
}

STORE_CASE("a store answers an unknown user with nullopt and no error") {
  B b;
  auto r = find_user(b.loop, *b.store, "ghost", "example.com");
  CHECK(r->error.empty());
  CHECK_FALSE(r->user.has_value());
}

STORE_CASE("a store keeps its data across close and reopen") {
  B b;
  std::vector<Binding> set = {make_binding("10.0.0.5", now_s() + 600)};
  UserRecord u{"100", "example.com", std::string(32, 'a'), std::string(64, 'b')};
  replace(b.loop, *b.store, "100@example.com", set);
  put_user(b.loop, *b.store, u);
  b.store->flush();
  b.store.reset();
  b.open();
  CHECK(lookup(b.loop, *b.store, "100@example.com")->bindings == set);
  CHECK(find_user(b.loop, *b.store, "100", "example.com")->user == u);
}

// ---- SQLite only ----

namespace {

int64_t count_rows(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close_v2)> guard(db, &sqlite3_close_v2);
  sqlite3_stmt* s = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql, -1, &s, nullptr) == SQLITE_OK);
  std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> sg(s, &sqlite3_finalize);
  REQUIRE(sqlite3_step(s) == SQLITE_ROW);
  return sqlite3_column_int64(s, 0);
}

// A SqliteStore on a fresh file, opened directly to reach its flush/purge controls.
struct SqliteFile {
  TempDir dir;
  Loop loop;
  std::string path = dir.path + "/relais.db";
  std::unique_ptr<relais::SqliteStore> store;
  explicit SqliteFile(int flush_ms) { open(flush_ms); }
  void open(int flush_ms) {
    StoreSettings s;
    s.sqlite_path = path;
    s.sqlite_flush_ms = flush_ms;
    std::string error;
    store = relais::SqliteStore::open(s, loop.base.get(), error);
    REQUIRE_MESSAGE(store != nullptr, error);
  }
};

constexpr const char* kCountBindings = "SELECT count(*) FROM bindings";

}  // namespace

TEST_CASE("the sqlite store writes queued changes when destroyed without an explicit flush") {
  SqliteFile f(60'000);
  std::vector<Binding> set = {make_binding("10.0.0.5", now_s() + 600)};
  replace(f.loop, *f.store, "100@example.com", set);
  CHECK(f.store->queued_changes() == 1);
  f.store.reset();
  f.open(60'000);
  CHECK(lookup(f.loop, *f.store, "100@example.com")->bindings == set);
}

TEST_CASE("the sqlite store batches changes and writes them when its flush timer fires") {
  SqliteFile f(20);
  for (int i = 0; i < 50; ++i) {
    replace(f.loop, *f.store, std::to_string(i) + "@example.com",
            {make_binding("10.0.0.5", now_s() + 600)});
  }
  put_user(f.loop, *f.store, UserRecord{"100", "example.com", "aa", "bb"});
  CHECK(f.store->queued_changes() == 51);
  CHECK(count_rows(f.path, kCountBindings) == 0);  // nothing written inside the calls
  REQUIRE(f.loop.run_until([&] { return f.store->queued_changes() == 0; }, 2000ms));
  CHECK(count_rows(f.path, kCountBindings) == 50);
  CHECK(count_rows(f.path, "SELECT count(*) FROM users") == 1);
}

TEST_CASE("the sqlite store keeps changes queued when a flush fails and writes them later") {
  SqliteFile f(60'000);
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(f.path.c_str(), &other) == SQLITE_OK);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close_v2)> guard(other, &sqlite3_close_v2);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);

  replace(f.loop, *f.store, "100@example.com", {make_binding("10.0.0.5", now_s() + 600)});
  f.store->flush();  // the write lock is taken: logs store.flush_failed
  CHECK(f.store->queued_changes() == 1);
  CHECK(lookup(f.loop, *f.store, "100@example.com")->bindings.size() == 1);

  REQUIRE(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
  f.store->flush();
  CHECK(f.store->queued_changes() == 0);
  CHECK(count_rows(f.path, kCountBindings) == 1);
}

TEST_CASE("the sqlite store purges expired bindings from memory and file") {
  SqliteFile f(60'000);
  int64_t now = now_s();
  replace(f.loop, *f.store, "short@example.com", {make_binding("10.0.0.5", now + 5)});
  replace(f.loop, *f.store, "long@example.com", {make_binding("10.0.0.6", now + 600)});
  f.store->flush();
  REQUIRE(count_rows(f.path, kCountBindings) == 2);
  f.store->purge_expired(now + 10);
  CHECK(lookup(f.loop, *f.store, "short@example.com", now)->bindings.empty());
  CHECK(lookup(f.loop, *f.store, "long@example.com", now)->bindings.size() == 1);
  f.store->flush();  // the file side of a purge is the writer's
  CHECK(count_rows(f.path, kCountBindings) == 1);
}

TEST_CASE("the sqlite store deletes the rows of contacts an AoR lost, across batches and failed writes") {
  SqliteFile f(60'000);
  int64_t later = now_s() + 600;
  const std::string aor = "100@example.com";
  Binding a = make_binding("10.0.0.5", later), b = make_binding("10.0.0.6", later), c = make_binding("10.0.0.7", later);
  auto rows = [&] { return count_rows(f.path, kCountBindings); };

  replace(f.loop, *f.store, aor, {a, b});
  f.store->flush();
  REQUIRE(rows() == 2);
  Binding b2 = b;
  b2.cseq = 43;
  replace(f.loop, *f.store, aor, {b2});  // a is gone, b refreshed
  f.store->flush();
  CHECK(rows() == 1);

  // Lost and back within one batch: kept, with its newest values.
  replace(f.loop, *f.store, aor, {a, b2});
  replace(f.loop, *f.store, aor, {b2});
  Binding a2 = a;
  a2.cseq = 44;
  replace(f.loop, *f.store, aor, {a2, b2});
  f.store->flush();
  CHECK(rows() == 2);

  // A batch that fails is merged with the next one: the keys either removed are still deleted.
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(f.path.c_str(), &other) == SQLITE_OK);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close_v2)> guard(other, &sqlite3_close_v2);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  replace(f.loop, *f.store, aor, {b2});  // a removed
  f.store->flush();                      // fails: the lock is taken
  replace(f.loop, *f.store, aor, {b2, c});
  REQUIRE(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
  f.store->flush();
  CHECK(f.store->queued_changes() == 0);
  CHECK(rows() == 2);  // b2 and c

  replace(f.loop, *f.store, aor, {});
  f.store->flush();
  CHECK(rows() == 0);

  replace(f.loop, *f.store, aor, {a2, c});
  f.store.reset();
  f.open(60'000);
  auto r = lookup(f.loop, *f.store, aor);
  REQUIRE(r->bindings.size() == 2);
  CHECK(r->bindings[0] == a2);
  CHECK(r->bindings[1] == c);
}

TEST_CASE("a binding row unreadable at open goes with its AoR's next write") {
  SqliteFile f(60'000);
  int64_t later = now_s() + 600;
  Binding a = make_binding("10.0.0.5", later);
  replace(f.loop, *f.store, "100@example.com", {a});
  f.store.reset();
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(f.path.c_str(), &db) == SQLITE_OK);
    std::unique_ptr<sqlite3, decltype(&sqlite3_close_v2)> guard(db, &sqlite3_close_v2);
    std::string sql = "INSERT INTO bindings (aor, key, expires_at, data) VALUES ('100@example.com', 'sip:x', " +
                      std::to_string(later) + ", 'not json')";
    REQUIRE(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  }
  f.open(60'000);  // logs store.bad_row
  REQUIRE(lookup(f.loop, *f.store, "100@example.com")->bindings.size() == 1);
  CHECK(count_rows(f.path, kCountBindings) == 2);
  Binding a2 = a;
  a2.cseq = 43;
  replace(f.loop, *f.store, "100@example.com", {a2});
  f.store->flush();
  CHECK(count_rows(f.path, kCountBindings) == 1);
}

TEST_CASE("the sqlite store drops the expires_at index of files made by older versions") {
  SqliteFile f(60'000);
  f.store.reset();
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(f.path.c_str(), &db) == SQLITE_OK);
    std::unique_ptr<sqlite3, decltype(&sqlite3_close_v2)> guard(db, &sqlite3_close_v2);
    REQUIRE(sqlite3_exec(db, "CREATE INDEX bindings_expires_at ON bindings (expires_at)", nullptr, nullptr, nullptr) ==
            SQLITE_OK);
  }
  f.open(60'000);
  CHECK(count_rows(f.path, "SELECT count(*) FROM sqlite_master WHERE name = 'bindings_expires_at'") == 0);
  CHECK(count_rows(f.path, "PRAGMA user_version") == 1);
}

TEST_CASE("the sqlite store flush returns only once the writer committed everything queued") {
  SqliteFile f(60'000);
  for (int i = 0; i < 2000; ++i) {
    replace(f.loop, *f.store, std::to_string(i) + "@example.com",
            {make_binding("10.0.0.5", now_s() + 600), make_binding("10.0.0.6", now_s() + 600)});
  }
  put_user(f.loop, *f.store, UserRecord{"100", "example.com", "aa", "bb"});
  f.store->flush();
  CHECK(f.store->queued_changes() == 0);
  CHECK(count_rows(f.path, kCountBindings) == 4000);
  CHECK(count_rows(f.path, "SELECT count(*) FROM users") == 1);
  f.store->flush();  // nothing queued: returns at once
}

TEST_CASE("a blocked sqlite write holds up neither the loop nor lookups, and is retried") {
  SqliteFile f(20);
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(f.path.c_str(), &other) == SQLITE_OK);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close_v2)> guard(other, &sqlite3_close_v2);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);

  // Keep changing one AoR while the writer waits on the lock: the flush timer keeps handing
  // batches over, and no loop turn may wait for the writer.
  int version = 0;
  auto longest = std::chrono::steady_clock::duration::zero();
  auto last = std::chrono::steady_clock::now();
  f.loop.run_until(
      [&] {
        auto t = std::chrono::steady_clock::now();
        longest = std::max(longest, t - last);
        last = t;
        Binding b = make_binding("10.0.0.5", now_s() + 600);
        b.cseq = ++version;
        replace(f.loop, *f.store, "100@example.com", {b});
        replace(f.loop, *f.store, std::to_string(version % 10) + "@example.com", {b});
        CHECK(lookup(f.loop, *f.store, "100@example.com")->bindings.at(0).cseq == version);
        return false;
      },
      1500ms);
  CHECK(longest < 300ms);  // a write waits up to its 1 s busy timeout
  CHECK(f.store->queued_changes() > 0);
  CHECK(count_rows(f.path, kCountBindings) == 0);

  REQUIRE(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
  // No flush(): the writer retries on its own after its backoff.
  REQUIRE(f.loop.run_until([&] { return f.store->queued_changes() == 0; }, 10'000ms));
  CHECK(count_rows(f.path, kCountBindings) == 11);
  f.store.reset();
  f.open(60'000);
  auto r = lookup(f.loop, *f.store, "100@example.com");
  REQUIRE(r->bindings.size() == 1);
  CHECK(r->bindings[0].cseq == version);  // the newest hand-off won over the failed ones
}

TEST_CASE("the sqlite store without an event loop writes every change through") {
  TempDir dir;
  Loop loop;  // only to drive the test helpers; the store is not given it
  std::string path = dir.path + "/relais.db";
  StoreSettings s;
  s.sqlite_path = path;
  std::string error;
  auto store = relais::open_location_store(s, nullptr, error);
  REQUIRE_MESSAGE(store != nullptr, error);
  replace(loop, *store, "100@example.com", {make_binding("10.0.0.5", now_s() + 600)});
  CHECK(count_rows(path, kCountBindings) == 1);
}

TEST_CASE("the sqlite store creates the parent directory and a versioned schema") {
  SqliteFile f(50);
  f.store.reset();
  f.path = f.dir.path + "/a/b/c/relais.db";
  f.open(50);
  CHECK(std::filesystem::exists(f.path));
  CHECK(count_rows(f.path, "PRAGMA user_version") == 1);
  CHECK(count_rows(f.path, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode='wal'") ==
        1);
}

TEST_CASE("opening the sqlite store on a file that is not a database fails with a message") {
  TempDir dir;
  Loop loop;
  std::string path = dir.path + "/junk.db";
  std::ofstream(path) << std::string(4096, 'x');
  StoreSettings s;
  s.sqlite_path = path;
  std::string error;
  CHECK(relais::open_location_store(s, loop.base.get(), error) == nullptr);
  CHECK(error.find("not a database") != std::string::npos);
  CHECK(error.find(path) != std::string::npos);

  s.sqlite_path = path + "/under-a-file/relais.db";
  error.clear();
  CHECK(relais::open_location_store(s, loop.base.get(), error) == nullptr);
  CHECK_FALSE(error.empty());
}

TEST_CASE("opening a location store with an unknown backend fails with a message") {
  Loop loop;
  StoreSettings s;
  s.backend = "mysql";
  std::string error;
  CHECK(relais::open_location_store(s, loop.base.get(), error) == nullptr);
  CHECK(error == "unknown store backend 'mysql'");
}

// ---- Redis only ----

TEST_CASE("the redis store gives an AoR key a TTL until its last binding expires") {
  RedisBackend b;
  int64_t now = now_s();
  replace(b.loop, *b.store, "100@example.com",
          {make_binding("10.0.0.5", now + 30), make_binding("10.0.0.6", now + 100)});
  SyncRedis r(b.env.server.port());
  REQUIRE(r.ok());
  auto ttl = r.cmd({"PTTL", "relais:loc:100@example.com"});
  REQUIRE(ttl);
  REQUIRE(ttl->type == REDIS_REPLY_INTEGER);
  CHECK(ttl->integer > 90'000);
  CHECK(ttl->integer <= 101'000);
  auto fields = r.cmd({"HLEN", "relais:loc:100@example.com"});
  CHECK(fields->integer == 2);
}

TEST_CASE("two redis store nodes see each other's writes") {
  RedisBackend b;
  std::string error;
  auto node_b = relais::open_location_store(b.env.settings(), b.loop.base.get(), error);
  REQUIRE(node_b);
  std::vector<Binding> set = {make_binding("10.0.0.5", now_s() + 600)};
  replace(b.loop, *b.store, "100@example.com", set);
  CHECK(lookup(b.loop, *node_b, "100@example.com")->bindings == set);
  UserRecord u{"200", "example.com", std::string(32, 'c'), ""};
  put_user(b.loop, *node_b, u);
  CHECK(find_user(b.loop, *b.store, "200", "example.com")->user == u);
  replace(b.loop, *node_b, "100@example.com", {});
  CHECK(lookup(b.loop, *b.store, "100@example.com")->bindings.empty());
}

TEST_CASE("the redis store fails requests while redis is down and recovers when it is back") {
  RedisBackend b;
  auto* redis = dynamic_cast<relais::RedisStore*>(b.store.get());
  REQUIRE(redis);
  REQUIRE(b.loop.run_until([&] { return redis->connected(); }));

  // Queued before the server dies, answered by the drop: an error, exactly once.
  OutcomePtr in_flight = await(b.loop, "in-flight lookup", [&](OutcomePtr o) {
    b.store->lookup("100@example.com", now_s(), on_lookup(o));
    b.env.server.stop();
  });
  CHECK_FALSE(in_flight->error.empty());
  b.loop.run_for(200ms);
  CHECK(in_flight->calls == 1);
  CHECK_FALSE(redis->connected());

  CHECK(lookup(b.loop, *b.store, "100@example.com")->error == "redis unavailable");
  CHECK(replace(b.loop, *b.store, "100@example.com", {make_binding("x", now_s() + 60)})->error ==
        "redis unavailable");
  CHECK_FALSE(find_user(b.loop, *b.store, "100", "example.com")->error.empty());
  CHECK_FALSE(put_user(b.loop, *b.store, UserRecord{"1", "d", "a", "b"})->error.empty());

  b.loop.run_for(1500ms);  // let the backoff grow past its first steps
  b.env.server.start();
  REQUIRE(b.loop.run_until([&] { return redis->connected(); }, 10'000ms));
  std::vector<Binding> set = {make_binding("10.0.0.5", now_s() + 600)};
  CHECK(replace(b.loop, *b.store, "100@example.com", set)->error.empty());
  CHECK(lookup(b.loop, *b.store, "100@example.com")->bindings == set);
}

TEST_CASE("the redis store completes requests in flight with an error when destroyed") {
  RedisBackend b;
  for (bool wait_connected : {false, true}) {
    CAPTURE(wait_connected);
    if (!b.store) b.open();
    auto* redis = dynamic_cast<relais::RedisStore*>(b.store.get());
    if (wait_connected) REQUIRE(b.loop.run_until([&] { return redis->connected(); }));
    auto looked = std::make_shared<Outcome>(), saved = std::make_shared<Outcome>();
    b.store->lookup("100@example.com", now_s(), on_lookup(looked));
    b.store->replace("100@example.com", {make_binding("10.0.0.5", now_s() + 60)}, on_save(saved));
    CHECK(looked->calls + saved->calls == 0);
    b.store.reset();
    b.loop.run_for(100ms);
    CHECK(looked->calls == 1);
    CHECK(saved->calls == 1);
    CHECK(looked->error == "redis unavailable");
    CHECK(saved->error == "redis unavailable");
  }
}

TEST_CASE("the redis store authenticates and selects its database") {
  TempDir dir;
  RedisServer server(dir.path, {"--requirepass", "s3cret"});
  Loop loop;
  StoreSettings s;
  s.backend = "redis";
  s.redis_port = server.port();
  s.redis_password = "s3cret";
  s.redis_db = 3;
  s.redis_prefix = "site1:";
  std::string error;
  auto store = relais::open_location_store(s, loop.base.get(), error);
  REQUIRE(store);
  std::vector<Binding> set = {make_binding("10.0.0.5", now_s() + 600)};
  CHECK(replace(loop, *store, "100@example.com", set)->error.empty());
  CHECK(lookup(loop, *store, "100@example.com")->bindings == set);

  SyncRedis r(server.port());
  REQUIRE(r.ok());
  r.cmd({"AUTH", "s3cret"});
  CHECK(r.cmd({"EXISTS", "site1:loc:100@example.com"})->integer == 0);
  r.cmd({"SELECT", "3"});
  CHECK(r.cmd({"EXISTS", "site1:loc:100@example.com"})->integer == 1);

  s.redis_password = "wrong";
  auto refused = relais::open_location_store(s, loop.base.get(), error);
  REQUIRE(refused);
  CHECK_FALSE(lookup(loop, *refused, "100@example.com")->error.empty());
}

TEST_CASE("the redis store gives up on a server that accepts but never answers") {
  // A bare listening socket: the kernel completes the TCP handshake, nothing ever replies.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  std::unique_ptr<int, void (*)(int*)> guard(&fd, [](int* p) { close(*p); });
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(listen(fd, 16) == 0);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  Loop loop;
  StoreSettings s;
  s.backend = "redis";
  s.redis_port = ntohs(a.sin_port);
  s.redis_password = "never-answered";
  std::string error;
  auto store = relais::open_location_store(s, loop.base.get(), error);
  REQUIRE(store);
  CHECK(lookup(loop, *store, "100@example.com")->error == "redis unavailable");
}
