//! The deployment files under `deploy/`, checked with the tools that read
//! them: the systemd unit with `systemd-analyze verify` (and its exposure
//! score with `systemd-analyze security --offline`), `compose.yaml` with
//! `docker-compose config`, and every config file a deployment mounts with
//! `clawscale configtest`, the Kubernetes manifests with kubernetes-validate
//! (strict) and `configtest`. (The Containerfile is built by
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

/// The validator for `deploy/kubernetes/`: kubernetes-validate (PyPI),
/// which ships the Kubernetes JSON schemas, so it works offline. `.ci/run`
/// installs it into `target/kubevalidate-venv`.
fn kubernetes_validate() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let python = target.join("kubevalidate-venv/bin/python");
    let found = Command::new(&python)
        .args(["-c", "import kubernetes_validate"])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        assert!(!ci, "kubernetes-validate is missing (.ci/run installs it)");
        eprintln!("skipping: kubernetes-validate is not installed");
    }
    found.then_some(python)
}

/// Strict validation (unknown fields rejected) against the oldest and the
/// newest Kubernetes version the manifests claim to support.
fn validate_manifests(python: &Path, files: &[PathBuf]) -> Result<(), String> {
    for version in ["1.29.0", "1.37.0"] {
        let out = run(
            Command::new(python)
                .args([
                    "-m",
                    "kubernetes_validate",
                    "--strict",
                    "--quiet",
                    "-k",
                    version,
                ])
                .args(files),
            TIMEOUT,
        );
        if !out.success() {
            return Err(out.to_string());
        }
    }
    Ok(())
}

fn manifest(name: &str) -> serde_norway::Value {
    let path = deploy_dir().join("kubernetes").join(name);
    let text = std::fs::read_to_string(&path).expect("manifest");
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn kubernetes_manifests_validate() {
    let Some(python) = kubernetes_validate() else {
        return;
    };
    let dir = deploy_dir().join("kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let kinds: Vec<String> = files
        .iter()
        .map(|f| {
            let v: serde_norway::Value =
                serde_norway::from_str(&std::fs::read_to_string(f).expect("read")).expect("yaml");
            v["kind"].as_str().expect("kind").to_string()
        })
        .collect();
    assert_eq!(kinds, ["ConfigMap", "Secret", "Service", "StatefulSet"]);
    if let Err(e) = validate_manifests(&python, &files) {
        panic!("deploy/kubernetes does not validate:\n{e}");
    }

    // What the schemas cannot see: the names that tie the objects together.
    let (sts, svc) = (manifest("statefulset.yaml"), manifest("service.yaml"));
    let pod = &sts["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    assert_eq!(svc["spec"]["selector"], pod["metadata"]["labels"]);
    assert_eq!(
        pod["spec"]["volumes"][0]["configMap"]["name"],
        manifest("configmap.yaml")["metadata"]["name"]
    );
    assert_eq!(
        container["env"][0]["valueFrom"]["secretKeyRef"]["name"],
        manifest("secret.yaml")["metadata"]["name"]
    );
    assert_eq!(container["env"][0]["name"], "CLAWSCALE_DATABASE_URL");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(svc["spec"]["ports"][1]["protocol"], "UDP");

    // A misspelt field is caught.
    let tmp = tempfile::tempdir().expect("tempdir");
    let broken = tmp.path().join("statefulset.yaml");
    let text = std::fs::read_to_string(dir.join("statefulset.yaml")).expect("read");
    std::fs::write(
        &broken,
        text.replace("readOnlyRootFilesystem", "readOnlyRootFileSystem"),
    )
    .expect("write");
    assert!(
        validate_manifests(&python, &[broken]).is_err(),
        "a misspelt field went unnoticed"
    );
}

/// The ConfigMap's config file passes `clawscale configtest`, with SQLite
/// and with the Secret's PostgreSQL URL.
#[test]
fn kubernetes_config_passes_configtest() {
    let config = manifest("configmap.yaml")["data"]["config.yaml"]
        .as_str()
        .expect("config.yaml in the ConfigMap")
        .to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let configtest = |text: &str, url: Option<&str>| {
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, text).expect("write");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawscale"));
        cmd.env_remove("CLAWSCALE_DATA_DIR")
            .env_remove("CLAWSCALE_DATABASE_URL");
        if let Some(url) = url {
            cmd.env("CLAWSCALE_DATABASE_URL", url);
        }
        run(cmd.arg("--config").arg(&path).arg("configtest"), TIMEOUT)
    };
    for url in [
        None,
        Some("postgres://clawscale:pw@postgres.example.svc:5432/clawscale"),
    ] {
        let out = configtest(&config, url);
        assert!(
            out.success() && out.stdout.contains("Configuration is valid"),
            "{url:?}:\n{out}"
        );
    }
    let out = configtest(&config.replace("listen_addr:", "listen_adr:"), None);
    assert!(!out.success(), "an unknown key passed configtest:\n{out}");
}
