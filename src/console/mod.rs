//! The only code that writes to the terminal: diagnostics, output, prompts, progress.

pub(crate) mod progress;

use std::io::{IsTerminal, Write};

/// miette's renderer: colours only on a terminal, stable width for snapshots.
pub(crate) fn install_error_hook() {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
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

/// Prints a diagnostic (with its source snippet) to stderr.
pub(crate) fn report(diagnostic: impl miette::Diagnostic + Send + Sync + 'static) {
    let text = format!("{:?}", miette::Report::new(diagnostic));
    to_stderr(&format!("{}\n", for_terminal(&text, colored_stderr())));
}

/// A one-line error without a source snippet.
pub(crate) fn error(message: &str) {
    to_stderr(&format!("error: {}\n", for_terminal(message, false)));
}

/// Progress output is for people: only on a terminal, never with `--quiet` or in CI.
pub(crate) fn progress_wanted(quiet: bool) -> bool {
    !quiet && std::env::var_os("CI").is_none() && std::io::stderr().is_terminal()
}

/// Data for stdout.
pub(crate) fn out(text: &str) {
    let text = for_terminal(text, false);
    out_with(|w| w.write_all(text.as_bytes()));
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

fn colored_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
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

/// Asks a yes/no question on the terminal; anything but yes is no.
pub(crate) fn confirm(question: &str) -> bool {
    to_stderr(&format!("{} [y/N] ", for_terminal(question, false)));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
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
