//! The `oidc` section: OpenID Connect login (`crate::auth::oidc`), with
//! Headscale's key names, plus clawscale's `groups_claim`.
//!
//! Secrets: `client_secret_path` must not be readable by group or others
//! (0600 or stricter), and the secret never appears in `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::Error;
use super::raw::Scalar;
use super::validate::{duration, invalid};

/// Headscale's `oidc` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "only_start_if_oidc_is_available: accepted for Headscale files"
)]
pub(in crate::config) struct RawOidc {
    /// Headscale turns OIDC on by the presence of `issuer`; `enabled`
    /// is accepted for old files and `false` switches it off.
    pub enabled: Option<bool>,
    /// Accepted for Headscale files; the server always starts, and logins
    /// fail with a clear page while the issuer is unreachable.
    pub only_start_if_oidc_is_available: Option<bool>,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_path: Option<String>,
    pub expiry: Option<Scalar>,
    pub use_expiry_from_token: Option<bool>,
    pub scope: Option<Vec<String>>,
    pub email_verified_required: Option<bool>,
    pub extra_params: Option<BTreeMap<String, Scalar>>,
    pub allowed_domains: Option<Vec<String>>,
    pub allowed_users: Option<Vec<String>>,
    pub allowed_groups: Option<Vec<String>>,
    /// clawscale: the ID token claim holding the user's groups.
    pub groups_claim: Option<String>,
    pub pkce: Option<RawPkce>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawPkce {
    pub enabled: Option<bool>,
    pub method: Option<String>,
}

/// Validated OIDC settings; present only when an issuer is configured.
#[derive(Clone, PartialEq, Eq)]
pub struct Oidc {
    /// The issuer URL as written (it must equal the discovery document's
    /// `issuer` and the ID token's `iss`).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Scopes requested; always includes `openid`.
    pub scope: Vec<String>,
    pub extra_params: BTreeMap<String, String>,
    /// E-mail domains allowed to log in (empty: any).
    pub allowed_domains: Vec<String>,
    /// E-mail addresses allowed to log in (empty: any).
    pub allowed_users: Vec<String>,
    /// Groups of which a user must be in at least one (empty: any).
    pub allowed_groups: Vec<String>,
    /// How long a node logged in through OIDC stays authorised (`None`: no
    /// expiry). Ignored when `use_expiry_from_token`.
    pub expiry: Option<Duration>,
    /// Expire the node when the ID token does.
    pub use_expiry_from_token: bool,
    /// Refuse logins whose ID token says the e-mail is not verified.
    pub email_verified_required: bool,
    pub pkce: Option<PkceMethod>,
    /// The claim holding the user's groups (default `groups`).
    pub groups_claim: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkceMethod {
    S256,
    Plain,
}

impl fmt::Debug for Oidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scope", &self.scope)
            .field("extra_params", &self.extra_params)
            .field("allowed_domains", &self.allowed_domains)
            .field("allowed_users", &self.allowed_users)
            .field("allowed_groups", &self.allowed_groups)
            .field("expiry", &self.expiry)
            .field("use_expiry_from_token", &self.use_expiry_from_token)
            .field("email_verified_required", &self.email_verified_required)
            .field("pkce", &self.pkce)
            .field("groups_claim", &self.groups_claim)
            .finish()
    }
}

/// `None` when OIDC is not configured (no issuer, or `enabled: false`).
pub(in crate::config) fn build(raw: Option<&RawOidc>) -> Result<Option<Oidc>, Error> {
    let Some(raw) = raw else { return Ok(None) };
    let issuer = raw.issuer.as_deref().map(str::trim).unwrap_or("");
    if issuer.is_empty() || raw.enabled == Some(false) {
        return Ok(None);
    }
    let parsed = url::Url::parse(issuer)
        .map_err(|e| invalid("oidc.issuer", format!("{issuer:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host().is_none() {
        return Err(invalid(
            "oidc.issuer",
            format!("{issuer:?} must be an http(s) URL with a host"),
        ));
    }
    let client_id = raw.client_id.as_deref().map(str::trim).unwrap_or("");
    if client_id.is_empty() {
        return Err(invalid(
            "oidc.client_id",
            "required when oidc.issuer is set",
        ));
    }
    let client_secret = secret(raw)?;
    let mut scope = raw
        .scope
        .clone()
        .unwrap_or_else(|| vec!["openid".into(), "profile".into(), "email".into()]);
    if !scope.iter().any(|s| s == "openid") {
        scope.insert(0, "openid".into());
    }
    let expiry = match &raw.expiry {
        Some(v) => Some(duration("oidc.expiry", v)?).filter(|d| !d.is_zero()),
        None => None,
    };
    let pkce = match &raw.pkce {
        Some(p) if p.enabled == Some(true) => Some(match p.method.as_deref().unwrap_or("S256") {
            "S256" => PkceMethod::S256,
            "plain" => PkceMethod::Plain,
            other => {
                return Err(invalid(
                    "oidc.pkce.method",
                    format!("{other:?} is not \"S256\" or \"plain\""),
                ));
            }
        }),
        _ => None,
    };
    let lower = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter()
            .flatten()
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let groups_claim = raw.groups_claim.as_deref().unwrap_or("groups").trim();
    if groups_claim.is_empty() {
        return Err(invalid("oidc.groups_claim", "must not be empty"));
    }
    Ok(Some(Oidc {
        issuer: issuer.to_string(),
        client_id: client_id.to_string(),
        client_secret,
        scope,
        extra_params: raw
            .extra_params
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.text.clone()))
            .collect(),
        allowed_domains: lower(&raw.allowed_domains),
        allowed_users: lower(&raw.allowed_users),
        // Group names are compared exactly: IdPs use case in them.
        allowed_groups: raw.allowed_groups.clone().unwrap_or_default(),
        expiry,
        use_expiry_from_token: raw.use_expiry_from_token.unwrap_or(false),
        email_verified_required: raw.email_verified_required.unwrap_or(true),
        pkce,
        groups_claim: groups_claim.to_string(),
    }))
}

