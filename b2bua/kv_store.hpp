// kv_store.hpp — a small durable key-value store for what scripts must not lose: voicemail
// metadata, changed PINs, MWI counts. An SQLite file under var/; every key is also held in
// memory so reads never wait, and writes go to disk before they return (they are rare: one per
// voicemail event) so a crash right after a deposit loses nothing.
#pragma once

#include <sqlite3.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

struct lua_State;

namespace relais {

class KvStore {
 public:
  static constexpr size_t kMaxKey = 512;
  static constexpr size_t kMaxValue = 256 * 1024;
  static constexpr size_t kMaxKeys = 1000000;

  // Opens (creating) the file and loads every key. nullptr + error when it cannot.
  static std::unique_ptr<KvStore> open(const std::string& path, std::string& error);
  ~KvStore();
  KvStore(const KvStore&) = delete;
  KvStore& operator=(const KvStore&) = delete;

  std::optional<std::string> get(const std::string& key) const;
  // False + error for an oversized key/value, a full store or a disk error (memory unchanged).
  bool set(const std::string& key, const std::string& value, std::string& error);
  bool remove(const std::string& key, std::string& error);
  // Keys starting with `prefix`, in key order, at most `limit`.
  std::vector<std::pair<std::string, std::string>> scan(const std::string& prefix, size_t limit) const;
  size_t size() const { return data_.size(); }
  const std::string& path() const { return path_; }

 private:
  KvStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  bool exec(const char* sql, const std::string& a, const std::string* b, std::string& error);

  sqlite3* db_;
  std::string path_;
  std::map<std::string, std::string> data_;
};

// Adds relais.kv (get/set/delete/scan) to a script state; kv may be null (relais --check).
void install_kv_api(lua_State* L, KvStore* kv);

}  // namespace relais
