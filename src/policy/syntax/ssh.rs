//! The `ssh` section with Tailscale's checks (actions, `checkPeriod`
//! bounds, `users` shapes, allowed `src`/`dst` kinds and pairings). An
//! `acls` deny never applies here: SSH access is only what these rules
//! grant.

use std::time::Duration;

use serde_json::Value;

use super::fields::{Ctx, NO_POSTURE, known_fields, obj, strings};
use super::selector::{Place, alias_at};
use crate::policy::model::{Alias, Doc, PolicyError, SshRule, localpart_domain};

/// The longest `checkPeriod` Tailscale accepts: 168h.
const MAX_CHECK_NS: i128 = 168 * 3600 * 1_000_000_000;

/// Go's `time.ParseDuration`: an optional sign, then `<number><unit>`
/// pairs (`1h30m`, `1.5h`, `300ms`); `"0"` alone needs no unit.
/// Nanoseconds.
pub fn parse_duration(s: &str) -> Result<i128, String> {
    let bad = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..n];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(bad());
        }
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit: i128 = match &rest[..u] {
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ns" => 1,
            other => return Err(format!("time: unknown unit {other:?} in duration {s:?}")),
        };
        rest = &rest[u..];
        let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let mut v = whole.checked_mul(unit).ok_or_else(bad)?;
        // The fraction, digit by digit, in units of `unit`.
        let mut scale = unit;
        for d in frac.chars().filter_map(|c| c.to_digit(10)) {
            scale /= 10;
            v += i128::from(d) * scale;
        }
        total = total.checked_add(v).ok_or_else(bad)?;
        if total > i128::from(i64::MAX) {
            return Err(bad());
        }
    }
    Ok(if neg { -total } else { total })
}

/// Go's `time.Duration.String()` of `ns` nanoseconds (`1h0m0s`, `-1m0s`,
/// `1.5s`, `300ms`, `0s`), for messages worded as Tailscale's.
pub fn go_duration(ns: i128) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    let frac = |v: u128, div: u128| -> String {
        let whole = v / div;
        let rem = v % div;
        if rem == 0 {
            return whole.to_string();
        }
        let width = div.to_string().len() - 1;
        let digits = format!("{rem:0width$}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    };
    if u < 1_000_000_000 {
        let (div, unit) = match u {
            0..1_000 => (1, "ns"),
            1_000..1_000_000 => (1_000, "\u{b5}s"),
            _ => (1_000_000, "ms"),
        };
        return format!("{sign}{}{unit}", frac(u, div));
    }
    let h = u / 3_600_000_000_000;
    let m = (u / 60_000_000_000) % 60;
    let secs = frac(u % 60_000_000_000, 1_000_000_000);
    if h > 0 {
        format!("{sign}{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{sign}{m}m{secs}s")
    } else {
        format!("{sign}{secs}s")
    }
}

/// Tailscale only rejects the empty user and a bare `*`; other odd shapes
/// are accepted and simply never match.
fn check_user(u: &str) -> Result<(), String> {
    if u.is_empty() || u == "*" {
        return Err(format!("user {u:?} is not valid"));
    }
    Ok(())
}

const FIELDS: &[&str] = &["action", "src", "dst", "users", "checkPeriod", "acceptEnv"];

/// `checkPeriod`: `"always"` (zero: check every login) or a duration from
/// 0 to 168h, on `check` rules only.
fn check_period(
    ctx: &Ctx,
    o: &serde_json::Map<String, Value>,
    p: &str,
    check: bool,
) -> Result<Option<Duration>, PolicyError> {
    let at = format!("{p}/checkPeriod");
    let s = match o.get("checkPeriod") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim(),
        Some(_) => return Err(ctx.err(&at, "checkPeriod must be a string")),
    };
    if !check {
        return Err(ctx.err(&at, "checkPeriod is only valid with action \"check\""));
    }
    if s == "always" {
        return Ok(Some(Duration::ZERO));
    }
    let ns = parse_duration(s).map_err(|m| ctx.err(&at, m))?;
    if ns < 0 {
        return Err(ctx.err(
            &at,
            format!(
                "checkPeriod {} must be a positive duration",
                go_duration(ns)
            ),
        ));
    }
    if ns > MAX_CHECK_NS {
        return Err(ctx.err(
            &at,
            format!("checkPeriod {} is above the max (168h)", go_duration(ns)),
        ));
    }
    // Within 0..=168h: fits.
    Ok(Some(Duration::from_nanos(ns as u64)))
}

