//! Headscale databases for the import tests, one per schema generation,
//! built by running each release's schema (written here from the facts of
//! its `hscontrol/db/db.go` migrations and `schema.sql`: table and column
//! names, gorm's column types per engine) and inserting our own rows, as a
//! Headscale server of that release would have left them.

use std::fmt::Write as _;

use sqlx::{Connection, Executor, PgConnection, SqliteConnection};

/// Schema generations, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Gen {
    /// 0.23: users by name only, pre-auth key tags in their own table,
    /// routes table, `forced_tags`.
    V023,
    /// 0.24.3–0.25: OIDC user columns, `pre_auth_keys.tags`.
    V025,
    /// 0.26–0.27: routes table gone, `nodes.approved_routes`.
    V026,
    /// 0.28: bcrypt pre-auth keys (`prefix`, `hash`), `nodes.tags`.
    V028,
    /// 0.29: tagged nodes without `user_id`, `database_versions`.
    V029,
    /// main: key `description`/`revoked`, `api_keys.user_id`, OAuth.
    Main,
}

pub const ALL: [Gen; 6] = [
    Gen::V023,
    Gen::V025,
    Gen::V026,
    Gen::V028,
    Gen::V029,
    Gen::Main,
];

/// The migration ids each generation's database records (`schema`).
pub fn migration_ids(g: Gen) -> Vec<&'static str> {
    let mut ids = vec![
        "202312101416",
        "202312101430",
        "202402151347",
        "2024041121742",
        "202406021630",
    ];
    if g >= Gen::V025 {
        ids.extend([
            "202409271400",
            "202407191627",
            "202408181235",
            "202501221827",
            "202501311657",
            "202502070949",
        ]);
    }
    if g >= Gen::V026 {
        ids.extend([
            "202502131714",
            "202502171819",
            "202505091439",
            "202505141324",
        ]);
    }
    if g >= Gen::V028 {
        ids.extend([
            "202507021200",
            "202510311551",
            "202511101554-drop-old-idx",
            "202511011637-preauthkey-bcrypt",
            "202511122344-remove-newline-index",
            "202511131445-node-forced-tags-to-tags",
            "202601121700-migrate-hostinfo-request-tags",
        ]);
    }
    if g >= Gen::V029 {
        ids.extend([
            "202602201200-clear-tagged-node-user-id",
            "202605221435-clear-zero-time-node-expiry",
            "202606181200-recover-null-tags-node-user-id",
        ]);
    }
    if g >= Gen::Main {
        ids.extend([
            "202606191500-api-key-user-id",
            "202606191501-pre-auth-key-description",
            "202606201200-pre-auth-key-revoked",
            "202606211200-oauth-clients-and-tokens",
        ]);
    }
    ids
}

/// gorm's column types on each engine.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    fn id(self) -> &'static str {
        match self {
            Engine::Sqlite => "integer PRIMARY KEY AUTOINCREMENT",
            Engine::Postgres => "bigserial PRIMARY KEY",
        }
    }
    fn int(self) -> &'static str {
        match self {
            Engine::Sqlite => "integer",
            Engine::Postgres => "bigint",
        }
    }
    fn boolean(self) -> &'static str {
        match self {
            Engine::Sqlite => "numeric",
            Engine::Postgres => "boolean",
        }
    }
    fn time(self) -> &'static str {
        match self {
            Engine::Sqlite => "datetime",
            Engine::Postgres => "timestamptz",
        }
    }
    fn blob(self) -> &'static str {
        match self {
            Engine::Sqlite => "blob",
            Engine::Postgres => "bytea",
        }
    }
    /// A boolean literal as gorm stores it.
    pub fn b(self, v: bool) -> &'static str {
        match (self, v) {
            (Engine::Sqlite, true) => "1",
            (Engine::Sqlite, false) => "0",
            (Engine::Postgres, true) => "true",
            (Engine::Postgres, false) => "false",
        }
    }
    /// A byte-string literal holding `text`.
    pub fn bytes(self, text: &str) -> String {
        match self {
            Engine::Sqlite => format!("CAST('{text}' AS BLOB)"),
            Engine::Postgres => format!("convert_to('{text}', 'UTF8')"),
        }
    }
}

