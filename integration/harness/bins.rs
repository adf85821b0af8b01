//! Locating (and if needed fetching) the stock Tailscale client binaries.
//!
//! Owns: the mapping from a client version to its `tailscale`/`tailscaled`
//! paths. Depends on `.ci/fetch-tailscale.sh` (pip + python3), which it runs
//! once per version and process; it downloads only when the binaries are
//! missing, so a plain `cargo test` works on a fresh checkout. Cache root: `$TAILSCALE_CACHE_DIR`, else
//! `<repo>/target/tailscale` (the script's default too).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use super::process::run;

/// A stock client release the tests run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientVersion {
    /// Current stable at the time of writing (capability version 133).
    V1_96_4,
    /// An older client, for mixed-version tailnets.
    V1_78_1,
}

impl ClientVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientVersion::V1_96_4 => "1.96.4",
            ClientVersion::V1_78_1 => "1.78.1",
        }
    }
}

/// Paths of one client release.
#[derive(Clone, Debug)]
pub struct Bins {
    pub version: ClientVersion,
    pub tailscale: PathBuf,
    pub tailscaled: PathBuf,
}

/// Serialises fetching and remembers verified versions for this process.
static FETCHED: Mutex<Option<HashMap<ClientVersion, Bins>>> = Mutex::new(None);

/// The binaries of `version`, fetching them first if they are missing.
pub fn client_bins(version: ClientVersion) -> Bins {
    let mut guard = FETCHED.lock().unwrap_or_else(|e| e.into_inner());
    let known = guard.get_or_insert_with(HashMap::new);
    if let Some(bins) = known.get(&version) {
        return bins.clone();
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cache = std::env::var_os("TAILSCALE_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target/tailscale"));
    let dir = cache.join(version.as_str());
    let bins = Bins {
        version,
        tailscale: dir.join("tailscale"),
        tailscaled: dir.join("tailscaled"),
    };
    // The script is idempotent and cheap when the binaries are present; it
    // also does the version check (inside an empty network namespace, since
    // Tailscale binaries never run in the root namespace).
    run(
        Command::new(repo.join(".ci/fetch-tailscale.sh"))
            .arg(version.as_str())
            .env("TAILSCALE_CACHE_DIR", &cache),
        Duration::from_secs(600),
    )
    .expect_success("providing the tailscale client binaries (.ci/fetch-tailscale.sh)");
    assert!(
        bins.tailscale.is_file() && bins.tailscaled.is_file(),
        "fetch-tailscale.sh succeeded but {} lacks the binaries",
        dir.display()
    );
    known.insert(version, bins.clone());
    bins
}
