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

/// Bytes of one saved verdict: its key, then an index into the findings or
/// [`CLEAN`], then their check ([`cache_file::append_check`]).
const RECORD: usize = FIELDS + 4;
const FIELDS: usize = 24;

/// Saved verdicts read (and written) this many at a time (three in unit
/// tests, so lookups cross windows).
const WINDOW: usize = if cfg!(test) { 3 } else { 1 << 16 };

/// No finding.
pub const CLEAN: u32 = u32::MAX;
/// Not known yet: in neither place in the cache, and not read.
const MISS: u32 = u32::MAX - 1;
/// Not screened (a remote object, a file unreadable now): reported clean and
/// not saved.
const SKIPPED: u32 = u32::MAX - 2;

/// The cache of verdicts: the findings (few, held) and one record per file in
/// the order the last plan screened them, so that the n-th file is checked
/// against the n-th record first, as the checksum cache does. Records are
/// read a window at a time: a warm plan of a million files holds none of
/// them.
pub struct ScreenCache {
    path: PathBuf,
    records: Option<cache_file::RecordFile>,
    /// Whether the file is in the current format (else the next run saves it).
    current: bool,
    pub findings: Vec<Finding>,
    pub warning: Option<Warning>,
}

const MAGIC: &[u8] = b"synup screen cache v3\n";
/// Records without their own check: still read, rewritten as v3.
const MAGIC_V2: &[u8] = b"synup screen cache v2\n";

