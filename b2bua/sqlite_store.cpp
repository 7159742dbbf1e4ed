// sqlite_store.cpp — embedded LocationStore: in-memory maps with write-behind to one SQLite file.
#include "sqlite_store.hpp"

#include "log.hpp"

#include <event2/event.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>

namespace relais {

namespace {

constexpr int kSchemaVersion = 1;
constexpr int kPurgeIntervalMs = 30'000;
// Only the writer thread waits for another process holding the write lock (an admin shell, a
// backup); flush() at shutdown waits for one such attempt, so keep it short of a second.
constexpr int kBusyTimeoutMs = 1000;
constexpr int kRetryMinMs = 1000;
constexpr int kRetryMaxMs = 30'000;
// flush() blocks its caller (shutdown, --add-user): bound it even if the disk hangs.
constexpr auto kFlushWait = std::chrono::seconds(10);
constexpr int kWriterNice = 10;

constexpr const char* kSchema = R"sql(
CREATE TABLE bindings (
  aor TEXT NOT NULL,
  key TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  data TEXT NOT NULL,            -- binding_to_json(), so new fields need no migration
  PRIMARY KEY (aor, key)
) WITHOUT ROWID;
CREATE TABLE users (
  user TEXT NOT NULL,
  domain TEXT NOT NULL,
  ha1_md5 TEXT NOT NULL,
  ha1_sha256 TEXT NOT NULL,
  PRIMARY KEY (user, domain)
) WITHOUT ROWID;
)sql";

void report(const char* event, const std::string& detail) {
  log_error(event).kv("backend", "sqlite").kv("error", detail);
}

timeval ms_to_timeval(int ms) { return timeval{ms / 1000, (ms % 1000) * 1000}; }

// Binds by position; TEXT is copied (SQLITE_TRANSIENT) because callers pass temporaries. (The
// binding upsert binds with SQLITE_STATIC instead: its strings outlive the statement's step,
// and run() resets and clears the bindings before they change.)
void bind_text(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

std::string column_text(sqlite3_stmt* s, int i) {
  auto p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s, i))) : std::string();
}

// Steps a statement that returns no rows and resets it for the next use.
bool run(sqlite3_stmt* s) {
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return rc == SQLITE_DONE;
}

}  // namespace

void SqliteStore::EventFree::operator()(event* ev) const { event_free(ev); }

std::unique_ptr<SqliteStore> SqliteStore::open(const StoreSettings& settings, event_base* loop,
                                               std::string& error) {
  std::unique_ptr<SqliteStore> store(new SqliteStore());
  if (!store->init(settings, loop, error)) {
    error = "sqlite store " + settings.sqlite_path + ": " + error;
    return nullptr;
  }
  return store;
}

bool SqliteStore::init(const StoreSettings& settings, event_base* loop, std::string& error) {
  path_ = settings.sqlite_path;
  flush_ms_ = std::max(1, settings.sqlite_flush_ms);
  if (path_.empty()) {
    error = "empty path";
    return false;
  }
  std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      error = "cannot create directory " + parent.string() + ": " + ec.message();
      return false;
    }
  }
  sqlite3* raw = nullptr;
  // The connection is used by one thread at a time (this one, then the writer), so SQLite's
  // own per-call mutex is not needed (NOMUTEX: multi-thread mode); its memory statistics would
  // take a global mutex on every allocation. Both were ~1 % of relais's CPU under load.
  // Set once, before the first store's writer thread exists (sqlite3_config is not thread-safe;
  // it returns SQLITE_MISUSE and changes nothing if SQLite is already initialized).
  static const bool configured = (sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0), true);
  (void)configured;
  int rc = sqlite3_open_v2(path_.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  db_.reset(raw);  // sqlite3_open_v2 hands out a handle even on failure; it must be closed
  if (rc != SQLITE_OK) {
    error = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    return false;
  }
  sqlite3_busy_timeout(db_.get(), kBusyTimeoutMs);
  // WAL + synchronous=NORMAL: a commit is one sequential append without fsync; a power cut can
  // lose the last flushes but never corrupts the file, and the write-behind already accepts that
  // window. The WAL auto-checkpoint (default 1000 pages) does fsync, but it runs inside a commit,
  // so on the writer thread. journal_mode answers with a row, hence exec rather than a step.
  if (sqlite3_exec(db_.get(), "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", nullptr,
                   nullptr, nullptr) != SQLITE_OK) {
    error = sqlite3_errmsg(db_.get());
    return false;
  }
  if (!migrate(error)) return false;
  // Files made by earlier versions have an index on expires_at. It served only the purge
  // every 30 s, yet every binding write had to move its entry: measured ~25 % of the cost of a
  // write. The purge scans instead (a few ms per 100,000 bindings). Dropping it needs no schema
  // version, so an older relais still opens the file.
  if (sqlite3_exec(db_.get(), "DROP INDEX IF EXISTS bindings_expires_at", nullptr, nullptr, nullptr) != SQLITE_OK) {
    error = sqlite3_errmsg(db_.get());
    return false;
  }
  if (!prepare(error)) return false;
  if (!load(static_cast<int64_t>(std::time(nullptr)), error)) return false;

  if (loop) {
    flush_timer_.reset(evtimer_new(loop, &SqliteStore::on_flush_timer, this));
    purge_timer_.reset(event_new(loop, -1, EV_PERSIST, &SqliteStore::on_purge_timer, this));
    if (!flush_timer_ || !purge_timer_) {
      error = "cannot create timers";
      return false;
    }
    timeval tv = ms_to_timeval(kPurgeIntervalMs);
    evtimer_add(purge_timer_.get(), &tv);
  }
  // From here on the connection belongs to the writer; the thread start orders everything above
  // before its first use there.
  writer_ = std::thread(&SqliteStore::writer_main, this);
  return true;
}

