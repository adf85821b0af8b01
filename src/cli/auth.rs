//! `clawscale auth register|approve|reject` (Headscale 0.28+ names):
//! deciding the interactive logins of machines that ran `tailscale up`
//! without a key. The auth id is the last part of the URL the client shows.

use clap::Subcommand;

use super::output::NodeView;
use super::{Ctx, Result};
use crate::api::v1::model::{AuthDecisionRequest, AuthRegisterRequest, Empty, NodeResponse};

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Register the waiting machine as a node of a user.
    Register {
        /// The id from the client's login URL (`cskey-authreq-…`).
        #[arg(short, long, value_name = "ID")]
        auth_id: String,
        /// The user the node belongs to.
        #[arg(short, long)]
        user: String,
    },
    /// Approve a waiting login of a machine that already has a node (it
    /// keeps its owner).
    Approve {
        #[arg(short, long, value_name = "ID")]
        auth_id: String,
    },
    /// Refuse a waiting login; the client shows the refusal.
    Reject {
        #[arg(short, long, value_name = "ID")]
        auth_id: String,
    },
}

/// Accepts the whole login URL too: people paste what the client printed.
fn id_of(text: &str) -> String {
    text.trim()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

pub(super) async fn register(ctx: &mut Ctx<'_>, auth_id: &str, user: String) -> Result<()> {
    let req = AuthRegisterRequest {
        user: Some(user),
        auth_id: Some(id_of(auth_id)),
    };
    let r: NodeResponse = ctx.client.post("/api/v1/auth/register", &req).await?;
    let name = r.node.given_name.clone();
    ctx.emit(&NodeView::from(&r.node), || {
        format!("Node {name} registered")
    })
}

pub(super) async fn run(ctx: &mut Ctx<'_>, cmd: AuthCommand) -> Result<()> {
    match cmd {
        AuthCommand::Register { auth_id, user } => register(ctx, &auth_id, user).await,
        AuthCommand::Approve { auth_id } => {
            let req = AuthDecisionRequest {
                auth_id: Some(id_of(&auth_id)),
            };
            let _: Empty = ctx.client.post("/api/v1/auth/approve", &req).await?;
            ctx.done("Login approved")
        }
        AuthCommand::Reject { auth_id } => {
            let req = AuthDecisionRequest {
                auth_id: Some(id_of(&auth_id)),
            };
            let _: Empty = ctx.client.post("/api/v1/auth/reject", &req).await?;
            ctx.done("Login rejected")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::id_of;

    #[test]
    fn ids_and_urls_both_work() {
        let id = "cskey-authreq-0123456789abcdef01234567";
        assert_eq!(id_of(id), id);
        assert_eq!(id_of(&format!("http://ctl:8080/register/{id}")), id);
        assert_eq!(id_of(&format!(" http://ctl/register/{id}/ ")), id);
    }
}
