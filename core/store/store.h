// The SQLite store: one database file, WAL journal, versioned schema migrations and a
// transaction helper. Repositories (audit log, adapter lifecycle, and the daemon's
// datasets/jobs/adapters tables later) are built on top of it.
//
// Contract:
//  * Open(path, migrations) opens/creates the file, sets journal_mode=WAL,
//    foreign_keys=ON, synchronous=NORMAL and the busy policy, then applies every
//    migration whose version is above the recorded one, each in its own transaction,
//    recording (version, name, applied_at) in `schema_migrations`.
//  * Migrations must have strictly increasing versions >= 1. A database whose recorded
//    version is newer than the newest migration known to the binary is refused
//    (FAILED_PRECONDITION, "upgrade qlorad"); a recorded migration whose name differs
//    from the binary's for the same version is refused too (diverged schema history).
//  * Another connection's write lock (SQLITE_BUSY / SQLITE_LOCKED): every write waits
//    in SQLite's busy handler for BusyPolicy::timeout_ms, and is retried up to
//    BusyPolicy::attempts times in all (BEGIN IMMEDIATE of a transaction; the first step
//    of a statement outside one; nothing has been written when either is refused).
//    Past that bound: UNAVAILABLE naming the database file, nothing changed.
//  * Not thread-safe: one owner (or an external mutex). Statements must not outlive
//    the Store.
#ifndef QLORAD_CORE_STORE_STORE_H_
#define QLORAD_CORE_STORE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct sqlite3;
struct sqlite3_stmt;

namespace qlorad::store {

// How long a write waits for another connection's lock: `attempts` tries of SQLite's busy
// handler, each waiting up to `timeout_ms` (so about attempts * timeout_ms in all).
struct BusyPolicy {
  int timeout_ms = 5000;
  int attempts = 3;
};

struct Migration {
  int version = 0;
  std::string name;
  std::string sql;  // one or more statements
};

// A prepared statement. Bind indices are 1-based (SQLite's convention).
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  ~Statement();

  Statement& Bind(int index, const std::string& value);
  Statement& Bind(int index, const char* value) { return Bind(index, std::string(value)); }
  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  Statement& Bind(int index, double value);
  Statement& BindNull(int index);

  // True when a row is available, false when done; errors carry SQLite's message
  // (a trigger's RAISE(ABORT, msg) arrives as FAILED_PRECONDITION with msg).
  absl::StatusOr<bool> Step();
  // Runs to completion (for INSERT/UPDATE/DELETE).
  absl::Status Run();
  void Reset();

  std::string ColumnText(int col) const;
  int64_t ColumnInt64(int col) const;
  double ColumnDouble(int col) const;
  bool ColumnIsNull(int col) const;

 private:
  friend class Store;
  Statement(sqlite3* db, sqlite3_stmt* stmt, std::string sql, const BusyPolicy& busy);
  absl::Status BindStatus() const;
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  std::string sql_;
  int bind_error_ = 0;
  BusyPolicy busy_;       // retries of a first step outside a transaction
  bool stepped_ = false;   // a row was returned since the last reset: never retried
};

class Store {
 public:
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path, const std::vector<Migration>& migrations,
                                                     const BusyPolicy& busy = {});
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Executes SQL text (possibly several statements) without results.
  absl::Status Exec(const std::string& sql);
  absl::StatusOr<Statement> Prepare(const std::string& sql);

  // BEGIN IMMEDIATE; fn(); COMMIT — or ROLLBACK when fn returns an error (which is
  // returned). Nested calls run inside the outer transaction (a SAVEPOINT).
  absl::Status InTransaction(const std::function<absl::Status()>& fn);

  int schema_version() const { return schema_version_; }
  const std::string& path() const { return path_; }
  std::string journal_mode();
  sqlite3* handle() { return db_; }

 private:
  Store(sqlite3* db, std::string path, const BusyPolicy& busy) : db_(db), path_(std::move(path)), busy_(busy) {}
  absl::Status Migrate(const std::vector<Migration>& migrations);
  // BEGIN IMMEDIATE, retried per busy_ while another connection holds the write lock.
  absl::Status Begin();
  sqlite3* db_;
  std::string path_;
  BusyPolicy busy_;
  int schema_version_ = 0;
  int transaction_depth_ = 0;
};

// Steps `statement` to the end, turning each row into a Row with `read(statement)`.
template <typename Row, typename Read>
absl::StatusOr<std::vector<Row>> CollectRows(Statement& statement, Read read) {
  std::vector<Row> rows;
  while (true) {
    absl::StatusOr<bool> more = statement.Step();
    if (!more.ok()) return more.status();
    if (!*more) return rows;
    rows.push_back(read(statement));
  }
}

// Maps a SQLite result code (+ message) to an absl::Status.
absl::Status SqliteStatus(int code, const std::string& message, const std::string& context);

}  // namespace qlorad::store

#endif  // QLORAD_CORE_STORE_STORE_H_
