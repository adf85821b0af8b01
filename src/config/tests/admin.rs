//! `audit.*` and `cli.*`.

use std::path::PathBuf;

use super::load_str;

#[test]
fn audit_and_cli_keys() {
    let c = load_str(
        "audit:\n  path: /var/log/cs/audit.jsonl\n  max_size: 10MB\n  max_files: 2\n\
         cli:\n  address: http://10.0.0.1:8080\n  api_key: cskey-api-x\n",
    )
    .unwrap();
    assert_eq!(c.audit.path, Some(PathBuf::from("/var/log/cs/audit.jsonl")));
    assert_eq!((c.audit.max_size, c.audit.max_files), (10_000_000, 2));
    assert_eq!(c.cli.address.as_deref(), Some("http://10.0.0.1:8080"));
    let off = load_str("audit:\n  path: \"\"\n").unwrap();
    assert_eq!(off.audit.path, None, "an empty path turns auditing off");
    for bad in [
        "audit:\n  max_size: 1KiB\n",
        "audit:\n  max_size: lots\n",
        "audit:\n  colour: blue\n",
        "cli:\n  address: ftp://x\n",
        "cli:\n  timeout: 0\n",
    ] {
        assert!(load_str(bad).is_err(), "{bad}");
    }
    let warned = load_str("cli:\n  insecure: true\n").unwrap();
    assert!(warned.warnings.iter().any(|w| w.contains("cli.insecure")));
}
