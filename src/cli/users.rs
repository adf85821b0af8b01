//! `clawscale users …`, with Headscale v0.29's flags: `-i/--identifier`,
//! `-n/--name`, `-e/--email`, `-d/--display-name`, `-r/--new-name`.

use clap::{Args, Subcommand};

use super::output::{UserView, cell_time, table};
use super::{Ctx, Error, Result};
use crate::admin::proto::{
    self, CreateUserRequest, DeleteUserRequest, ListUsersRequest, RenameUserRequest,
};

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
                name,
                display_name: display_name.unwrap_or_default(),
                email: email.unwrap_or_default(),
                picture_url: String::new(),
            };
            let user = ctx.client.create_user(req).await?.into_inner().user;
            let user = user.ok_or_else(|| Error::Usage("server returned no user".into()))?;
            ctx.emit(&UserView::from(&user), || "User created".into())
        }
        UsersCommand::List { which, email } => {
            let mut req = ListUsersRequest::default();
            match (which.identifier, which.name, email) {
                (Some(id), _, _) => req.id = id,
                (None, Some(name), _) => req.name = name,
                (None, None, Some(email)) => req.email = email,
                (None, None, None) => {}
            }
            let users = ctx.client.list_users(req).await?.into_inner().users;
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
            let req = RenameUserRequest {
                old_id: user.id,
                new_name,
            };
            let user = ctx.client.rename_user(req).await?.into_inner().user;
            let user = user.ok_or_else(|| Error::Usage("server returned no user".into()))?;
            ctx.emit(&UserView::from(&user), || "User renamed".into())
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
            ctx.client
                .delete_user(DeleteUserRequest { id: user.id })
                .await?;
            ctx.done("User deleted")
        }
    }
}

/// The single user `which` names.
async fn find_one(ctx: &mut Ctx<'_>, which: &Which) -> Result<proto::User> {
    let req = match (which.identifier, &which.name) {
        (Some(id), _) => ListUsersRequest {
            id,
            ..Default::default()
        },
        (None, Some(name)) => ListUsersRequest {
            name: name.clone(),
            ..Default::default()
        },
        (None, None) => return Err(Error::Usage("--identifier or --name is required".into())),
    };
    let mut users = ctx.client.list_users(req).await?.into_inner().users;
    match users.len() {
        1 => Ok(users.remove(0)),
        0 => Err(Error::Usage("no such user".into())),
        _ => Err(Error::Usage("several users match; use --identifier".into())),
    }
}

/// Resolves a user given as a name or, failing that, a numeric id.
pub(super) async fn resolve(ctx: &mut Ctx<'_>, spec: &str) -> Result<proto::User> {
    let by_name = ListUsersRequest {
        name: spec.to_string(),
        ..Default::default()
    };
    let mut users = ctx.client.list_users(by_name).await?.into_inner().users;
    if users.len() == 1 {
        return Ok(users.remove(0));
    }
    if let Ok(id) = spec.parse::<u64>() {
        let by_id = ListUsersRequest {
            id,
            ..Default::default()
        };
        let mut users = ctx.client.list_users(by_id).await?.into_inner().users;
        if users.len() == 1 {
            return Ok(users.remove(0));
        }
    }
    Err(Error::Usage(format!("no user with name or id {spec:?}")))
}

fn users_table(users: &[proto::User]) -> String {
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.id.to_string(),
                u.display_name.clone(),
                u.name.clone(),
                u.email.clone(),
                cell_time(u.created_at.as_ref()),
            ]
        })
        .collect();
    table(&["ID", "Name", "Username", "Email", "Created"], &rows)
}
