use super::exit;

use super::TextOrJson as Format;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A local folder.
    path: String,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn run(args: Args) -> i32 {
    if args.path.contains("://") {
        crate::console::error(&format!(
            "`{}`: remote sources are not available in this build yet; explore a local folder",
            args.path
        ));
        return exit::ERROR;
    }
    match synup::explore::explore(std::path::Path::new(&args.path), &args.path) {
        Ok(e) => {
            crate::console::out(&match args.format {
                Format::Text => synup::explore::render_text(&e),
                Format::Json => {
                    format!("{}\n", serde_json::to_string_pretty(&e).unwrap_or_default())
                }
            });
            exit::OK
        }
        Err(err) => {
            crate::console::error(&format!("cannot explore `{}`: {err}", args.path));
            exit::ERROR
        }
    }
}