/// The client secret, inline or from a file only its owner can read.
fn secret(raw: &RawOidc) -> Result<String, Error> {
    let path = raw.client_secret_path.as_deref().map(str::trim);
    match (raw.client_secret.as_deref(), path) {
        (Some(s), Some(p)) if !s.is_empty() && !p.is_empty() => Err(invalid(
            "oidc.client_secret_path",
            "set either oidc.client_secret or oidc.client_secret_path, not both",
        )),
        (_, Some(p)) if !p.is_empty() => read_secret_file(Path::new(p)),
        (Some(s), _) => Ok(s.to_string()),
        (None, _) => Ok(String::new()),
    }
}

fn read_secret_file(path: &Path) -> Result<String, Error> {
    const KEY: &str = "oidc.client_secret_path";
    let meta = std::fs::metadata(path)
        .map_err(|e| invalid(KEY, format!("cannot read {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(invalid(
            KEY,
            format!(
                "{} has mode {mode:04o}; it holds a secret, so it must not be readable \
                 by group or others (chmod 600)",
                path.display()
            ),
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(KEY, format!("cannot read {}: {e}", path.display())))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(invalid(KEY, format!("{} is empty", path.display())));
    }
    Ok(secret.to_string())
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Overrides};

    fn load(yaml: &str) -> Result<Config, String> {
        Config::from_yaml(yaml, &Overrides::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn oidc_keys_load_with_headscale_names_and_defaults() {
        let c = load(
            "oidc:\n  issuer: https://id.example.net\n  client_id: cs\n  client_secret: s3cret\n  \
             extra_params: {domain_hint: example.net}\n  allowed_domains: [Example.NET]\n  \
             allowed_groups: [/ops]\n  expiry: 30d\n  pkce: {enabled: true}\n",
        )
        .unwrap();
        let o = c.oidc.expect("oidc on");
        assert_eq!(o.scope, ["openid", "profile", "email"]);
        assert_eq!(o.allowed_domains, ["example.net"]);
        assert_eq!(o.allowed_groups, ["/ops"]);
        assert_eq!(o.expiry, Some(std::time::Duration::from_secs(30 * 86400)));
        assert_eq!(o.pkce, Some(super::PkceMethod::S256));
        assert_eq!(o.groups_claim, "groups");
        assert_eq!(o.extra_params["domain_hint"], "example.net");
        assert!(!format!("{o:?}").contains("s3cret"), "secret in Debug");
    }

    #[test]
    fn oidc_is_off_without_issuer_and_strict_about_the_rest() {
        assert!(load("oidc:\n  client_id: x\n").unwrap().oidc.is_none());
        assert!(load("").unwrap().oidc.is_none());
        let err = load("oidc:\n  issuer: https://id\n").unwrap_err();
        assert!(err.contains("oidc.client_id"), "{err}");
        let err = load(
            "oidc:\n  issuer: https://id\n  client_id: x\n  pkce: {enabled: true, method: S512}\n",
        )
        .unwrap_err();
        assert!(err.contains("oidc.pkce.method"), "{err}");
        let err = load("oidc:\n  issuer: https://id\n  client_id: x\n  groups_claims: roles\n")
            .unwrap_err();
        assert!(err.contains("oidc.groups_claims"), "{err}");
    }

    #[test]
    fn secret_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "from-file\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let yaml = format!(
            "oidc:\n  issuer: https://id\n  client_id: x\n  client_secret_path: {}\n",
            path.display()
        );
        let err = load(&yaml).unwrap_err();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains("from-file"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            load(&yaml).unwrap().oidc.unwrap().client_secret,
            "from-file"
        );
    }
}
