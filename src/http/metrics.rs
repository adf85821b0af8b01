//! Prometheus metrics (`GET /metrics`, text exposition format).
//!
//! Counters are owned here and passed as a cheap `Arc<Metrics>`; gauges that
//! mirror live state (sessions, nodes, DERP clients) are sampled at scrape
//! time from their owners instead of being kept in step by hand.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of `whois_requests`: static, so counting allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct WhoisLabels {
    pub endpoint: &'static str,
    pub code: u16,
}

/// Labels of `map_frames`, counted once per frame sent (about 1.2 million
/// in a 10,000-node enrollment): static, so counting allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FrameLabels {
    pub kind: &'static str,
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// Map frames written, by kind (full, delta, keepalive).
    pub map_frames: Family<FrameLabels, Counter>,
    /// Registration outcomes (authorized, refused, logged_out).
    pub registrations: Family<Vec<(String, String)>, Counter>,
    /// Noise handshakes completed.
    pub noise_handshakes: Counter,
    /// Policy file reloads by result (applied, rejected).
    pub policy_reloads: Family<Vec<(String, String)>, Counter>,
    /// whois/authorize requests by endpoint and status code.
    pub whois_requests: Family<WhoisLabels, Counter>,
    /// Audit records dropped because the writer fell behind.
    pub whois_audit_dropped: Counter,
    /// `/machine/set-dns` requests by result (accepted, refused).
    pub acme_challenges: Family<Vec<(String, String)>, Counter>,
    /// DNS answers that carried a live ACME challenge value.
    pub acme_challenges_served: Counter,
    /// 1 while the newest policy file was accepted, 0 after a rejection.
    policy_file_ok: Gauge<i64, std::sync::atomic::AtomicI64>,
    map_sessions: Gauge<i64, std::sync::atomic::AtomicI64>,
    nodes: Gauge<i64, std::sync::atomic::AtomicI64>,
    nodes_online: Gauge<i64, std::sync::atomic::AtomicI64>,
    derp_clients: Gauge<i64, std::sync::atomic::AtomicI64>,
    derp_packets: Counter<u64, AtomicU64>,
}

