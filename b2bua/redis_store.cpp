// redis_store.cpp — LocationStore over hiredis async, reconnecting with backoff.
#include "redis_store.hpp"

#include "log.hpp"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <chrono>
#include <limits>

namespace relais {

namespace {

constexpr const char* kUnavailable = "redis unavailable";
constexpr int kBackoffMinMs = 100;
constexpr int kBackoffMaxMs = 2000;
// hiredis 0.14 has no connect timeout; a blackholed server would hold requests for the kernel's
// SYN retries (about two minutes). Covers AUTH/SELECT too.
constexpr int kConnectTimeoutMs = 1000;
constexpr auto kFlushWait = std::chrono::seconds(2);

void report(LogLevel level, const char* event, const std::string& detail) {
  LogLine(level, event).kv("backend", "redis").kv("error", detail);
}

std::string reply_string(const redisReply* r) {
  return r && r->str ? std::string(r->str, r->len) : std::string();
}

}  // namespace

// Heap-owned per command that has a callback; hiredis hands it back exactly once (with a NULL
// reply when the connection fails or the context is freed), and on_reply deletes it.
struct RedisStore::Request {
  RedisStore* store;
  ReplyFn fn;
};

void RedisStore::EventFree::operator()(event* ev) const { event_free(ev); }

RedisStore::RedisStore(const StoreSettings& settings, event_base* loop)
    : host_(settings.redis_host),
      port_(settings.redis_port),
      password_(settings.redis_password),
      db_(settings.redis_db),
      prefix_(settings.redis_prefix),
      loop_(loop),
      backoff_ms_(kBackoffMinMs),
      timer_(evtimer_new(loop, &RedisStore::on_timer, this)) {
  connect();
}

RedisStore::~RedisStore() {
  closing_ = true;
  timer_.reset();
  if (redisAsyncContext* ac = ctx_) {
    ctx_ = nullptr;
    // Completes every pending request with a NULL reply, then (if connected) calls
    // on_disconnect, which ignores it because closing_ is set.
    redisAsyncFree(ac);
  }
}

void RedisStore::connect() {
  redisAsyncContext* ac = redisAsyncConnect(host_.c_str(), port_);
  if (!ac || ac->err) {
    // Failed before any callback was registered (e.g. ECONNREFUSED straight from connect(2)):
    // hiredis will not free it for us.
    std::string why = ac ? ac->errstr : "out of memory";
    if (ac) redisAsyncFree(ac);
    connection_lost(why.c_str());
    return;
  }
  ac->data = this;
  // A peer that vanished without a FIN (host down, NAT state lost) is found by keepalive probes
  // instead of holding requests until the next write fails.
  redisEnableKeepAlive(&ac->c);
  redisLibeventAttach(ac, loop_);
  redisAsyncSetConnectCallback(ac, &RedisStore::on_connect);
  redisAsyncSetDisconnectCallback(ac, &RedisStore::on_disconnect);
  ctx_ = ac;
  state_ = State::connecting;
  arm_timer(kConnectTimeoutMs);

  // Queued ahead of any request, so requests made while connecting run authenticated. The
  // store counts as up only once these succeed, so a wrong password is one outage, logged once.
  handshake_pending_ = 0;
  auto check = [this](const char* what) {
    ++handshake_pending_;
    return [this, what](const std::string& error, const redisReply*) {
      if (error == kUnavailable) return;  // the connection itself failed; reported there
      if (!error.empty()) {
        if (!down_reported_) report(LogLevel::error, what, error);
        down_reported_ = true;
        // Keep retrying with backoff: the password or database may be fixed on the server.
        if (ctx_) redisAsyncDisconnect(ctx_);
        return;
      }
      if (--handshake_pending_ == 0) ready();
    };
  };
  if (!password_.empty()) send({{"AUTH", password_}}, check("store.auth_failed"));
  if (db_ != 0) send({{"SELECT", std::to_string(db_)}}, check("store.select_failed"));
}

void RedisStore::ready() {
  state_ = State::ready;
  backoff_ms_ = kBackoffMinMs;
  if (timer_) evtimer_del(timer_.get());
  if (down_reported_) {
    log_info("store.available").kv("backend", "redis");
    down_reported_ = false;
  }
}

void RedisStore::connection_lost(const char* why) {
  ctx_ = nullptr;
  if (!down_reported_) {
    report(LogLevel::warn, "store.unavailable", why);  // once per outage, not once per retry
    down_reported_ = true;
  }
  state_ = State::waiting;
  arm_timer(backoff_ms_);
  backoff_ms_ = std::min(backoff_ms_ * 2, kBackoffMaxMs);
}

void RedisStore::arm_timer(int ms) {
  if (!timer_) return;
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  evtimer_add(timer_.get(), &tv);
}

void RedisStore::on_timer(int, short, void* self) {
  auto* store = static_cast<RedisStore*>(self);
  if (store->state_ == State::waiting) {
    store->connect();
    return;
  }
  if (store->state_ == State::connecting && store->ctx_) {
    redisAsyncContext* ac = store->ctx_;
    store->ctx_ = nullptr;
    store->state_ = State::waiting;
    // Pending requests get a NULL reply; on_disconnect, if called, sees a context no longer
    // ours and leaves the retry to the line below.
    redisAsyncFree(ac);
    store->connection_lost("connect timeout");
  }
}

// Both connection callbacks ignore a context the store already let go of (timed out, or freed
// by the destructor): hiredis still reports on it while freeing it.
void RedisStore::on_connect(const redisAsyncContext* ac, int status) {
  auto* store = static_cast<RedisStore*>(ac->data);
  if (!store || store->closing_ || ac != store->ctx_) return;
  if (status != REDIS_OK) {
    store->connection_lost(ac->errstr);  // hiredis frees `ac` when this returns
    return;
  }
  if (store->handshake_pending_ == 0) store->ready();
}

void RedisStore::on_disconnect(const redisAsyncContext* ac, int status) {
  auto* store = static_cast<RedisStore*>(ac->data);
  if (!store || store->closing_ || ac != store->ctx_) return;
  store->connection_lost(status == REDIS_OK ? "disconnected" : ac->errstr);
}

void RedisStore::on_reply(redisAsyncContext*, void* reply, void* privdata) {
  std::unique_ptr<Request> req(static_cast<Request*>(privdata));
  --req->store->outstanding_;
  auto* r = static_cast<const redisReply*>(reply);
  std::string error;
  if (!r) {
    error = kUnavailable;
  } else if (r->type == REDIS_REPLY_ERROR) {
    error = reply_string(r);
    if (error.empty()) error = "redis error";
  }
  try {
    req->fn(error, error.empty() ? r : nullptr);
  } catch (const std::exception& e) {
    // Unwinding through hiredis (C) would corrupt its callback list.
    report(LogLevel::error, "store.callback_threw", e.what());
  } catch (...) {
    report(LogLevel::error, "store.callback_threw", "unknown exception");
  }
}

void RedisStore::send(const std::vector<Command>& commands, ReplyFn fn) {
  if (closing_ || !ctx_) {
    fn(kUnavailable, nullptr);
    return;
  }
  for (size_t i = 0; i < commands.size(); ++i) {
    const Command& cmd = commands[i];
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const std::string& a : cmd) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    bool last = i + 1 == commands.size();
    auto* req = last ? new Request{this, std::move(fn)} : nullptr;
    // hiredis refuses commands while the context is disconnecting or being freed, e.g. when a
    // completion of a dropped connection issues a new request.
    int rc = redisAsyncCommandArgv(ctx_, last ? &RedisStore::on_reply : nullptr, req,
                                   static_cast<int>(argv.size()), argv.data(), lens.data());
    if (rc != REDIS_OK) {
      // Earlier commands of this pipeline may be queued without a callback; only the final
      // one reports, so the caller still hears exactly once.
      ReplyFn f = req ? std::move(req->fn) : std::move(fn);
      delete req;
      f(kUnavailable, nullptr);
      return;
    }
    if (req) ++outstanding_;
  }
}

