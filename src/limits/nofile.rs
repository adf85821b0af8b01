//! The open-file limit: raised at start from the soft to the hard limit.
//!
//! Linux hands processes a soft `RLIMIT_NOFILE` of 1,024 by default (for
//! `select(2)`'s sake) and a far higher hard limit (systemd: 524,288). Every
//! connection costs a descriptor, so a server left at 1,024 can be starved
//! by a thousand idle sockets. Go raises the soft limit to the hard one at
//! start-up (`os/rlimit.go`), so Headscale and tailscaled run with it; we
//! do the same, explicitly.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// The open-file limit before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nofile {
    /// Soft limit found at start (`None`: unlimited).
    pub before: Option<u64>,
    /// Soft limit now in force.
    pub soft: Option<u64>,
    /// Hard limit.
    pub hard: Option<u64>,
}

/// Raises the soft open-file limit to the hard limit. On failure the
/// limit is left as it was and the error is returned for logging.
pub fn raise() -> Result<Nofile, std::io::Error> {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let mut out = Nofile {
        before: current,
        soft: current,
        hard: maximum,
    };
    if current == maximum {
        return Ok(out);
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: maximum,
            maximum,
        },
    )?;
    out.soft = getrlimit(Resource::Nofile).current;
    Ok(out)
}

/// The soft open-file limit in force (`None`: unlimited).
pub fn soft_limit() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

/// Descriptors left for everything but the public port when its total is
/// derived from the limit: the database pool, the admin socket, DNS, whois,
/// log and key files.
pub const RESERVE: u64 = 256;

/// The default cap on public-port connections for a soft limit of `soft`:
/// all but [`RESERVE`] descriptors, and never more than half the limit
/// given away to the reserve.
pub fn default_total(soft: Option<u64>) -> u32 {
    match soft {
        None => u32::MAX,
        Some(soft) => {
            let total = soft.saturating_sub(RESERVE).max(soft / 2).max(1);
            u32::try_from(total).unwrap_or(u32::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_leaves_the_soft_limit_at_the_hard_limit() {
        // Only ever raises, so it is safe in a shared test process.
        let got = raise().expect("raise");
        assert_eq!(got.soft, got.hard);
        assert_eq!(soft_limit(), got.hard);
        assert!(got.before <= got.soft, "{got:?}");
        // Idempotent: a second call changes nothing.
        let again = raise().expect("raise again");
        assert_eq!((again.before, again.soft), (got.soft, got.soft));
    }

    #[test]
    fn default_total_keeps_a_reserve() {
        assert_eq!(default_total(Some(1024)), 768);
        assert_eq!(default_total(Some(524_288)), 524_032);
        // A small limit keeps half for connections rather than none.
        assert_eq!(default_total(Some(300)), 150);
        assert_eq!(default_total(Some(0)), 1);
        assert_eq!(default_total(None), u32::MAX);
        assert_eq!(default_total(Some(u64::MAX)), u32::MAX);
    }
}
