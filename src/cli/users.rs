//! `clawscale users …`, with Headscale v0.29's flags: `-i/--identifier`,
//! `-n/--name`, `-e/--email`, `-d/--display-name`, `-r/--new-name`.

use clap::{Args, Subcommand};

use super::client::enc;
use super::output::{UserView, cell_time, table};
use super::{Ctx, Error, Result};
use crate::api::v1::model::{CreateUserRequest, Empty, ListUsersResponse, User, UserResponse};

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user.
    #[command(visible_aliases = ["c", "new"])]
    Create {
        name: String,
        #[arg(short, long)]
        display_name: Option<String>,
        #[arg(short, long)]
        email: Option<String>,
    },
    /// List users (optionally one, by id, name or email).
    #[command(visible_aliases = ["ls", "show"])]
    List {
        #[command(flatten)]
        which: Which,
        #[arg(short, long)]
        email: Option<String>,
    },
    /// Rename a user.
    #[command(visible_alias = "mv")]
    Rename {
        #[command(flatten)]
        which: Which,
        /// The new name (or use --new-name).
        new: Option<String>,
        #[arg(short = 'r', long = "new-name", value_name = "NAME")]
        new_name: Option<String>,
    },
    /// Delete a user (it must own no nodes).
    #[command(visible_alias = "destroy")]
    Delete {
        #[command(flatten)]
        which: Which,
    },
}

/// Picks a user by id or name.
#[derive(Debug, Args)]
pub struct Which {
    /// User id.
    #[arg(short, long, value_name = "ID")]
    pub identifier: Option<u64>,
    /// User name.
    #[arg(short, long)]
    pub name: Option<String>,
}

pub(super) async fn run(ctx: &mut Ctx<'_>, cmd: UsersCommand) -> Result<()> {
    match cmd {
        UsersCommand::Create {
            name,
            display_name,
            email,
        } => {
            let req = CreateUserRequest {
                name: Some(name),
                display_name,
                email,
                picture_url: None,
            };
            let r: UserResponse = ctx.client.post("/api/v1/user", &req).await?;
            ctx.emit(&UserView::from(&r.user), || "User created".into())
        }
        UsersCommand::List { which, email } => {
            let query = match (which.identifier, which.name, email) {
                (Some(id), _, _) => format!("?id={id}"),
                (None, Some(name), _) => format!("?name={}", enc(&name)),
                (None, None, Some(email)) => format!("?email={}", enc(&email)),
                (None, None, None) => String::new(),
            };
            let users = list(ctx, &query).await?;
            let views: Vec<UserView> = users.iter().map(UserView::from).collect();
            ctx.emit(&views, || users_table(&users))
        }
        UsersCommand::Rename {
            which,
            new,
            new_name,
        } => {
            let new_name = match (new, new_name) {
                (Some(a), Some(b)) if a != b => {
                    return Err(Error::Usage("give the new name once".into()));
                }
                (Some(n), _) | (None, Some(n)) => n,
                (None, None) => return Err(Error::Usage("missing the new name".into())),
            };
            let user = find_one(ctx, &which).await?;
            let path = format!("/api/v1/user/{}/rename/{}", user.id, enc(&new_name));
            let r: UserResponse = ctx.client.post(&path, &Empty {}).await?;
            ctx.emit(&UserView::from(&r.user), || "User renamed".into())
        }
        UsersCommand::Delete { which } => {
            let user = find_one(ctx, &which).await?;
            let prompt = format!(
                "Delete user {:?} ({}) and its pre-auth keys?",
                user.name, user.id
            );
            if !ctx.confirm(&prompt)? {
                return ctx.done("User not deleted");
            }
            let _: Empty = ctx
                .client
                .delete(&format!("/api/v1/user/{}", user.id))
                .await?;
            ctx.done("User deleted")
        }
    }
}

async fn list(ctx: &mut Ctx<'_>, query: &str) -> Result<Vec<User>> {
    let r: ListUsersResponse = ctx.client.get(&format!("/api/v1/user{query}")).await?;
    Ok(r.users)
}

/// The single user `which` names.
async fn find_one(ctx: &mut Ctx<'_>, which: &Which) -> Result<User> {
    let query = match (which.identifier, &which.name) {
        (Some(id), _) => format!("?id={id}"),
        (None, Some(name)) => format!("?name={}", enc(name)),
        (None, None) => return Err(Error::Usage("--identifier or --name is required".into())),
    };
    let mut users = list(ctx, &query).await?;
    match users.len() {
        1 => Ok(users.remove(0)),
        0 => Err(Error::Usage("no such user".into())),
        _ => Err(Error::Usage("several users match; use --identifier".into())),
    }
}

/// Resolves a user given as a name or, failing that, a numeric id.
pub(super) async fn resolve(ctx: &mut Ctx<'_>, spec: &str) -> Result<User> {
    let mut users = list(ctx, &format!("?name={}", enc(spec))).await?;
    if users.len() == 1 {
        return Ok(users.remove(0));
    }
    if let Ok(id) = spec.parse::<u64>() {
        let mut users = list(ctx, &format!("?id={id}")).await?;
        if users.len() == 1 {
            return Ok(users.remove(0));
        }
    }
    Err(Error::Usage(format!("no user with name or id {spec:?}")))
}

fn users_table(users: &[User]) -> String {
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.id.clone(),
                u.display_name.clone(),
                u.name.clone(),
                u.email.clone(),
                cell_time(Some(&u.created_at)),
            ]
        })
        .collect();
    table(&["ID", "Name", "Username", "Email", "Created"], &rows)
}
