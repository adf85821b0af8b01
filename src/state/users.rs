//! User transitions.

use super::change::Change;
use super::{Error, Result, StateHandle};
use crate::types::User;
use crate::types::UserId;
use crate::types::user::validate_user_name;

impl StateHandle {
    pub async fn create_user(&self, name: &str, display_name: &str, email: &str) -> Result<User> {
        validate_user_name(name).map_err(Error::InvalidArgument)?;
        let (name, display, email) = (
            name.to_string(),
            display_name.to_string(),
            email.to_string(),
        );
        self.run(move |core| {
            Box::pin(async move {
                let now = core.now();
                let user = core.db.create_user(&name, &display, &email, now).await?;
                let mut w = core.draft();
                w.put_user(user.clone());
                core.publish(w, Change::users());
                Ok(user)
            })
        })
        .await
    }

    pub async fn rename_user(&self, id: UserId, new_name: &str) -> Result<User> {
        validate_user_name(new_name).map_err(Error::InvalidArgument)?;
        let new_name = new_name.to_string();
        self.run(move |core| {
            Box::pin(async move {
                let mut user = (**core
                    .world
                    .user(id)
                    .ok_or_else(|| Error::NotFound("user not found".into()))?)
                .clone();
                core.db.rename_user(id, &new_name).await?;
                user.name = new_name;
                let mut w = core.draft();
                w.put_user(user.clone());
                core.publish(w, Change::users());
                Ok(user)
            })
        })
        .await
    }

    pub async fn delete_user(&self, id: UserId) -> Result<()> {
        self.run(move |core| {
            Box::pin(async move {
                core.db.delete_user(id).await?;
                let mut w = core.draft();
                w.remove_user(id);
                core.publish(w, Change::users());
                Ok(())
            })
        })
        .await
    }
}
