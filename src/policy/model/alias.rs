//! Policy selectors ("aliases") as data: what a `src`, `dst` or `target`
//! string names. Parsing lives in `syntax::selector`, resolution to nodes
//! and addresses in `resolve`.

use ipnet::IpNet;

use super::topology::TopoUser;

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

/// Group members naming an identity-provider group (clawscale extension):
/// `"group:ops": ["oidc:ops"]` holds every user whose OpenID Connect groups
/// claim contained `ops` at their last login.
pub const OIDC_MEMBER_PREFIX: &str = "oidc:";

/// Does a group member (a user selector, or `oidc:NAME`) match `user`?
pub fn member_matches(member: &str, user: &TopoUser) -> bool {
    match member.strip_prefix(OIDC_MEMBER_PREFIX) {
        Some(group) => user.groups.iter().any(|g| g == group),
        None => user_matches(member, &user.login),
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

    #[test]
    fn oidc_members_match_groups_not_logins() {
        let alice = TopoUser {
            id: 1,
            name: "alice".into(),
            login: "alice@example.com".into(),
            groups: vec!["mcp-admins".into()],
        };
        assert!(member_matches("oidc:mcp-admins", &alice));
        assert!(!member_matches("oidc:mcp", &alice));
        assert!(!member_matches("oidc:MCP-ADMINS", &alice));
        assert!(member_matches("alice@", &alice));
        let bob = TopoUser {
            login: "oidc:mcp-admins".into(),
            groups: vec![],
            ..alice.clone()
        };
        assert!(
            !member_matches("oidc:mcp-admins", &bob),
            "logins are not groups"
        );
    }
}
