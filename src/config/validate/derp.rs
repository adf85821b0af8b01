//! `derp` section → [`Derp`]. The embedded server's settings are only
//! checked when it is enabled, as in Headscale.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use super::super::raw::RawDerp;
use super::super::{Derp, DerpServer, Error, Tls};
use super::{invalid, parse};

/// Tailscale's well-known STUN port.
const STUN_PORT: u16 = 3478;

pub(super) fn build(
    raw: &RawDerp,
    listen_addr: SocketAddr,
    data_dir: &Path,
    tls: &Tls,
) -> Result<Derp, Error> {
    let update_frequency = parse::duration("derp.update_frequency", &raw.update_frequency)?;
    if raw.auto_update_enabled && update_frequency.is_zero() {
        return Err(invalid(
            "derp.update_frequency",
            "must be longer than zero when derp.auto_update_enabled is true",
        ));
    }
    let server = if raw.server.enabled {
        Some(server(raw, listen_addr, data_dir, tls)?)
    } else {
        None
    };
    let urls: Vec<String> = raw
        .urls
        .iter()
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect();
    for u in &urls {
        let ok = url::Url::parse(u)
            .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some());
        if !ok {
            return Err(invalid(
                "derp.urls",
                format!("{u:?} is not an http:// or https:// URL"),
            ));
        }
    }
    Ok(Derp {
        server,
        urls,
        paths: raw
            .paths
            .iter()
            .filter(|p| !p.as_os_str().is_empty())
            .cloned()
            .collect(),
        auto_update_enabled: raw.auto_update_enabled,
        update_frequency,
    })
}

fn server(
    raw: &RawDerp,
    listen_addr: SocketAddr,
    data_dir: &Path,
    tls: &Tls,
) -> Result<DerpServer, Error> {
    let s = &raw.server;
    if s.region_id == 0 {
        return Err(invalid(
            "derp.server.region_id",
            "must be a positive number",
        ));
    }
    if s.region_code.trim().is_empty() {
        return Err(invalid("derp.server.region_code", "must not be empty"));
    }
    // Headscale's rule: without the automatic region, the region has to come
    // from a DERP map file.
    if !s.automatically_add_embedded_derp_region && raw.paths.is_empty() {
        return Err(invalid(
            "derp.server.automatically_add_embedded_derp_region",
            "is false, so the embedded region must be described in a derp.paths file, but derp.paths is empty",
        ));
    }
    let stun_listen_addr = match s.stun_listen_addr.as_deref().map(str::trim) {
        None => Some(SocketAddr::new(listen_addr.ip(), STUN_PORT)),
        Some("") => None,
        Some(text) => Some(parse::socket_addr("derp.server.stun_listen_addr", text)?),
    };
    let ipv4 = match s.ipv4.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => Some(text.parse::<Ipv4Addr>().map_err(|_| {
            invalid(
                "derp.server.ipv4",
                format!("{text:?} is not an IPv4 address"),
            )
        })?),
        _ => None,
    };
    let ipv6 = match s.ipv6.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => Some(text.parse::<Ipv6Addr>().map_err(|_| {
            invalid(
                "derp.server.ipv6",
                format!("{text:?} is not an IPv6 address"),
            )
        })?),
        _ => None,
    };
    let (tls_cert_path, tls_key_path) = match (&tls.cert_path, &tls.key_path) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => (
            data_dir.join("derp_tls_cert.pem"),
            data_dir.join("derp_tls_key.pem"),
        ),
    };
    Ok(DerpServer {
        region_id: s.region_id,
        region_code: s.region_code.trim().to_string(),
        region_name: s.region_name.trim().to_string(),
        verify_clients: s.verify_clients,
        stun_listen_addr,
        private_key_path: super::non_empty_path(s.private_key_path.as_deref())
            .unwrap_or_else(|| data_dir.join("derp_server_private.key")),
        ipv4,
        ipv6,
        automatically_add_embedded_derp_region: s.automatically_add_embedded_derp_region,
        tls_cert_path,
        tls_key_path,
    })
}
