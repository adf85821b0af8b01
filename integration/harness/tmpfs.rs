//! A small tmpfs the test mounts, fills and frees: a filesystem that runs out
//! of space on demand, for the disk-full fault tests.
//!
//! Owns: mounting (`mount -t tmpfs -o size=…`) on a fresh temp directory,
//! a filler file that takes every free block, and unmounting on drop.
//! Depends on util-linux `mount`/`umount` and root. Drop the processes using
//! the mount (the server) before the `Tmpfs`, or the unmount is lazy.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::process::run;

const MOUNT_TIMEOUT: Duration = Duration::from_secs(20);

/// A mounted tmpfs; unmounted on drop.
pub struct Tmpfs {
    /// Holds the mount point; deleted after `drop` has unmounted it.
    dir: TempDir,
    mnt: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB, mode 0700.
    pub fn mount(mib: u32) -> Tmpfs {
        Tmpfs::mount_with(mib, "")
    }

    /// Mounts an empty tmpfs read-only: nothing can be created in it.
    pub fn mount_read_only() -> Tmpfs {
        Tmpfs::mount_with(1, ",ro")
    }

    fn mount_with(mib: u32, extra: &str) -> Tmpfs {
        let dir = tempfile::Builder::new()
            .prefix("clawscale-tmpfs-")
            .tempdir()
            .expect("temp dir for the mount point");
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).expect("mount point");
        run(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={mib}m,mode=0700{extra}"))
                .arg("tmpfs")
                .arg(&mnt),
            MOUNT_TIMEOUT,
        )
        .expect_success("mounting a tmpfs (the fault tests need root)");
        Tmpfs { dir, mnt }
    }

    pub fn path(&self) -> &Path {
        &self.mnt
    }

    fn filler(&self) -> PathBuf {
        self.mnt.join("filler")
    }

    /// Takes every free block with a filler file. Returns its size.
    pub fn fill(&self) -> u64 {
        let mut f = File::options()
            .create(true)
            .append(true)
            .open(self.filler())
            .expect("create the filler file");
        let mut written = 0;
        // Large chunks first, then single pages for what is left.
        for chunk in [64 * 1024, 4096, 512] {
            let buf = vec![0u8; chunk];
            loop {
                match f.write(&buf) {
                    Ok(0) => break,
                    Ok(n) => written += n as u64,
                    Err(e) if e.kind() == ErrorKind::StorageFull => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => panic!("filling the tmpfs: {e}"),
                }
            }
        }
        written
    }

    /// Removes the filler: the space is back.
    pub fn free(&self) {
        fs::remove_file(self.filler()).expect("remove the filler file");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let out = run(Command::new("umount").arg(&self.mnt), MOUNT_TIMEOUT);
        if !out.success() {
            eprintln!("harness: umount failed, detaching lazily:\n{out}");
            let _ = run(
                Command::new("umount").arg("-l").arg(&self.mnt),
                MOUNT_TIMEOUT,
            );
        }
    }
}
