//! `clawscale import headscale` as an operator runs it: a fresh data dir,
//! `--dry-run` first (nothing created), then the import, `-o json`, and the
//! audit trail.

use clap::Parser;

use super::fixture::{Engine, Gen};
use crate::cli::{Cli, run};

#[tokio::test]
async fn the_command_imports_into_a_fresh_data_dir_and_records_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, _) = super::source(Gen::V029, Engine::Sqlite, dir.path())
        .await
        .expect("source");
    let key = super::headscale_key(dir.path());
    let data = dir.path().join("data");
    let (data_arg, key_arg) = (data.to_string_lossy(), key.to_string_lossy());
    let command = |extra: &[&str]| {
        let mut argv = vec![
            "clawscale",
            "--data-dir",
            &data_arg,
            "import",
            "headscale",
            "--db",
            &src,
            "--noise-key",
            &key_arg,
            "-o",
            "json",
        ];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("command line")
    };
    let mut out = Vec::new();
    run(command(&["--dry-run"]), &mut out)
        .await
        .expect("dry run");
    let dry: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["nodes"], 3);
    assert!(!data.exists(), "a dry run creates nothing");

    let mut out = Vec::new();
    run(command(&[]), &mut out).await.expect("import");
    let done: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(done["dry_run"], false);
    assert_eq!(
        (
            &done["users"],
            &done["nodes"],
            &done["preauth_keys"],
            &done["api_keys"]
        ),
        (&3.into(), &3.into(), &3.into(), &2.into())
    );
    assert_eq!(done["policy"], true);
    assert_eq!(done["source_release"], "0.29");
    assert!(
        done["skipped"]
            .as_array()
            .expect("skipped")
            .iter()
            .any(|s| s["what"] == "node 4 (broken)"),
        "{done}"
    );
    let audit = std::fs::read_to_string(data.join("audit.jsonl")).expect("audit log");
    assert!(audit.contains("\"database.import\""), "{audit}");
    let loaded = crate::noise::load_or_create(&data.join("noise_private.key")).expect("key");
    assert_eq!(hex::encode(loaded.as_bytes()), "7e".repeat(32));

    // Again: the target is no longer empty.
    let err = run(command(&[]), &mut Vec::new())
        .await
        .expect_err("second import");
    assert!(err.to_string().contains("not empty"), "{err}");
}