/// Tailscale SSH's identity rules between sources and destinations: a
/// user's devices are reachable only from that same user (or through
/// `autogroup:self`), and tagged sources never reach user-owned devices.
fn check_pairs(src: &[Alias], dst: &[Alias]) -> Result<(), String> {
    let tagged = src
        .iter()
        .any(|a| matches!(a, Alias::Tag(_) | Alias::Tagged));
    let groups = src
        .iter()
        .any(|a| matches!(a, Alias::Group(_) | Alias::Member | Alias::UserDomain(_)));
    let users: Vec<&String> = src
        .iter()
        .filter_map(|a| match a {
            Alias::User(u) => Some(u),
            _ => None,
        })
        .collect();
    for d in dst {
        match d {
            Alias::User(u) if tagged => {
                return Err(format!(
                    "tags in SSH source cannot access user-owned devices ({u}); use \
                     autogroup:tagged or specific tags as destinations instead"
                ));
            }
            Alias::User(u) if groups || users.len() != 1 || users[0] != u => {
                return Err(format!(
                    "user destination requires source to contain only that same user {u:?}; \
                     use autogroup:self instead for same-user SSH access"
                ));
            }
            Alias::SelfDevices if tagged || src.iter().any(|a| matches!(a, Alias::Role(_))) => {
                return Err(
                    "autogroup:self can only be used with users, groups, or supported autogroups"
                        .into(),
                );
            }
            Alias::Member if tagged => {
                return Err(
                    "tags in SSH source cannot access autogroup:member (user-owned devices)".into(),
                );
            }
            _ => {}
        }
    }
    Ok(())
}

