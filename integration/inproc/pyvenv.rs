//! Virtualenvs under the target directory for the real Python clients the
//! tests drive (hsapi-client, tailscale), each with one pinned package,
//! created here when `.ci/run` has not already. Both packages need Python
//! 3.12 or newer; CI's machines carry it under pyenv next to Debian's 3.11.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn python_at_least_3_12(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-c",
            "import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)",
        ])
        .status()
        .is_ok_and(|s| s.success())
}

/// A Python ≥ 3.12 to build a virtualenv from.
fn base_python() -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = ["python3.13", "python3.12", "python3"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if let Ok(dir) = std::fs::read_dir("/root/.pyenv/versions") {
        let mut versions: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        versions.sort();
        versions.reverse();
        candidates.extend(versions.into_iter().map(|v| v.join("bin/python3")));
    }
    candidates
        .into_iter()
        .find(|p| python_at_least_3_12(p))
        .context("the Python clients need Python >= 3.12 and none was found")
}

/// The python of `target/<venv>` with `package` (pinned) installed, which
/// provides module `module`.
pub fn python_with(venv: &str, package: &str, module: &str) -> anyhow::Result<PathBuf> {
    let venv = target_dir().join(venv);
    let python = venv.join("bin/python");
    let ready = |p: &Path| {
        Command::new(p)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready(&python) {
        return Ok(python);
    }
    let base = base_python()?;
    let status = Command::new(&base)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()?;
    if !status.success() {
        bail!("{} -m venv {} failed", base.display(), venv.display());
    }
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "-q", package])
        .status()?;
    if !status.success() || !ready(&python) {
        bail!("installing {package} into {} failed", venv.display());
    }
    Ok(python)
}