impl ScreenCache {
    /// Opens `path`; a damaged cache is rebuilt with a warning.
    pub fn open(path: PathBuf) -> Self {
        let mut cache = Self {
            path,
            records: None,
            current: true,
            findings: Vec::new(),
            warning: None,
        };
        if std::fs::symlink_metadata(&cache.path).is_err() {
            return cache;
        }
        let decoded = Self::decode(&cache.path, MAGIC, RECORD)
            .map(|(f, r)| (f, r, true))
            .or_else(|| Self::decode(&cache.path, MAGIC_V2, FIELDS).map(|(f, r)| (f, r, false)));
        match decoded {
            Some((findings, records, current)) => {
                cache.findings = findings;
                cache.records = Some(records);
                cache.current = current;
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

    /// The findings, and where the records lie: checked to fill the body
    /// exactly, read later.
    fn decode(
        path: &Path,
        magic: &[u8],
        record: usize,
    ) -> Option<(Vec<Finding>, cache_file::RecordFile)> {
        let mut input = cache_file::SealedReader::open(path, magic)?;
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
        let n = input.fits(count, record)?;
        Some((findings, input.into_records(record, n)?))
    }

    fn len(&self) -> usize {
        self.records.as_ref().map_or(0, cache_file::RecordFile::len)
    }

    /// Writes the cached verdict of each of `n` files (`key(p)` is file p's)
    /// into `out[slot(p)]`, where the caller put [`MISS`]; returns how many
    /// were found at their own position. Looked up by position, a window at
    /// a time ([`cache_file::find_by_position`]); a damaged record, or a
    /// verdict naming no finding, is not an answer.
    fn find_all(
        &self,
        n: usize,
        key: &(impl Fn(usize) -> Key + Sync),
        slot: impl Fn(usize) -> usize,
        out: &mut [u32],
    ) -> usize {
        let Some(records) = &self.records else {
            return 0;
        };
        cache_file::find_by_position(
            records,
            WINDOW,
            n,
            |p| (key(p), ()),
            |r| <Key>::try_from(&r[..20]).expect("a record starts with its key"),
            |(), r| {
                let v = u32::from_le_bytes(r[20..FIELDS].try_into().expect("a u32 follows"));
                let intact = cache_file::intact(r, FIELDS);
                (intact && (v == CLEAN || (v as usize) < self.findings.len())).then_some(v)
            },
            |p, v| out[slot(p)] = v,
        )
    }

    /// Writes the verdicts of `n` files (`verdict(p)`, [`SKIPPED`] ones left
    /// out) as the cache, a window at a time; a failure is a warning.
    fn save(
        &self,
        n: usize,
        key: &(impl Fn(usize) -> Key + Sync),
        verdict: impl Fn(usize) -> u32 + Sync,
    ) -> Option<Warning> {
        let saved = (0..n).filter(|&p| verdict(p) != SKIPPED).count();
        let result = cache_file::store_with(&self.path, false, |w| {
            let mut head = cache_file::Out::new(&[], 64);
            head.u64(self.findings.len() as u64);
            for f in &self.findings {
                head.u8(f.rule.code());
                head.str(&f.detail);
            }
            head.u64(saved as u64);
            let mut w = cache_file::SealedWriter::new(w, MAGIC)?;
            w.put(&head.0)?;
            let mut buf = Vec::with_capacity(WINDOW * RECORD);
            for start in (0..n).step_by(WINDOW) {
                let end = (start + WINDOW).min(n);
                let records: Vec<Option<(Key, u32)>> = (start..end)
                    .into_par_iter()
                    .map(|p| Some((key(p), verdict(p))).filter(|&(_, v)| v != SKIPPED))
                    .collect();
                buf.clear();
                for (k, v) in records.into_iter().flatten() {
                    buf.extend_from_slice(&k);
                    buf.extend_from_slice(&v.to_le_bytes());
                    cache_file::append_check(&mut buf, FIELDS);
                }
                w.put(&buf)?;
            }
            w.finish()
        });
        result.err().map(|e| {
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

/// Screens the plan's hashed files through the cache at `cache_path`:
/// `video(i)` says request i's spec is a video one; `seen`, verdicts the
/// checksum pass made (see [`SeenHeads`]).
pub fn screen_requests(
    requests: &(impl RequestList + ?Sized),
    hashes: &super::checksum::Digests,
    video: impl Fn(usize) -> bool + Sync,
    seen: Vec<Option<Option<Box<Finding>>>>,
    cache_path: PathBuf,
    warn: bool,
    shown: impl Fn(&HashRequest<'_>) -> String,
) -> Screened {
    let mut cache = ScreenCache::open(cache_path);
    // The files screened, by request index: empty files are `empty_file`
    // problems already, and a file that could not be hashed has no key.
    // (Room for every request, which it usually is: a doubling vector would
    // take up to twice that.)
    let mut screened: Vec<u32> = Vec::with_capacity(requests.len());
    screened.extend(
        (0..requests.len())
            .filter(|&i| requests.get(i).size > 0 && hashes.is_ok(i))
            .map(|i| i as u32),
    );
    let key_of = |p: usize| {
        let i = screened[p] as usize;
        let sha1 = hashes.get(i).expect("screened files are hashed");
        key(&sha1, super::file_name(&requests.get(i).rel), video(i))
    };
    // Verdicts go straight into `finding_of`, [`MISS`] until known.
    let mut finding_of = vec![CLEAN; requests.len()];
    for &i in &screened {
        finding_of[i as usize] = MISS;
    }
    let slot = |p: usize| screened[p] as usize;
    let in_place = cache.find_all(screened.len(), &key_of, slot, &mut finding_of);
    // What the cache does not know is read, a chunk at a time: what waits
    // to be screened stays few.
    let mut read = 0;
    for first in (0..screened.len()).step_by(SCREEN_CHUNK) {
        let end = (first + SCREEN_CHUNK).min(screened.len());
        let missing: Vec<usize> = (first..end)
            .filter(|&p| finding_of[slot(p)] == MISS)
            .collect();
        let outcomes: Vec<Option<Option<Finding>>> = missing
            .par_iter()
            .with_max_len(64)
            .map(|&p| {
                let i = screened[p] as usize;
                let seen = seen
                    .get(i)
                    .and_then(|s| s.as_ref().map(|v| v.as_deref().cloned()));
                screen_file(&requests.get(i), video(i), seen)
            })
            .collect();
        for (p, outcome) in missing.into_iter().zip(outcomes) {
            let v = match outcome {
                None => SKIPPED,
                Some(None) => CLEAN,
                Some(Some(f)) => {
                    cache.findings.push(f);
                    (cache.findings.len() - 1) as u32
                }
            };
            read += u64::from(v != SKIPPED);
            finding_of[slot(p)] = v;
        }
    }
    drop(seen);
    let saved = screened
        .iter()
        .filter(|&&i| finding_of[i as usize] != SKIPPED)
        .count();
    let changed = read > 0 || in_place != cache.len() || saved != cache.len() || !cache.current;
    let mut warnings: Vec<Warning> = cache.warning.take().into_iter().collect();
    if changed {
        warnings.extend(cache.save(screened.len(), &key_of, |p| finding_of[slot(p)]));
    }
    let cached = screened.len() as u64 - read;
    drop(screened);
    for v in &mut finding_of {
        if *v == SKIPPED {
            *v = CLEAN;
        }
    }
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

/// Files screened together.
/// (Two in unit tests, so every planner test crosses chunks.)
const SCREEN_CHUNK: usize = if cfg!(test) { 2 } else { 1 << 16 };

/// Screens one file: `seen` is the verdict on its head if the checksum pass
/// made one. `None` when it is not screened: only files on this machine are
/// (an object is not read again), and a file unreadable now is not.
fn screen_file(
    file: &HashRequest<'_>,
    video: bool,
    seen: Option<Option<Finding>>,
) -> Option<Option<Finding>> {
    let name = super::file_name(&file.rel);
    let dir = file.source.local_path()?;
    let ext = last_suffix(name);
    let path = dir.join(&*file.rel);
    let mut verdict = match seen {
        Some(seen) => seen,
        None => inspect(
            name,
            &read_head(&path, TEXT_EXTENSIONS.contains(&ext.as_str())).ok()?,
        ),
    };
    if verdict.is_none() && video && VFR_EXTENSIONS.contains(&ext.as_str()) {
        verdict = variable_frame_rate(&path);
    }
    Some(verdict)
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

    /// Screens `files` (name, bytes, sha1 byte) in `dir` through the cache
    /// there: (verdict rule per file, read, cached, the cache's inode).
    fn screen_files(
        dir: &Path,
        files: &[(&str, u8)],
    ) -> (Vec<Option<Rule>>, u64, u64, Option<u64>) {
        use std::os::unix::fs::MetadataExt;
        let src = crate::source::LocalSource::new(dir.to_path_buf());
        let requests: Vec<HashRequest<'_>> = files
            .iter()
            .map(|(rel, _)| HashRequest {
                source: &src,
                rel: (*rel).into(),
                size: 9,
                mtime_ns: 0,
            })
            .collect();
        let hashes = crate::stages::checksum::Digests::from_results(
            files.iter().map(|&(_, s)| Ok([s; 20])).collect(),
        );
        let cache = dir.join("screen");
        let out = screen_requests(
            requests.as_slice(),
            &hashes,
            |_| false,
            Vec::new(),
            cache.clone(),
            false,
            |r| r.rel.to_string(),
        );
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        let rules = out
            .finding_of
            .iter()
            .map(|&f| out.findings.get(f as usize).map(|f| f.rule))
            .collect();
        let inode = std::fs::metadata(&cache).ok().map(|m| m.ino());
        (rules, out.read, out.cached, inode)
    }

    #[test]
    fn verdicts_are_cached_by_content_and_name_and_found_out_of_place() {
        let dir = tempfile::tempdir().unwrap();
        // More files than a window, so lookups cross windows.
        let names: Vec<String> = (0..8).map(|i| format!("f{i}.png")).collect();
        for (i, n) in names.iter().enumerate() {
            let body: &[u8] = if i.is_multiple_of(3) {
                b"not a png"
            } else {
                b"\x89PNG\r\n\x1a\nok"
            };
            std::fs::write(dir.path().join(n), body).unwrap();
        }
        let files: Vec<(&str, u8)> = names
            .iter()
            .zip(1..)
            .map(|(n, s)| (n.as_str(), s))
            .collect();
        let bad = |i: usize| i.is_multiple_of(3).then_some(Rule::TypeMismatch);
        let want: Vec<_> = (0..8).map(bad).collect();
        let (rules, read, _, first) = screen_files(dir.path(), &files);
        assert_eq!((rules, read), (want.clone(), 8));
        // The files are gone: a warm screen answers from the cache alone,
        // and an unchanged run leaves the cache file as it was.
        for n in &names {
            std::fs::remove_file(dir.path().join(n)).unwrap();
        }
        let (rules, read, cached, again) = screen_files(dir.path(), &files);
        assert_eq!((rules, read, cached), (want.clone(), 0, 8));
        assert_eq!(again, first, "a warm run rewrote the cache");
        // Reversed, every file is away from its record: found in the second
        // pass, and the new order is saved.
        let mut reversed = files.clone();
        reversed.reverse();
        let (rules, read, _, moved) = screen_files(dir.path(), &reversed);
        assert_eq!(rules, (0..8).rev().map(bad).collect::<Vec<_>>());
        assert_eq!(read, 0);
        assert_ne!(moved, first);
        // A file fewer is found and saved without it.
        let (rules, read, _, _) = screen_files(dir.path(), &reversed[1..]);
        assert_eq!((rules.len(), read), (7, 0));
        // The same content under another name is read again.
        std::fs::write(dir.path().join("c.png"), b"not a png").unwrap();
        let (rules, read, _, _) = screen_files(dir.path(), &[("c.png", 1)]);
        assert_eq!((rules, read), (vec![Some(Rule::TypeMismatch)], 1));
    }

    /// A cache from before records carried a check answers, and is saved
    /// in the current format by the next run.
    #[test]
    fn a_v2_cache_is_read_and_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let mut v2 = cache_file::Out::new(MAGIC_V2, 64);
        v2.u64(0);
        v2.u64(1);
        v2.0.extend_from_slice(&key(&[1; 20], "a.png", false));
        v2.u32(CLEAN);
        std::fs::write(dir.path().join("screen"), v2.seal()).unwrap();
        // The file does not exist: only the cache can say it is clean.
        let (rules, read, cached, _) = screen_files(dir.path(), &[("a.png", 1)]);
        assert_eq!((rules, read, cached), (vec![None], 0, 1));
        let saved = std::fs::read(dir.path().join("screen")).unwrap();
        assert!(saved.starts_with(MAGIC));
        assert_eq!(ScreenCache::open(dir.path().join("screen")).len(), 1);
    }

    #[test]
    fn a_damaged_cache_is_rebuilt_with_a_warning_and_never_answers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.png"), b"\x89PNG\r\n\x1a\nok").unwrap();
        let files = [("a.png", 1)];
        assert_eq!(screen_files(dir.path(), &files).1, 1);
        let path = dir.path().join("screen");
        let good = std::fs::read(&path).unwrap();
        // Cut short, or lengthened: the records no longer fill the body.
        for bytes in [
            &good[..good.len() - 1],
            &[good.as_slice(), b"x"].concat()[..],
        ] {
            std::fs::write(&path, bytes).unwrap();
            assert!(ScreenCache::open(path.clone()).warning.is_some());
        }
        // A record naming a finding that is not there is not an answer.
        let mut forged = good.clone();
        let at = forged.len() - 12 - 8;
        forged[at..at + 4].copy_from_slice(&7u32.to_le_bytes());
        let check = cache_file::record_check(&forged[at + 4 - FIELDS..at + 4]);
        forged[at + 4..at + 8].copy_from_slice(&check);
        std::fs::write(&path, &forged).unwrap();
        let cache = ScreenCache::open(path.clone());
        assert!(cache.warning.is_none());
        let mut out = [MISS];
        cache.find_all(1, &|_| key(&[1; 20], "a.png", false), |p| p, &mut out);
        assert_eq!(out, [MISS]);
        // Any byte of a record changed (its check no longer holds): no answer.
        for at in good.len() - 12 - RECORD..good.len() - 12 {
            let mut damaged = good.clone();
            damaged[at] ^= 0x01;
            std::fs::write(&path, &damaged).unwrap();
            let mut out = [MISS];
            let cache = ScreenCache::open(path.clone());
            cache.find_all(1, &|_| key(&[1; 20], "a.png", false), |p| p, &mut out);
            assert_eq!(out, [MISS], "byte {at} changed");
        }
        std::fs::write(&path, b"garbage").unwrap();
        assert!(ScreenCache::open(path).warning.is_some());
    }
}
