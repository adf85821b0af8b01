//! The `tests` and `sshTests` sections: assertions a policy makes about
//! itself, parsed here and evaluated against the topology by `check`.
//! A malformed assertion is reported as "test(s) failed", as on Tailscale.

use serde_json::Value;

use super::fields::{Ctx, obj, parse_ports, parse_proto, split_dst, strings};
use super::selector::alias;
use crate::policy::model::{ALL_PORTS, AclTest, Alias, Doc, PolicyError, SshTest};

pub fn parse_tests(ctx: &Ctx, doc: &mut Doc, v: &Value) -> Result<(), PolicyError> {
    let arr = v
        .as_array()
        .ok_or_else(|| ctx.err("/tests", "expected a list"))?;
    for (i, e) in arr.iter().enumerate() {
        let p = format!("/tests/{i}");
        let o = obj(ctx, e, &p)?;
        let failed = || ctx.err(&p, "test(s) failed");
        let src_s = o.get("src").and_then(Value::as_str).ok_or_else(failed)?;
        let src = alias(ctx, doc, src_s, &format!("{p}/src")).map_err(|_| failed())?;
        let proto = match o.get("proto").and_then(Value::as_str) {
            Some(s) => parse_proto(s).map_err(|_| failed())?,
            None => vec![],
        };
        let mut lists = [Vec::new(), Vec::new()];
        for (k, key) in ["accept", "deny"].iter().enumerate() {
            for d in strings(ctx, o.get(*key), &format!("{p}/{key}"))? {
                let (a, ports) = split_dst(&d).map_err(|_| failed())?;
                let ports = parse_ports(ports).map_err(|_| failed())?;
                // Tests name one port (or `*`); lists and ranges never pass.
                if ports.len() != 1 || (ports[0].first != ports[0].last && ports[0] != ALL_PORTS) {
                    return Err(failed());
                }
                let alias = alias(ctx, doc, a, &p).map_err(|_| failed())?;
                lists[k].push((alias, ports));
            }
        }
        let [accept, deny] = lists;
        if accept.is_empty() && deny.is_empty() {
            return Err(failed());
        }
        doc.tests.push(AclTest {
            src,
            proto,
            accept,
            deny,
        });
    }
    Ok(())
}

pub fn parse_ssh_tests(ctx: &Ctx, doc: &mut Doc, v: &Value) -> Result<(), PolicyError> {
    let arr = v
        .as_array()
        .ok_or_else(|| ctx.err("/sshTests", "expected a list"))?;
    for (i, e) in arr.iter().enumerate() {
        let p = format!("/sshTests/{i}");
        let o = obj(ctx, e, &p)?;
        let src_s = o.get("src").and_then(Value::as_str).unwrap_or("");
        let src = alias(ctx, doc, src_s, &format!("{p}/src"))?;
        let mut dst = Vec::new();
        for (j, s) in strings(ctx, o.get("dst"), &format!("{p}/dst"))?
            .iter()
            .enumerate()
        {
            let dp = format!("{p}/dst/{j}");
            let a = alias(ctx, doc, s, &dp)?;
            if a == Alias::Internet {
                return Err(ctx.err(
                    &dp,
                    format!("SSH tests dst contains disallowed element {s:?}"),
                ));
            }
            dst.push(a);
        }
        let accept = strings(ctx, o.get("accept"), &format!("{p}/accept"))?;
        let check = strings(ctx, o.get("check"), &format!("{p}/check"))?;
        let deny = strings(ctx, o.get("deny"), &format!("{p}/deny"))?;
        doc.ssh_tests.push(SshTest {
            src,
            dst,
            accept,
            check,
            deny,
        });
    }
    Ok(())
}
