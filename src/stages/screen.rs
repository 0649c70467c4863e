//! Content screening (SPEC 2.3), as the official SDK's upload screens files
//! before sending them (its `content_guard`): a binary extension whose magic
//! bytes say otherwise, executables and scripts, private keys and credential
//! files, script injection in text files, and variable frame rate in videos
//! where a decoder (`ffprobe`) is available.
//!
//! [`inspect`] is a pure function of a file's name and first bytes. Verdicts
//! are cached by the file's SHA-1 (with its name, which some rules read), so a
//! warm plan opens no file again.

use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::Warning;
use super::checksum::{HashRequest, RequestList};
use crate::cache_file;

/// Bytes read from a binary file: enough for every signature below.
const HEAD: usize = 8 << 10;
/// Bytes of a text file searched for script injection and key blocks.
const TEXT_HEAD: usize = 256 << 10;

/// Which rule a file broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    TypeMismatch,
    Executable,
    SensitiveFile,
    ScriptInjection,
    VariableFrameRate,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::TypeMismatch => "type_mismatch",
            Rule::Executable => "executable",
            Rule::SensitiveFile => "sensitive_file",
            Rule::ScriptInjection => "script_injection",
            Rule::VariableFrameRate => "variable_frame_rate",
        }
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(c: u8) -> Option<Self> {
        [
            Rule::TypeMismatch,
            Rule::Executable,
            Rule::SensitiveFile,
            Rule::ScriptInjection,
            Rule::VariableFrameRate,
        ]
        .get(usize::from(c).checked_sub(1)?)
        .copied()
    }
}

/// A rule a file broke, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    pub detail: String,
}

fn finding(rule: Rule, detail: impl Into<String>) -> Option<Finding> {
    Some(Finding {
        rule,
        detail: detail.into(),
    })
}

/// Extensions that run code when opened.
const EXECUTABLE_EXTENSIONS: &[&str] = &[
    "exe", "dll", "msi", "scr", "com", "bat", "cmd", "ps1", "psm1", "vbs", "vbe", "wsf", "sh",
    "bash", "zsh", "csh", "ksh", "fish", "jar", "apk", "app", "dmg", "pkg", "deb", "rpm", "run",
];

/// File names that hold secrets whatever their content.
const SENSITIVE_NAMES: &[&str] = &[
    ".env",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    ".netrc",
    "_netrc",
    ".pgpass",
    ".git-credentials",
    "credentials",
    ".npmrc",
    ".pypirc",
];

/// Key stores.
const SENSITIVE_EXTENSIONS: &[&str] = &["pem", "key", "p12", "pfx", "jks", "keystore", "ppk"];

/// Text formats searched for script injection.
const TEXT_EXTENSIONS: &[&str] = &[
    "svg", "html", "htm", "xhtml", "xml", "json", "txt", "csv", "tsv", "md", "yaml", "yml",
];

