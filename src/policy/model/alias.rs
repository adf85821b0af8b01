//! Policy selectors ("aliases") as data: what a `src`, `dst` or `target`
//! string names. Parsing lives in `syntax::selector`, resolution to nodes
//! and addresses in `resolve`.

use ipnet::IpNet;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Alias {
    Wildcard,
    /// A login (`alice@example.com`) or a login prefix (`alice@`).
    User(String),
    /// `user:*@domain`: every user whose login is in `domain`.
    UserDomain(String),
    Group(String),
    Tag(String),
    Host(String),
    Prefix(IpNet),
    Member,
    Tagged,
    SelfDevices,
    Internet,
    DangerAll,
    /// autogroup:admin / owner / it-admin ...: roles we do not model; they
    /// match no nodes.
    Role(String),
    Service(String),
}

impl Alias {
    pub fn text(&self) -> String {
        match self {
            Alias::Wildcard => "*".into(),
            Alias::User(u) => u.clone(),
            Alias::UserDomain(d) => format!("user:*@{d}"),
            Alias::Group(g) | Alias::Tag(g) | Alias::Host(g) => g.clone(),
            Alias::Prefix(p) => p.to_string(),
            Alias::Member => "autogroup:member".into(),
            Alias::Tagged => "autogroup:tagged".into(),
            Alias::SelfDevices => "autogroup:self".into(),
            Alias::Internet => "autogroup:internet".into(),
            Alias::DangerAll => "autogroup:danger-all".into(),
            Alias::Role(r) => format!("autogroup:{r}"),
            Alias::Service(s) => format!("svc:{s}"),
        }
    }
}

/// Does `login` match a user selector (`alice@example.com` exactly, or
/// `alice@` as the local part of any login)?
pub fn user_matches(sel: &str, login: &str) -> bool {
    if sel.ends_with('@') {
        login.starts_with(sel) || login == &sel[..sel.len() - 1]
    } else {
        sel == login
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_prefix_matching() {
        assert!(user_matches("alice@", "alice@example.com"));
        assert!(!user_matches("alice@", "malice@example.com"));
        assert!(user_matches("alice@example.com", "alice@example.com"));
        assert!(!user_matches("alice@example.com", "alice@example.org"));
    }
}