void RedisStore::lookup(const std::string& aor, int64_t now, LookupDone done) {
  send({{"HGETALL", key_loc(aor)}}, [done = std::move(done), aor, now](const std::string& error,
                                                                     const redisReply* r) {
    std::vector<Binding> out;
    if (!error.empty()) return done(error, {});
    if (r->type != REDIS_REPLY_ARRAY) return done("unexpected reply to HGETALL", {});
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
      const redisReply* v = r->element[i + 1];
      Binding b;
      if (v->type != REDIS_REPLY_STRING || !binding_from_json(reply_string(v), b)) {
        report(LogLevel::warn, "store.bad_value", "unreadable binding of " + aor);
        continue;
      }
      if (b.expires_at > now) out.push_back(std::move(b));
    }
    normalize_bindings(out);
    done({}, std::move(out));
  });
}

namespace {

// A MULTI/EXEC reply is an array of per-command replies; nil when the transaction aborted.
std::string exec_error(const redisReply* r) {
  if (r->type != REDIS_REPLY_ARRAY) return "transaction aborted";
  for (size_t i = 0; i < r->elements; ++i) {
    if (r->element[i]->type == REDIS_REPLY_ERROR) return reply_string(r->element[i]);
  }
  return {};
}

}  // namespace

void RedisStore::replace(const std::string& aor, std::vector<Binding> bindings, SaveDone done) {
  normalize_bindings(bindings);
  std::string key = key_loc(aor);
  if (bindings.empty()) {
    send({{"DEL", key}}, [done = std::move(done)](const std::string& error, const redisReply*) {
      done(error);
    });
    return;
  }
  Command hset{"HSET", key};
  int64_t latest = std::numeric_limits<int64_t>::min();
  for (const Binding& b : bindings) {
    hset.push_back(b.key);
    hset.push_back(binding_to_json(b));
    latest = std::max(latest, b.expires_at);
  }
  // Seconds → ms without overflow; a TTL beyond year 292 million is as good as none.
  constexpr int64_t kMaxSeconds = std::numeric_limits<int64_t>::max() / 1000;
  int64_t at_ms = std::clamp<int64_t>(latest, 0, kMaxSeconds) * 1000;
  send({{"MULTI"}, {"DEL", key}, std::move(hset), {"PEXPIREAT", key, std::to_string(at_ms)},
        {"EXEC"}},
       [done = std::move(done)](const std::string& error, const redisReply* r) {
         done(error.empty() ? exec_error(r) : error);
       });
}

