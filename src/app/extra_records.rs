//! `dns.extra_records_path`: the JSON file of DNS extra records, read at
//! boot and reloaded when it changes on disk or on SIGHUP.
//!
//! Followed like the policy file (`WatchedFile`). A reload that fails to
//! read or parse keeps the records in force and logs why. Accepted records
//! replace the World's settings, so clients get a DNSConfig delta and the
//! authoritative server rebuilds its zone.

use std::path::PathBuf;

use anyhow::Context;

use super::watched_file::WatchedFile;
use crate::config;
use crate::state::StateHandle;
use crate::tailcfg::DnsRecord;

/// The records the map starts with: `dns.extra_records`, or the file's.
pub fn initial(dns: &config::Dns) -> anyhow::Result<Vec<DnsRecord>> {
    let records = match &dns.extra_records_path {
        None => dns.extra_records.clone(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading dns.extra_records_path {}", path.display()))?;
            config::parse_extra_records_json(&text)
                .with_context(|| format!("in dns.extra_records_path {}", path.display()))?
        }
    };
    Ok(to_wire(records))
}

fn to_wire(records: Vec<config::ExtraRecord>) -> Vec<DnsRecord> {
    records
        .into_iter()
        .map(|r| DnsRecord {
            name: r.name,
            r#type: r.r#type,
            value: r.value,
        })
        .collect()
}

/// Starts following `path`; accepted contents go to the state writer.
pub fn watch(path: PathBuf, state: StateHandle) -> anyhow::Result<()> {
    let current = std::fs::read_to_string(&path).ok();
    let mut file = WatchedFile::start(path, "DNS extra records file", current)?;
    tokio::spawn(async move {
        while let Some(text) = file.next_text().await {
            let path = file.path().display();
            match config::parse_extra_records_json(&text) {
                Ok(records) => match state.set_dns_extra_records(to_wire(records)).await {
                    Ok(changed) => tracing::info!(%path, changed, "DNS extra records reloaded"),
                    Err(e) => {
                        tracing::error!(%path, error = %e, "cannot apply DNS extra records")
                    }
                },
                Err(e) => tracing::error!(
                    %path,
                    error = %e,
                    "DNS extra records file rejected; the previous records stay in force"
                ),
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_reads_the_file_or_the_inline_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut dns = config::Config::embedded(dir.path()).dns;
        dns.extra_records = vec![config::ExtraRecord {
            name: "a.clawql.local".into(),
            r#type: "A".into(),
            value: "100.64.0.1".into(),
        }];
        assert_eq!(initial(&dns).unwrap()[0].name, "a.clawql.local");
        let path = dir.path().join("records.json");
        std::fs::write(
            &path,
            r#"[{"name": "b.clawql.local", "type": "TXT", "value": "hi"}]"#,
        )
        .unwrap();
        dns.extra_records.clear();
        dns.extra_records_path = Some(path.clone());
        let r = initial(&dns).unwrap();
        assert_eq!(
            (r[0].name.as_str(), r[0].r#type.as_str()),
            ("b.clawql.local", "TXT")
        );
        std::fs::write(&path, "[{").unwrap();
        let err = format!("{:#}", initial(&dns).unwrap_err());
        assert!(err.contains("dns.extra_records_path"), "{err}");
    }
}
