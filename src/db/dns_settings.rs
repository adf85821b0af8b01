//! The `dns_settings` table: one row holding the DNS settings changed over
//! API v2. A NULL column is a setting nobody changed, which keeps the config
//! file's value (`state::dns`).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::rows::{json_vec, to_json};
use super::transaction::write_tx;
use super::{Db, Result, on_pool};

/// The stored overrides; `None` is "as the config file says".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsOverrides {
    pub nameservers: Option<Vec<String>>,
    pub search_paths: Option<Vec<String>>,
    pub magic_dns: Option<bool>,
}

impl DnsOverrides {
    pub fn is_empty(&self) -> bool {
        *self == DnsOverrides::default()
    }
}

impl Db {
    pub async fn dns_overrides(&self) -> Result<DnsOverrides> {
        on_pool!(self, |p| {
            let row = sqlx::query(
                "SELECT nameservers, search_paths, magic_dns FROM dns_settings WHERE id = 1",
            )
            .fetch_optional(p)
            .await?;
            let Some(r) = row else {
                return Ok(DnsOverrides::default());
            };
            let list = |col: &str| -> Result<Option<Vec<String>>> {
                let text: Option<String> = r.try_get(col)?;
                text.map(|t| json_vec(&t)).transpose()
            };
            Ok(DnsOverrides {
                nameservers: list("nameservers")?,
                search_paths: list("search_paths")?,
                magic_dns: r.try_get("magic_dns")?,
            })
        })
    }

    pub async fn save_dns_overrides(&self, o: &DnsOverrides, now: DateTime<Utc>) -> Result<()> {
        let nameservers = o.nameservers.as_ref().map(to_json);
        let search_paths = o.search_paths.as_ref().map(to_json);
        write_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO dns_settings (id, nameservers, search_paths, magic_dns, updated_at) \
                 VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET \
                 nameservers = excluded.nameservers, search_paths = excluded.search_paths, \
                 magic_dns = excluded.magic_dns, updated_at = excluded.updated_at",
            )
            .bind(&nameservers)
            .bind(&search_paths)
            .bind(o.magic_dns)
            .bind(now)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }
}
