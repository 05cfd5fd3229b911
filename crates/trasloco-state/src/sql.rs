//! Where the state lives (a SQLite file or a PostgreSQL database) and the little SQL that
//! differs between the two.
//!
//! Every statement is written once, with `$1, $2, …` placeholders: PostgreSQL's own form, and
//! one that sqlx binds by number on SQLite too. The schema is written once with two words
//! left open, the type of an id column and of an integer column, since SQLite's row ids must
//! be `INTEGER PRIMARY KEY` while PostgreSQL needs 64-bit integers for UIDs above 2^31.

use sqlx::AnyPool;
use sqlx::any::{Any, AnyArguments, AnyPoolOptions, AnyQueryResult};
use sqlx::{Arguments, Encode, Executor, Type};
use std::path::{Path, PathBuf};

/// Where the state is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file (created on first use).
    File(PathBuf),
    /// A PostgreSQL database, by URL (`postgres://user@host:port/database?sslmode=…`). The
    /// password belongs in `PGPASSWORD` or `~/.pgpass`, not in the URL.
    Postgres(String),
}

impl Location {
    /// A `postgres://` or `postgresql://` URL names a PostgreSQL database; anything else is a
    /// file path.
    pub fn parse(text: &str) -> Location {
        let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Location::Postgres(text.to_string())
        } else {
            Location::File(PathBuf::from(text))
        }
    }

    /// How messages name it: the path, or the URL without a password.
    pub fn describe(&self) -> String {
        match self {
            Location::File(p) => p.display().to_string(),
            Location::Postgres(url) => without_password(url),
        }
    }

    /// The file, for a SQLite state.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            Location::File(p) => Some(p),
            Location::Postgres(_) => None,
        }
    }
}

/// A URL with its password (if any) replaced by `***`.
pub(crate) fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// A pool on a SQLite file (created if missing): WAL, so a killed process loses at most the
/// transaction in flight; a writer waits up to 30 s for another.
pub(crate) async fn sqlite_pool(path: &Path) -> Result<AnyPool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let abs = std::path::absolute(path)?;
    let mut url = String::from("sqlite://");
    for &b in abs.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/._~-".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url.push_str("?mode=rwc");
    AnyPoolOptions::new()
        .max_connections(4)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                conn.execute("PRAGMA busy_timeout = 30000").await?;
                // Debug builds only: `TRASLOCO_TEST_STATE_MAX_PAGES=N` caps the file at N
                // pages, so a test can fill it as a full disk would.
                #[cfg(debug_assertions)]
                if let Ok(n) = std::env::var("TRASLOCO_TEST_STATE_MAX_PAGES")
                    && let Ok(n) = n.parse::<u64>()
                {
                    conn.execute(sqlx::AssertSqlSafe(format!("PRAGMA max_page_count = {n}")))
                        .await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await
}

/// A pool on a PostgreSQL database.
pub(crate) async fn postgres_pool(url: &str) -> Result<AnyPool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    AnyPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(std::time::Duration::from_secs(30))
        .connect(&verified_tls(url, std::env::var_os("PGSSLMODE").is_some()))
        .await
}

/// The URL with `sslmode=verify-full` added when it names a host other than this machine
/// and neither it nor `PGSSLMODE` chose a mode: PostgreSQL's own default (`prefer`) would
/// take any certificate, or none.
fn verified_tls(url: &str, mode_in_env: bool) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    let local = host.is_empty() || host == "localhost" || host == "127.0.0.1" || host == "::1";
    if local || mode_in_env || url.contains("sslmode=") || url.contains("ssl-mode=") {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}sslmode=verify-full")
}

/// Debug builds only: with `TRASLOCO_TEST_POSTGRES=postgres://…/database` every state file is
/// kept instead in a PostgreSQL schema of its own (named after the file's path), so the whole
/// test suite runs against PostgreSQL unchanged. The file itself is left empty, as a marker:
/// while it exists the schema is the state; a test that deletes it (a lost state) finds the
/// schema emptied on the next open.
#[cfg(debug_assertions)]
pub(crate) async fn test_postgres(location: &Location) -> Option<Result<String, sqlx::Error>> {
    use std::hash::{Hash, Hasher};
    let base = std::env::var("TRASLOCO_TEST_POSTGRES").ok()?;
    let Location::File(path) = location else {
        return None;
    };
    let abs = std::path::absolute(path).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    abs.hash(&mut h);
    let schema = format!("state_{:016x}", h.finish());
    let made = async {
        let pool = postgres_pool(&base).await?;
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(7472617301)")
            .execute(&mut *tx)
            .await?;
        if !abs.exists() {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE"
            )))
            .execute(&mut *tx)
            .await?;
            if let Some(dir) = abs.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&abs, b"")?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}"
        )))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        pool.close().await;
        Ok(format!("{base}?options=-c%20search_path%3D{schema}"))
    };
    Some(made.await)
}

/// Which database a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The schema's text for this database: `{id}` and `{int}` filled in.
    pub(crate) fn schema(self, template: &str) -> String {
        let (id, int) = match self {
            Backend::Sqlite => ("INTEGER PRIMARY KEY", "INTEGER"),
            Backend::Postgres => ("BIGSERIAL PRIMARY KEY", "BIGINT"),
        };
        template.replace("{id}", id).replace("{int}", int)
    }
}

