//! Replicas (issue 15 item 3): several `clawscale serve` processes on one
//! PostgreSQL database, and the refusal to share a SQLite file.

mod certs;
mod failover;
mod login;
mod postgres;
mod relay;
mod sqlite;

use std::path::Path;

use crate::harness::{Db, KeyOptions, PgServer, Server, ServerConfig, Topology};

/// Two replicas on `ports` with relay regions `regions`; the second uses
/// the first's Noise key, so clients know both as one server.
fn pair(topo: &Topology, pg: &PgServer, ports: [u16; 2], regions: [u32; 2]) -> (Server, Server) {
    pair_with(topo, pg, ports, regions, |_, _| {})
}

/// As `pair`, with `customize(i, config)` applied to replica i's config.
fn pair_with(
    topo: &Topology,
    pg: &PgServer,
    ports: [u16; 2],
    regions: [u32; 2],
    customize: impl Fn(usize, &mut ServerConfig),
) -> (Server, Server) {
    let a = replica(topo, pg, ports[0], regions[0], None, |c| customize(0, c));
    let noise = a.dir().join("data/noise_private.key");
    let b = replica(topo, pg, ports[1], regions[1], Some(&noise), |c| {
        customize(1, c)
    });
    (a, b)
}

/// Creates `user` through `server` and a reusable pre-auth key for it.
fn user_key(server: &Server, user: &str) -> String {
    server.create_user(user);
    server.create_preauthkey(
        user,
        &KeyOptions {
            reusable: true,
            ..KeyOptions::default()
        },
    )
}

/// A replica in the hub namespace on `port`, with relay region `region`
/// (STUN on `port + 100`); `noise` is the first replica's key file
/// (clients know the server by it).
fn replica(
    topo: &Topology,
    pg: &PgServer,
    port: u16,
    region: u32,
    noise: Option<&Path>,
    customize: impl FnOnce(&mut ServerConfig),
) -> Server {
    Server::start_with(topo, Db::Sqlite, |cfg| {
        pg.configure(cfg);
        let hub = topo.hub_ip();
        cfg.set("listen_addr", format!("{hub}:{port}"))
            .set("server_url", format!("http://{hub}:{port}"))
            .set(
                "derp.server.stun_listen_addr",
                format!("{hub}:{}", port + 100),
            )
            .set("derp.server.region_id", region)
            .set("derp.server.region_code", format!("r{region}"))
            .set("derp.server.region_name", format!("replica {region}"));
        if let Some(k) = noise {
            cfg.set("noise.private_key_path", k.to_string_lossy());
        }
        customize(cfg);
    })
}
