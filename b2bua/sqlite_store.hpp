// sqlite_store.hpp — embedded LocationStore: memory answers, one SQLite file remembers.
//
// At open every unexpired binding and every user is loaded into memory; that copy is
// authoritative for this node, so lookups and writes complete synchronously, inside the call.
// Changes are queued and written in one transaction per flush interval (write-behind), on a
// libevent timer of the loop given to open(). Single-threaded: use it from the loop thread only,
// and destroy it before the event_base.
#pragma once

#include <sqlite3.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>

#include "location_store.hpp"

struct event;

namespace relais {

class SqliteStore final : public LocationStore {
 public:
  // nullptr and `error` set when the file cannot be created, opened or migrated. With a null
  // `loop` there is no timer: every change is written before the call returns.
  static std::unique_ptr<SqliteStore> open(const StoreSettings& settings, event_base* loop,
                                           std::string& error);
  ~SqliteStore() override;  // flushes

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  const char* backend_name() const override { return "sqlite"; }
  void lookup(const std::string& aor, int64_t now, LookupDone done) override;
  void replace(const std::string& aor, std::vector<Binding> bindings, SaveDone done) override;
  void find_user(const std::string& user, const std::string& domain, UserDone done) override;
  void put_user(const UserRecord& user, SaveDone done) override;
  void flush() override;

  // Drops bindings expired at `now` from memory and file; runs on its own timer too.
  void purge_expired(int64_t now);
  // Number of AoRs and users waiting to be written (tests, metrics).
  size_t queued_changes() const { return dirty_aors_.size() + dirty_users_.size(); }

 private:
  struct DbClose {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  struct StmtFinalize {
    void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
  };
  struct EventFree {
    void operator()(event* ev) const;
  };
  using Db = std::unique_ptr<sqlite3, DbClose>;
  using Stmt = std::unique_ptr<sqlite3_stmt, StmtFinalize>;
  using Timer = std::unique_ptr<event, EventFree>;
  using UserKey = std::pair<std::string, std::string>;  // user, domain

  SqliteStore() = default;
  bool init(const StoreSettings& settings, event_base* loop, std::string& error);
  bool migrate(std::string& error);
  bool prepare(std::string& error);
  bool load(int64_t now, std::string& error);
  void queue_changed();
  // Writes every queued change in one transaction; false (and data still queued) on error.
  bool write_queued(std::string& error);
  void arm_flush_timer(int delay_ms);
  static void on_flush_timer(int fd, short what, void* self);
  static void on_purge_timer(int fd, short what, void* self);

  std::string path_;
  int flush_ms_ = 200;
  // Declaration order matters: statements are finalized before the handle closes.
  Db db_;
  Stmt begin_, commit_, rollback_, delete_aor_, insert_binding_, upsert_user_, purge_;
  Timer flush_timer_, purge_timer_;
  bool flush_armed_ = false;

  std::unordered_map<std::string, std::vector<Binding>> bindings_;  // sorted by key
  std::map<UserKey, UserRecord> users_;
  std::set<std::string> dirty_aors_;
  std::set<UserKey> dirty_users_;
};

}  // namespace relais
