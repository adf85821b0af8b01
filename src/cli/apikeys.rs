//! `clawscale apikeys …`, shaped like Headscale v0.29's `apikeys` commands
//! (`create -e/--expiration`, `list`, `expire -p/--prefix`, `delete
//! -p/--prefix`), plus `--id` and clawscale's `--scope whois|admin`.

use clap::Subcommand;
use serde::Serialize;

use super::output::{cell_time, table};
use super::preauthkeys::{Lifetime, parse_lifetime};
use super::{Ctx, Error, Result};
use crate::admin::proto::{
    self, CreateApiKeyRequest, DeleteApiKeyRequest, ExpireApiKeyRequest, ListApiKeysRequest,
};

#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Create a key; prints the secret, which cannot be shown again.
    #[command(visible_aliases = ["c", "new"])]
    Create {
        /// Lifetime, e.g. 30m, 24h, 90d; `never` for no expiry.
        #[arg(short, long, default_value = "90d", value_parser = parse_lifetime)]
        expiration: Lifetime,
        /// What the key may do: `whois` (identity lookups) or `admin`.
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

fn view(k: &proto::ApiKey) -> ApiKeyView {
    let t = |ts: Option<&prost_types::Timestamp>| {
        let s = cell_time(ts);
        (s != "-").then_some(s)
    };
    ApiKeyView {
        id: k.id,
        prefix: k.prefix.clone(),
        scope: k.scope.clone(),
        expiration: t(k.expiration.as_ref()),
        created_at: cell_time(k.created_at.as_ref()),
        last_seen: t(k.last_seen.as_ref()),
    }
}

fn target(prefix: Option<String>, id: Option<u64>) -> Result<(String, u64)> {
    match (prefix, id) {
        (Some(p), None) => Ok((p, 0)),
        (None, Some(id)) => Ok((String::new(), id)),
        _ => Err(Error::Usage("give either --prefix or --id".into())),
    }
}

pub(super) async fn run(ctx: &mut Ctx<'_>, cmd: ApiKeysCommand) -> Result<()> {
    match cmd {
        ApiKeysCommand::Create { expiration, scope } => {
            let expiration = expiration.expires_at()?;
            let key = ctx
                .client
                .create_api_key(CreateApiKeyRequest { expiration, scope })
                .await?
                .into_inner()
                .api_key;
            let value = serde_json::json!({ "api_key": key });
            ctx.emit(&value, || key.clone())
        }
        ApiKeysCommand::List => {
            let keys = ctx
                .client
                .list_api_keys(ListApiKeysRequest {})
                .await?
                .into_inner()
                .api_keys;
            let views: Vec<ApiKeyView> = keys.iter().map(view).collect();
            ctx.emit(&views, || {
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        vec![
                            k.id.to_string(),
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
            let (prefix, id) = target(prefix, id)?;
            ctx.client
                .expire_api_key(ExpireApiKeyRequest { prefix, id })
                .await?;
            ctx.done("Key expired")
        }
        ApiKeysCommand::Delete { prefix, id } => {
            let (prefix, id) = target(prefix, id)?;
            ctx.client
                .delete_api_key(DeleteApiKeyRequest { prefix, id })
                .await?;
            ctx.done("Key deleted")
        }
    }
}
