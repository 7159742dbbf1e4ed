// sqlite_store.hpp — embedded LocationStore: memory answers, one SQLite file remembers.
//
// At open every unexpired binding and every user is loaded into memory; that copy is
// authoritative for this node, so lookups and writes complete synchronously, inside the call.
// Changes are batched on a libevent timer of the loop given to open() (write-behind) and handed
// to one writer thread owned by the store, which alone uses the SQLite connection after open:
// commits, WAL checkpoints and their fdatasync stay off the SIP loop. Not otherwise
// thread-safe: call it from the loop thread only, and destroy it before the event_base.
#pragma once

#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
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
  ~SqliteStore() override;  // flushes, then stops the writer

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  const char* backend_name() const override { return "sqlite"; }
  void lookup(const std::string& aor, int64_t now, LookupDone done) override;
  void replace(const std::string& aor, std::vector<Binding> bindings, SaveDone done) override;
  void find_user(const std::string& user, const std::string& domain, UserDone done) override;
  void put_user(const UserRecord& user, SaveDone done) override;
  // Hands every change to the writer and returns once it has made one attempt to commit them
  // all (at most 10 s). A failed attempt leaves them queued; the writer retries.
  void flush() override;

  // Drops bindings expired at `now` from memory at once and from the file in the writer's next
  // transaction (flush() to wait for it); runs on its own timer too.
  void purge_expired(int64_t now);
  // AoRs and users changed but not yet committed, counted once per stage (loop, queue, being
  // written): an AoR changed again while its previous version is written counts twice.
  size_t queued_changes() const;

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

  // An AoR's binding set as the loop last stored it. Never modified once stored (a change
  // stores a new one), so the writer reads it while the loop moves on: handing a batch over
  // copies pointers, not bindings.
  using BindingSet = std::shared_ptr<const std::vector<Binding>>;
  // One AoR's new binding set and the keys it lost since its last hand-off: the writer upserts
  // the set and deletes those keys, rather than deleting and re-inserting every row of the AoR
  // (a refresh is then one statement instead of two).
  struct AorChange {
    BindingSet bindings;               // null or empty: the AoR has none left
    std::vector<std::string> removed;  // keys to delete (unless `bindings` has them again)
  };
  // What changed, handed from the loop to the writer. Merging keeps the newer entry of a key
  // (and every key either side removed).
  struct Batch {
    std::unordered_map<std::string, AorChange> aors;
    std::map<UserKey, UserRecord> users;
    int64_t purge_before = 0;  // 0: no purge
    size_t size() const { return aors.size() + users.size(); }
    bool empty() const { return size() == 0 && purge_before == 0; }
    void merge_older(Batch&& older);
  };

  SqliteStore() = default;
  bool init(const StoreSettings& settings, event_base* loop, std::string& error);
  bool migrate(std::string& error);
  bool prepare(std::string& error);
  bool load(int64_t now, std::string& error);
  void queue_changed();
  // Loop thread: copies the dirty AoRs and users into a batch for the writer.
  void hand_off();
  void enqueue(Batch batch);
  // Writer thread only after start-up.
  void writer_main();
  bool write_batch(const Batch& batch, std::string& error);
  void arm_flush_timer(int delay_ms);
  static void on_flush_timer(int fd, short what, void* self);
  static void on_purge_timer(int fd, short what, void* self);

  std::string path_;
  int flush_ms_ = 200;
  // Used by the caller of open() until the writer starts, then by the writer alone.
  // Declaration order matters: statements are finalized before the handle closes.
  Db db_;
  Stmt begin_, commit_, rollback_, delete_binding_, upsert_binding_, upsert_user_, purge_;
  Timer flush_timer_, purge_timer_;
  bool flush_armed_ = false;

  // Loop thread only.
  std::unordered_map<std::string, BindingSet> bindings_;  // each sorted by key, never empty
  std::map<UserKey, UserRecord> users_;
  // AoRs changed since the last hand-off, with the keys they lost; their `bindings` are taken
  // from bindings_ at hand-off.
  std::unordered_map<std::string, AorChange> dirty_aors_;
  // Rows that could not be read at open, by AoR: deleted with the AoR's next write.
  std::unordered_map<std::string, std::vector<std::string>> unreadable_;
  std::set<UserKey> dirty_users_;

  // Shared with the writer, under mutex_. Hand-offs are numbered; flush() waits until the writer
  // has attempted the one it made (attempted_), and sets urgent_ to cut a retry backoff short.
  mutable std::mutex mutex_;
  std::condition_variable work_cv_, done_cv_;
  Batch pending_;
  uint64_t handed_ = 0, attempted_ = 0, urgent_ = 0;
  bool writing_ = false;
  size_t writing_changes_ = 0;
  bool stop_ = false;
  std::thread writer_;  // last: started once everything above exists
};

}  // namespace relais
