//! The `synup` binary: parse arguments, run one command, map its result to an exit code.

mod cli;
mod console;

use std::process::ExitCode;

// A plan holds millions of small allocations made on many threads; mimalloc
// keeps them compact where glibc's per-thread arenas would hold on to freed memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    console::install_error_hook();
    let code = cli::run();
    // Close remote connections (sftp's ssh masters outlive us otherwise).
    synup::source::remote::shutdown();
    ExitCode::from(code as u8)
}
