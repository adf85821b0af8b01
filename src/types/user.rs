//! Users (tailnet members). clawscale has no identity provider yet: users are
//! created by an operator and nodes join them with pre-auth keys.

use chrono::{DateTime, Utc};

use super::UserId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    /// Unique short name (Headscale's `name`), e.g. `alice`.
    pub name: String,
    pub display_name: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
}

impl User {
    /// The login shown by clients: the e-mail when set, else the name, as
    /// Headscale does (`hscontrol/types/users.go`).
    pub fn login_name(&self) -> &str {
        if self.email.is_empty() {
            &self.name
        } else {
            &self.email
        }
    }

    pub fn display(&self) -> &str {
        if self.display_name.is_empty() {
            &self.name
        } else {
            &self.display_name
        }
    }
}

/// Validates a user name: 1–63 characters, no whitespace or control
/// characters, no `@` at the start (logins like `alice@` are policy syntax).
pub fn validate_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err("user name must be 1-63 characters".into());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "user name {name:?} contains whitespace or control characters"
        ));
    }
    if name.starts_with('@') || name.starts_with('-') {
        return Err(format!("user name {name:?} must not start with '@' or '-'"));
    }
    Ok(())
}
