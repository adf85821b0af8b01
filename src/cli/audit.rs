//! `clawscale audit list`: the audit trail, filtered (`GET /api/v1/audit`).

use clap::Subcommand;

use super::client::enc;
use super::output::table;
use super::{Ctx, Result};
use crate::api::v1::model::AuditResponse;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit entries, oldest first.
    #[command(visible_aliases = ["ls", "show"])]
    List {
        /// Only entries at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only this actor (`apikey:<prefix>`, `uid:0`, `policy-file`,
        /// `node:3`, `system`).
        #[arg(long)]
        actor: Option<String>,
        /// Only this object (`node:3`), or a kind (`node`).
        #[arg(long)]
        object: Option<String>,
        /// At most this many (the newest).
        #[arg(long)]
        limit: Option<u64>,
    },
}

pub(super) async fn run(ctx: &mut Ctx<'_>, cmd: AuditCommand) -> Result<()> {
    let AuditCommand::List {
        since,
        actor,
        object,
        limit,
    } = cmd;
    let mut query: Vec<String> = Vec::new();
    for (name, value) in [("since", since), ("actor", actor), ("object", object)] {
        if let Some(v) = value {
            query.push(format!("{name}={}", enc(&v)));
        }
    }
    if let Some(l) = limit {
        query.push(format!("limit={l}"));
    }
    let path = if query.is_empty() {
        "/api/v1/audit".to_string()
    } else {
        format!("/api/v1/audit?{}", query.join("&"))
    };
    let r: AuditResponse = ctx.client.get(&path).await?;
    ctx.emit(&r.entries, || {
        let rows: Vec<Vec<String>> = r
            .entries
            .iter()
            .map(|e| {
                vec![
                    e.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                    e.actor.clone(),
                    e.action.clone(),
                    e.object.clone().unwrap_or_else(|| "-".into()),
                    match &e.error {
                        Some(err) => format!("error: {err}"),
                        None => e.result.clone(),
                    },
                ]
            })
            .collect();
        table(&["Time", "Actor", "Action", "Object", "Result"], &rows)
    })
}
