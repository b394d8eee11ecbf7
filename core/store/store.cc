#include "core/store/store.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "core/util/crash_point.h"
#include "core/util/time_util.h"

namespace qlorad::store {
namespace {

// Runs just before every commit of the connection (explicit or autocommit): a test can
// kill the daemon between any two commits (core/util/crash_point.h). 0 = go on committing.
int CommitHook(void*) {
  CrashPoint("store.commit");
  return 0;
}

bool IsBusy(int code) { return (code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED; }

// What a write refused for another connection's lock says beyond SQLite's message.
std::string BusyNote(const BusyPolicy& busy) {
  return absl::StrCat("; gave up after ", busy.attempts, " attempt(s) of ", busy.timeout_ms,
                      " ms each (hint: another process holds a write lock on the database; retry when it ends)");
}

}  // namespace

absl::Status SqliteStatus(int code, const std::string& message, const std::string& context) {
  const std::string text = absl::StrCat(context, ": ", message, " (sqlite code ", code, ")");
  switch (code & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
      return absl::OkStatus();
    case SQLITE_CONSTRAINT:
      return absl::FailedPreconditionError(text);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(text);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(text);
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
      return absl::PermissionDeniedError(text);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(text);
    default:
      return absl::InternalError(text);
  }
}

Statement::Statement(sqlite3* db, sqlite3_stmt* stmt, std::string sql, const BusyPolicy& busy)
    : db_(db), stmt_(stmt), sql_(std::move(sql)), busy_(busy) {}
Statement::Statement(Statement&& o) noexcept
    : db_(o.db_), stmt_(o.stmt_), sql_(std::move(o.sql_)), bind_error_(o.bind_error_), busy_(o.busy_), stepped_(o.stepped_) {
  o.stmt_ = nullptr;
}
Statement& Statement::operator=(Statement&& o) noexcept {
  if (this != &o) {
    if (stmt_ != nullptr) sqlite3_finalize(stmt_);
    db_ = o.db_;
    stmt_ = o.stmt_;
    sql_ = std::move(o.sql_);
    bind_error_ = o.bind_error_;
    busy_ = o.busy_;
    stepped_ = o.stepped_;
    o.stmt_ = nullptr;
  }
  return *this;
}
Statement::~Statement() {
  if (stmt_ != nullptr) sqlite3_finalize(stmt_);
}

Statement& Statement::Bind(int index, const std::string& value) {
  const int rc = sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_error_ == 0) bind_error_ = rc;
  return *this;
}
Statement& Statement::Bind(int index, int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK && bind_error_ == 0) bind_error_ = rc;
  return *this;
}
Statement& Statement::Bind(int index, double value) {
  const int rc = sqlite3_bind_double(stmt_, index, value);
  if (rc != SQLITE_OK && bind_error_ == 0) bind_error_ = rc;
  return *this;
}
Statement& Statement::BindNull(int index) {
  const int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK && bind_error_ == 0) bind_error_ = rc;
  return *this;
}

absl::Status Statement::BindStatus() const {
  if (bind_error_ == 0) return absl::OkStatus();
  return SqliteStatus(bind_error_, sqlite3_errstr(bind_error_), absl::StrCat("binding parameters of '", sql_, "'"));
}

absl::StatusOr<bool> Statement::Step() {
  if (absl::Status s = BindStatus(); !s.ok()) return s;
  // Outside a transaction a refused first step has changed nothing: it may run again.
  const bool retryable = !stepped_ && sqlite3_get_autocommit(db_) != 0;
  int rc = SQLITE_OK;
  for (int attempt = 1;; ++attempt) {
    rc = sqlite3_step(stmt_);  // waits up to busy_.timeout_ms in the busy handler
    if (!retryable || !IsBusy(rc) || attempt >= busy_.attempts) break;
    sqlite3_reset(stmt_);
  }
  if (rc == SQLITE_ROW) {
    stepped_ = true;
    return true;
  }
  stepped_ = false;  // done or failed: the next Step() starts the statement afresh
  if (rc == SQLITE_DONE) return false;
  const int ext = sqlite3_extended_errcode(db_);
  std::string msg = sqlite3_errmsg(db_);
  if (IsBusy(ext) && retryable) msg += BusyNote(busy_);
  sqlite3_reset(stmt_);
  const char* file = sqlite3_db_filename(db_, "main");
  return SqliteStatus(ext, msg, absl::StrCat("database '", file != nullptr ? file : "", "': executing '", sql_, "'"));
}

