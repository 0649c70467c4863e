//! Runs the real `synup` binary against fixture folders made in temp dirs.

use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout then stderr, for snapshots.
    pub(crate) fn both(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub(crate) fn synup() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_synup"));
    cmd.env("NO_COLOR", "1").env_remove("CI");
    cmd
}

pub(crate) fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("synup runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `synup ARGS` in `dir`.
pub(crate) fn synup_in(dir: &Path, args: &[&str]) -> Output {
    run(synup().current_dir(dir).args(args))
}

/// A temp folder with helpers to lay out fixtures.
pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
    pub(crate) fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub(crate) fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> &Self {
        let p = self.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
        self
    }
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        synup_in(self.path(), args)
    }
}

/// A recipe header with a two-spec collection (image_1 png, label_1 json).
pub(crate) const TWO_SPECS: &str = "version: 1
name: t
collection:
  file_specifications:
    - {name: image_1, file_type: image, extensions: [.png], is_required: true, is_primary: true}
    - {name: label_1, file_type: document, extensions: [.json], is_required: true}
";

/// Pattern-1 data: `n` unit folders with an image and a label.
pub(crate) fn nested_units(f: &Fixture, root: &str, n: usize) {
    for i in 0..n {
        f.write(&format!("{root}/u{i:03}/img.png"), format!("png {i}"));
        f.write(
            &format!("{root}/u{i:03}/lab.json"),
            format!("{{\"i\": {i}}}"),
        );
    }
}

/// Snapshot filters: temp paths and hashes that depend on them.
pub(crate) fn settings(f: &Fixture) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    let tmp = f.path().to_string_lossy().into_owned();
    s.add_filter(&regex_escape(&tmp), "[TMP]");
    s.add_filter(r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]");
    s.set_prepend_module_to_snapshot(false);
    s
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether a test that needs root may run. Not root: the test is skipped
/// with `reason` on stderr, unless `SYNUP_REQUIRE_ROOT_TESTS` is set (`.ci/run`
/// sets it when it runs as root), where a skip would hide a missing check.
pub(crate) fn root_only(reason: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("SYNUP_REQUIRE_ROOT_TESTS").is_none(),
        "this test needs root ({reason}), and SYNUP_REQUIRE_ROOT_TESTS is set"
    );
    eprintln!("skipped, needs root: {reason}");
    false
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

pub(crate) fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Runs synup as `nobody`: root reads and writes everything, so permission
/// tests drop privileges (the caller makes the fixture reachable for nobody).
pub(crate) fn as_nobody(f: &Fixture, args: &[&str]) -> Output {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        env!("CARGO_BIN_EXE_synup"),
    ])
    .args(args)
    .current_dir(f.path())
    .env("NO_COLOR", "1")
    .env_remove("CI");
    run(&mut cmd)
}

/// A venv under target/py with `package` installed, made once (`.ci/run` makes it first).
pub(crate) fn venv(name: &str, package: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py");
    std::fs::create_dir_all(&root).unwrap();
    let lock = std::fs::File::create(root.join(format!(".{name}.lock"))).unwrap();
    lock.lock().unwrap();
    let venv = root.join(name);
    let marker = venv.join(".ok");
    if !marker.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "-q", package])
                .status()
                .is_ok_and(|s| s.success());
        assert!(ok, "could not install {package} into {}", venv.display());
        std::fs::write(&marker, "").unwrap();
    }
    venv
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("nothing listens on {port}");
}

/// A server process a test started: killed (and reaped) when the guard is
/// dropped, also when the test panics.
pub(crate) struct Killed(pub(crate) std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