void RedisStore::find_user(const std::string& user, const std::string& domain, UserDone done) {
  send({{"HGETALL", key_user(user, domain)}},
       [done = std::move(done), user, domain](const std::string& error, const redisReply* r) {
         if (!error.empty()) return done(error, std::nullopt);
         if (r->type != REDIS_REPLY_ARRAY) return done("unexpected reply to HGETALL", std::nullopt);
         if (r->elements == 0) return done({}, std::nullopt);  // no such key
         UserRecord u{user, domain, {}, {}};
         for (size_t i = 0; i + 1 < r->elements; i += 2) {
           std::string field = reply_string(r->element[i]);
           if (field == "ha1_md5") u.ha1_md5 = reply_string(r->element[i + 1]);
           if (field == "ha1_sha256") u.ha1_sha256 = reply_string(r->element[i + 1]);
         }
         done({}, std::move(u));
       });
}

void RedisStore::put_user(const UserRecord& user, SaveDone done) {
  std::string key = key_user(user.user, user.domain);
  send({{"MULTI"},
        {"DEL", key},
        {"HSET", key, "ha1_md5", user.ha1_md5, "ha1_sha256", user.ha1_sha256},
        {"EXEC"}},
       [done = std::move(done)](const std::string& error, const redisReply* r) {
         done(error.empty() ? exec_error(r) : error);
       });
}

void RedisStore::flush() {
  if (outstanding_ == 0 || !loop_) return;
  // A short timer so EVLOOP_ONCE cannot block past the deadline when no reply comes.
  std::unique_ptr<event, EventFree> tick(evtimer_new(loop_, [](int, short, void*) {}, nullptr));
  auto deadline = std::chrono::steady_clock::now() + kFlushWait;
  while (outstanding_ > 0 && ctx_ && std::chrono::steady_clock::now() < deadline) {
    timeval tv{0, 50'000};
    evtimer_add(tick.get(), &tv);
    if (event_base_loop(loop_, EVLOOP_ONCE) < 0) break;  // already inside the loop
  }
}

}  // namespace relais