/// Binary formats and the signature their first bytes carry.
fn signature_ok(ext: &str, head: &[u8]) -> Option<bool> {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    let riff = |kind: &[u8]| at(0, b"RIFF") && at(8, kind);
    Some(match ext {
        "png" => at(0, b"\x89PNG\r\n\x1a\n"),
        "jpg" | "jpeg" | "jpe" => at(0, b"\xff\xd8\xff"),
        "gif" => at(0, b"GIF87a") || at(0, b"GIF89a"),
        "bmp" => at(0, b"BM"),
        "tif" | "tiff" => at(0, b"II*\0") || at(0, b"MM\0*") || at(0, b"II+\0") || at(0, b"MM\0+"),
        "webp" => riff(b"WEBP"),
        "pdf" => at(0, b"%PDF"),
        "zip" | "xlsx" | "xlsm" | "docx" | "pptx" | "npz" => {
            at(0, b"PK\x03\x04") || at(0, b"PK\x05\x06")
        }
        "gz" | "tgz" => at(0, b"\x1f\x8b"),
        "bz2" => at(0, b"BZh"),
        "xz" => at(0, b"\xfd7zXZ\0"),
        "zst" => at(0, b"\x28\xb5\x2f\xfd"),
        "dcm" | "dicom" => at(128, b"DICM"),
        "nii" => at(344, b"n+1\0") || at(4, b"n+2\0"),
        "mp4" | "m4v" | "mov" | "m4a" | "3gp" => {
            at(4, b"ftyp") || at(4, b"moov") || at(4, b"mdat") || at(4, b"wide") || at(4, b"free")
        }
        "avi" => riff(b"AVI "),
        "wav" => riff(b"WAVE"),
        "flac" => at(0, b"fLaC"),
        "ogg" | "oga" | "ogv" | "opus" => at(0, b"OggS"),
        "mp3" => at(0, b"ID3") || (head.len() > 1 && head[0] == 0xff && head[1] & 0xe0 == 0xe0),
        "mkv" | "webm" => at(0, b"\x1a\x45\xdf\xa3"),
        "h5" | "hdf5" => at(0, b"\x89HDF\r\n\x1a\n"),
        "npy" => at(0, b"\x93NUMPY"),
        "parquet" => at(0, b"PAR1"),
        _ => return None,
    })
}

/// The extension checked against signatures: the last suffix, lower case
/// (`.nii.gz` is checked as gzip).
fn last_suffix(name: &str) -> String {
    match name.rfind('.') {
        Some(0) | None => String::new(),
        Some(i) => name[i + 1..].to_ascii_lowercase(),
    }
}

fn hex_start(head: &[u8]) -> String {
    let shown: Vec<String> = head.iter().take(4).map(|b| format!("{b:02X}")).collect();
    if shown.is_empty() {
        "nothing".to_owned()
    } else {
        shown.join(" ")
    }
}

/// The first rule `name` with these first bytes breaks, if any. Order: the
/// gravest first (a key, then code, then a lie about the type).
pub fn inspect(name: &str, head: &[u8]) -> Option<Finding> {
    let lower = name.to_ascii_lowercase();
    let ext = last_suffix(&lower);
    if SENSITIVE_NAMES.contains(&lower.as_str()) || lower.starts_with(".env.") {
        return finding(
            Rule::SensitiveFile,
            format!("`{name}` is a credentials file"),
        );
    }
    if SENSITIVE_EXTENSIONS.contains(&ext.as_str()) {
        return finding(
            Rule::SensitiveFile,
            format!(".{ext} files hold keys or certificates"),
        );
    }
    if let Some(what) = secret_in(head) {
        return finding(Rule::SensitiveFile, format!("it contains {what}"));
    }
    if let Some(what) = executable_magic(head) {
        return finding(Rule::Executable, format!("it is {what}"));
    }
    if EXECUTABLE_EXTENSIONS.contains(&ext.as_str()) {
        return finding(Rule::Executable, format!(".{ext} files run code"));
    }
    if let Some(false) = signature_ok(&ext, head) {
        return finding(
            Rule::TypeMismatch,
            format!(
                ".{ext} file without the .{ext} signature (starts with {})",
                hex_start(head)
            ),
        );
    }
    if TEXT_EXTENSIONS.contains(&ext.as_str())
        && let Some(what) = script_in(head)
    {
        return finding(Rule::ScriptInjection, format!("it contains {what}"));
    }
    None
}

/// A regex over bytes, compiled once (the regex crate's literal prefilters
/// make a miss, the common case, about as fast as `memchr`).
macro_rules! bytes_regex {
    ($re:expr) => {{
        static RE: std::sync::LazyLock<regex::bytes::Regex> =
            std::sync::LazyLock::new(|| regex::bytes::Regex::new($re).expect("a valid regex"));
        &*RE
    }};
}

