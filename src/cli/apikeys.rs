//! `clawscale apikeys …`, shaped like Headscale v0.29's `apikeys` commands
//! (`create -e/--expiration`, `list`, `expire -p/--prefix`, `delete
//! -p/--prefix`), plus `--id` and clawscale's
//! `--scope whois|admin:read|admin`.

use clap::Subcommand;
use serde::Serialize;

use super::client::enc;
use super::output::{cell_time, table};
use super::preauthkeys::{Lifetime, parse_lifetime};
use super::{Ctx, Error, Result};
use crate::api::v1::model::{
    ApiKey, CreateApiKeyRequest, CreateApiKeyResponse, Empty, ExpireApiKeyRequest,
    ListApiKeysResponse,
};

#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Create a key; prints the secret, which cannot be shown again.
    #[command(visible_aliases = ["c", "new"])]
    Create {
        /// Lifetime, e.g. 30m, 24h, 90d; `never` for no expiry.
        #[arg(short, long, default_value = "90d", value_parser = parse_lifetime)]
        expiration: Lifetime,
        /// What the key may do: `whois` (identity lookups), `admin:read`
        /// (read the admin API) or `admin`.
        #[arg(short, long, default_value = "whois")]
        scope: String,
    },
    /// List keys (secrets are never shown).
    #[command(visible_aliases = ["ls", "show"])]
    List,
    /// Expire a key now.
    #[command(visible_aliases = ["revoke", "e"])]
    Expire {
        #[arg(short, long)]
        prefix: Option<String>,
        #[arg(short, long)]
        id: Option<u64>,
    },
    /// Delete a key.
    #[command(visible_aliases = ["remove", "del"])]
    Delete {
        #[arg(short, long)]
        prefix: Option<String>,
        #[arg(short, long)]
        id: Option<u64>,
    },
}

#[derive(Serialize)]
struct ApiKeyView {
    id: u64,
    prefix: String,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration: Option<String>,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen: Option<String>,
}

fn view(k: &ApiKey) -> ApiKeyView {
    let t = |ts: Option<&chrono::DateTime<chrono::Utc>>| {
        let s = cell_time(ts);
        (s != "-").then_some(s)
    };
    ApiKeyView {
        id: super::output::num(&k.id),
        prefix: k.prefix.clone(),
        scope: k.scope.clone(),
        expiration: t(k.expiration.as_ref()),
        created_at: cell_time(k.created_at.as_ref()),
        last_seen: t(k.last_seen.as_ref()),
    }
}

/// The key an expire/delete names: by prefix or by id.
enum Which {
    Prefix(String),
    Id(u64),
}

fn target(prefix: Option<String>, id: Option<u64>) -> Result<Which> {
    match (prefix, id) {
        (Some(p), None) => Ok(Which::Prefix(p)),
        (None, Some(id)) => Ok(Which::Id(id)),
        _ => Err(Error::Usage("give either --prefix or --id".into())),
    }
}

pub(super) async fn run(ctx: &mut Ctx<'_>, cmd: ApiKeysCommand) -> Result<()> {
    match cmd {
        ApiKeysCommand::Create { expiration, scope } => {
            let req = CreateApiKeyRequest {
                expiration: expiration.expires_at()?,
                scope: Some(scope),
            };
            let r: CreateApiKeyResponse = ctx.client.post("/api/v1/apikey", &req).await?;
            let key = r.api_key;
            let value = serde_json::json!({ "api_key": key });
            ctx.emit(&value, || key.clone())
        }
        ApiKeysCommand::List => {
            let r: ListApiKeysResponse = ctx.client.get("/api/v1/apikey").await?;
            let keys = r.api_keys;
            let views: Vec<ApiKeyView> = keys.iter().map(view).collect();
            ctx.emit(&views, || {
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        vec![
                            k.id.clone(),
                            k.prefix.clone(),
                            k.scope.clone(),
                            cell_time(k.expiration.as_ref()),
                            cell_time(k.created_at.as_ref()),
                        ]
                    })
                    .collect();
                table(&["ID", "Prefix", "Scope", "Expiration", "Created"], &rows)
            })
        }
        ApiKeysCommand::Expire { prefix, id } => {
            let req = match target(prefix, id)? {
                Which::Prefix(p) => ExpireApiKeyRequest {
                    prefix: Some(p),
                    id: None,
                },
                Which::Id(id) => ExpireApiKeyRequest {
                    prefix: None,
                    id: Some(id.to_string()),
                },
            };
            let _: Empty = ctx.client.post("/api/v1/apikey/expire", &req).await?;
            ctx.done("Key expired")
        }
        ApiKeysCommand::Delete { prefix, id } => {
            let path = match target(prefix, id)? {
                Which::Prefix(p) => format!("/api/v1/apikey/{}", enc(&p)),
                Which::Id(id) => format!("/api/v1/apikey?id={id}"),
            };
            let _: Empty = ctx.client.delete(&path).await?;
            ctx.done("Key deleted")
        }
    }
}