bool SqliteStore::migrate(std::string& error) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db_.get(), "PRAGMA user_version", -1, &raw, nullptr) != SQLITE_OK) {
    error = sqlite3_errmsg(db_.get());
    return false;
  }
  Stmt s(raw);
  if (sqlite3_step(s.get()) != SQLITE_ROW) {
    error = sqlite3_errmsg(db_.get());
    return false;
  }
  int version = sqlite3_column_int(s.get(), 0);
  s.reset();
  if (version == kSchemaVersion) return true;
  if (version > kSchemaVersion) {
    error = "schema version " + std::to_string(version) + " is newer than this relais supports (" +
            std::to_string(kSchemaVersion) + ")";
    return false;
  }
  // Version 0 is a fresh file. Later versions add ALTER steps here, each in this transaction.
  std::string sql = std::string("BEGIN;") + kSchema + "PRAGMA user_version=" +
                    std::to_string(kSchemaVersion) + ";COMMIT;";
  if (sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
    error = sqlite3_errmsg(db_.get());
    sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    return false;
  }
  return true;
}

bool SqliteStore::prepare(std::string& error) {
  struct {
    Stmt* stmt;
    const char* sql;
  } const all[] = {
      {&begin_, "BEGIN IMMEDIATE"},
      {&commit_, "COMMIT"},
      {&rollback_, "ROLLBACK"},
      {&delete_binding_, "DELETE FROM bindings WHERE aor = ?1 AND key = ?2"},
      {&upsert_binding_,
       "INSERT INTO bindings (aor, key, expires_at, data) VALUES (?1, ?2, ?3, ?4) "
       "ON CONFLICT (aor, key) DO UPDATE SET expires_at = excluded.expires_at, data = excluded.data"},
      {&upsert_user_,
       "INSERT INTO users (user, domain, ha1_md5, ha1_sha256) VALUES (?1, ?2, ?3, ?4) "
       "ON CONFLICT (user, domain) DO UPDATE SET ha1_md5 = excluded.ha1_md5, "
       "ha1_sha256 = excluded.ha1_sha256"},
      {&purge_, "DELETE FROM bindings WHERE expires_at <= ?1"},
  };
  for (const auto& p : all) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v3(db_.get(), p.sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr) !=
        SQLITE_OK) {
      error = sqlite3_errmsg(db_.get());
      return false;
    }
    p.stmt->reset(raw);
  }
  return true;
}