fn secret_in(head: &[u8]) -> Option<&'static str> {
    let key_block = bytes_regex!(
        r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"
    );
    if key_block.is_match(head) {
        return Some("a private key");
    }
    if bytes_regex!(r"(?i)aws_secret_access_key").is_match(head) {
        return Some("an AWS secret access key");
    }
    if bytes_regex!(r#""type"\s*:\s*"service_account""#).is_match(head)
        && bytes_regex!(r#""private_key""#).is_match(head)
    {
        return Some("a cloud service-account key");
    }
    None
}

fn executable_magic(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\x7fELF") {
        return Some("an ELF executable");
    }
    if head.starts_with(b"MZ") && pe_header(head) {
        return Some("a Windows executable");
    }
    const MACH_O: &[&[u8]] = &[
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
    ];
    if MACH_O.iter().any(|m| head.starts_with(m)) {
        return Some("a Mach-O executable");
    }
    if head.starts_with(b"#!") {
        return Some("a script (it starts with #!)");
    }
    None
}

/// `MZ` followed, where its header points, by `PE\0\0`.
fn pe_header(head: &[u8]) -> bool {
    let Some(at) = head.get(0x3c..0x40) else {
        return false;
    };
    let offset = u32::from_le_bytes([at[0], at[1], at[2], at[3]]) as usize;
    head.get(offset..offset + 4) == Some(b"PE\0\0")
}

fn script_in(head: &[u8]) -> Option<&'static str> {
    if bytes_regex!(r"(?i)<script").is_match(head) {
        return Some("a <script> element");
    }
    if bytes_regex!(r"(?i)javascript:").is_match(head) {
        return Some("a javascript: URL");
    }
    // An inline handler inside a tag: `<img src=x onerror=...>`.
    bytes_regex!(r"(?i-u)<[a-z][^>]*\son[a-z]+\s*=")
        .is_match(head)
        .then_some("an inline on*= event handler")
}

/// [`inspect`] on a file's first bytes, of which it reads as many as the
/// file's kind needs (a text file is searched further than a binary one).
pub fn inspect_head(name: &str, bytes: &[u8]) -> Option<Finding> {
    let ext = last_suffix(name);
    let limit = if TEXT_EXTENSIONS.contains(&ext.as_str()) {
        TEXT_HEAD
    } else {
        HEAD
    };
    inspect(name, &bytes[..bytes.len().min(limit)])
}

/// Verdicts made while the checksum pass read files, by request index, so
/// that a cold plan reads each file once.
pub struct SeenHeads {
    /// 0: not seen; 1: clean; 2: a finding in `findings`.
    state: Vec<std::sync::atomic::AtomicU8>,
    findings: std::sync::Mutex<Vec<(usize, Finding)>>,
}

impl SeenHeads {
    pub fn new(requests: usize) -> Self {
        Self {
            state: (0..requests).map(|_| Default::default()).collect(),
            findings: Default::default(),
        }
    }

    /// Called from the reader threads with a file's first chunk.
    pub fn see(&self, index: usize, name: &str, bytes: &[u8]) {
        use std::sync::atomic::Ordering;
        let verdict = inspect_head(name, bytes);
        let state = match verdict {
            None => 1,
            Some(f) => {
                self.findings
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((index, f));
                2
            }
        };
        if let Some(s) = self.state.get(index) {
            s.store(state, Ordering::Relaxed);
        }
    }

    /// Per request: `Some(verdict)` if its head was seen; empty if none was.
    pub fn into_verdicts(self) -> Vec<Option<Option<Box<Finding>>>> {
        use std::sync::atomic::Ordering;
        if self.state.iter().all(|s| s.load(Ordering::Relaxed) == 0) {
            return Vec::new();
        }
        let mut out: Vec<Option<Option<Box<Finding>>>> = self
            .state
            .into_iter()
            .map(|s| (s.into_inner() == 1).then_some(None))
            .collect();
        for (i, f) in self
            .findings
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
        {
            out[i] = Some(Some(Box::new(f)));
        }
        out
    }
}

