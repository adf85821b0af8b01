//! `clawscale preauthkeys …`, with Headscale v0.29's flags (`-u/--user`,
//! `--reusable`, `--ephemeral`, `-e/--expiration`, `--tags`, `-i/--id`).
//! `--user` takes a user name or id (Headscale v0.29 takes only the id).

use std::time::Duration;

use clap::Subcommand;

use chrono::{DateTime, Utc};

use super::output::{KeyView, cell_time, table};
use super::{Ctx, Error, Result, users};
use crate::api::v1::model::{
    CreatePreAuthKeyRequest, Empty, ExpirePreAuthKeyRequest, ListPreAuthKeysResponse, PreAuthKey,
    PreAuthKeyResponse,
};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints the secret, which cannot be shown again.
    #[command(visible_aliases = ["c", "new"])]
    Create {
        /// Owner: user name or id.
        #[arg(short, long)]
        user: String,
        /// Allow more than one node to join with the key.
        #[arg(long)]
        reusable: bool,
        /// Nodes that join with the key are removed once offline.
        #[arg(long)]
        ephemeral: bool,
        /// Lifetime, e.g. 30m, 24h, 90d; `never` for no expiry.
        #[arg(short, long, default_value = "1h", value_parser = parse_lifetime)]
        expiration: Lifetime,
        /// Tags for nodes that join with the key (`tag:a,tag:b`).
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// Nodes that join with the key skip device approval
        /// (`node.require_approval`).
        #[arg(long)]
        preauthorized: bool,
    },
    /// List keys (secrets are never shown).
    #[command(visible_aliases = ["ls", "show"])]
    List {
        /// Only keys of this user (name or id).
        #[arg(short, long)]
        user: Option<String>,
    },
    /// Expire a key now.
    #[command(visible_aliases = ["revoke", "exp", "e"])]
    Expire {
        #[arg(short, long)]
        id: u64,
    },
    /// Delete a key.
    #[command(visible_aliases = ["del", "rm", "d"])]
    Delete {
        #[arg(short, long)]
        id: u64,
    },
}

/// A key lifetime: `None` = never expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime(pub Option<Duration>);

impl Lifetime {
    /// The expiry time for a key created now (`None`: never expires).
    pub fn expires_at(self) -> Result<Option<DateTime<Utc>>> {
        let Some(d) = self.0 else {
            return Ok(None);
        };
        let too_far = || Error::Usage("expiration is too far away".into());
        let d = chrono::Duration::from_std(d).map_err(|_| too_far())?;
        let at = Utc::now().checked_add_signed(d).ok_or_else(too_far)?;
        Ok(Some(at))
    }
}

pub(super) fn parse_lifetime(s: &str) -> Result<Lifetime, String> {
    if matches!(s.trim(), "never" | "0") {
        return Ok(Lifetime(None));
    }
    humantime::parse_duration(s.trim())
        .map(|d| Lifetime(Some(d)))
        .map_err(|e| format!("{s:?} is not a duration like 30m, 24h or 90d: {e}"))
}

pub(super) async fn run(ctx: &mut Ctx<'_>, cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::Create {
            user,
            reusable,
            ephemeral,
            expiration,
            tags,
            preauthorized,
        } => {
            let owner = users::resolve(ctx, &user).await?;
            let req = CreatePreAuthKeyRequest {
                user: Some(owner.id),
                reusable: Some(reusable),
                ephemeral: Some(ephemeral),
                expiration: expiration.expires_at()?,
                acl_tags: Some(tags),
                preauthorized: preauthorized.then_some(true),
            };
            let r: PreAuthKeyResponse = ctx.client.post("/api/v1/preauthkey", &req).await?;
            let text = r.pre_auth_key.key.clone();
            ctx.emit(&KeyView::from(&r.pre_auth_key), || text)
        }
        KeysCommand::List { user } => {
            let query = match user {
                Some(spec) => format!("?user={}", users::resolve(ctx, &spec).await?.id),
                None => String::new(),
            };
            let r: ListPreAuthKeysResponse = ctx
                .client
                .get(&format!("/api/v1/preauthkey{query}"))
                .await?;
            let keys = r.pre_auth_keys;
            let views: Vec<KeyView> = keys.iter().map(KeyView::from).collect();
            ctx.emit(&views, || keys_table(&keys))
        }
        KeysCommand::Expire { id } => {
            let req = ExpirePreAuthKeyRequest {
                id: Some(id.to_string()),
            };
            let _: Empty = ctx.client.post("/api/v1/preauthkey/expire", &req).await?;
            ctx.done("Key expired")
        }
        KeysCommand::Delete { id } => {
            let _: Empty = ctx
                .client
                .delete(&format!("/api/v1/preauthkey?id={id}"))
                .await?;
            ctx.done("Key deleted")
        }
    }
}

fn keys_table(keys: &[PreAuthKey]) -> String {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            let owner = if !k.acl_tags.is_empty() {
                k.acl_tags.join(",")
            } else {
                k.user
                    .as_ref()
                    .map(|u| u.name.clone())
                    .unwrap_or_else(|| "-".into())
            };
            vec![
                k.id.clone(),
                k.key.clone(),
                k.reusable.to_string(),
                k.ephemeral.to_string(),
                k.used.to_string(),
                cell_time(Some(&k.expiration)),
                cell_time(Some(&k.created_at)),
                owner,
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "Key/Prefix",
            "Reusable",
            "Ephemeral",
            "Used",
            "Expiration",
            "Created",
            "Owner",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(
            parse_lifetime("1h"),
            Ok(Lifetime(Some(Duration::from_secs(3600))))
        );
        assert_eq!(
            parse_lifetime("90d"),
            Ok(Lifetime(Some(Duration::from_secs(90 * 86400))))
        );
        assert_eq!(parse_lifetime("never"), Ok(Lifetime(None)));
        assert_eq!(parse_lifetime("0"), Ok(Lifetime(None)));
        assert!(parse_lifetime("soon").is_err());
    }
}
