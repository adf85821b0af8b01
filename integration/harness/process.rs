//! Child-process plumbing for the harness: bounded command runs and owned
//! long-running children.
//!
//! Owns: running a `Command` with a hard timeout (`run`), and `OwnedChild`, a
//! spawned process that is terminated by PID when dropped, so a panicking test
//! never leaves a `tailscaled` or server behind. Depends only on std.
//!
//! Why so careful: every external program here (`ip`, `tailscale`, the server)
//! can hang on a broken server, and an unbounded wait turns one failing test
//! into a stuck CI job. Processes are only ever signalled by the PID of a child
//! we spawned and have not yet reaped, so the PID cannot have been reused.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// What a finished (or timed-out) command produced.
#[derive(Debug)]
pub struct CmdOutput {
    /// `{:?}` of the command, for messages.
    pub command: String,
    /// `None` when the command was killed for running past its timeout.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    /// True when the command exited on its own with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }

    /// stdout and stderr together, for matching error messages.
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Panics with the full output unless the command succeeded.
    #[track_caller]
    pub fn expect_success(self, what: &str) -> Self {
        if !self.success() {
            panic!("{what} failed:\n{self}");
        }
        self
    }
}

impl std::fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => "killed after timeout".to_owned(),
        };
        write!(
            f,
            "  command: {}\n  status: {status}\n  stdout: {}\n  stderr: {}",
            self.command,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs `cmd` to completion with stdin closed, killing it after `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> CmdOutput {
    let command = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!("cannot spawn {command}: {e}"),
    };
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for {command}: {e}"),
        }
    };
    // A grandchild could keep a pipe open forever; don't wait for it long.
    let collect = |rx: mpsc::Receiver<String>| {
        rx.recv_timeout(Duration::from_secs(2))
            .unwrap_or_else(|_| "<output not collected: pipe still open>".to_owned())
    };
    CmdOutput {
        command,
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// A long-running child we spawned. Dropping it terminates it (SIGTERM, then
/// SIGKILL after a grace period) and reaps it.
#[derive(Debug)]
pub struct OwnedChild {
    child: Child,
    what: String,
}

impl OwnedChild {
    /// Spawns `cmd`; `what` names it in messages.
    pub fn spawn(cmd: &mut Command, what: &str) -> OwnedChild {
        match cmd.spawn() {
            Ok(child) => OwnedChild {
                child,
                what: what.to_owned(),
            },
            Err(e) => panic!("cannot spawn {what} ({cmd:?}): {e}"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Asks the process to stop (SIGTERM) and kills it if it has not exited
    /// within `grace`. Returns its exit status.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exited() {
            return Some(status);
        }
        // std only offers SIGKILL and the crate forbids `unsafe` (no libc), so
        // SIGTERM goes through bash's builtin `kill` (procps may be absent).
        // The PID is our unreaped child, so it cannot have been reused.
        let _ = Command::new("bash")
            .args(["-c", "kill -TERM \"$0\"", &self.pid().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(25));
        }
        eprintln!(
            "harness: {} (pid {}) ignored SIGTERM for {grace:?}; killing",
            self.what,
            self.pid()
        );
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl OwnedChild {
    /// SIGKILL, then reap. Returns the exit status.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for OwnedChild {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(5));
    }
}

/// The last `max_lines` lines of a log file (or a note saying why not).
pub fn tail_file(path: &Path, max_lines: usize) -> String {
    const MAX_BYTES: u64 = 256 * 1024;
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) => return format!("<cannot open {}: {e}>", path.display()),
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > MAX_BYTES {
        let _ = f.seek(SeekFrom::Start(len - MAX_BYTES));
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(max_lines);
    lines[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_reports_exit_status_and_output() {
        let out = run(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        );
        assert_eq!(out.status.and_then(|s| s.code()), Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert!(!out.success());
    }

    #[test]
    fn run_kills_a_command_past_its_timeout() {
        let started = Instant::now();
        let out = run(
            Command::new("sh").args(["-c", "exec sleep 30"]),
            Duration::from_millis(300),
        );
        assert!(out.timed_out());
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn dropping_an_owned_child_stops_it() {
        let child = OwnedChild::spawn(Command::new("sleep").arg("30"), "sleep");
        let proc_dir = format!("/proc/{}", child.pid());
        assert!(Path::new(&proc_dir).exists());
        drop(child);
        assert!(!Path::new(&proc_dir).exists(), "{proc_dir} still exists");
    }
}
