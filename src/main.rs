//! The `synup` binary: parse arguments, run one command, map its result to an exit code.

mod cli;
mod console;

use std::process::ExitCode;

fn main() -> ExitCode {
    console::install_error_hook();
    let code = cli::run();
    ExitCode::from(code as u8)
}
