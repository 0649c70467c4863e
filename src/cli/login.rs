//! `synup login`: saves a Synapse host and access token for later runs.

use synup::target::synapse::Secret;
use synup::target::synapse::config;

use super::exit;

#[derive(Debug, clap::Args)]
pub(super) struct LoginArgs {
    /// API host (asked on a terminal when missing).
    #[arg(long)]
    host: Option<String>,
    /// Access token (asked on a terminal when missing; never printed).
    #[arg(long)]
    token: Option<String>,
}

pub(super) fn run(args: LoginArgs) -> i32 {
    let on_terminal = super::init::on_terminal();
    let host = match args.host {
        Some(h) => h,
        None if on_terminal => {
            crate::console::ask("Synapse host", Some(config::DEFAULT_HOST)).unwrap_or_default()
        }
        None => {
            crate::console::error("missing --host: there is no terminal to ask on");
            return exit::ERROR;
        }
    };
    let token = match args.token {
        Some(t) => t,
        None if on_terminal => match crate::console::ask_secret("Access token") {
            Some(t) => t,
            None => {
                crate::console::error("no token given");
                return exit::ERROR;
            }
        },
        None => {
            crate::console::error("missing --token: there is no terminal to ask on");
            return exit::ERROR;
        }
    };
    match config::write_login(host.trim_end_matches('/'), &Secret::new(token)) {
        Ok(path) => {
            crate::console::note(&format!(
                "Saved host {host} and the access token to {} (mode 0600). `synup doctor` checks them.",
                path.display()
            ));
            exit::OK
        }
        Err(e) => {
            crate::console::report(e);
            exit::ERROR
        }
    }
}