bool SqliteStore::load(int64_t now, std::string& error) {
  sqlite3_bind_int64(purge_.get(), 1, now);
  if (!run(purge_.get())) {
    error = sqlite3_errmsg(db_.get());
    return false;
  }
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db_.get(), "SELECT aor, data, key FROM bindings ORDER BY aor, key", -1, &raw,
                         nullptr) != SQLITE_OK) {
    error = sqlite3_errmsg(db_.get());
    return false;
  }
  Stmt rows(raw);
  int rc;
  std::unordered_map<std::string, std::vector<Binding>> loaded;
  while ((rc = sqlite3_step(rows.get())) == SQLITE_ROW) {
    std::string aor = column_text(rows.get(), 0);
    Binding b;
    if (!binding_from_json(column_text(rows.get(), 1), b)) {
      // One bad row must not keep the registrar from starting; the next write of this AoR
      // replaces it.
      report("store.bad_row", "unreadable binding of " + aor);
      unreadable_[aor].push_back(column_text(rows.get(), 2));
      continue;
    }
    loaded[aor].push_back(std::move(b));
  }
  if (rc != SQLITE_DONE) {
    error = sqlite3_errmsg(db_.get());
    return false;
  }
  for (auto& [aor, set] : loaded) bindings_.emplace(aor, std::make_shared<const std::vector<Binding>>(std::move(set)));
  if (sqlite3_prepare_v2(db_.get(), "SELECT user, domain, ha1_md5, ha1_sha256 FROM users", -1,
                         &raw, nullptr) != SQLITE_OK) {
    error = sqlite3_errmsg(db_.get());
    return false;
  }
  rows.reset(raw);
  while ((rc = sqlite3_step(rows.get())) == SQLITE_ROW) {
    UserRecord u{column_text(rows.get(), 0), column_text(rows.get(), 1),
                 column_text(rows.get(), 2), column_text(rows.get(), 3)};
    users_[{u.user, u.domain}] = std::move(u);
  }
  if (rc != SQLITE_DONE) {
    error = sqlite3_errmsg(db_.get());
    return false;
  }
  return true;
}

SqliteStore::~SqliteStore() {
  // Timers first: a destroyed store must never be called back, even if the flush fails.
  flush_timer_.reset();
  purge_timer_.reset();
  if (!writer_.joinable()) return;  // open() failed before the writer started
  flush();
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_one();
  writer_.join();
}

void SqliteStore::lookup(const std::string& aor, int64_t now, LookupDone done) {
  std::vector<Binding> out;
  if (auto it = bindings_.find(aor); it != bindings_.end()) {
    for (const Binding& b : *it->second) {
      if (b.expires_at > now) out.push_back(b);
    }
  }
  done({}, std::move(out));
}

void SqliteStore::replace(const std::string& aor, std::vector<Binding> bindings, SaveDone done) {
  normalize_bindings(bindings);
  auto [dirty, fresh] = dirty_aors_.try_emplace(aor);
  std::vector<std::string>& removed = dirty->second.removed;
  if (fresh) {
    if (auto bad = unreadable_.find(aor); bad != unreadable_.end()) {
      removed = std::move(bad->second);
      unreadable_.erase(bad);
    }
  }
  auto it = bindings_.find(aor);
  if (it != bindings_.end()) {
    // Both sets are ordered by key (normalize_bindings): the keys only the old one has are gone.
    auto next = bindings.begin();
    for (const Binding& old : *it->second) {
      while (next != bindings.end() && next->key < old.key) ++next;
      if (next == bindings.end() || next->key != old.key) removed.push_back(old.key);
    }
  }
  if (bindings.empty()) {
    if (it != bindings_.end()) bindings_.erase(it);
  } else {
    auto set = std::make_shared<const std::vector<Binding>>(std::move(bindings));
    if (it != bindings_.end())
      it->second = std::move(set);
    else
      bindings_.emplace(aor, std::move(set));
  }
  queue_changed();
  done({});
}

void SqliteStore::find_user(const std::string& user, const std::string& domain, UserDone done) {
  auto it = users_.find({user, domain});
  if (it == users_.end()) {
    done({}, std::nullopt);
  } else {
    done({}, it->second);
  }
}

void SqliteStore::put_user(const UserRecord& user, SaveDone done) {
  UserKey k{user.user, user.domain};
  users_[k] = user;
  dirty_users_.insert(std::move(k));
  queue_changed();
  done({});
}

size_t SqliteStore::queued_changes() const {
  std::lock_guard lock(mutex_);
  return dirty_aors_.size() + dirty_users_.size() + pending_.size() + writing_changes_;
}

