//! Load: find a metadata sheet, read it once, and parse it (or take the
//! parsed table from its cache, keyed by the bytes' digest).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::sheet::{SheetError, SheetOptions, SheetTable};
use super::sheet_cache;
use crate::recipe::resolve::MetadataKind;
use crate::source::Source;

/// Where a metadata file was found: on disk, or under a source root.
#[derive(Clone, Debug)]
pub enum SheetFile {
    Local(PathBuf),
    Under(Arc<dyn Source>, String),
}

impl SheetFile {
    /// Looks for `written` as an absolute path, then beside the recipe, then
    /// under the (first) source root.
    pub fn find(written: &str, recipe_dir: &Path, root: Option<&Arc<dyn Source>>) -> Option<Self> {
        let p = Path::new(written);
        if p.is_absolute() {
            return p.is_file().then(|| Self::Local(p.to_path_buf()));
        }
        let beside = recipe_dir.join(p);
        if beside.is_file() {
            return Some(Self::Local(beside));
        }
        let rel = written.trim_start_matches("./");
        let root = root?;
        root.exists(rel)
            .then(|| Self::Under(root.clone(), rel.to_owned()))
    }

    /// The file's path or URL, for messages and for picking the format by extension.
    pub fn describe(&self) -> String {
        match self {
            Self::Local(p) => p.display().to_string(),
            Self::Under(root, rel) => root.describe(rel),
        }
    }

    fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            Self::Local(p) => std::fs::read(p).map_err(|e| crate::source::SourceError::io(&e)),
            Self::Under(root, rel) => root.read(rel),
        }
        .map_err(|why| format!("cannot read {}: {why}", self.describe()))
    }

    /// The SHA-256 of the file's bytes, and the bytes when they had to be
    /// read whole to get it (a sheet under a remote root). A local file is
    /// hashed a buffer at a time: a warm plan finds its table in the cache
    /// by this digest and never holds the file (50 MB for 2 million rows).
    fn digest(&self) -> Result<([u8; 32], Option<Vec<u8>>), String> {
        use sha2::{Digest, Sha256};
        use std::io::Read;
        match self {
            Self::Local(p) => {
                let unreadable = |e: std::io::Error| {
                    format!(
                        "cannot read {}: {}",
                        self.describe(),
                        crate::source::SourceError::io(&e)
                    )
                };
                let mut file = std::fs::File::open(p).map_err(unreadable)?;
                let mut h = Sha256::new();
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    match file.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => h.update(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(unreadable(e)),
                    }
                }
                Ok((h.finalize().into(), None))
            }
            Self::Under(..) => {
                let bytes = self.read()?;
                Ok((Sha256::digest(&bytes).into(), Some(bytes)))
            }
        }
    }
}

/// A parsed sheet, and the SHA-256 (hex) of the file's bytes ("" when unread).
pub type LoadedSheet = (Result<SheetTable, SheetError>, String);

/// Reads and parses the sheet `kind` describes, through the cache at
/// `cache_file`; its rows spill under `spill` past their share of its budget.
pub fn load(
    kind: &MetadataKind,
    file: &SheetFile,
    cache_file: PathBuf,
    spill: Option<&crate::spill::SpillArea>,
) -> LoadedSheet {
    let MetadataKind::Sheet {
        file: written,
        sheet,
        is_csv,
        header_row,
        key_column,
        columns,
        delimiter,
        encoding,
    } = kind
    else {
        return (
            Err(SheetError::Unreadable("not a sheet".to_owned())),
            String::new(),
        );
    };
    let opts = SheetOptions {
        source: &written.written,
        sheet: sheet.as_deref(),
        header_row: *header_row,
        key_column: key_column.as_deref(),
        columns,
        delimiter: *delimiter,
        encoding: *encoding,
        spill,
    };
    // Fingerprinted first; read whole only to be parsed (a remote sheet is
    // fetched once, and its bytes kept for that).
    let (digest, held) = match file.digest() {
        Ok(d) => d,
        Err(why) => return (Err(SheetError::Unreadable(why)), String::new()),
    };
    let (table, digest) = sheet_cache::load_or_parse(
        cache_file,
        Path::new(&file.describe()),
        digest,
        || held.map_or_else(|| file.read(), Ok),
        *is_csv,
        &opts,
    );
    (table, hex::encode(digest))
}
