//! The `clawscale` binary: all argument parsing, logging set-up and command
//! dispatch live in `clawscale::cli`, so they are testable as a library.

use std::process::ExitCode;

/// mimalloc rather than glibc malloc: map building is allocation-bound,
/// and with thousands of long-lived streams glibc's arenas fragmented
/// (malloc_consolidate was the top symbol under load). The enroll bench's
/// server uses the same allocator, so its figures are this binary's.
/// Its 2.x series (see `Cargo.toml`): 3.x gave freed pages back only a
/// second later and only once their thread allocated again.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    clawscale::cli::main()
}
