// kv_store.cpp — SQLite behind an in-memory map (see kv_store.hpp for why writes are synchronous).
#include "kv_store.hpp"

#include <filesystem>

#include "log.hpp"

namespace relais {

namespace {

struct Statement {
  sqlite3_stmt* stmt = nullptr;
  ~Statement() { sqlite3_finalize(stmt); }
};

}  // namespace

std::unique_ptr<KvStore> KvStore::open(const std::string& path, std::string& error) {
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
    error = path + ": " + (db ? sqlite3_errmsg(db) : "cannot open");
    sqlite3_close(db);
    return nullptr;
  }
  std::unique_ptr<KvStore> store(new KvStore(db, path));
  // WAL + NORMAL: a commit is one append to the log without its own fsync; the database stays
  // consistent after a power cut and loses at most the last commits, never a whole file.
  const char* setup =
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=2000;"
      "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);";
  char* message = nullptr;
  if (sqlite3_exec(db, setup, nullptr, nullptr, &message) != SQLITE_OK) {
    error = path + ": " + (message ? message : "setup failed");
    sqlite3_free(message);
    return nullptr;
  }
  Statement all;
  if (sqlite3_prepare_v2(db, "SELECT key, value FROM kv", -1, &all.stmt, nullptr) != SQLITE_OK) {
    error = path + ": " + sqlite3_errmsg(db);
    return nullptr;
  }
  while (sqlite3_step(all.stmt) == SQLITE_ROW) {
    const char* k = reinterpret_cast<const char*>(sqlite3_column_text(all.stmt, 0));
    const void* v = sqlite3_column_blob(all.stmt, 1);
    int n = sqlite3_column_bytes(all.stmt, 1);
    if (k) store->data_[k] = v ? std::string(static_cast<const char*>(v), static_cast<size_t>(n)) : std::string();
  }
  log_info("kv.open").kv("path", path).kv("keys", store->data_.size());
  return store;
}

KvStore::~KvStore() { sqlite3_close(db_); }

bool KvStore::exec(const char* sql, const std::string& a, const std::string* b, std::string& error) {
  Statement st;
  if (sqlite3_prepare_v2(db_, sql, -1, &st.stmt, nullptr) != SQLITE_OK) {
    error = sqlite3_errmsg(db_);
    return false;
  }
  sqlite3_bind_text(st.stmt, 1, a.data(), static_cast<int>(a.size()), SQLITE_STATIC);
  if (b) sqlite3_bind_blob(st.stmt, 2, b->data(), static_cast<int>(b->size()), SQLITE_STATIC);
  if (sqlite3_step(st.stmt) != SQLITE_DONE) {
    error = sqlite3_errmsg(db_);
    log_error("kv.write_failed").kv("path", path_).kv("error", error);
    return false;
  }
  return true;
}

std::optional<std::string> KvStore::get(const std::string& key) const {
  auto it = data_.find(key);
  if (it == data_.end()) return std::nullopt;
  return it->second;
}

bool KvStore::set(const std::string& key, const std::string& value, std::string& error) {
  if (key.empty() || key.size() > kMaxKey) {
    error = "key must be 1.." + std::to_string(kMaxKey) + " bytes";
    return false;
  }
  if (value.size() > kMaxValue) {
    error = "value over " + std::to_string(kMaxValue) + " bytes";
    return false;
  }
  auto it = data_.find(key);
  if (it == data_.end() && data_.size() >= kMaxKeys) {
    error = "store full";
    return false;
  }
  if (it != data_.end() && it->second == value) return true;
  if (!exec("INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key,
            &value, error))
    return false;
  data_[key] = value;
  return true;
}

bool KvStore::remove(const std::string& key, std::string& error) {
  auto it = data_.find(key);
  if (it == data_.end()) return true;
  if (!exec("DELETE FROM kv WHERE key = ?1", key, nullptr, error)) return false;
  data_.erase(it);
  return true;
}

std::vector<std::pair<std::string, std::string>> KvStore::scan(const std::string& prefix, size_t limit) const {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto it = data_.lower_bound(prefix); it != data_.end() && out.size() < limit; ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    out.emplace_back(it->first, it->second);
  }
  return out;
}

}  // namespace relais
