//! The `clawscale` binary: all argument parsing, logging set-up and command
//! dispatch live in `clawscale::cli`, so they are testable as a library.

use std::process::ExitCode;

fn main() -> ExitCode {
    clawscale::cli::main()
}
