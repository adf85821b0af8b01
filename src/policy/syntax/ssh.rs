//! The `ssh` section with Tailscale's checks (actions, `checkPeriod`
//! bounds, `users` shapes, allowed `dst` kinds).

use serde_json::Value;

use super::fields::{Ctx, obj, strings};
use super::selector::alias;
use crate::policy::model::{Alias, Doc, PolicyError, SshRule, localpart_domain};

const MAX_CHECK: i64 = 168 * 3600;

/// Go `time.ParseDuration` subset: sequences of `<number><unit>`.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if n == 0 {
            return Err(bad());
        }
        let num: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        total += num * mult;
        rest = &rest[u..];
    }
    Ok(if neg { -(total as i64) } else { total as i64 })
}

fn go_duration(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.abs();
    if s >= 3600 {
        format!("{sign}{}h{}m{}s", s / 3600, (s % 3600) / 60, s % 60)
    } else {
        format!("{sign}{}m{}s", s / 60, s % 60)
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

pub fn parse_rules(ctx: &Ctx, doc: &mut Doc, v: &Value) -> Result<(), PolicyError> {
    let arr = v
        .as_array()
        .ok_or_else(|| ctx.err("/ssh", "expected a list"))?;
    for (i, e) in arr.iter().enumerate() {
        let p = format!("/ssh/{i}");
        let o = obj(ctx, e, &p)?;
        let check = match o.get("action").and_then(Value::as_str).map(str::trim) {
            None => return Err(ctx.err(&p, "action must be specified")),
            Some("accept") => false,
            Some("check") => true,
            Some(a) => {
                return Err(ctx.err(
                    &format!("{p}/action"),
                    format!("{a:?} is not a valid action"),
                ));
            }
        };
        let check_period = match o.get("checkPeriod") {
            Some(Value::String(s)) if s != "always" => {
                let secs =
                    parse_duration(s).map_err(|m| ctx.err(&format!("{p}/checkPeriod"), m))?;
                if secs <= 0 {
                    return Err(ctx.err(
                        &p,
                        format!(
                            "checkPeriod {} must be a positive duration",
                            go_duration(secs)
                        ),
                    ));
                }
                if secs > MAX_CHECK {
                    return Err(ctx.err(
                        &p,
                        format!("checkPeriod {} is above the max (168h)", go_duration(secs)),
                    ));
                }
                Some(s.clone())
            }
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let src_s = strings(ctx, o.get("src"), &format!("{p}/src"))?;
        let mut src = Vec::new();
        for (j, s) in src_s.iter().enumerate() {
            let sp = format!("{p}/src/{j}");
            let a = alias(ctx, doc, s.trim(), &sp)?;
            if matches!(
                a,
                Alias::SelfDevices | Alias::Internet | Alias::Host(_) | Alias::Prefix(_)
            ) {
                return Err(ctx.err(&sp, format!("invalid src {s:?}")));
            }
            src.push(a);
        }
        let dst_s = strings(ctx, o.get("dst"), &format!("{p}/dst"))?;
        let mut dst = Vec::new();
        for (j, s) in dst_s.iter().enumerate() {
            let dp = format!("{p}/dst/{j}");
            let a = alias(ctx, doc, s.trim(), &dp)?;
            if matches!(
                a,
                Alias::Internet | Alias::Host(_) | Alias::Prefix(_) | Alias::Wildcard
            ) {
                return Err(ctx.err(&dp, format!("invalid dst {s:?}")));
            }
            if a == Alias::SelfDevices
                && src.iter().any(|s| {
                    !matches!(
                        s,
                        Alias::Member | Alias::User(_) | Alias::Group(_) | Alias::UserDomain(_)
                    )
                })
            {
                return Err(ctx.err(
                    &dp,
                    "autogroup:self can only be used with users, groups, or supported autogroups",
                ));
            }
            dst.push(a);
        }
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
            check_user(u).map_err(|m| ctx.err(&format!("{p}/users/{j}"), m))?;
            if let Some(d) = localpart_domain(u) {
                doc.localpart_domains
                    .push((d.to_string(), format!("{p}/users/{j}")));
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
        assert_eq!(parse_duration("1h").unwrap(), 3600);
        assert_eq!(parse_duration("168h0m1s").unwrap(), 168 * 3600 + 1);
        assert_eq!(parse_duration("-1m").unwrap(), -60);
        assert!(parse_duration("abc").is_err());
        assert_eq!(go_duration(-60), "-1m0s");
        assert_eq!(go_duration(200 * 3600), "200h0m0s");
    }
}