/// Reads what [`inspect`] needs of a local file.
fn read_head(path: &Path, text: bool) -> std::io::Result<Vec<u8>> {
    let limit = if text { TEXT_HEAD } else { HEAD };
    let mut buf = Vec::with_capacity(limit.min(64 << 10));
    std::fs::File::open(path)?
        .take(limit as u64)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// Variable frame rate: packet timestamps of the first 200 frames whose
/// spacing varies by more than 1 ms. `None` when `ffprobe` is not installed
/// or cannot read the file (the SDK also only warns then).
fn variable_frame_rate(path: &Path) -> Option<Finding> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#200",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    times.sort_by(f64::total_cmp);
    let deltas: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    if deltas.len() < 2 {
        return None;
    }
    let mean = deltas.iter().sum::<f64>() / deltas.len() as f64;
    let variance = deltas.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / deltas.len() as f64;
    (variance.sqrt() > 0.001).then(|| Finding {
        rule: Rule::VariableFrameRate,
        detail: format!(
            "frame spacing varies by {:.1} ms (variable frame rate)",
            variance.sqrt() * 1000.0
        ),
    })
}

/// Video formats the SDK checks for variable frame rate.
const VFR_EXTENSIONS: &[&str] = &["mp4", "avi", "mov", "mkv", "webm", "flv", "wmv"];

/// A verdict's cache key: the content's SHA-1 (its first 12 bytes) and a
/// hash of the name and of whether the video check applies.
type Key = [u8; 20];

/// No finding.
pub const CLEAN: u32 = u32::MAX;

/// Cached verdicts, in the order the last plan asked for them (so the n-th
/// request is checked against the n-th record first, as the checksum cache
/// does); each is an index into `findings` or [`CLEAN`]. A few bytes a file:
/// a warm plan of a million files builds no map.
pub struct ScreenCache {
    path: PathBuf,
    verdicts: Vec<(Key, u32)>,
    /// Record indices sorted by key, built on the first out-of-place lookup.
    sorted: std::sync::OnceLock<Vec<u32>>,
    /// This run's verdicts in request order (what is saved), kept apart only
    /// once they stop matching the loaded ones: a warm run holds one copy.
    this_run: Option<Vec<(Key, u32)>>,
    /// How many of this run's verdicts matched the loaded ones, in place,
    /// while `this_run` is `None`.
    matched: usize,
    changed: bool,
    pub findings: Vec<Finding>,
    pub warning: Option<Warning>,
}

const MAGIC: &[u8] = b"synup screen cache v2\n";

impl ScreenCache {
    /// Loads `path`; a damaged cache is rebuilt with a warning.
    pub fn open(path: PathBuf) -> Self {
        let mut cache = Self {
            path,
            verdicts: Vec::new(),
            sorted: std::sync::OnceLock::new(),
            this_run: None,
            matched: 0,
            changed: false,
            findings: Vec::new(),
            warning: None,
        };
        if std::fs::symlink_metadata(&cache.path).is_err() {
            return cache;
        }
        match Self::decode(&cache.path) {
            Some((verdicts, findings)) => {
                cache.verdicts = verdicts;
                cache.findings = findings;
            }
            None => {
                cache.warning = Some(Warning::new(
                    crate::stages::WarningCode::ScreenCacheRebuilt,
                    format!(
                        "the content-screening cache {} was unreadable and is rebuilt",
                        cache.path.display()
                    ),
                ))
            }
        }
        cache
    }

