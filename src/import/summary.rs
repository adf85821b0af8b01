//! What an import did (or, with `--dry-run`, would do): counts, the source
//! release, the Noise key, what was not carried and why, and what was
//! carried with a change. Printed as text or, with `-o json|yaml`, as data.

use std::fmt;

use serde::Serialize;

/// Something that was not carried, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub what: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub dry_run: bool,
    /// The Headscale release range the source was written by.
    pub source_release: String,
    pub users: usize,
    pub nodes: usize,
    pub preauth_keys: usize,
    pub api_keys: usize,
    pub policy: bool,
    /// What happened to the control key file.
    pub noise_key: String,
    pub skipped: Vec<Skipped>,
    pub notes: Vec<String>,
}

impl Report {
    pub(super) fn skip(&mut self, what: impl Into<String>, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            what: what.into(),
            reason: reason.into(),
        });
    }

    pub(super) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would import"
        } else {
            "imported"
        };
        writeln!(
            f,
            "{verb} {} users, {} nodes, {} pre-auth keys, {} API keys, policy: {}",
            self.users,
            self.nodes,
            self.preauth_keys,
            self.api_keys,
            if self.policy { "yes" } else { "no" }
        )?;
        writeln!(f, "source: Headscale {}", self.source_release)?;
        write!(f, "noise key: {}", self.noise_key)?;
        if !self.skipped.is_empty() {
            write!(f, "\nnot carried ({}):", self.skipped.len())?;
            for s in &self.skipped {
                write!(f, "\n  - {}: {}", s.what, s.reason)?;
            }
        }
        if !self.notes.is_empty() {
            write!(f, "\nnotes:")?;
            for n in &self.notes {
                write!(f, "\n  - {n}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_is_the_summary() {
        let mut r = Report {
            source_release: "0.26".into(),
            users: 3,
            nodes: 41,
            preauth_keys: 5,
            api_keys: 2,
            policy: true,
            noise_key: "written".into(),
            ..Report::default()
        };
        r.skip("node 7 (laptop)", "it has no IPv4 or IPv6 address");
        let text = r.to_string();
        assert!(
            text.starts_with(
                "imported 3 users, 41 nodes, 5 pre-auth keys, 2 API keys, policy: yes\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  - node 7 (laptop): it has no IPv4 or IPv6 address"),
            "{text}"
        );
        r.dry_run = true;
        assert!(r.to_string().starts_with("would import 3 users"));
    }
}