pub fn parse_rules(ctx: &Ctx, doc: &mut Doc, v: &Value) -> Result<(), PolicyError> {
    let arr = v
        .as_array()
        .ok_or_else(|| ctx.err("/ssh", "expected a list"))?;
    for (i, e) in arr.iter().enumerate() {
        let p = format!("/ssh/{i}");
        let o = obj(ctx, e, &p)?;
        known_fields(ctx, o, &p, FIELDS, &[("srcPosture", NO_POSTURE)])?;
        let check = match o.get("action").and_then(Value::as_str).map(str::trim) {
            None | Some("") => return Err(ctx.err(&p, "action must be specified")),
            Some("accept") => false,
            Some("check") => true,
            Some(a) => {
                return Err(ctx.err(
                    &format!("{p}/action"),
                    format!("{a:?} is not a valid action"),
                ));
            }
        };
        let check_period = check_period(ctx, o, &p, check)?;
        let mut src = Vec::new();
        for (j, s) in strings(ctx, o.get("src"), &format!("{p}/src"))?
            .iter()
            .enumerate()
        {
            let sp = format!("{p}/src/{j}");
            src.push(alias_at(ctx, doc, s, &sp, Place::SshSrc)?);
        }
        let mut dst = Vec::new();
        let dst_p = format!("{p}/dst");
        for (j, s) in strings(ctx, o.get("dst"), &dst_p)?.iter().enumerate() {
            let dp = format!("{dst_p}/{j}");
            dst.push(alias_at(ctx, doc, s, &dp, Place::SshDst)?);
        }
        check_pairs(&src, &dst).map_err(|m| ctx.err(&dst_p, m))?;
        // Tailscale trims each user (so `" root"` is root, and a blank
        // entry becomes the invalid `""`).
        let users: Vec<String> = strings(ctx, o.get("users"), &format!("{p}/users"))?
            .iter()
            .map(|u| u.trim().to_string())
            .collect();
        if users.is_empty() {
            return Err(ctx.err(&p, "users must be specified"));
        }
        for (j, u) in users.iter().enumerate() {
            let up = format!("{p}/users/{j}");
            check_user(u).map_err(|m| ctx.err(&up, m))?;
            if let Some(d) = localpart_domain(u) {
                let at = ctx.err(&up, "").position;
                doc.ssh_domains.push((d.to_string(), at));
            }
        }
        let accept_env = strings(ctx, o.get("acceptEnv"), &format!("{p}/acceptEnv"))?;
        if accept_env.iter().any(String::is_empty) {
            return Err(ctx.err(&p, "acceptEnv values cannot be empty"));
        }
        doc.ssh.push(SshRule {
            check,
            check_period,
            src,
            dst,
            users,
            accept_env,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let h = 3_600_000_000_000i128;
        assert_eq!(parse_duration("1h").unwrap(), h);
        assert_eq!(parse_duration("168h0m1s").unwrap(), 168 * h + 1_000_000_000);
        assert_eq!(parse_duration("-1m").unwrap(), -60_000_000_000);
        assert_eq!(parse_duration("1.5h").unwrap(), 3 * h / 2);
        assert_eq!(parse_duration("168h0.5s").unwrap(), 168 * h + 500_000_000);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert_eq!(parse_duration("300ms").unwrap(), 300_000_000);
        assert_eq!(parse_duration("2\u{b5}s").unwrap(), 2_000);
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("1").unwrap_err().contains("missing unit"));
        assert!(parse_duration("1d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1..5h").is_err());
        assert_eq!(go_duration(-60_000_000_000), "-1m0s");
        assert_eq!(go_duration(200 * h), "200h0m0s");
        assert_eq!(go_duration(168 * h + 500_000_000), "168h0m0.5s");
        assert_eq!(go_duration(30_000_000_000), "30s");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(go_duration(0), "0s");
    }

    fn rule(ssh: &str) -> Result<(), PolicyError> {
        let src = format!(
            r#"{{"groups": {{"group:ops": ["ops@example.com"]}},
                "tagOwners": {{"tag:server": ["ops@example.com"]}}, "ssh": [{ssh}]}}"#
        );
        crate::policy::syntax::parse(&src).map(|_| ())
    }

    #[test]
    fn check_period_bounds_and_action() {
        let with = |action: &str, period: &str| {
            rule(&format!(
                r#"{{"action": "{action}", "src": ["group:ops"], "dst": ["tag:server"],
                    "users": ["root"], "checkPeriod": "{period}"}}"#
            ))
        };
        for ok in ["always", "0s", "30s", "12h", "168h"] {
            assert!(with("check", ok).is_ok(), "{ok}");
        }
        let e = with("check", "168h0m0.5s").unwrap_err();
        assert!(
            e.message
                .contains("checkPeriod 168h0m0.5s is above the max (168h)"),
            "{e}"
        );
        let e = with("check", "-1m").unwrap_err();
        assert!(
            e.message
                .contains("checkPeriod -1m0s must be a positive duration"),
            "{e}"
        );
        assert!(
            with("check", "1x")
                .unwrap_err()
                .message
                .contains("unknown unit")
        );
        let e = with("accept", "1h").unwrap_err();
        assert!(
            e.message.contains("only valid with action \"check\""),
            "{e}"
        );
    }

    #[test]
    fn sources_and_destinations_pair_like_tailscale_ssh() {
        let r = |src: &str, dst: &str| {
            rule(&format!(
                r#"{{"action": "accept", "src": [{src}], "dst": [{dst}], "users": ["root"]}}"#
            ))
            .map_err(|e| e.message)
        };
        assert!(r(r#""ops@example.com""#, r#""ops@example.com""#).is_ok());
        assert!(r(r#""group:ops""#, r#""autogroup:self""#).is_ok());
        assert!(r(r#""autogroup:member""#, r#""tag:server""#).is_ok());
        let e = r(r#""group:ops""#, r#""ops@example.com""#).unwrap_err();
        assert!(e.contains("only that same user"), "{e}");
        let e = r(r#""tag:server""#, r#""ops@example.com""#).unwrap_err();
        assert!(e.contains("cannot access user-owned devices"), "{e}");
        let e = r(r#""tag:server""#, r#""autogroup:member""#).unwrap_err();
        assert!(e.contains("autogroup:member"), "{e}");
        assert!(r(r#""autogroup:tagged""#, r#""autogroup:self""#).is_err());
        for bad_dst in [
            r#""*""#,
            r#""group:ops""#,
            r#""100.64.0.1""#,
            r#""autogroup:danger-all""#,
        ] {
            assert!(
                r(r#""group:ops""#, bad_dst)
                    .unwrap_err()
                    .contains("invalid dst"),
                "{bad_dst}"
            );
        }
        for bad_src in [r#""*""#, r#""100.64.0.1""#, r#""autogroup:self""#] {
            assert!(
                r(bad_src, r#""tag:server""#)
                    .unwrap_err()
                    .contains("invalid src"),
                "{bad_src}"
            );
        }
        for (src, dst) in [
            (r#""autogroup:internet""#, r#""tag:server""#),
            (r#""group:ops""#, r#""autogroup:internet""#),
        ] {
            assert_eq!(
                r(src, dst).unwrap_err(),
                "autogroup:internet can only be used in ACL destinations"
            );
        }
    }
}