absl::Status Statement::Run() {
  while (true) {
    auto row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  stepped_ = false;
  sqlite3_clear_bindings(stmt_);
  bind_error_ = 0;
}

std::string Statement::ColumnText(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  const int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), n);
}
int64_t Statement::ColumnInt64(int col) const { return sqlite3_column_int64(stmt_, col); }
double Statement::ColumnDouble(int col) const { return sqlite3_column_double(stmt_, col); }
bool Statement::ColumnIsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path, const std::vector<Migration>& migrations,
                                                   const BusyPolicy& busy) {
  if (busy.timeout_ms < 0 || busy.attempts < 1)
    return absl::InvalidArgumentError(absl::StrCat("busy policy: timeout_ms ", busy.timeout_ms, " must be >= 0 and attempts ",
                                                   busy.attempts, " >= 1"));
  for (size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version < 1 || (i > 0 && migrations[i].version <= migrations[i - 1].version)) {
      return absl::InvalidArgumentError(absl::StrCat("migrations: version ", migrations[i].version, " ('",
                                                     migrations[i].name, "') is not strictly increasing from 1"));
    }
  }
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                                 nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return SqliteStatus(rc, msg, absl::StrCat("opening database '", path, "'"));
  }
  std::unique_ptr<Store> store(new Store(db, path, busy));
  sqlite3_busy_timeout(db, busy.timeout_ms);
  sqlite3_commit_hook(db, &CommitHook, nullptr);
  {
    auto mode = store->Prepare("PRAGMA journal_mode=WAL");
    if (!mode.ok()) return mode.status();
    auto row = mode->Step();
    if (!row.ok()) return row.status();
    const std::string got = *row ? mode->ColumnText(0) : "";
    mode->Reset();  // a statement left mid-result would block COMMIT
    if (got != "wal") {
      return absl::FailedPreconditionError(
          absl::StrCat("database '", path, "': could not enable WAL journal mode (got '", got, "')"));
    }
  }
  if (absl::Status s = store->Exec("PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;"); !s.ok()) return s;
  if (absl::Status s = store->Migrate(migrations); !s.ok()) return s;
  return store;
}

Store::~Store() { sqlite3_close_v2(db_); }

absl::Status Store::Exec(const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return absl::OkStatus();
  std::string msg = err ? err : sqlite3_errmsg(db_);
  sqlite3_free(err);
  return SqliteStatus(sqlite3_extended_errcode(db_), msg, absl::StrCat("database '", path_, "'"));
}

absl::StatusOr<Statement> Store::Prepare(const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteStatus(rc, sqlite3_errmsg(db_), absl::StrCat("preparing '", sql, "'"));
  return Statement(db_, stmt, sql, busy_);
}

absl::Status Store::InTransaction(const std::function<absl::Status()>& fn) {
  const bool outer = transaction_depth_ == 0;
  const std::string savepoint = absl::StrCat("qlorad_sp_", transaction_depth_);
  if (absl::Status s = outer ? Begin() : Exec(absl::StrCat("SAVEPOINT ", savepoint)); !s.ok()) return s;
  ++transaction_depth_;
  absl::Status result = fn();
  --transaction_depth_;
  if (result.ok()) {
    absl::Status c = Exec(outer ? "COMMIT" : absl::StrCat("RELEASE ", savepoint));
    if (c.ok()) return absl::OkStatus();
    result = c;
  }
  if (outer) {
    (void)Exec("ROLLBACK");
  } else {
    (void)Exec(absl::StrCat("ROLLBACK TO ", savepoint, "; RELEASE ", savepoint));
  }
  return result;
}

absl::Status Store::Begin() {
  for (int attempt = 1;; ++attempt) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, &err);  // waits busy_.timeout_ms
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    if (rc == SQLITE_OK) return absl::OkStatus();
    const int ext = sqlite3_extended_errcode(db_);
    if (IsBusy(ext) && attempt < busy_.attempts) continue;
    if (IsBusy(ext)) msg += BusyNote(busy_);
    return SqliteStatus(ext, msg, absl::StrCat("database '", path_, "': beginning a write transaction"));
  }
}

std::string Store::journal_mode() {
  auto st = Prepare("PRAGMA journal_mode");
  if (!st.ok()) return "";
  auto row = st->Step();
  std::string mode = row.ok() && *row ? st->ColumnText(0) : "";
  st->Reset();
  return mode;
}

absl::Status Store::Migrate(const std::vector<Migration>& migrations) {
  if (absl::Status s = Exec("CREATE TABLE IF NOT EXISTS schema_migrations ("
                            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)");
      !s.ok()) {
    return s;
  }
  auto applied = Prepare("SELECT version, name FROM schema_migrations ORDER BY version");
  if (!applied.ok()) return applied.status();
  int current = 0;
  while (true) {
    auto row = applied->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    const int version = static_cast<int>(applied->ColumnInt64(0));
    const std::string name = applied->ColumnText(1);
    current = std::max(current, version);
    for (const Migration& m : migrations) {
      if (m.version == version && m.name != name) {
        return absl::FailedPreconditionError(absl::StrCat("database '", path_, "': migration ", version, " is '", name,
                                                          "' but this binary calls it '", m.name,
                                                          "' (hint: the schema history diverged)"));
      }
    }
  }
  const int newest = migrations.empty() ? 0 : migrations.back().version;
  if (current > newest) {
    return absl::FailedPreconditionError(absl::StrCat("database '", path_, "' has schema version ", current,
                                                      ", newer than this binary knows (", newest,
                                                      "); hint: upgrade qlorad"));
  }
  for (const Migration& m : migrations) {
    if (m.version <= current) continue;
    absl::Status s = InTransaction([&]() -> absl::Status {
      if (absl::Status e = Exec(m.sql); !e.ok()) {
        return absl::Status(e.code(), absl::StrCat("migration ", m.version, " ('", m.name, "'): ", e.message()));
      }
      auto ins = Prepare("INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)");
      if (!ins.ok()) return ins.status();
      ins->Bind(1, m.version).Bind(2, m.name).Bind(3, NowUtcRfc3339());
      return ins->Run();
    });
    if (!s.ok()) return s;
    current = m.version;
  }
  schema_version_ = current;
  return absl::OkStatus();
}

}  // namespace qlorad::store
