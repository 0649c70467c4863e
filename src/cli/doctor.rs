//! `synup doctor`: checks the credentials and the backend they reach.

use serde_json::json;

use super::TextOrJson as Format;
use super::exit;

#[derive(Debug, clap::Args)]
pub(super) struct DoctorArgs {
    #[arg(long, value_enum, default_value = "text")]
    pub(super) format: Format,
}

pub(super) fn run(args: DoctorArgs) -> i32 {
    use synup::target::synapse::doctor::{self, Status};
    let checks = doctor::checks();
    let failed = checks.iter().any(|c| c.status == Status::Error);
    match args.format {
        Format::Json => super::backend::print_json(
            &json!({"format_version": 1, "ok": !failed, "checks": checks}),
        ),
        Format::Text => {
            let mut out = String::new();
            for c in &checks {
                let mark = match c.status {
                    Status::Ok => "ok  ",
                    Status::Warning => "warn",
                    Status::Error => "FAIL",
                };
                out.push_str(&format!("[{mark}] {}: {}\n", c.check, c.message));
            }
            crate::console::out(&out);
        }
    }
    if failed { exit::ERROR } else { exit::OK }
}
