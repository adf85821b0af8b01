//! Replicas (issue 15 item 3): several `clawscale serve` processes on one
//! PostgreSQL database, and the refusal to share a SQLite file.

mod failover;
mod postgres;
mod relay;
mod sqlite;

use std::path::Path;

use crate::harness::{Db, PgServer, Server, Topology};

/// A replica in the hub namespace on `port`, with relay region `region`
/// (STUN on `port + 100`); `noise` is the first replica's key file
/// (clients know the server by it).
fn replica(topo: &Topology, pg: &PgServer, port: u16, region: u32, noise: Option<&Path>) -> Server {
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
    })
}
