//! `clawscale oauth-clients …` (clawscale extension): OAuth clients of API
//! v2, over REST `/api/v1/oauthclient`. `create --scopes auth_keys,
//! devices:core --tags tag:k8s-operator` prints the secret, once.

use clap::Subcommand;
use serde::Serialize;

use super::client::enc;
use super::output::{cell_time, table};
use super::{Ctx, Result};
use crate::api::v1::model::{
    CreateOAuthClientRequest, CreateOAuthClientResponse, Empty, ListOAuthClientsResponse,
    OAuthClient,
};

#[derive(Debug, Subcommand)]
pub enum OAuthClientsCommand {
    /// Create a client; prints its secret, which cannot be shown again.
    #[command(visible_aliases = ["c", "new"])]
    Create {
        /// Comma-separated scopes: all, auth_keys, devices:core,
        /// devices:routes, dns, policy_file, each also with `:read`.
        #[arg(short, long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Comma-separated tags the client's keys and devices may carry
        /// (required with all, auth_keys or devices:core).
        #[arg(short, long, value_delimiter = ',')]
        tags: Vec<String>,
        #[arg(short, long, default_value = "")]
        description: String,
    },
    /// List clients (secrets are never shown).
    #[command(visible_aliases = ["ls", "show"])]
    List,
    /// Delete a client; its access tokens stop working at once.
    #[command(visible_aliases = ["remove", "del"])]
    Delete {
        /// The client id.
        id: String,
    },
}

#[derive(Serialize)]
struct View {
    id: String,
    scopes: Vec<String>,
    tags: Vec<String>,
    description: String,
    created_at: String,
}

fn view(c: &OAuthClient) -> View {
    View {
        id: c.id.clone(),
        scopes: c.scopes.clone(),
        tags: c.tags.clone(),
        description: c.description.clone(),
        created_at: cell_time(Some(&c.created_at)),
    }
}

pub(super) async fn run(ctx: &mut Ctx<'_>, cmd: OAuthClientsCommand) -> Result<()> {
    match cmd {
        OAuthClientsCommand::Create {
            scopes,
            tags,
            description,
        } => {
            let req = CreateOAuthClientRequest {
                scopes: Some(scopes),
                tags: Some(tags),
                description: Some(description),
            };
            let r: CreateOAuthClientResponse = ctx.client.post("/api/v1/oauthclient", &req).await?;
            let value = serde_json::json!({
                "id": r.oauth_client.id,
                "secret": r.secret,
                "scopes": r.oauth_client.scopes,
                "tags": r.oauth_client.tags,
            });
            ctx.emit(&value, || {
                format!("client id: {}\nsecret:    {}", r.oauth_client.id, r.secret)
            })
        }
        OAuthClientsCommand::List => {
            let r: ListOAuthClientsResponse = ctx.client.get("/api/v1/oauthclient").await?;
            let clients = r.oauth_clients;
            let views: Vec<View> = clients.iter().map(view).collect();
            ctx.emit(&views, || {
                let rows: Vec<Vec<String>> = clients
                    .iter()
                    .map(|c| {
                        vec![
                            c.id.clone(),
                            c.scopes.join(","),
                            c.tags.join(","),
                            c.description.clone(),
                            cell_time(Some(&c.created_at)),
                        ]
                    })
                    .collect();
                table(&["ID", "Scopes", "Tags", "Description", "Created"], &rows)
            })
        }
        OAuthClientsCommand::Delete { id } => {
            let _: Empty = ctx
                .client
                .delete(&format!("/api/v1/oauthclient/{}", enc(&id)))
                .await?;
            ctx.done("OAuth client deleted")
        }
    }
}
