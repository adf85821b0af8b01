//! Users (tailnet members): created by an operator, or on their first
//! OpenID Connect login (then identified by issuer and subject).

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
    /// Set for users that log in through OpenID Connect.
    pub oidc: Option<OidcIdentity>,
    pub profile_pic_url: String,
    /// The identity provider's groups claim at the last login; policy
    /// groups may name them as `oidc:NAME`.
    pub groups: Vec<String>,
}

/// Who a user is at an identity provider: the stable `(iss, sub)` pair of
/// its ID tokens (OpenID Connect Core §5.7: e-mail is not a stable key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OidcIdentity {
    pub issuer: String,
    pub subject: String,
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

    /// Headscale's `provider`: `oidc` for users of an identity provider.
    pub fn provider(&self) -> &'static str {
        if self.oidc.is_some() { "oidc" } else { "" }
    }

    /// Headscale's `provider_id`: the issuer URL joined with the subject.
    pub fn provider_id(&self) -> String {
        self.oidc
            .as_ref()
            .map(|o| format!("{}/{}", o.issuer.trim_end_matches('/'), o.subject))
            .unwrap_or_default()
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