void SqliteStore::flush() {
  hand_off();
  std::unique_lock lock(mutex_);
  uint64_t target;
  if (!pending_.empty()) {
    target = ++handed_;  // a new number, so a writer backing off after a failure tries again now
  } else if (writing_) {
    target = handed_;  // nothing queued since the writer took its batch
  } else {
    return;
  }
  urgent_ = target;
  work_cv_.notify_one();
  if (done_cv_.wait_for(lock, kFlushWait, [&] { return attempted_ >= target; })) return;
  size_t left = pending_.size() + writing_changes_;
  lock.unlock();
  log_error("store.flush_timeout").kv("backend", "sqlite").kv("queued", left)
      .kv("wait_s", static_cast<long>(kFlushWait.count()));
}

void SqliteStore::queue_changed() {
  if (!flush_timer_) {
    flush();  // no loop to batch on: write through
    return;
  }
  if (!flush_armed_) arm_flush_timer(flush_ms_);
}

void SqliteStore::arm_flush_timer(int delay_ms) {
  timeval tv = ms_to_timeval(delay_ms);
  evtimer_add(flush_timer_.get(), &tv);
  flush_armed_ = true;
}

void SqliteStore::hand_off() {
  if (dirty_aors_.empty() && dirty_users_.empty()) return;
  // Copies, not JSON: serializing is most of the cost of a write and now runs on the writer.
  // Pointers to the current sets, no copies: this runs on the SIP loop, which stalled for
  // milliseconds copying thousands of binding sets every flush under load.
  Batch batch;
  for (auto& [aor, change] : dirty_aors_) {
    auto it = bindings_.find(aor);
    change.bindings = it == bindings_.end() ? nullptr : it->second;
  }
  batch.aors = std::move(dirty_aors_);
  dirty_aors_ = {};
  for (const UserKey& k : dirty_users_) {
    if (auto it = users_.find(k); it != users_.end()) batch.users.emplace(k, it->second);
  }
  dirty_aors_.clear();
  dirty_users_.clear();
  enqueue(std::move(batch));
}

void SqliteStore::enqueue(Batch batch) {
  {
    std::lock_guard lock(mutex_);
    batch.merge_older(std::move(pending_));
    pending_ = std::move(batch);
    ++handed_;
  }
  work_cv_.notify_one();
}

void SqliteStore::Batch::merge_older(Batch&& older) {
  if (aors.empty()) {
    aors = std::move(older.aors);
  } else {
    for (auto& [aor, change] : older.aors) {
      auto [it, absent] = aors.try_emplace(aor);
      if (absent) {
        it->second = std::move(change);
      } else {  // ours is newer: its bindings, and the keys both removed
        std::vector<std::string>& removed = it->second.removed;
        removed.insert(removed.end(), std::make_move_iterator(change.removed.begin()),
                       std::make_move_iterator(change.removed.end()));
      }
    }
  }
  users.merge(older.users);
  purge_before = std::max(purge_before, older.purge_before);
}

void SqliteStore::writer_main() {
  // Below the SIP loop's priority (nice +10, ~10 % of a contended core): the loop is what
  // phones wait on, the writer only has to keep up over seconds. Sharing the core at equal
  // weight, each 200 ms batch slowed the loop enough under load to let ~200 requests queue in
  // its socket (register.py saturation runs). Raising one's own nice needs no privilege.
  setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kWriterNice);
  int backoff_ms = 0;  // non-zero while writes fail
  int failures = 0;
  std::string last_error;
  std::unique_lock lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || !pending_.empty(); });
    if (backoff_ms > 0) {
      work_cv_.wait_for(lock, std::chrono::milliseconds(backoff_ms),
                        [&] { return stop_ || urgent_ > attempted_; });
    }
    if (stop_) break;
    Batch batch = std::move(pending_);
    pending_ = Batch{};
    uint64_t seq = handed_;
    writing_ = true;
    writing_changes_ = batch.size();
    lock.unlock();

    std::string error;
    bool ok = write_batch(batch, error);

    lock.lock();
    if (!ok) pending_.merge_older(std::move(batch));  // newer hand-offs win per AoR and user
    writing_ = false;
    writing_changes_ = 0;
    attempted_ = seq;
    done_cv_.notify_all();
    lock.unlock();
    if (ok) {
      if (failures > 0) {
        log_notice("store.flush_recovered").kv("backend", "sqlite").kv("failures", failures);
      }
      backoff_ms = 0;
      failures = 0;
      last_error.clear();
    } else {
      // One line per failure streak (or when the reason changes), not one per retry.
      if (failures == 0 || error != last_error) report("store.flush_failed", error);
      ++failures;
      last_error = error;
      backoff_ms = std::min(kRetryMaxMs, std::max({backoff_ms * 2, flush_ms_, kRetryMinMs}));
    }
    lock.lock();
  }
  size_t left = pending_.size();
  lock.unlock();
  if (left > 0) {
    log_error("store.unsaved").kv("backend", "sqlite").kv("changes", left).kv("error", last_error);
  }
  // Closing checkpoints the WAL: that too stays off the caller's thread.
  begin_.reset();
  commit_.reset();
  rollback_.reset();
  delete_binding_.reset();
  upsert_binding_.reset();
  upsert_user_.reset();
  purge_.reset();
  db_.reset();
}

