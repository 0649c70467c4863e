//! The `synup` binary: parse arguments, run one command, map its result to an exit code.

mod cli;
mod console;

use std::process::ExitCode;

// A plan holds millions of small allocations made on many threads; mimalloc
// keeps them compact where glibc's per-thread arenas would hold on to freed memory.
// Built without transparent huge pages (the `no_thp` feature): a planner that
// frees a spreadsheet's rows while it builds the plan would otherwise keep
// whole 2 MiB pages resident for a few live blocks.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (include/mimalloc.h);
/// the unit test below pins it by the option's default in this build.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Freed memory goes back to the OS after 10 ms rather than after a second: the
/// planner frees its intermediate stages (sheet rows, unit drafts) just before
/// the plan grows, and a delayed purge lets both count towards the peak. On a
/// 100,000-unit plan this is 230 → about 165 MiB peak (0 ms saves a little
/// more memory but costs a fifth of the time on a flat folder of 230,000 files).
fn tune_allocator() {
    // SAFETY: setting a mimalloc option is a plain store; it is read by the
    // allocator on its next purge decision.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 10) };
}

fn main() -> ExitCode {
    tune_allocator();
    let code = cli::run();
    // Close remote connections (sftp's ssh masters outlive us otherwise).
    synup::io_runtime::shutdown();
    ExitCode::from(code as u8)
}

#[cfg(test)]
mod tests {
    unsafe extern "C" {
        fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    }

    #[test]
    fn purge_delay_option_index_is_mimallocs() {
        // This build's default purge delay is 1000 ms (options.c); the options
        // around it default to 0 or 1. `main` has not run in a test binary.
        assert_eq!(unsafe { mi_option_get(super::MI_OPTION_PURGE_DELAY) }, 1000);
    }
}