    /// Read forward, so the file's bytes and its decoded records are never
    /// held together (at a million files each is tens of MB).
    #[allow(clippy::type_complexity)]
    fn decode(path: &Path) -> Option<(Vec<(Key, u32)>, Vec<Finding>)> {
        let mut input = cache_file::SealedReader::open(path, MAGIC)?;
        let count = input.next(|r| r.u64())?;
        let n = input.fits(count, 5)?;
        let mut findings = Vec::with_capacity(n);
        for _ in 0..n {
            findings.push(input.next(|r| {
                Some(Finding {
                    rule: Rule::from_code(r.u8()?)?,
                    detail: r.string()?,
                })
            })?);
        }
        let count = input.next(|r| r.u64())?;
        let n = input.fits(count, 24)?;
        let mut verdicts = Vec::with_capacity(n);
        for _ in 0..n {
            let (key, v) = input.next(|r| Some((<Key>::try_from(r.take(20)?).ok()?, r.u32()?)))?;
            if v != CLEAN && v as usize >= findings.len() {
                return None;
            }
            verdicts.push((key, v));
        }
        input.is_done().then_some((verdicts, findings))
    }

    /// The verdict for the `at`-th request, if cached.
    fn lookup(&self, at: usize, key: &Key) -> Option<u32> {
        if let Some((k, v)) = self.verdicts.get(at)
            && k == key
        {
            return Some(*v);
        }
        let sorted = self.sorted.get_or_init(|| {
            let mut index: Vec<u32> = (0..self.verdicts.len() as u32).collect();
            index.sort_unstable_by(|&a, &b| {
                self.verdicts[a as usize]
                    .0
                    .cmp(&self.verdicts[b as usize].0)
            });
            index
        });
        sorted
            .binary_search_by(|&i| self.verdicts[i as usize].0.cmp(key))
            .ok()
            .map(|i| self.verdicts[sorted[i] as usize].1)
    }

    /// Forgets this run's verdicts.
    fn start_run(&mut self) {
        self.this_run = None;
        self.matched = 0;
    }

    /// Adds a verdict to this run's.
    fn record(&mut self, k: Key, v: u32) {
        match &mut self.this_run {
            None if self.verdicts.get(self.matched) == Some(&(k, v)) => self.matched += 1,
            None => {
                let mut run = self.verdicts[..self.matched].to_vec();
                run.push((k, v));
                self.this_run = Some(run);
            }
            Some(run) => run.push((k, v)),
        }
    }

    /// Ends a run that read `read` files: it is saved if that changed
    /// what the cache holds.
    fn end_run(&mut self, read: u64) {
        self.changed |= read > 0 || self.this_run.is_some() || self.matched != self.verdicts.len();
    }

    /// Writes this run's verdicts if they differ from what was loaded; a
    /// failure is a warning.
    pub fn save(&mut self) -> Option<Warning> {
        if !self.changed {
            return None;
        }
        self.verdicts = match self.this_run.take() {
            Some(run) => run,
            None => {
                let mut run = std::mem::take(&mut self.verdicts);
                run.truncate(self.matched);
                run
            }
        };
        self.matched = self.verdicts.len();
        let mut out = cache_file::Out::new(MAGIC, 16 + self.verdicts.len() * 24);
        out.u64(self.findings.len() as u64);
        for f in &self.findings {
            out.u8(f.rule.code());
            out.str(&f.detail);
        }
        out.u64(self.verdicts.len() as u64);
        for (k, v) in &self.verdicts {
            out.0.extend_from_slice(k);
            out.u32(*v);
        }
        cache_file::store(&self.path, &out.seal()).err().map(|e| {
            Warning::new(
                crate::stages::WarningCode::ScreenCacheUnwritable,
                format!("{}: {e}", self.path.display()),
            )
        })
    }
}

fn key(sha1: &[u8; 20], name: &str, video: bool) -> Key {
    // FNV-1a over the name: the content is already identified by its SHA-1.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name.as_bytes().iter().chain([&u8::from(video)]) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut k = [0u8; 20];
    k[..12].copy_from_slice(&sha1[..12]);
    k[12..].copy_from_slice(&h.to_le_bytes());
    k
}

/// One file to screen.
pub struct ScreenRequest<'a> {
    pub file: HashRequest<'a>,
    pub sha1: &'a [u8; 20],
    /// Its spec's `file_type` is `video`.
    pub video: bool,
    /// The verdict on its head, if the checksum pass just read it.
    pub seen: Option<Option<Box<Finding>>>,
}

