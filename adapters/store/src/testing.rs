//! Fresh databases for tests (this crate's and the server's), connected the way the service
//! connects (`Store::connect`):
//! a SQLite file in a temporary folder, or a uuid-named PostgreSQL database on the server named by
//! `TWIN_TEST_DATABASE_URL`, dropped when the test ends (also when it fails).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::Store;
use sqlx::{Connection, Executor, PgConnection};

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

pub struct TestDb {
    pub store: Store,
    /// The URL the store was opened with: for PostgreSQL, the superuser's URL of this database.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { server: String, name: String },
}

/// The PostgreSQL server the tests create their databases on.
pub fn server_url() -> String {
    std::env::var("TWIN_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_SERVER.to_owned())
}

impl TestDb {
    /// A fresh, migrated database.
    pub async fn new(kind: Kind) -> Self {
        let db = Self::unmigrated(kind).await;
        db.store.migrate().await.expect("migrations apply");
        db
    }

    /// A fresh database with no schema yet.
    pub async fn unmigrated(kind: Kind) -> Self {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("data").join("twin.db").display());
                let store = Store::connect(&url).await.expect("sqlite opens");
                TestDb { store, url, cleanup: Cleanup::Sqlite(dir) }
            }
            Kind::Postgres => {
                let server = server_url();
                let name = format!("twin_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::connect(&server).await.expect("the test PostgreSQL server answers");
                admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).await.unwrap();
                admin.close().await.unwrap();
                let url = with_database(&server, &name);
                // From here on Drop removes the database, even if connecting fails.
                let cleanup = Cleanup::Postgres { server, name };
                let store = Store::connect(&url).await.expect("postgres opens");
                TestDb { store, url, cleanup }
            }
        }
    }

    pub fn kind(&self) -> Kind {
        match self.cleanup {
            Cleanup::Sqlite(_) => Kind::Sqlite,
            Cleanup::Postgres { .. } => Kind::Postgres,
        }
    }

    /// A superuser connection to this PostgreSQL database that does not switch role: it bypasses
    /// row-level security and shows what is really stored.
    pub async fn superuser(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { server, name } = &self.cleanup {
            let (server, name) = (server.clone(), name.clone());
            // Best effort, on a thread with its own runtime: Drop cannot await, and this also
            // runs while a failed test unwinds.
            let dropper = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(async move {
                    if let Ok(mut admin) = PgConnection::connect(&server).await {
                        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        let _ = admin.execute(sqlx::AssertSqlSafe(sql)).await;
                        let _ = admin.close().await;
                    }
                });
            });
            let _ = dropper.join();
        }
    }
}

/// `server` with its database name replaced by `name`, keeping any `?query`.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}