bool SqliteStore::write_batch(const Batch& batch, std::string& error) {
  sqlite3* db = db_.get();
  auto fail = [&] {
    error = sqlite3_errmsg(db);
    if (!sqlite3_get_autocommit(db)) run(rollback_.get());
    return false;
  };
  if (!run(begin_.get())) return fail();
  std::string json;
  static const std::vector<Binding> kNone;
  for (const auto& [aor, change] : batch.aors) {
    const std::vector<Binding>& bindings = change.bindings ? *change.bindings : kNone;
    for (const std::string& key : change.removed) {
      // A key the AoR lost and got back is upserted below; deleting it first would be wasted.
      bool back = std::any_of(bindings.begin(), bindings.end(), [&key](const Binding& b) { return b.key == key; });
      if (back) continue;
      sqlite3_stmt* s = delete_binding_.get();
      bind_text(s, 1, aor);
      bind_text(s, 2, key);
      if (!run(s)) return fail();
    }
    for (const Binding& b : bindings) {
      sqlite3_stmt* s = upsert_binding_.get();
      write_binding_json(json, b);
      sqlite3_bind_text(s, 1, aor.data(), static_cast<int>(aor.size()), SQLITE_STATIC);
      sqlite3_bind_text(s, 2, b.key.data(), static_cast<int>(b.key.size()), SQLITE_STATIC);
      sqlite3_bind_int64(s, 3, b.expires_at);
      sqlite3_bind_text(s, 4, json.data(), static_cast<int>(json.size()), SQLITE_STATIC);
      if (!run(s)) return fail();
    }
  }
  for (const auto& [k, u] : batch.users) {
    sqlite3_stmt* s = upsert_user_.get();
    bind_text(s, 1, u.user);
    bind_text(s, 2, u.domain);
    bind_text(s, 3, u.ha1_md5);
    bind_text(s, 4, u.ha1_sha256);
    if (!run(s)) return fail();
  }
  // After the rows: an expired binding in this same batch goes too.
  if (batch.purge_before > 0) {
    sqlite3_bind_int64(purge_.get(), 1, batch.purge_before);
    if (!run(purge_.get())) return fail();
  }
  if (!run(commit_.get())) return fail();
  return true;
}

void SqliteStore::purge_expired(int64_t now) {
  for (auto it = bindings_.begin(); it != bindings_.end();) {
    const std::vector<Binding>& set = *it->second;
    if (std::none_of(set.begin(), set.end(), [now](const Binding& b) { return b.expires_at <= now; })) {
      ++it;
      continue;
    }
    // Sets are shared with the writer and never modified: a new one without the expired.
    std::vector<Binding> kept;
    for (const Binding& b : set)
      if (b.expires_at > now) kept.push_back(b);
    if (kept.empty()) {
      it = bindings_.erase(it);
    } else {
      it->second = std::make_shared<const std::vector<Binding>>(std::move(kept));
      ++it;
    }
  }
  // Joins whatever is queued; write_batch() runs it after that batch's rows.
  Batch purge;
  purge.purge_before = now;
  enqueue(std::move(purge));
}

void SqliteStore::on_flush_timer(int, short, void* self) {
  auto* store = static_cast<SqliteStore*>(self);
  store->flush_armed_ = false;
  store->hand_off();
}

void SqliteStore::on_purge_timer(int, short, void* self) {
  static_cast<SqliteStore*>(self)->purge_expired(static_cast<int64_t>(std::time(nullptr)));
}

}  // namespace relais
