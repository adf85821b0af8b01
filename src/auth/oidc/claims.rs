//! From a verified ID token to the person it names, and whether they may
//! log in (`allowed_domains`, `allowed_users`, `allowed_groups`).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::provider::{IdTokenClaims, UserInfoClaims};
use crate::config;
use crate::db::OidcProfile;
use crate::types::OidcIdentity;

/// The person a verified ID token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub profile: OidcProfile,
    /// A user name for a first login (`preferred_username`, else the
    /// e-mail's local part, else the subject).
    pub preferred_name: String,
    /// When the ID token expires.
    pub token_expiry: DateTime<Utc>,
}

/// Why a login is refused; shown to the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl Person {
    /// The person from the verified ID token; a claim the token lacks is
    /// taken from the userinfo answer (`info`, already checked to be about
    /// the same subject), as providers that keep ID tokens small send
    /// profile claims there only.
    pub fn from_claims(
        claims: &IdTokenClaims,
        info: Option<&UserInfoClaims>,
        cfg: &config::Oidc,
    ) -> Person {
        // The address and whether it is verified come from the same answer.
        let (email, verified) = match (claims.email(), info.and_then(|i| i.email())) {
            (Some(e), _) => (Some(e), claims.email_verified()),
            (None, Some(e)) => (Some(e), info.and_then(|i| i.email_verified())),
            (None, None) => (None, None),
        };
        // An address the provider has not verified may belong to anyone,
        // so it is not used for allow-lists, policy logins or matching.
        let email = email
            .map(|e| e.as_str().trim().to_string())
            .filter(|_| verified == Some(true) || !cfg.email_verified_required)
            .unwrap_or_default();
        let display_name = claims
            .name()
            .and_then(|n| n.get(None))
            .or_else(|| info.and_then(|i| i.name()).and_then(|n| n.get(None)))
            .map(|n| n.as_str().to_string())
            .unwrap_or_default();
        let picture = claims
            .picture()
            .and_then(|p| p.get(None))
            .or_else(|| info.and_then(|i| i.picture()).and_then(|p| p.get(None)))
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let subject = claims.subject().as_str().to_string();
        let preferred_name = claims
            .preferred_username()
            .or_else(|| info.and_then(|i| i.preferred_username()))
            .map(|u| u.as_str().to_string())
            .or_else(|| email.split_once('@').map(|(local, _)| local.to_string()))
            .unwrap_or_else(|| subject.clone());
        let groups = groups(
            claims
                .additional_claims()
                .claims
                .get(&cfg.groups_claim)
                .or_else(|| info.and_then(|i| i.additional_claims().claims.get(&cfg.groups_claim))),
        );
        Person {
            profile: OidcProfile {
                identity: OidcIdentity {
                    issuer: claims.issuer().as_str().to_string(),
                    subject,
                },
                display_name,
                email,
                profile_pic_url: picture,
                groups,
            },
            preferred_name,
            token_expiry: claims.expiration(),
        }
    }

    /// Applies the allow-lists; every configured list must admit the person.
    pub fn check_allowed(&self, cfg: &config::Oidc) -> Result<(), Refusal> {
        let email = self.profile.email.to_ascii_lowercase();
        if !cfg.allowed_groups.is_empty()
            && !self
                .profile
                .groups
                .iter()
                .any(|g| cfg.allowed_groups.contains(g))
        {
            return Err(Refusal(
                "you are not in a group that is allowed to log in to this tailnet".into(),
            ));
        }
        if !cfg.allowed_domains.is_empty() {
            let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
            if domain.is_empty() || !cfg.allowed_domains.iter().any(|d| d == domain) {
                return Err(Refusal(if email.is_empty() {
                    "your identity provider did not send a verified e-mail address, \
                     and this tailnet only admits some e-mail domains"
                        .into()
                } else {
                    format!("the e-mail domain of {email} is not allowed to log in to this tailnet")
                }));
            }
        }
        if !cfg.allowed_users.is_empty() && !cfg.allowed_users.contains(&email) {
            return Err(Refusal(if email.is_empty() {
                "your identity provider did not send a verified e-mail address, \
                 and this tailnet only admits listed users"
                    .into()
            } else {
                format!("{email} is not allowed to log in to this tailnet")
            }));
        }
        Ok(())
    }
}

