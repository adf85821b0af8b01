//! The deployment files under `deploy/`, checked with the tools that read
//! them: the systemd unit with `systemd-analyze verify` (and its exposure
//! score with `systemd-analyze security --offline`), `compose.yaml` with
//! `docker-compose config`, and every config file a deployment mounts with
//! `clawscale configtest`. (The Containerfile is built by
//! `deploy/container-check.sh`, a `.ci/run` step.) A missing tool skips
//! its check outside CI and fails it under CI.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::process::run;
use crate::harness::{Db, Server};

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Whether `tool` can run; panics under CI when it cannot.
fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        assert!(!ci, "{tool} is missing (.ci/run installs it)");
        eprintln!("skipping: {tool} is not installed");
    }
    found
}

/// `systemd-analyze verify` of `unit` must print nothing: it reports
/// unknown or misspelt directives as warnings with exit status 0.
fn verify(unit: &Path) -> Result<(), String> {
    let out = run(
        Command::new("systemd-analyze").arg("verify").arg(unit),
        TIMEOUT,
    );
    if out.success() && out.combined().trim().is_empty() {
        Ok(())
    } else {
        Err(out.to_string())
    }
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    if !have("systemd-analyze") {
        return;
    }
    let text = std::fs::read_to_string(deploy_dir().join("clawscale.service")).expect("unit");
    // The unit names the installed binary; verify checks it is executable.
    let text = text.replace("/usr/local/bin/clawscale", env!("CARGO_BIN_EXE_clawscale"));
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = dir.path().join("clawscale.service");
    std::fs::write(&unit, &text).expect("write unit");
    if let Err(e) = verify(&unit) {
        panic!("systemd-analyze verify rejects deploy/clawscale.service:\n{e}");
    }
    // Exposure 2.0 or less ("OK"); an unhardened service scores 9.6.
    let out = run(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=20"])
            .arg(&unit),
        TIMEOUT,
    );
    assert!(out.success(), "not hardened enough:\n{out}");

    // The check itself catches a misspelt directive.
    let broken = dir.path().join("broken.service");
    std::fs::write(&broken, text.replace("NoNewPrivileges=", "NoNewPrivilege=")).expect("write");
    assert!(
        verify(&broken).is_err(),
        "a misspelt directive went unnoticed"
    );
}

#[test]
fn compose_file_validates() {
    if !have("docker-compose") {
        return;
    }
    let out = run(
        Command::new("docker-compose")
            .arg("--file")
            .arg(deploy_dir().join("compose.yaml"))
            .args(["config", "--quiet"]),
        TIMEOUT,
    );
    assert!(out.success(), "docker-compose rejects compose.yaml:\n{out}");
}

#[test]
fn deployment_configs_pass_configtest() {
    for name in ["config.compose.yaml", "config.container.yaml"] {
        let path = deploy_dir().join(name);
        let out = run(
            Command::new(env!("CARGO_BIN_EXE_clawscale"))
                .env_remove("CLAWSCALE_DATA_DIR")
                .env_remove("CLAWSCALE_DATABASE_URL")
                .arg("--config")
                .arg(&path)
                .arg("configtest"),
            TIMEOUT,
        );
        assert!(
            out.success() && out.stdout.contains("Configuration is valid"),
            "{name}:\n{out}"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // On PostgreSQL, `backup` names pg_dump instead of copying anything.
    let copy = dir.path().join("copy");
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_clawscale"))
            .env_remove("CLAWSCALE_DATABASE_URL")
            .arg("--config")
            .arg(deploy_dir().join("config.compose.yaml"))
            .arg("backup")
            .arg("--to")
            .arg(&copy),
        TIMEOUT,
    );
    assert!(
        !out.success() && out.stderr.contains("pg_dump") && !copy.exists(),
        "{out}"
    );
    // And configtest does reject a bad file.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "listen_adr: 0.0.0.0:8080\n").expect("write");
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_clawscale"))
            .arg("--config")
            .arg(&bad)
            .arg("configtest"),
        TIMEOUT,
    );
    assert!(!out.success(), "an unknown key passed configtest:\n{out}");
}

/// `clawscale healthcheck` (the image's HEALTHCHECK) succeeds on a serving
/// server and fails once it has stopped.
#[test]
fn healthcheck_follows_the_server() {
    let mut server = Server::start_local(Db::Sqlite, |_| {});
    let addr = format!("127.0.0.1:{}", server.port());
    let out = server.cli(&["healthcheck", "--addr", &addr]);
    assert!(out.success() && out.stdout.contains("healthy"), "{out}");
    server.stop();
    let out = server.cli(&["healthcheck", "--addr", &addr]);
    assert!(!out.success(), "healthy without a server:\n{out}");
}
