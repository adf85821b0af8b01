//! User operations.

use std::sync::Arc;

use super::{Admin, Caller, Done, Error, Mutation, Resource, Result, snapshot};
use crate::types::{User, UserId};

/// A user to create.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub name: String,
    pub display_name: String,
    pub email: String,
}

/// At most one filter applies, in Headscale's order: name, email, id.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub name: Option<String>,
    pub email: Option<String>,
    pub id: Option<UserId>,
}

fn object(id: UserId) -> String {
    format!("user:{id}")
}

impl Admin {
    /// Users in id order.
    pub fn list_users(&self, caller: &Caller, f: &UserFilter) -> Result<Vec<Arc<User>>> {
        self.read(caller, Resource::Users)?;
        let world = self.state().world();
        let keep = |u: &User| match (&f.name, &f.email, f.id) {
            (Some(n), _, _) => &u.name == n,
            (None, Some(e), _) => &u.email == e,
            (None, None, Some(id)) => u.id == id,
            (None, None, None) => true,
        };
        Ok(world.users.values().filter(|u| keep(u)).cloned().collect())
    }

    pub fn get_user(&self, caller: &Caller, id: UserId) -> Result<Arc<User>> {
        self.read(caller, Resource::Users)?;
        self.state()
            .world()
            .user(id)
            .cloned()
            .ok_or_else(|| Error::NotFound("user not found".into()))
    }

    pub async fn create_user(&self, caller: &Caller, new: NewUser) -> Result<User> {
        let m = Mutation::new(Resource::Users, "user.create");
        self.mutate(caller, m, async {
            let u = self
                .state()
                .create_user(&new.name, &new.display_name, &new.email)
                .await?;
            Ok(Done::new(u.clone())
                .object(object(u.id))
                .after(snapshot::user(&u)))
        })
        .await
    }

    pub async fn rename_user(&self, caller: &Caller, id: UserId, new_name: &str) -> Result<User> {
        let before = self.state().world().user(id).map(|u| snapshot::user(u));
        let m = Mutation::new(Resource::Users, "user.rename")
            .on(object(id))
            .before(before);
        self.mutate(caller, m, async {
            let u = self.state().rename_user(id, new_name).await?;
            Ok(Done::new(u.clone()).after(snapshot::user(&u)))
        })
        .await
    }

    pub async fn delete_user(&self, caller: &Caller, id: UserId) -> Result<()> {
        let world = self.state().world();
        let m = Mutation::new(Resource::Users, "user.delete")
            .on(object(id))
            .before(world.user(id).map(|u| snapshot::user(u)));
        self.mutate(caller, m, async {
            if world.user(id).is_none() {
                return Err(Error::NotFound("user not found".into()));
            }
            // Checked here too so the answer says what to do; the database
            // refuses the same case (nodes reference their user).
            let nodes = world.nodes.values().filter(|n| n.user_id == id).count();
            if nodes > 0 {
                return Err(Error::FailedPrecondition(format!(
                    "user still owns {nodes} node(s); delete them first"
                )));
            }
            self.state().delete_user(id).await?;
            Ok(Done::new(()))
        })
        .await
    }
}