/// The CREATE statements of generation `g`.
pub fn ddl(g: Gen, e: Engine) -> Vec<String> {
    let (id, int, b, t, blob) = (e.id(), e.int(), e.boolean(), e.time(), e.blob());
    let mut out = vec!["CREATE TABLE migrations (id text PRIMARY KEY)".to_string()];
    let mut users = format!(
        "CREATE TABLE users (id {id}, created_at {t}, updated_at {t}, deleted_at {t}, name text"
    );
    if g >= Gen::V025 {
        users.push_str(
            ", display_name text, email text, provider_identifier text, provider text, \
             profile_pic_url text",
        );
    }
    users.push(')');
    out.push(users);
    let mut keys = format!(
        "CREATE TABLE pre_auth_keys (id {id}, key text, user_id {int}, reusable {b}, \
         ephemeral {b} DEFAULT false, used {b} DEFAULT false, expiration {t}, created_at {t}"
    );
    if g >= Gen::V025 {
        keys.push_str(", tags text");
    }
    if g >= Gen::V028 {
        let _ = write!(keys, ", prefix text, hash {blob}");
    }
    if g >= Gen::Main {
        let _ = write!(keys, ", description text, revoked {t}");
    }
    keys.push(')');
    out.push(keys);
    if g == Gen::V023 {
        out.push(format!(
            "CREATE TABLE pre_auth_key_acl_tags (id {id}, pre_auth_key_id {int}, tag text)"
        ));
    }
    let mut api = format!(
        "CREATE TABLE api_keys (id {id}, prefix text, hash {blob}, expiration {t}, \
         last_seen {t}, created_at {t}"
    );
    if g >= Gen::Main {
        let _ = write!(api, ", user_id {int}");
    }
    api.push(')');
    out.push(api);
    let tags = if g >= Gen::V028 {
        "tags"
    } else {
        "forced_tags"
    };
    let mut nodes = format!(
        "CREATE TABLE nodes (id {id}, machine_key text, node_key text, disco_key text, \
         endpoints text, host_info text, ipv4 text, ipv6 text, hostname text, \
         given_name varchar(63), user_id {int}, register_method text, {tags} text, \
         auth_key_id {int}, last_seen {t}, expiry {t}, created_at {t}, updated_at {t}, \
         deleted_at {t}"
    );
    if g >= Gen::V026 {
        nodes.push_str(", approved_routes text");
    }
    nodes.push(')');
    out.push(nodes);
    if g < Gen::V026 {
        out.push(format!(
            "CREATE TABLE routes (id {id}, created_at {t}, updated_at {t}, deleted_at {t}, \
             node_id {int}, prefix text, advertised {b}, enabled {b}, is_primary {b})"
        ));
    }
    out.push(format!(
        "CREATE TABLE policies (id {id}, created_at {t}, updated_at {t}, deleted_at {t}, \
         data text)"
    ));
    if g >= Gen::V029 {
        out.push(format!(
            "CREATE TABLE database_versions (id {int} PRIMARY KEY, version text NOT NULL, \
             updated_at {t})"
        ));
    }
    if g >= Gen::Main {
        out.push(format!(
            "CREATE TABLE oauth_clients (id {id}, client_id text, secret_hash {blob}, \
             scopes text, tags text, description text, user_id {int}, created_at {t}, \
             revoked {t})"
        ));
    }
    out
}

/// Runs `statements` on a fresh SQLite file.
pub async fn run_sqlite(path: &std::path::Path, statements: &[String]) {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut c = SqliteConnection::connect(&url)
        .await
        .expect("create source");
    for s in statements {
        c.execute(s.as_str())
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    c.close().await.expect("close source");
}

/// Runs `statements` on a PostgreSQL database.
pub async fn run_postgres(url: &str, statements: &[String]) {
    let mut c = PgConnection::connect(url).await.expect("connect source");
    for s in statements {
        c.execute(s.as_str())
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    c.close().await.expect("close source");
}
