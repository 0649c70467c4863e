//! `synup completions SHELL` and `synup man DIR`: generated from the same
//! clap definitions the parser uses, so they cannot drift from it.

use std::path::PathBuf;

use clap::CommandFactory;

use super::exit;

#[derive(Debug, clap::Args)]
pub(super) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub(super) struct ManArgs {
    /// The folder to write `synup.1` and one `synup-COMMAND.1` per command into.
    #[arg(default_value = "man")]
    dir: PathBuf,
}

/// Prints the completion script, e.g. `synup completions bash > ~/.local/share/bash-completion/completions/synup`.
pub(super) fn completions(args: CompletionsArgs) -> i32 {
    let mut cmd = super::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "synup", &mut script);
    crate::console::out_with(|w| w.write_all(&script));
    exit::OK
}

/// Writes the man pages (roff) into a folder, atomically each.
pub(super) fn man(args: ManArgs) -> i32 {
    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        crate::console::error(&format!("cannot create {}: {e}", args.dir.display()));
        return exit::ERROR;
    }
    let cmd = super::Cli::command();
    let mut pages = vec![("synup".to_owned(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("synup-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().display_name(name)));
    }
    for (name, page) in pages {
        let mut roff = Vec::new();
        let path = args.dir.join(format!("{name}.1"));
        let written = clap_mangen::Man::new(page)
            .render(&mut roff)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                synup::fs_write::write(&path, synup::fs_write::Access::Shared, &roff)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            crate::console::error(&format!("cannot write {}: {e}", path.display()));
            return exit::ERROR;
        }
        if crate::console::progress_wanted() {
            crate::console::note(&format!("wrote {}", path.display()));
        }
    }
    exit::OK
}