/// A sampled view of live state at scrape time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Snapshot {
    pub map_sessions: i64,
    pub nodes: i64,
    pub nodes_online: i64,
    pub derp_clients: i64,
    pub derp_packets_relayed: u64,
    /// The state writer's batches, the jobs they ran, and the seconds it
    /// spent on them (all since start).
    pub writer_batches: u64,
    pub writer_jobs: u64,
    pub writer_busy_seconds: f64,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let m = Metrics::default();
        m.policy_file_ok.set(1);
        Arc::new(m)
    }

    pub fn frame(&self, kind: &'static str) {
        self.map_frames.get_or_create(&FrameLabels { kind }).inc();
    }

    pub fn registration(&self, outcome: &'static str) {
        self.registrations
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc();
    }

    pub fn policy_reload(&self, applied: bool) {
        let result = if applied { "applied" } else { "rejected" };
        self.policy_reloads
            .get_or_create(&vec![("result".into(), result.into())])
            .inc();
        self.policy_file_ok.set(i64::from(applied));
    }

    pub fn acme_challenge(&self, accepted: bool) {
        let result = if accepted { "accepted" } else { "refused" };
        self.acme_challenges
            .get_or_create(&vec![("result".into(), result.into())])
            .inc();
    }

    /// Renders the exposition text with `snap` as the live gauges.
    pub fn render(&self, snap: Snapshot) -> String {
        self.map_sessions.set(snap.map_sessions);
        self.nodes.set(snap.nodes);
        self.nodes_online.set(snap.nodes_online);
        self.derp_clients.set(snap.derp_clients);
        let relayed = snap.derp_packets_relayed;
        let current = self.derp_packets.get();
        if relayed > current {
            self.derp_packets.inc_by(relayed - current);
        }
        let mut reg = Registry::with_prefix("clawscale");
        reg.register("map_frames", "Map frames written", self.map_frames.clone());
        reg.register(
            "registrations",
            "Registration requests by outcome",
            self.registrations.clone(),
        );
        reg.register(
            "noise_handshakes",
            "Completed TS2021 Noise handshakes",
            self.noise_handshakes.clone(),
        );
        reg.register(
            "policy_reloads",
            "Policy file reloads by result",
            self.policy_reloads.clone(),
        );
        reg.register(
            "policy_file_ok",
            "1 if the newest policy file was accepted, 0 if it was rejected",
            self.policy_file_ok.clone(),
        );
        reg.register(
            "map_sessions",
            "Open map streams",
            self.map_sessions.clone(),
        );
        reg.register("nodes", "Registered nodes", self.nodes.clone());
        reg.register(
            "nodes_online",
            "Nodes with a live map stream",
            self.nodes_online.clone(),
        );
        reg.register(
            "derp_clients",
            "Connected DERP clients",
            self.derp_clients.clone(),
        );
        reg.register(
            "derp_packets_relayed",
            "Packets relayed by the embedded DERP server",
            self.derp_packets.clone(),
        );
        reg.register(
            "whois_requests",
            "whois/authorize requests by endpoint and status",
            self.whois_requests.clone(),
        );
        reg.register(
            "whois_audit_dropped",
            "Authorize audit records dropped because the writer fell behind",
            self.whois_audit_dropped.clone(),
        );
        reg.register(
            "acme_challenges",
            "ACME DNS-01 challenges nodes asked to publish (/machine/set-dns), by result",
            self.acme_challenges.clone(),
        );
        reg.register(
            "acme_challenges_served",
            "DNS answers carrying a live ACME DNS-01 challenge",
            self.acme_challenges_served.clone(),
        );
        // Read whole from the writer at each scrape: nothing to keep here.
        reg.register(
            "writer_batches",
            "State writer batches (each one database transaction)",
            ConstCounter::new(snap.writer_batches),
        );
        reg.register(
            "writer_jobs",
            "Writes run by the state writer",
            ConstCounter::new(snap.writer_jobs),
        );
        reg.register(
            "writer_busy_seconds",
            "Seconds the state writer spent running batches; its rate is the writer's utilisation",
            ConstCounter::new(snap.writer_busy_seconds),
        );
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &reg);
        out
    }
}

/// Anything that can produce the live snapshot for a scrape.
pub trait SnapshotSource: Send + Sync {
    fn snapshot(&self) -> Snapshot;
}

pub async fn handler(
    State((metrics, source)): State<(Arc<Metrics>, Arc<dyn SnapshotSource>)>,
) -> impl IntoResponse {
    let body = metrics.render(source.snapshot());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let m = Metrics::new();
        m.frame("full");
        m.frame("full");
        m.registration("authorized");
        m.acme_challenge(false);
        m.acme_challenges_served.inc();
        let text = m.render(Snapshot {
            map_sessions: 3,
            nodes: 5,
            writer_batches: 7,
            writer_jobs: 9,
            writer_busy_seconds: 0.25,
            ..Default::default()
        });
        assert!(
            text.contains("clawscale_map_frames_total{kind=\"full\"} 2"),
            "{text}"
        );
        assert!(text.contains("clawscale_registrations_total{outcome=\"authorized\"} 1"));
        assert!(text.contains("clawscale_map_sessions 3"));
        assert!(text.contains("clawscale_acme_challenges_total{result=\"refused\"} 1"));
        assert!(text.contains("clawscale_acme_challenges_served_total 1"));
        assert!(text.contains("clawscale_nodes 5"));
        assert!(text.contains("clawscale_writer_batches_total 7"), "{text}");
        assert!(text.contains("clawscale_writer_jobs_total 9"));
        assert!(text.contains("clawscale_writer_busy_seconds_total 0.25"));
    }
}
