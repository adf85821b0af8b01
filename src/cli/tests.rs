//! CLI tests: argument parsing, and whole commands run against a real admin
//! API on a temporary database (`api::grpc::tests::fixture`: the admin socket, REST and gRPC).

use clap::{CommandFactory, Parser};
use serde_json::Value;

use super::*;
use crate::api::grpc::tests::{Fixture, fixture};

#[test]
fn clap_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn global_flags_work_after_the_subcommand() {
    let cli = Cli::try_parse_from([
        "clawscale",
        "users",
        "list",
        "-o",
        "json-line",
        "-c",
        "/etc/cs.yaml",
        "--force",
    ])
    .expect("parse");
    assert_eq!(cli.output, Some(Format::JsonLine));
    assert_eq!(
        cli.config.as_deref(),
        Some(std::path::Path::new("/etc/cs.yaml"))
    );
    assert!(cli.force);
    assert!(Cli::try_parse_from(["clawscale", "users", "list", "-o", "xml"]).is_err());
}

#[test]
fn headscale_style_aliases_and_flags_parse() {
    let cases: &[&[&str]] = &[
        &["clawscale", "user", "ls", "-e", "a@b"],
        &["clawscale", "users", "rename", "-i", "1", "bob"],
        &[
            "clawscale",
            "users",
            "rename",
            "--name",
            "alice",
            "-r",
            "bob",
        ],
        &["clawscale", "users", "destroy", "-n", "alice", "--force"],
        &[
            "clawscale",
            "preauthkey",
            "c",
            "-u",
            "alice",
            "--reusable",
            "--tags",
            "tag:a,tag:b",
        ],
        &["clawscale", "pre", "expire", "-i", "3"],
        &["clawscale", "authkey", "rm", "--id", "3"],
        &["clawscale", "node", "logout", "--identifier", "2"],
        &["clawscale", "nodes", "rename", "-i", "2", "web"],
        &[
            "clawscale",
            "serve",
            "--data-dir",
            "/d",
            "--listen-addr",
            "127.0.0.1:0",
        ],
        &["clawscale", "version"],
    ];
    for args in cases {
        Cli::try_parse_from(*args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }
    let cli = Cli::try_parse_from([
        "clawscale",
        "pre",
        "create",
        "-u",
        "7",
        "--tags",
        "tag:a,tag:b",
    ])
    .expect("parse");
    let Command::Preauthkeys(preauthkeys::KeysCommand::Create {
        tags, expiration, ..
    }) = cli.command
    else {
        panic!("wrong command");
    };
    assert_eq!(tags, ["tag:a", "tag:b"]);
    assert_eq!(
        expiration,
        preauthkeys::Lifetime(Some(std::time::Duration::from_secs(3600))),
        "Headscale's default lifetime"
    );
}

/// Runs one command line against the fixture's socket; returns stdout.
async fn cli(fx: &Fixture, args: &[&str]) -> Result<String> {
    let config = fx.dir.path().join("config.yaml");
    let yaml = format!("unix_socket: {}\n", fx.socket.display());
    std::fs::write(&config, yaml).expect("write config");
    let config = config.display().to_string();
    let mut argv = vec!["clawscale", "-c", config.as_str()];
    argv.extend_from_slice(args);
    let parsed = Cli::try_parse_from(&argv).expect("valid command line");
    let mut out = Vec::new();
    run(parsed, &mut out).await?;
    Ok(String::from_utf8(out).expect("utf-8"))
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn users_and_keys_end_to_end() {
    let fx = fixture().await;
    let created = json(
        &cli(
            &fx,
            &["users", "create", "alice", "-e", "a@x", "-o", "json"],
        )
        .await
        .expect("create"),
    );
    assert_eq!(created["name"], "alice");
    assert_eq!(created["email"], "a@x");
    // The socket names the caller by its uid (SO_PEERCRED) in the audit log.
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata(fx.dir.path()).expect("dir").uid();
    let audit = std::fs::read_to_string(fx.dir.path().join("audit.jsonl")).expect("audit");
    let first: Value = serde_json::from_str(audit.lines().next().expect("a line")).expect("json");
    assert_eq!(first["actor"], format!("uid:{uid}"));
    assert_eq!(first["action"], "user.create");
    let alice_id = created["id"].as_u64().expect("id");

    let dup = cli(&fx, &["users", "create", "alice"])
        .await
        .expect_err("duplicate");
    assert!(matches!(&dup, Error::Api { status: 409, .. }));
    assert!(dup.to_string().contains("already exists"), "{dup}");

    let key = json(
        &cli(
            &fx,
            &[
                "preauthkeys",
                "create",
                "--user",
                "alice",
                "--reusable",
                "--tags",
                "tag:a,tag:b",
                "-o",
                "json",
            ],
        )
        .await
        .expect("create key"),
    );
    let secret = key["key"].as_str().expect("key field");
    let parsed = crate::types::PreAuthSecret::parse(secret).expect("full secret");
    assert_eq!(key["reusable"], true);
    assert_eq!(key["acl_tags"], serde_json::json!(["tag:a", "tag:b"]));
    assert!(key["expiration"].is_string(), "default lifetime 1h");
    // By id too; and the human form is just the key.
    let human = cli(
        &fx,
        &[
            "preauthkeys",
            "create",
            "-u",
            &alice_id.to_string(),
            "-e",
            "never",
        ],
    )
    .await
    .expect("create by id");
    assert!(
        human.trim().starts_with("cskey-auth-") && !human.contains(' '),
        "{human}"
    );

    let listed = cli(
        &fx,
        &["preauthkeys", "list", "--user", "alice", "-o", "json"],
    )
    .await
    .expect("list");
    let secret_part = secret.rsplit('-').next().expect("secret part");
    assert!(!listed.contains(secret_part), "secret leaked: {listed}");
    let listed = json(&listed);
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    assert_eq!(
        listed[0]["key"],
        format!("cskey-auth-{}-***", parsed.prefix)
    );
    let table = cli(&fx, &["preauthkeys", "list"]).await.expect("table");
    assert!(table.starts_with("ID") && table.contains("-***"), "{table}");
    assert!(!table.contains(secret_part));

    let id = listed[0]["id"].as_u64().expect("id").to_string();
    assert_eq!(
        cli(&fx, &["preauthkeys", "expire", "--id", &id])
            .await
            .expect("expire")
            .trim(),
        "Key expired"
    );
    cli(&fx, &["preauthkeys", "delete", "--id", &id])
        .await
        .expect("delete");
    let gone = cli(&fx, &["preauthkeys", "delete", "--id", &id])
        .await
        .expect_err("gone");
    assert!(matches!(&gone, Error::Api { status: 404, .. }), "{gone}");

    let renamed = json(
        &cli(
            &fx,
            &[
                "users",
                "rename",
                "-n",
                "alice",
                "alicia",
                "-o",
                "json-line",
            ],
        )
        .await
        .expect("rename"),
    );
    assert_eq!(renamed["name"], "alicia");
    let users = cli(&fx, &["users", "list"]).await.expect("list");
    assert!(
        users.contains("alicia") && users.starts_with("ID"),
        "{users}"
    );
    let deleted = cli(
        &fx,
        &[
            "users", "delete", "--name", "alicia", "--force", "-o", "yaml",
        ],
    )
    .await
    .expect("delete");
    assert!(deleted.contains("result: User deleted"), "{deleted}");
    assert_eq!(
        json(
            &cli(&fx, &["users", "list", "-o", "json"])
                .await
                .expect("list")
        ),
        serde_json::json!([])
    );
}

#[tokio::test]
async fn nodes_commands_report_server_errors() {
    let fx = fixture().await;
    assert_eq!(
        json(
            &cli(&fx, &["nodes", "list", "-o", "json"])
                .await
                .expect("list")
        ),
        serde_json::json!([])
    );
    let table = cli(&fx, &["nodes", "list"]).await.expect("table");
    assert!(
        table.starts_with("ID") && table.contains("Hostname"),
        "{table}"
    );
    let err = cli(&fx, &["nodes", "rename", "-i", "9", "web"])
        .await
        .expect_err("no node");
    assert_eq!(err.to_string(), "node not found");
    let err = cli(&fx, &["nodes", "delete", "-i", "9", "--force"])
        .await
        .expect_err("no node");
    assert!(matches!(&err, Error::Api { status: 404, .. }));
    let err = cli(&fx, &["nodes", "list", "-u", "ghost"])
        .await
        .expect_err("no user");
    assert!(err.to_string().contains("ghost"), "{err}");
}

#[tokio::test]
async fn version_and_missing_server() {
    let mut out = Vec::new();
    run(
        Cli::try_parse_from(["clawscale", "version", "-o", "json"]).expect("parse"),
        &mut out,
    )
    .await
    .expect("version");
    assert_eq!(
        json(&String::from_utf8(out).expect("utf-8"))["version"],
        env!("CARGO_PKG_VERSION")
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("c.yaml");
    let socket = dir.path().join("none.sock");
    std::fs::write(&config, format!("unix_socket: {}\n", socket.display())).expect("write");
    let cli = Cli::try_parse_from([
        "clawscale",
        "-c",
        config.to_str().expect("utf-8"),
        "users",
        "list",
    ])
    .expect("parse");
    let err = run(cli, &mut Vec::new()).await.expect_err("nobody listens");
    assert!(matches!(err, Error::Connect(_)));
    assert!(err.to_string().contains("none.sock"), "{err}");
}

mod policy;
