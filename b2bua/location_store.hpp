// location_store.hpp — the asynchronous interface behind which registrations and users live.
// Two backends: SqliteStore (embedded default) and RedisStore (shared by several nodes).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "binding.hpp"

struct event_base;

namespace relais {

// Every completion gets an error text (empty on success). A backend may complete synchronously
// (inside the call) or later from the event loop; callers must handle both.
class LocationStore {
 public:
  using LookupDone = std::function<void(const std::string& error, std::vector<Binding> bindings)>;
  using SaveDone = std::function<void(const std::string& error)>;
  using UserDone = std::function<void(const std::string& error, std::optional<UserRecord> user)>;

  virtual ~LocationStore() = default;

  virtual const char* backend_name() const = 0;

  // Bindings of `aor` ("user@domain") that are still valid at unix time `now`.
  virtual void lookup(const std::string& aor, int64_t now, LookupDone done) = 0;

  // Replace the whole set of bindings of `aor` (an empty set removes the AoR). The registrar
  // reads, applies RFC 3261 §10.3 rules, then writes the result back in one call.
  virtual void replace(const std::string& aor, std::vector<Binding> bindings, SaveDone done) = 0;

  // Credentials provisioned in the store (config users are checked first).
  virtual void find_user(const std::string& user, const std::string& domain, UserDone done) = 0;
  virtual void put_user(const UserRecord& user, SaveDone done) = 0;

  // Write out anything buffered. Blocking; called on SIGTERM before exit.
  virtual void flush() = 0;
};

struct StoreSettings {
  std::string backend = "sqlite";           // "sqlite" | "redis"
  std::string sqlite_path = "var/relais.db";
  std::string redis_host = "127.0.0.1";
  int redis_port = 6379;
  std::string redis_password;               // AUTH if non-empty
  int redis_db = 0;
  std::string redis_prefix = "relais:";
  int sqlite_flush_ms = 200;                // write-behind batch interval
};

// Opens the configured backend. Returns nullptr and sets `error` when it cannot start
// (unreadable file, bad settings). A Redis server that is down is not an error here: the
// backend reconnects and fails requests until it is back.
std::unique_ptr<LocationStore> open_location_store(const StoreSettings& settings, event_base* loop,
                                                   std::string& error);

}  // namespace relais
