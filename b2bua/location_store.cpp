// location_store.cpp — picks the LocationStore backend named in the settings.
#include "location_store.hpp"

#include "redis_store.hpp"
#include "sqlite_store.hpp"

namespace relais {

std::unique_ptr<LocationStore> open_location_store(const StoreSettings& settings, event_base* loop,
                                                   std::string& error) {
  if (settings.backend == "sqlite") {
    return SqliteStore::open(settings, loop, error);
  }
  if (settings.backend == "redis") {
    // Checked here because RedisStore only learns of a bad address by failing forever.
    if (!loop) {
      error = "redis store needs an event loop";
      return nullptr;
    }
    if (settings.redis_host.empty()) {
      error = "redis store: empty host";
      return nullptr;
    }
    if (settings.redis_port <= 0 || settings.redis_port > 65535) {
      error = "redis store: port " + std::to_string(settings.redis_port) + " out of range";
      return nullptr;
    }
    if (settings.redis_db < 0) {
      error = "redis store: negative database " + std::to_string(settings.redis_db);
      return nullptr;
    }
    return std::make_unique<RedisStore>(settings, loop);
  }
  error = "unknown store backend '" + settings.backend + "'";
  return nullptr;
}

}  // namespace relais