/// The groups claim: a list of names (or one name); anything else is none.
fn groups(claim: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> = match claim {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => vec![],
    };
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> config::Oidc {
        let yaml = "oidc:\n  issuer: https://id.example.com\n  client_id: cs\n";
        config::Config::from_yaml(yaml, &config::Overrides::default())
            .unwrap()
            .oidc
            .unwrap()
    }

    fn person(email: &str, groups: &[&str]) -> Person {
        Person {
            profile: OidcProfile {
                identity: OidcIdentity {
                    issuer: "https://id.example.com".into(),
                    subject: "s".into(),
                },
                display_name: String::new(),
                email: email.into(),
                profile_pic_url: String::new(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
            },
            preferred_name: "x".into(),
            token_expiry: Utc::now(),
        }
    }

    #[test]
    fn allow_lists_each_must_admit() {
        let mut c = cfg();
        assert!(person("a@evil.com", &[]).check_allowed(&c).is_ok());
        c.allowed_domains = vec!["example.com".into()];
        let err = person("a@evil.com", &[]).check_allowed(&c).unwrap_err();
        assert!(err.0.contains("domain"), "{err:?}");
        assert!(person("a@Example.com", &[]).check_allowed(&c).is_ok());
        assert!(person("", &[]).check_allowed(&c).is_err());
        c.allowed_users = vec!["b@example.com".into()];
        assert!(person("a@example.com", &[]).check_allowed(&c).is_err());
        assert!(person("b@example.com", &[]).check_allowed(&c).is_ok());
        c.allowed_groups = vec!["ops".into()];
        assert!(person("b@example.com", &["dev"]).check_allowed(&c).is_err());
        assert!(
            person("b@example.com", &["dev", "ops"])
                .check_allowed(&c)
                .is_ok()
        );
    }

    /// Claims the ID token lacks come from userinfo, an address always
    /// with its own source's `email_verified`, and the token wins where
    /// both have a claim.
    #[test]
    fn userinfo_fills_what_the_id_token_lacks() {
        use openidconnect::{Audience, EndUserEmail, IssuerUrl, StandardClaims, SubjectIdentifier};

        use crate::auth::oidc::provider::ExtraClaims;
        let std = || StandardClaims::new(SubjectIdentifier::new("s".into()));
        let extra = |groups: Option<&[&str]>| ExtraClaims {
            claims: groups
                .map(|g| [("groups".to_string(), serde_json::json!(g))].into())
                .unwrap_or_default(),
        };
        let token = |email: Option<(&str, bool)>, groups| {
            let mut s = std();
            if let Some((e, v)) = email {
                s = s
                    .set_email(Some(EndUserEmail::new(e.into())))
                    .set_email_verified(Some(v));
            }
            IdTokenClaims::new(
                IssuerUrl::new("https://id.example.com".into()).unwrap(),
                vec![Audience::new("cs".into())],
                Utc::now(),
                Utc::now(),
                s,
                extra(groups),
            )
        };
        let info = |email: (&str, bool), groups| {
            UserInfoClaims::new(
                std()
                    .set_email(Some(EndUserEmail::new(email.0.into())))
                    .set_email_verified(Some(email.1)),
                extra(groups),
            )
        };
        let c = cfg();
        let p = Person::from_claims(
            &token(None, None),
            Some(&info(("a@example.com", true), Some(&["ops"]))),
            &c,
        );
        assert_eq!(p.profile.email, "a@example.com");
        assert_eq!(p.profile.groups, ["ops"]);
        assert_eq!(p.preferred_name, "a");
        // The token's verified address is not paired with userinfo's flag.
        let p = Person::from_claims(
            &token(Some(("t@example.com", false)), Some(&[])),
            Some(&info(("u@example.com", true), Some(&["ops"]))),
            &c,
        );
        assert_eq!(p.profile.email, "", "unverified address used");
        assert!(p.profile.groups.is_empty(), "the token's groups win");
        let p = Person::from_claims(
            &token(None, None),
            Some(&info(("u@example.com", false), None)),
            &c,
        );
        assert_eq!(p.profile.email, "");
    }

    #[test]
    fn groups_claim_shapes() {
        let v = serde_json::json!(["b", "a", "b", 3]);
        assert_eq!(groups(Some(&v)), ["a", "b"]);
        assert_eq!(groups(Some(&serde_json::json!("ops"))), ["ops"]);
        assert!(groups(Some(&serde_json::json!({"x": 1}))).is_empty());
        assert!(groups(None).is_empty());
    }
}