/// What screening a plan's files gave.
#[derive(Default)]
pub struct Screened {
    pub findings: Vec<Finding>,
    /// Per hash request: an index into `findings`, or [`CLEAN`] (also for
    /// files not screened: empty, unreadable, remote).
    pub finding_of: Vec<u32>,
    /// `warn`: one per finding, naming the file (`shown`) and the rule; and
    /// the cache's own warnings.
    pub warnings: Vec<Warning>,
    pub read: u64,
    pub cached: u64,
}

/// Screens the plan's hashed files through the cache at `cache_path`.
/// `seen`: verdicts the checksum pass made (see [`SeenHeads`]).
pub fn screen_requests(
    requests: &(impl RequestList + ?Sized),
    hashes: &[super::checksum::HashResult],
    video: &[bool],
    mut seen: Vec<Option<Option<Box<Finding>>>>,
    cache_path: PathBuf,
    warn: bool,
    shown: impl Fn(&HashRequest<'_>) -> String,
) -> Screened {
    let mut cache = ScreenCache::open(cache_path);
    let mut finding_of = vec![CLEAN; requests.len()];
    let (mut screened_before, mut read) = (0, 0);
    // A chunk of requests at a time: what waits to be screened stays few.
    for first in (0..requests.len()).step_by(SCREEN_CHUNK) {
        let end = (first + SCREEN_CHUNK).min(requests.len());
        let (index, screened): (Vec<usize>, Vec<ScreenRequest<'_>>) = (first..end)
            // Empty files are `empty_file` problems already.
            .filter(|&i| requests.get(i).size > 0)
            .filter_map(|i| {
                let sha1 = hashes[i].as_ref().ok()?;
                let seen = seen.get_mut(i).and_then(Option::take);
                Some((
                    i,
                    ScreenRequest {
                        file: requests.get(i),
                        sha1,
                        video: video[i],
                        seen,
                    },
                ))
            })
            .unzip();
        let (verdicts, chunk_read) = screen_some(&screened, screened_before, &mut cache);
        screened_before += screened.len();
        read += chunk_read;
        for (i, v) in index.into_iter().zip(verdicts) {
            finding_of[i] = v;
        }
    }
    drop(seen);
    cache.end_run(read);
    let cached = screened_before as u64 - read;
    let mut warnings: Vec<Warning> = cache.warning.take().into_iter().collect();
    warnings.extend(cache.save());
    if warn {
        for (i, &f) in finding_of.iter().enumerate() {
            if let Some(f) = cache.findings.get(f as usize) {
                warnings.push(Warning::new(
                    crate::stages::WarningCode::Content(f.rule),
                    format!("{}: {}", shown(&requests.get(i)), f.detail),
                ));
            }
        }
    }
    Screened {
        findings: std::mem::take(&mut cache.findings),
        finding_of,
        warnings,
        read,
        cached,
    }
}

/// Files screened together: the requests and outcomes of one chunk are all
/// that is held besides the verdicts.
/// (Two in unit tests, so every planner test crosses chunks.)
const SCREEN_CHUNK: usize = if cfg!(test) { 2 } else { 1 << 16 };

/// Screens every file (local ones; remote objects are not read again), from
/// the cache where it knows the file. Returns, per request, an index into
/// `cache.findings` or [`CLEAN`], and how many files were read.
pub fn screen_all(requests: &[ScreenRequest<'_>], cache: &mut ScreenCache) -> (Vec<u32>, u64) {
    cache.start_run();
    let (out, read) = screen_some(requests, 0, cache);
    cache.end_run(read);
    (out, read)
}

/// Screens `requests`, which follow the first `before` files this run
/// screened, adding their verdicts to the run's. Returns what
/// [`screen_all`] does, for these requests.
fn screen_some(
    requests: &[ScreenRequest<'_>],
    before: usize,
    cache: &mut ScreenCache,
) -> (Vec<u32>, u64) {
    enum Outcome {
        Cached(u32),
        /// Read now: cached from here on.
        Fresh(Option<Box<Finding>>),
        /// Not screened (a remote object, a file unreadable now).
        Skipped,
    }
    let cached = &*cache;
    let found: Vec<(Outcome, Key)> = requests
        .par_iter()
        .enumerate()
        .with_max_len(64)
        .map(|(at, r)| {
            let name = super::file_name(r.file.rel);
            let k = key(r.sha1, name, r.video);
            if let Some(v) = cached.lookup(before + at, &k) {
                return (Outcome::Cached(v), k);
            }
            // Only files on this machine are screened: an object is not read again.
            let Some(dir) = r.file.source.local_path() else {
                return (Outcome::Skipped, k);
            };
            let ext = last_suffix(name);
            let path = dir.join(r.file.rel);
            let mut verdict = match &r.seen {
                Some(seen) => seen.clone(),
                None => match read_head(&path, TEXT_EXTENSIONS.contains(&ext.as_str())) {
                    Ok(head) => inspect(name, &head).map(Box::new),
                    Err(_) => return (Outcome::Skipped, k),
                },
            };
            if verdict.is_none() && r.video && VFR_EXTENSIONS.contains(&ext.as_str()) {
                verdict = variable_frame_rate(&path).map(Box::new);
            }
            (Outcome::Fresh(verdict), k)
        })
        .collect();
    let mut out = Vec::with_capacity(requests.len());
    let mut read = 0;
    for (outcome, k) in found {
        let v = match outcome {
            Outcome::Cached(v) => v,
            Outcome::Skipped => {
                out.push(CLEAN);
                continue;
            }
            Outcome::Fresh(verdict) => {
                read += 1;
                match verdict {
                    None => CLEAN,
                    Some(f) => {
                        cache.findings.push(*f);
                        (cache.findings.len() - 1) as u32
                    }
                }
            }
        };
        cache.record(k, v);
        out.push(v);
    }
    (out, read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, head: &[u8]) -> Option<&'static str> {
        inspect(name, head).map(|f| f.rule.as_str())
    }

    #[test]
    fn each_rule_is_recognised() {
        assert_eq!(rule("scan.png", b"\x89PNG\r\n\x1a\nrest"), None);
        assert_eq!(rule("scan.png", b"<html>"), Some("type_mismatch"));
        assert_eq!(rule("a.NII.GZ", b"\x1f\x8b\x08"), None);
        assert_eq!(rule("a.nii.gz", b"plain"), Some("type_mismatch"));
        assert_eq!(rule("velodyne.bin", b"anything"), None);
        assert_eq!(rule("tool.png", b"\x7fELF\x02\x01"), Some("executable"));
        assert_eq!(rule("run.txt", b"#!/bin/sh\nrm -rf /"), Some("executable"));
        assert_eq!(rule("setup.exe", b""), Some("executable"));
        let mut pe = vec![0u8; 0x80];
        pe[..2].copy_from_slice(b"MZ");
        pe[0x3c] = 0x40;
        pe[0x40..0x44].copy_from_slice(b"PE\0\0");
        assert_eq!(rule("x.dat", &pe), Some("executable"));
        assert_eq!(rule("notes.txt", b"MZ is a town"), None);
        assert_eq!(rule(".env", b"A=1"), Some("sensitive_file"));
        assert_eq!(rule(".env.production", b"A=1"), Some("sensitive_file"));
        assert_eq!(rule("id_rsa", b"x"), Some("sensitive_file"));
        assert_eq!(rule("id_rsa.pub", b"ssh-rsa AAAA"), None);
        assert_eq!(
            rule("notes.txt", b"x\n-----BEGIN OPENSSH PRIVATE KEY-----\n"),
            Some("sensitive_file")
        );
        assert_eq!(
            rule(
                "sa.json",
                br#"{"type": "service_account", "private_key": "x"}"#
            ),
            Some("sensitive_file")
        );
        assert_eq!(
            rule("label.svg", b"<svg><script>alert(1)</script>"),
            Some("script_injection")
        );
        assert_eq!(
            rule("a.html", b"<img src=x onerror=alert(1)>"),
            Some("script_injection")
        );
        assert_eq!(
            rule("a.json", br#"{"url": "javascript:alert(1)"}"#),
            Some("script_injection")
        );
        assert_eq!(rule("a.json", br#"{"online": true, "onset": 3}"#), None);
    }

    #[test]
    fn a_run_that_repeats_the_cache_holds_no_copy_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("screen");
        let (a, b, c) = ([1u8; 20], [2u8; 20], [3u8; 20]);
        let run = |verdicts: &[(Key, u32)]| {
            let mut cache = ScreenCache::open(path.clone());
            cache.start_run();
            for &(k, v) in verdicts {
                cache.record(k, v);
            }
            cache.end_run(0);
            let copied = cache.this_run.is_some();
            let wrote = cache.changed;
            assert!(cache.save().is_none());
            (copied, wrote, ScreenCache::open(path.clone()).verdicts)
        };
        let first = [(a, CLEAN), (b, CLEAN), (c, CLEAN)];
        assert_eq!(run(&first), (true, true, first.to_vec()));
        assert_eq!(run(&first), (false, false, first.to_vec()));
        // A file fewer: the matching prefix is what is saved.
        assert_eq!(run(&first[..2]), (false, true, first[..2].to_vec()));
        // A verdict that differs in place: the run is copied from there.
        let swapped = [(b, CLEAN), (a, CLEAN)];
        assert_eq!(run(&swapped), (true, true, swapped.to_vec()));
    }

    #[test]
    fn verdicts_are_cached_by_content_and_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.png"), b"not a png").unwrap();
        std::fs::write(dir.path().join("b.png"), b"\x89PNG\r\n\x1a\nok").unwrap();
        let cache_path = dir.path().join("screen");
        let src = crate::source::LocalSource::new(dir.path().to_path_buf());
        let req = |rel| HashRequest {
            source: &src,
            rel,
            size: 9,
            mtime_ns: 0,
        };
        let (a, b) = (req("a.png"), req("b.png"));
        let (sa, sb) = ([7u8; 20], [8u8; 20]);
        let requests = [
            ScreenRequest {
                file: a,
                sha1: &sa,
                video: false,
                seen: None,
            },
            ScreenRequest {
                file: b,
                sha1: &sb,
                video: false,
                seen: None,
            },
        ];
        let mut cache = ScreenCache::open(cache_path.clone());
        let (first, read) = screen_all(&requests, &mut cache);
        assert_eq!(read, 2);
        assert_eq!(first[1], CLEAN);
        assert_eq!(cache.findings[first[0] as usize].rule, Rule::TypeMismatch);
        assert!(cache.save().is_none());
        // The files are gone: a warm screen answers from the cache alone.
        std::fs::remove_file(dir.path().join("a.png")).unwrap();
        std::fs::remove_file(dir.path().join("b.png")).unwrap();
        let mut cache = ScreenCache::open(cache_path.clone());
        assert!(cache.warning.is_none());
        let (again, read) = screen_all(&requests, &mut cache);
        assert_eq!(read, 0);
        assert_eq!(cache.findings[again[0] as usize].rule, Rule::TypeMismatch);
        assert_eq!(again[1], CLEAN);
        // The same content under another name is screened again.
        std::fs::write(dir.path().join("c.png"), b"not a png").unwrap();
        let c = req("c.png");
        let renamed = [ScreenRequest {
            file: c,
            sha1: &sa,
            video: false,
            seen: None,
        }];
        assert_eq!(screen_all(&renamed, &mut cache).1, 1);
        std::fs::write(&cache_path, b"garbage").unwrap();
        assert!(ScreenCache::open(cache_path).warning.is_some());
    }
}