/// A statement built piece by piece, its values bound as `$1, $2, …` in order.
pub(crate) struct Stmt {
    sql: String,
    args: AnyArguments,
    n: usize,
    failed: Option<sqlx::error::BoxDynError>,
}

impl Stmt {
    pub(crate) fn new(sql: impl Into<String>) -> Stmt {
        Stmt {
            sql: sql.into(),
            args: AnyArguments::default(),
            n: 0,
            failed: None,
        }
    }

    /// Add SQL text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Stmt {
        self.sql.push_str(sql);
        self
    }

    /// Add a placeholder and bind a value to it.
    pub(crate) fn bind<T>(&mut self, value: T) -> &mut Stmt
    where
        T: for<'q> Encode<'q, Any> + Type<Any>,
    {
        self.n += 1;
        self.sql.push('$');
        self.sql.push_str(&self.n.to_string());
        if let Err(e) = self.args.add(value)
            && self.failed.is_none()
        {
            self.failed = Some(e);
        }
        self
    }

    /// `VALUES (…), (…)`: `row` binds the values of one row (see [`Row::bind`]).
    pub(crate) fn values<R>(&mut self, rows: &[R], mut row: impl FnMut(&mut Row<'_>, &R)) {
        self.sql.push_str("VALUES ");
        for (i, r) in rows.iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.sql.push('(');
            row(
                &mut Row {
                    stmt: self,
                    first: true,
                },
                r,
            );
            self.sql.push(')');
        }
    }

    /// A comma-separated list of bound values (for `IN (…)`).
    pub(crate) fn list<T>(&mut self, items: impl IntoIterator<Item = T>) -> &mut Stmt
    where
        T: for<'q> Encode<'q, Any> + Type<Any>,
    {
        for (i, v) in items.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.bind(v);
        }
        self
    }

    /// Run it. `persistent`: keep it prepared (a statement that recurs).
    pub(crate) async fn execute<'c, E>(
        self,
        on: E,
        persistent: bool,
    ) -> Result<AnyQueryResult, sqlx::Error>
    where
        E: Executor<'c, Database = Any>,
    {
        if let Some(e) = self.failed {
            return Err(sqlx::Error::Encode(e));
        }
        sqlx::query_with(sqlx::AssertSqlSafe(self.sql), self.args)
            .persistent(persistent)
            .execute(on)
            .await
    }
}

/// One row of a `VALUES` list.
pub(crate) struct Row<'a> {
    stmt: &'a mut Stmt,
    first: bool,
}

impl Row<'_> {
    /// Bind the next value of the row.
    pub(crate) fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: for<'q> Encode<'q, Any> + Type<Any>,
    {
        if !self.first {
            self.stmt.sql.push_str(", ");
        }
        self.first = false;
        self.stmt.bind(value);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_postgres_and_the_rest_files() {
        assert_eq!(
            Location::parse("postgres://t@db/x"),
            Location::Postgres("postgres://t@db/x".into())
        );
        assert!(matches!(
            Location::parse("PostgreSQL://db/x"),
            Location::Postgres(_)
        ));
        assert_eq!(
            Location::parse("state/trasloco.sqlite"),
            Location::File("state/trasloco.sqlite".into())
        );
        assert_eq!(Location::parse("pg"), Location::File("pg".into()));
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            without_password("postgres://tras:s3cret@db.example:5432/t?sslmode=verify-full"),
            "postgres://tras:***@db.example:5432/t?sslmode=verify-full"
        );
        assert_eq!(
            without_password("postgres://tras@db/t"),
            "postgres://tras@db/t"
        );
        assert_eq!(without_password("postgres://db/t"), "postgres://db/t");
        assert_eq!(
            without_password("postgres://a:b@c@db/t"),
            "postgres://a:***@db/t"
        );
    }

    #[test]
    fn certificates_are_verified_unless_the_server_is_this_machine_or_a_mode_is_chosen() {
        assert_eq!(
            verified_tls("postgres://t@db.example/x", false),
            "postgres://t@db.example/x?sslmode=verify-full"
        );
        assert_eq!(
            verified_tls("postgres://t@db.example:5433/x?application_name=a", false),
            "postgres://t@db.example:5433/x?application_name=a&sslmode=verify-full"
        );
        for kept in [
            "postgres://t@127.0.0.1:5432/x",
            "postgres://t@localhost/x",
            "postgres://t@[::1]:5432/x",
            "postgres://t@db.example/x?sslmode=require",
        ] {
            assert_eq!(verified_tls(kept, false), kept);
        }
        assert_eq!(
            verified_tls("postgres://t@db.example/x", true),
            "postgres://t@db.example/x"
        );
    }

    #[test]
    fn statements_number_their_placeholders() {
        let mut s = Stmt::new("UPDATE m SET f = v.column2 FROM (");
        s.values(&[(1i64, "a"), (2, "b")], |row, (u, f)| {
            row.bind(*u).bind(f.to_string());
        });
        s.push(") AS v WHERE m.x = ").bind(7i64);
        s.push(" AND y IN (").list([1i64, 2]).push(")");
        assert_eq!(
            s.sql,
            "UPDATE m SET f = v.column2 FROM (VALUES ($1, $2), ($3, $4)) AS v WHERE m.x = $5 AND y IN ($6, $7)"
        );
    }
}
