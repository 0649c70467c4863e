//! The only code that writes to the terminal: diagnostics, output, prompts, progress.

pub(crate) mod log;
pub(crate) mod progress;
pub(crate) mod settings;

use std::io::{IsTerminal, Write};

use settings::Stream;

/// miette's renderer: colours by `--color`, stable width for snapshots.
/// Installed after the global flags are read.
pub(crate) fn install_error_hook() {
    let color = settings::color(Stream::Stderr);
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .unicode(color)
                .terminal_links(false)
                .width(100)
                .build(),
        )
    }));
}

/// Prints a diagnostic (with its source snippet) to stderr, or as JSON on
/// stdout under `--format json`.
pub(crate) fn report(diagnostic: impl miette::Diagnostic + Send + Sync + 'static) {
    if settings::json_errors() {
        let mut json = String::new();
        let rendered = miette::JSONReportHandler::new().render_report(&mut json, &diagnostic);
        let error = rendered
            .ok()
            .and_then(|()| serde_json::from_str(&json).ok())
            .unwrap_or_else(|| serde_json::json!({"message": diagnostic.to_string()}));
        return json_error(error);
    }
    let text = format!("{:?}", miette::Report::new(diagnostic));
    to_stderr(&format!(
        "{}\n",
        for_terminal(&text, settings::color(Stream::Stderr))
    ));
}

/// A one-line error without a source snippet.
pub(crate) fn error(message: &str) {
    if settings::json_errors() {
        return json_error(serde_json::json!({"message": message}));
    }
    to_stderr(&format!("error: {}\n", for_terminal(message, false)));
}

/// An error as one JSON line on stdout, where `--format json` output goes:
/// `{"format_version":1,"error":{"message":…,"code":…,"labels":[…],…}}`
/// (the fields are miette's JSON report). Masked, like everything else.
fn json_error(error: serde_json::Value) {
    // Written by hand so `format_version` comes first (serde_json's maps sort).
    let doc = format!("{{\"format_version\":1,\"error\":{error}}}\n");
    let line = synup::secrets::mask(&doc);
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

/// Progress output is for people: only on a terminal, never with `-q` or in CI.
pub(crate) fn progress_wanted() -> bool {
    !settings::quiet() && std::env::var_os("CI").is_none() && std::io::stderr().is_terminal()
}

/// Data for stdout.
pub(crate) fn out(text: &str) {
    let text = for_terminal(text, false);
    out_with(|w| w.write_all(text.as_bytes()));
}

/// Data for stdout that may hold colour (SGR) sequences: they pass when
/// `--color` and the terminal allow colour on stdout.
pub(crate) fn out_colored(text: &str) {
    let text = for_terminal(text, true);
    out_with(|w| w.write_all(text.as_bytes()));
}

/// Whether stdout may be coloured.
pub(crate) fn stdout_colored() -> bool {
    settings::color(Stream::Stdout)
}

/// Streams data to stdout through a buffer. A closed pipe (`synup plan |
/// head`) ends the command quietly, as in other Unix tools; any other failure
/// (`> /dev/full`) is an error: exit 1.
pub(crate) fn out_with(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) {
    let stdout = std::io::stdout().lock();
    let mut w = std::io::BufWriter::with_capacity(1 << 16, stdout);
    if let Err(e) = write(&mut w).and_then(|()| w.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        to_stderr(&format!("error: cannot write to standard output: {e}\n"));
        std::process::exit(1);
    }
}

/// Progress and notes for stderr.
pub(crate) fn note(text: &str) {
    to_stderr(&format!("{}\n", for_terminal(text, false)));
}

/// Writes to stderr without panicking when it is closed (`eprintln!` would).
fn to_stderr(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Text as people may see it: secrets masked (SPEC 2), and control
/// characters other than newline and tab shown escaped (`\x1b`), so a file
/// named with terminal escape sequences cannot clear the screen, retitle the
/// window or fake output. With `colors`, SGR sequences (`ESC [ … m`, what
/// miette colours with) pass.
pub(crate) fn for_terminal(text: &str, colors: bool) -> std::borrow::Cow<'_, str> {
    let masked = synup::secrets::mask(text);
    let needs = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !masked.chars().any(needs) {
        return masked;
    }
    let mut out = String::with_capacity(masked.len() + 16);
    let mut rest = masked.as_ref();
    while let Some(c) = rest.chars().next() {
        if colors && c == '\x1b' {
            let sgr = rest[1..]
                .strip_prefix('[')
                .and_then(|r| {
                    r.find(|ch: char| !(ch.is_ascii_digit() || ch == ';'))
                        .map(|i| (r, i))
                })
                .filter(|(r, i)| r[*i..].starts_with('m'));
            if let Some((_, i)) = sgr {
                out.push_str(&rest[..i + 3]);
                rest = &rest[i + 3..];
                continue;
            }
        }
        if needs(c) {
            let n = c as u32;
            if n < 0x100 {
                out.push_str(&format!("\\x{n:02x}"));
            } else {
                out.push_str(&format!("\\u{{{n:x}}}"));
            }
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    std::borrow::Cow::Owned(out)
}

/// Asks a yes/no question on the terminal (inquire's prompt: `y`/`n`,
/// Enter for the default no); an interrupted prompt is no.
pub(crate) fn confirm(question: &str) -> bool {
    inquire::Confirm::new(&for_terminal(question, false))
        .with_default(false)
        .prompt()
        .unwrap_or(false)
}

/// Asks for a line on the terminal; an empty answer takes `default`.
/// `None`: no answer (and no default), or input closed.
pub(crate) fn ask(question: &str, default: Option<&str>) -> Option<String> {
    let shown = default.map(|d| format!(" [{d}]")).unwrap_or_default();
    to_stderr(&format!("{}{shown}: ", for_terminal(question, false)));
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).ok()?;
    match (line.trim(), default) {
        ("", Some(d)) => Some(d.to_owned()),
        ("", None) => None,
        (answer, _) => Some(answer.to_owned()),
    }
}

/// Asks for a secret on the terminal without echoing it.
pub(crate) fn ask_secret(question: &str) -> Option<String> {
    inquire::Password::new(question)
        .without_confirmation()
        .with_display_mode(inquire::PasswordDisplayMode::Hidden)
        .prompt()
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::for_terminal;

    #[test]
    fn control_characters_are_escaped_and_colors_pass_when_asked() {
        let name = "a\x1b]0;owned\x07b\x1b[2Jc\r\u{9b}d";
        assert_eq!(
            for_terminal(name, false),
            "a\\x1b]0;owned\\x07b\\x1b[2Jc\\x0d\\x9bd"
        );
        assert_eq!(
            for_terminal("\x1b[31mred\x1b[0m", true),
            "\x1b[31mred\x1b[0m"
        );
        assert_eq!(for_terminal("\x1b[2J", true), "\\x1b[2J");
        assert_eq!(for_terminal("line\n\tindented", false), "line\n\tindented");
    }
}
