// redis_store.hpp — LocationStore on a Redis server shared by several relais nodes.
//
// Layout: `<prefix>loc:<aor>` is a hash, one field per binding key holding binding_to_json(),
// whose PEXPIREAT is the latest expires_at so an AoR vanishes when its last binding does;
// `<prefix>user:<user>@<domain>` is a hash with fields ha1_md5 and ha1_sha256.
//
// hiredis async on the caller's event loop; single-threaded, use from the loop thread only and
// destroy before the event_base. Completions normally fire from the loop; while the server is
// unreachable a request fails with "redis unavailable" inside the call. Every completion fires
// exactly once, including requests in flight when the connection drops or the store is
// destroyed (those see "redis unavailable"). Do not destroy the store from one of its own
// completions.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "location_store.hpp"

struct event;
struct redisAsyncContext;
struct redisReply;

namespace relais {

class RedisStore final : public LocationStore {
 public:
  // Starts connecting at once; a server that is down is retried with backoff, not an error.
  RedisStore(const StoreSettings& settings, event_base* loop);
  ~RedisStore() override;

  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  const char* backend_name() const override { return "redis"; }
  void lookup(const std::string& aor, int64_t now, LookupDone done) override;
  void replace(const std::string& aor, std::vector<Binding> bindings, SaveDone done) override;
  void find_user(const std::string& user, const std::string& domain, UserDone done) override;
  void put_user(const UserRecord& user, SaveDone done) override;
  // Writes are sent at once; this only waits (≤ 2 s) for replies still outstanding by running
  // the loop, so call it after event_base_loop has returned, never from inside a loop callback.
  void flush() override;

  bool connected() const { return state_ == State::ready; }

 private:
  enum class State { waiting, connecting, ready };
  using Command = std::vector<std::string>;
  // Gets the error text (empty on success) and, on success, the reply of the last command.
  using ReplyFn = std::function<void(const std::string& error, const redisReply* reply)>;
  struct Request;
  struct EventFree {
    void operator()(event* ev) const;
  };

  void connect();
  void ready();  // connected, authenticated and on the right database
  void connection_lost(const char* why);
  void arm_timer(int ms);
  // Pipelines `commands`; only the last one's reply reaches `fn`. Fails in the call when there
  // is no connection to queue on.
  void send(const std::vector<Command>& commands, ReplyFn fn);
  std::string key_loc(const std::string& aor) const { return prefix_ + "loc:" + aor; }
  std::string key_user(const std::string& user, const std::string& domain) const {
    return prefix_ + "user:" + user + "@" + domain;
  }

  static void on_connect(const redisAsyncContext* ac, int status);
  static void on_disconnect(const redisAsyncContext* ac, int status);
  static void on_reply(redisAsyncContext* ac, void* reply, void* privdata);
  static void on_timer(int fd, short what, void* self);

  std::string host_;
  int port_;
  std::string password_;
  int db_;
  std::string prefix_;
  event_base* loop_;

  // Owned until hiredis reports the connection gone: it frees the context itself after the
  // connect-failed and disconnect callbacks, so those only drop this pointer.
  redisAsyncContext* ctx_ = nullptr;
  State state_ = State::waiting;
  int backoff_ms_;
  std::unique_ptr<event, EventFree> timer_;  // reconnect delay, or connect+handshake timeout
  size_t outstanding_ = 0;
  bool closing_ = false;
  bool down_reported_ = false;  // log an outage once, not at every retry
  int handshake_pending_ = 0;   // AUTH/SELECT replies still awaited on this connection
};

}  // namespace relais
