//! Replicas (issue 15 item 3): several `clawscale serve` processes on one
//! PostgreSQL database, and the refusal to share a SQLite file.

mod failover;
mod postgres;
mod sqlite;
