use super::exit;

use super::TextOrJson as Format;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// A local folder, or s3://, gs://, azblob://, sftp:// URL.
    path: String,
    #[arg(long, value_enum, default_value = "text")]
    pub(super) format: Format,
    /// Remote only: a connection setting (opendal's key for that service), repeatable.
    #[arg(long = "connection", value_name = "KEY=VALUE")]
    connection: Vec<String>,
    /// Look at no more than this many files: a larger source is sampled across
    /// a few of its first-level folders, and the report says so.
    #[arg(long, default_value_t = 100_000)]
    sample: u64,
}

pub(super) fn run(args: Args) -> i32 {
    let result = if args.path.contains("://") {
        let mut connection = std::collections::BTreeMap::new();
        for kv in &args.connection {
            match kv.split_once('=') {
                Some((k, v)) => {
                    connection.insert(k.to_owned(), v.to_owned());
                }
                None => {
                    crate::console::error(&format!("--connection {kv}: expected KEY=VALUE"));
                    return exit::ERROR;
                }
            }
        }
        synup::explore::explore_remote(&args.path, &connection, args.sample.max(1))
    } else {
        synup::explore::explore(
            std::path::Path::new(&args.path),
            &args.path,
            args.sample.max(1),
        )
        .map_err(|e| e.to_string())
    };
    match result {
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
