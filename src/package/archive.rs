//! Zip I/O for packages and bundles: a reproducible writer and a defensive reader.
//!
//! **Writing.** The same entries give the same bytes: entries are sorted by name, every
//! entry gets the same timestamp (1980-01-01, the zip epoch, or `SOURCE_DATE_EPOCH`), mode
//! 0644, and entries are *stored*, not deflated. Why stored: (1) the bytes then do not
//! depend on the compressor's version, so two edgepack builds give identical archives;
//! (2) every byte of an entry is covered by its sha256 in the manifest, whereas a deflate
//! stream has bits a decoder ignores (the padding after the final block), so a flipped bit
//! there would go unnoticed; (3) a device can map the model straight out of the archive.
//! The cost is size: fp32 weights barely compress (about 7-10%), and storage budgets are
//! checked against the real archive size. The reader still accepts deflate from others.
//!
//! **Reading.** Archives come from strangers, so the reader does not trust the zip crate's
//! view of them: it parses the end-of-central-directory record and the central directory
//! itself, checks every entry *before* inflating anything, then inflates each entry with a
//! hard cap at its declared size. Refused: absolute paths, `..`, `.`, empty or backslash
//! components, duplicate names, names equal after case folding, symlinks and other
//! non-regular entries, encryption, zip64, methods other than stored/deflate, entries whose
//! local header disagrees with the central directory, entries that overlap each other or
//! the central directory (the "overlapping files" zip bomb), an entry count, total size or
//! compression ratio past [`Limits`], and an entry whose inflated size or CRC differs from
//! what the directory declares. Nothing is ever written by the reader; [`extract`] writes
//! only regular files below its destination, never through a symlink.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use crate::artifact;
use crate::error::{Error, Result};

/// Caps applied while reading an archive (each is configurable by the caller).
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub max_entries: usize,
    /// Sum of the declared uncompressed sizes.
    pub max_total_bytes: u64,
    /// Largest uncompressed / compressed ratio for an entry over 1 MiB uncompressed.
    pub max_ratio: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 10_000,
            max_total_bytes: 8 * 1024 * 1024 * 1024,
            // Deflate tops out near 1032:1; real models (even zero-filled weights in
            // fp32) stay far below 200:1 once past a megabyte of mixed content.
            max_ratio: 200.0,
        }
    }
}

/// Environment variables that lower or raise the archive limits for every command.
pub const MAX_ENTRIES_ENV: &str = "EDGEPACK_MAX_ARCHIVE_ENTRIES";
pub const MAX_TOTAL_BYTES_ENV: &str = "EDGEPACK_MAX_EXTRACTED_BYTES";
pub const MAX_RATIO_ENV: &str = "EDGEPACK_MAX_COMPRESSION_RATIO";

impl Limits {
    /// The defaults, overridden by `EDGEPACK_MAX_ARCHIVE_ENTRIES`,
    /// `EDGEPACK_MAX_EXTRACTED_BYTES` (a byte count) and `EDGEPACK_MAX_COMPRESSION_RATIO`
    /// where set; a malformed value is an error naming the variable, never ignored.
    pub fn from_env() -> Result<Limits> {
        let mut l = Limits::default();
        let var = |name: &str| -> Result<Option<u64>> {
            match std::env::var(name) {
                Ok(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .map(Some)
                    .ok_or_else(|| {
                        Error::usage(name, format!("'{v}' is not a positive whole number"))
                    }),
                Err(_) => Ok(None),
            }
        };
        if let Some(n) = var(MAX_ENTRIES_ENV)? {
            l.max_entries = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = var(MAX_TOTAL_BYTES_ENV)? {
            l.max_total_bytes = n;
        }
        if let Ok(v) = std::env::var(MAX_RATIO_ENV) {
            l.max_ratio = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x > 1.0)
                .ok_or_else(|| {
                    Error::usage(MAX_RATIO_ENV, format!("'{v}' is not a ratio above 1"))
                })?;
        }
        Ok(l)
    }
}

/// Why an archive was refused. `Corrupt` means the structure is sound but content does not
/// match what it declares (a flipped byte): a verification failure. `Unsafe` means the
/// archive is malformed or hostile: an input error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveProblem {
    Unsafe(String),
    Corrupt(String),
}

/// An archive read fully into memory: entry name -> bytes, sorted by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Archive {
    pub entries: BTreeMap<String, Vec<u8>>,
    /// The header fields nothing else checks (times, versions, attributes, layout), kept
    /// so [`canonical_problems`] can insist on edgepack's own canonical form.
    pub headers: Vec<RawHeader>,
    /// Length of the archive comment.
    pub comment_len: usize,
    /// Where the central directory starts.
    pub cd_offset: u64,
}

/// Header fields of one entry that carry no content (see [`canonical_problems`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawHeader {
    pub name: String,
    pub made_by: u16,
    pub version_needed: (u16, u16),
    pub flags: (u16, u16),
    pub time: (u16, u16),
    pub date: (u16, u16),
    pub extra_len: (usize, usize),
    pub comment_len: usize,
    pub disk_start: u16,
    pub internal_attr: u16,
    pub external_attr: u32,
    /// Where the local header starts and where the entry's data ends.
    pub span: (u64, u64),
}

/// Differences from the canonical form edgepack writes. Packages and bundles are only
/// written by edgepack, so verification insists on this form: then every byte of an
/// archive is covered by a check (content by CRC and sha256, headers here), and flipping
/// any byte fails verification. The reference values come from writing a one-entry archive
/// with this build's writer, not from constants that could drift from it.
pub fn canonical_problems(a: &Archive) -> Vec<String> {
    let cd_offset = a.cd_offset;
    let mut out = vec![];
    let reference = |name: &str| {
        write_zip(&BTreeMap::from([(name.to_string(), b"a".to_vec())]))
            .ok()
            .and_then(|b| read_zip(&b, &Limits::default()).ok())
            .and_then(|r| r.headers.into_iter().next())
    };
    let (Some(r), Some(r_exec)) = (reference("a"), reference("runtime/p/edgepack")) else {
        return vec!["cannot build the reference archive".into()];
    };
    let first_time = a.headers.first().map(|h| (h.time.0, h.date.0));
    let mut expected_start = 0u64;
    let mut spans: Vec<_> = a.headers.iter().map(|h| h.span).collect();
    spans.sort();
    for h in &a.headers {
        let n = &h.name;
        let mut bad = |what: &str| {
            out.push(format!(
                "'{n}': {what} is not edgepack's canonical form (header changed?)"
            ))
        };
        if h.made_by != r.made_by {
            bad("'version made by'");
        }
        if h.version_needed != r.version_needed {
            bad("'version needed'");
        }
        if h.flags.0 != h.flags.1 || h.flags.0 != r.flags.0 {
            bad("the flags");
        }
        if h.time.0 != h.time.1 || h.date.0 != h.date.1 || Some((h.time.0, h.date.0)) != first_time
        {
            bad("the timestamp");
        }
        if h.extra_len != r.extra_len {
            bad("the extra field");
        }
        if h.comment_len != 0 || h.disk_start != 0 || h.internal_attr != r.internal_attr {
            bad("the comment, disk or internal attributes");
        }
        let mode_ref = if entry_mode(n) == entry_mode("a") {
            &r
        } else {
            &r_exec
        };
        if h.external_attr != mode_ref.external_attr {
            bad("the file mode");
        }
    }
    for (start, end) in spans {
        if start != expected_start {
            out.push(format!("unaccounted bytes before offset {start}"));
        }
        expected_start = end;
    }
    if expected_start != cd_offset {
        out.push("unaccounted bytes before the central directory".into());
    }
    if a.comment_len != 0 {
        out.push("the archive has a comment".into());
    }
    out
}

/// The timestamp written on every entry: `SOURCE_DATE_EPOCH` when set (clamped to the
/// 1980-2107 range zip can hold), else the zip epoch 1980-01-01 00:00:00.
pub fn entry_time() -> zip::DateTime {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(zip_time_from_unix)
        .unwrap_or_default()
}

/// Convert seconds since 1970 (UTC) to a zip (MS-DOS) timestamp.
fn zip_time_from_unix(secs: i64) -> Option<zip::DateTime> {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = crate::date::civil_from_days(days);
    let y = y.clamp(1980, 2107);
    zip::DateTime::from_date_and_time(
        y as u16,
        m,
        d,
        (rem / 3600) as u8,
        ((rem % 3600) / 60) as u8,
        (rem % 60) as u8,
    )
    .ok()
}

/// Build a reproducible zip from `entries` (already sorted: a `BTreeMap`).
pub fn write_zip(entries: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>> {
    let time = entry_time();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        check_name(name).map_err(|m| Error::usage("archive entry", format!("'{name}': {m}")))?;
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .last_modified_time(time)
            .unix_permissions(entry_mode(name))
            .large_file(bytes.len() as u64 >= u32::MAX as u64);
        w.start_file(name.as_str(), opts)
            .map_err(|e| Error::usage("archive entry", format!("'{name}': {e}")))?;
        w.write_all(bytes)
            .map_err(|e| Error::usage("archive entry", format!("'{name}': {e}")))?;
    }
    let cursor = w
        .finish()
        .map_err(|e| Error::usage("archive", e.to_string()))?;
    Ok(cursor.into_inner())
}

/// The file mode an entry is written with: 0644, except the edgepack executable a bundle
/// carries (`runtime/<platform>/edgepack`), which must run once extracted on the device.
pub fn entry_mode(name: &str) -> u32 {
    if name.starts_with("runtime/") && name.ends_with("/edgepack") {
        0o755
    } else {
        0o644
    }
}

/// Write a reproducible zip atomically (temp file in the destination folder, rename).
pub fn write_zip_file(path: &Path, entries: &BTreeMap<String, Vec<u8>>) -> Result<()> {
    let bytes = write_zip(entries)?;
    artifact::write_atomic(path, &bytes)
}

/// Why an archive entry name is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeName {
    #[error("empty name")]
    Empty,
    #[error("name longer than 1024 bytes")]
    TooLong,
    #[error("absolute path")]
    Absolute,
    #[error("backslash in name")]
    Backslash,
    #[error("control character in name")]
    ControlCharacter,
    #[error("drive-letter path")]
    DriveLetter,
    #[error("empty path component")]
    EmptyComponent,
    #[error("'.' path component")]
    Dot,
    #[error("'..' path component (escapes the destination)")]
    DotDot,
}

/// Check an entry name: relative, `/`-separated, no `.`/`..`/empty components, no
/// backslashes, drive letters or control characters.
pub fn check_name(name: &str) -> std::result::Result<(), UnsafeName> {
    if name.is_empty() {
        return Err(UnsafeName::Empty);
    }
    if name.len() > 1024 {
        return Err(UnsafeName::TooLong);
    }
    if name.starts_with('/') {
        return Err(UnsafeName::Absolute);
    }
    if name.contains('\\') {
        return Err(UnsafeName::Backslash);
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(UnsafeName::ControlCharacter);
    }
    if name.len() >= 2 && name.as_bytes()[1] == b':' {
        return Err(UnsafeName::DriveLetter);
    }
    for comp in name.split('/') {
        match comp {
            "" => return Err(UnsafeName::EmptyComponent),
            "." => return Err(UnsafeName::Dot),
            ".." => return Err(UnsafeName::DotDot),
            _ => {}
        }
    }
    Ok(())
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

const EOCD_SIG: u32 = 0x0605_4b50;
const CDH_SIG: u32 = 0x0201_4b50;
const LFH_SIG: u32 = 0x0403_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;

/// One central-directory entry, as declared.
#[derive(Debug)]
struct Entry {
    name: String,
    made_by: u16,
    version_needed: u16,
    time: u16,
    date: u16,
    extra_len: usize,
    comment_len: usize,
    disk_start: u16,
    internal_attr: u16,
    flags: u16,
    method: u16,
    crc32: u32,
    compressed: u64,
    uncompressed: u64,
    local_offset: u64,
    made_by_host: u8,
    external_attr: u32,
}

/// The end-of-central-directory record: where the central directory is and how many
/// entries it declares.
struct EndRecord {
    /// Offset of the record itself.
    at: usize,
    entries: usize,
    cd_offset: usize,
}

fn unsafe_(m: String) -> ArchiveProblem {
    ArchiveProblem::Unsafe(m)
}

/// Read and check an archive held in memory, in four stages: the end record, the
/// central directory, every entry's name, kind, sizes and local header (before anything
/// is inflated), then inflation with a hard cap at each declared size.
pub fn read_zip(bytes: &[u8], limits: &Limits) -> std::result::Result<Archive, ArchiveProblem> {
    let end = end_record(bytes, limits)?;
    let entries = central_directory(bytes, &end)?;
    let (headers, starts) = check_entries(bytes, &entries, end.cd_offset, limits)?;
    let out = inflate(bytes, &entries, &starts)?;
    Ok(Archive {
        entries: out,
        headers,
        comment_len: bytes.len() - end.at - 22,
        cd_offset: end.cd_offset as u64,
    })
}

/// Find the end record (scanning back over at most a 64 KiB comment) and check it: one
/// disk, no zip64, the entry limit, the central directory ending where it begins.
fn end_record(bytes: &[u8], limits: &Limits) -> std::result::Result<EndRecord, ArchiveProblem> {
    if bytes.len() < 22 {
        return Err(unsafe_("not a zip archive (too short)".into()));
    }
    let lowest = bytes.len().saturating_sub(22 + 65_535);
    let mut eocd = None;
    let mut i = bytes.len() - 22;
    loop {
        if u32_at(bytes, i) == Some(EOCD_SIG) {
            let comment_len = u16_at(bytes, i + 20).unwrap_or(0) as usize;
            if i + 22 + comment_len == bytes.len() {
                eocd = Some(i);
                break;
            }
        }
        if i == lowest {
            break;
        }
        i -= 1;
    }
    let Some(eocd) = eocd else {
        return Err(unsafe_(
            "not a zip archive (no end-of-central-directory record)".into(),
        ));
    };
    if eocd >= 20 && u32_at(bytes, eocd - 20) == Some(ZIP64_LOCATOR_SIG) {
        return Err(unsafe_("zip64 archives are not supported".into()));
    }
    let disk = u16_at(bytes, eocd + 4).unwrap_or(1);
    let cd_disk = u16_at(bytes, eocd + 6).unwrap_or(1);
    let n_disk = u16_at(bytes, eocd + 8).unwrap_or(0) as usize;
    let n_total = u16_at(bytes, eocd + 10).unwrap_or(0) as usize;
    let cd_size = u32_at(bytes, eocd + 12).unwrap_or(0) as usize;
    let cd_offset = u32_at(bytes, eocd + 16).unwrap_or(0) as usize;
    if disk != 0 || cd_disk != 0 || n_disk != n_total {
        return Err(unsafe_("multi-disk archives are not supported".into()));
    }
    if n_total == 0xFFFF || cd_offset == 0xFFFF_FFFF || cd_size == 0xFFFF_FFFF {
        return Err(unsafe_("zip64 archives are not supported".into()));
    }
    if n_total > limits.max_entries {
        return Err(unsafe_(format!(
            "{n_total} entries, over the limit of {} ({MAX_ENTRIES_ENV})",
            limits.max_entries
        )));
    }
    if cd_offset.checked_add(cd_size) != Some(eocd) {
        return Err(unsafe_(
            "central directory does not end where the end record begins".into(),
        ));
    }
    Ok(EndRecord {
        at: eocd,
        entries: n_total,
        cd_offset,
    })
}

/// The central directory's entries as declared, each within the directory's bounds.
fn central_directory(
    bytes: &[u8],
    end: &EndRecord,
) -> std::result::Result<Vec<Entry>, ArchiveProblem> {
    let (eocd, n_total, cd_offset) = (end.at, end.entries, end.cd_offset);
    let mut entries = Vec::with_capacity(n_total);
    let mut at = cd_offset;
    for _ in 0..n_total {
        if u32_at(bytes, at) != Some(CDH_SIG) {
            return Err(unsafe_("malformed central directory".into()));
        }
        let field = |off: usize| {
            u16_at(bytes, at + off).ok_or_else(|| unsafe_("truncated central directory".into()))
        };
        let field32 = |off: usize| {
            u32_at(bytes, at + off).ok_or_else(|| unsafe_("truncated central directory".into()))
        };
        let made_by = field(4)?;
        let version_needed = field(6)?;
        let time = field(12)?;
        let date = field(14)?;
        let disk_start = field(34)?;
        let internal_attr = field(36)?;
        let flags = field(8)?;
        let method = field(10)?;
        let crc32 = field32(16)?;
        let compressed = field32(20)? as u64;
        let uncompressed = field32(24)? as u64;
        let name_len = field(28)? as usize;
        let extra_len = field(30)? as usize;
        let comment_len = field(32)? as usize;
        let external_attr = field32(38)?;
        let local_offset = field32(42)? as u64;
        let name_bytes = bytes
            .get(at + 46..at + 46 + name_len)
            .ok_or_else(|| unsafe_("truncated central directory".into()))?;
        let name = std::str::from_utf8(name_bytes)
            .map_err(|_| unsafe_("an entry name is not UTF-8".into()))?
            .to_string();
        if compressed == 0xFFFF_FFFF || uncompressed == 0xFFFF_FFFF || local_offset == 0xFFFF_FFFF {
            return Err(unsafe_(format!(
                "'{name}': zip64 entries are not supported"
            )));
        }
        entries.push(Entry {
            name,
            made_by,
            version_needed,
            time,
            date,
            extra_len,
            comment_len,
            disk_start,
            internal_attr,
            flags,
            method,
            crc32,
            compressed,
            uncompressed,
            local_offset,
            made_by_host: (made_by >> 8) as u8,
            external_attr,
        });
        at += 46 + name_len + extra_len + comment_len;
        if at > eocd {
            return Err(unsafe_(
                "central directory overruns its declared size".into(),
            ));
        }
    }
    if at != eocd {
        return Err(unsafe_(
            "central directory size does not match its entries".into(),
        ));
    }
    Ok(entries)
}

/// Every entry's name, kind, method and sizes, its local header agreeing with the
/// directory, and no two entries' data overlapping; nothing is inflated yet. Returns the
/// raw headers and where each entry's data starts.
#[allow(clippy::type_complexity)]
fn check_entries(
    bytes: &[u8],
    entries: &[Entry],
    cd_offset: usize,
    limits: &Limits,
) -> std::result::Result<(Vec<RawHeader>, BTreeMap<String, usize>), ArchiveProblem> {
    let mut seen = BTreeSet::new();
    let mut folded = BTreeMap::new();
    let mut total: u64 = 0;
    let mut spans = Vec::with_capacity(entries.len());
    let mut headers = Vec::with_capacity(entries.len());
    for e in entries {
        let n = &e.name;
        if n.ends_with('/') {
            // Folders are implied by file names; a folder entry carries nothing we need,
            // but its name must still be safe.
            check_name(n.trim_end_matches('/')).map_err(|m| unsafe_(format!("'{n}': {m}")))?;
        } else {
            check_name(n).map_err(|m| unsafe_(format!("'{n}': {m}")))?;
        }
        if !seen.insert(n.clone()) {
            return Err(unsafe_(format!("'{n}': duplicate entry name")));
        }
        let key = n.to_lowercase();
        if let Some(other) = folded.insert(key, n.clone()) {
            return Err(unsafe_(format!(
                "'{n}' and '{other}' collide on a case-insensitive file system"
            )));
        }
        // Unix file type lives in the high 16 bits of the external attributes.
        if e.made_by_host == 3 {
            let kind = (e.external_attr >> 16) & 0o170_000;
            if kind == 0o120_000 {
                return Err(unsafe_(format!("'{n}': symbolic links are refused")));
            }
            if kind != 0 && kind != 0o100_000 && kind != 0o040_000 {
                return Err(unsafe_(format!("'{n}': not a regular file")));
            }
        }
        if e.flags & 0x0001 != 0 {
            return Err(unsafe_(format!(
                "'{n}': encrypted entries are not supported"
            )));
        }
        if e.method != 0 && e.method != 8 {
            return Err(unsafe_(format!(
                "'{n}': compression method {} is not supported (stored or deflate only)",
                e.method
            )));
        }
        if e.method == 0 && e.compressed != e.uncompressed {
            return Err(unsafe_(format!(
                "'{n}': stored entry declares {} compressed but {} uncompressed bytes",
                e.compressed, e.uncompressed
            )));
        }
        total = total.saturating_add(e.uncompressed);
        if total > limits.max_total_bytes {
            return Err(unsafe_(format!(
                "total uncompressed size is over the limit of {} bytes ({MAX_TOTAL_BYTES_ENV})",
                limits.max_total_bytes
            )));
        }
        if e.uncompressed > 1024 * 1024
            && e.uncompressed as f64 > limits.max_ratio * (e.compressed.max(1) as f64)
        {
            return Err(unsafe_(format!(
                "'{n}': compression ratio {:.0}:1 is over the limit of {:.0}:1 (zip bomb? EDGEPACK_MAX_COMPRESSION_RATIO)",
                e.uncompressed as f64 / e.compressed.max(1) as f64,
                limits.max_ratio
            )));
        }
        let (span, header) = local_header(bytes, e, cd_offset)?;
        spans.push(span);
        headers.push(header);
    }
    spans.sort();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(unsafe_(format!(
                "entries '{}' and '{}' overlap (overlapping-entry zip bomb?)",
                w[0].3, w[1].3
            )));
        }
    }
    let starts = spans.into_iter().map(|s| (s.3, s.2)).collect();
    Ok((headers, starts))
}

/// Where an entry lies: (local header start, data end, data start, name); sorted, these
/// show overlapping entries.
type Span = (u64, u64, usize, String);

/// An entry's local header: where the directory says, agreeing with it on name, method,
/// flags and (without a data descriptor) sizes and CRC, its data before the directory.
/// Returns the entry's span `(header start, data end, data start, name)` and raw header.
fn local_header(
    bytes: &[u8],
    e: &Entry,
    cd_offset: usize,
) -> std::result::Result<(Span, RawHeader), ArchiveProblem> {
    let n = &e.name;
    // Local header: must be where the directory says, agree on name and method.
    let lo = e.local_offset as usize;
    if u32_at(bytes, lo) != Some(LFH_SIG) {
        return Err(unsafe_(format!(
            "'{n}': no local header at the declared offset"
        )));
    }
    let l_flags = u16_at(bytes, lo + 6).unwrap_or(0);
    let l_method = u16_at(bytes, lo + 8).unwrap_or(u16::MAX);
    let l_name_len = u16_at(bytes, lo + 26).unwrap_or(0) as usize;
    let l_extra_len = u16_at(bytes, lo + 28).unwrap_or(0) as usize;
    let l_name = bytes.get(lo + 30..lo + 30 + l_name_len);
    if l_name != Some(n.as_bytes()) {
        return Err(unsafe_(format!(
            "'{n}': local header names a different file than the central directory"
        )));
    }
    if l_method != e.method || (l_flags & 0x0001) != 0 {
        return Err(unsafe_(format!(
            "'{n}': local header disagrees with the central directory"
        )));
    }
    if l_flags & 0x0008 == 0 {
        let l_crc = u32_at(bytes, lo + 14).unwrap_or(0);
        let l_comp = u32_at(bytes, lo + 18).unwrap_or(0) as u64;
        let l_uncomp = u32_at(bytes, lo + 22).unwrap_or(0) as u64;
        if l_comp != e.compressed || l_uncomp != e.uncompressed || l_crc != e.crc32 {
            return Err(unsafe_(format!(
                "'{n}': local header sizes disagree with the central directory"
            )));
        }
    }
    let data_start = lo + 30 + l_name_len + l_extra_len;
    let data_end = data_start as u64 + e.compressed;
    if data_end > cd_offset as u64 {
        return Err(unsafe_(format!(
            "'{n}': data runs into the central directory or past the end"
        )));
    }
    let header = RawHeader {
        name: n.clone(),
        made_by: e.made_by,
        version_needed: (e.version_needed, u16_at(bytes, lo + 4).unwrap_or(0)),
        flags: (e.flags, l_flags),
        time: (e.time, u16_at(bytes, lo + 10).unwrap_or(0)),
        date: (e.date, u16_at(bytes, lo + 12).unwrap_or(0)),
        extra_len: (e.extra_len, l_extra_len),
        comment_len: e.comment_len,
        disk_start: e.disk_start,
        internal_attr: e.internal_attr,
        external_attr: e.external_attr,
        span: (lo as u64, data_end),
    };
    Ok(((lo as u64, data_end, data_start, n.clone()), header))
}

/// Inflate every file entry with a hard cap at its declared size, checking size and
/// CRC-32.
fn inflate(
    bytes: &[u8],
    entries: &[Entry],
    starts: &BTreeMap<String, usize>,
) -> std::result::Result<BTreeMap<String, Vec<u8>>, ArchiveProblem> {
    let mut out = BTreeMap::new();
    for e in entries {
        if e.name.ends_with('/') {
            continue;
        }
        let start = starts[e.name.as_str()];
        let data = &bytes[start..start + e.compressed as usize];
        let mut buf = Vec::with_capacity(e.uncompressed.min(64 * 1024 * 1024) as usize);
        let read = if e.method == 0 {
            buf.extend_from_slice(data);
            Ok(buf.len())
        } else {
            flate2::read::DeflateDecoder::new(data)
                .take(e.uncompressed + 1)
                .read_to_end(&mut buf)
        };
        let n = &e.name;
        if let Err(err) = read {
            return Err(ArchiveProblem::Corrupt(format!(
                "'{n}': cannot inflate: {err}"
            )));
        }
        if buf.len() as u64 > e.uncompressed {
            return Err(unsafe_(format!(
                "'{n}': inflates past its declared size of {} bytes",
                e.uncompressed
            )));
        }
        if (buf.len() as u64) < e.uncompressed {
            return Err(ArchiveProblem::Corrupt(format!(
                "'{n}': inflates to {} bytes, declared {}",
                buf.len(),
                e.uncompressed
            )));
        }
        let crc = crc32fast::hash(&buf);
        if crc != e.crc32 {
            return Err(ArchiveProblem::Corrupt(format!(
                "'{n}': CRC-32 {crc:08x} does not match the declared {:08x}",
                e.crc32
            )));
        }
        out.insert(e.name.clone(), buf);
    }
    Ok(out)
}

/// Read and check an archive file. Every problem is an input error naming the file.
pub fn read_zip_file(path: &Path, limits: &Limits) -> Result<Archive> {
    let bytes = read_bounded(path, limits)?;
    read_zip(&bytes, limits).map_err(|p| match p {
        ArchiveProblem::Unsafe(m) | ArchiveProblem::Corrupt(m) => Error::file(path, m),
    })
}

/// Read a file no larger than the archive limit (a regular file, not a symlink target
/// outside our control is fine: we only read it).
pub fn read_bounded(path: &Path, limits: &Limits) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::file(path, "not a regular file"));
    }
    if meta.len() > limits.max_total_bytes {
        return Err(Error::file(
            path,
            format!(
                "archive is {} bytes, over the limit of {} ({MAX_TOTAL_BYTES_ENV})",
                meta.len(),
                limits.max_total_bytes
            ),
        ));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Write every entry of `archive` below `dest` (created if missing). Never writes through a
/// symlink: every existing path component below `dest` must be a real folder, and files are
/// replaced by rename (which replaces a symlink rather than following it).
pub fn extract(archive: &Archive, dest: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    let mut written = Vec::new();
    for (name, bytes) in &archive.entries {
        check_name(name).map_err(|m| Error::file(dest, format!("'{name}': {m}")))?;
        let rel = Path::new(name);
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(Error::file(dest, format!("'{name}': unsafe path")));
        }
        let mut cur = dest.to_path_buf();
        let comps: Vec<_> = rel.components().collect();
        for c in &comps[..comps.len() - 1] {
            cur.push(c);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(Error::file(&cur, "refusing to extract through a symlink"));
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(Error::file(&cur, "exists and is not a folder")),
                Err(_) => std::fs::create_dir(&cur).map_err(|e| Error::io(&cur, e))?,
            }
        }
        let target = dest.join(rel);
        if let Ok(m) = std::fs::symlink_metadata(&target) {
            if m.is_dir() {
                return Err(Error::file(&target, "exists and is a folder"));
            }
        }
        artifact::write_atomic(&target, bytes)?;
        written.push(target);
    }
    Ok(written)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A raw zip entry for hand-crafted (hostile) archives.
    pub struct RawEntry {
        pub name: String,
        pub data: Vec<u8>,
        /// Declared uncompressed size override (a lie).
        pub declared_size: Option<u32>,
        pub unix_mode: Option<u32>,
        pub deflate: bool,
    }

    impl RawEntry {
        pub fn new(name: &str, data: &[u8]) -> Self {
            RawEntry {
                name: name.into(),
                data: data.to_vec(),
                declared_size: None,
                unix_mode: None,
                deflate: false,
            }
        }
    }

    /// Build a zip by hand, so tests can craft what no honest writer produces.
    /// `share_data_of`: (entry index, index whose local header it reuses) makes overlapping
    /// entries that point at the same bytes.
    pub fn craft_zip(entries: &[RawEntry], overlap_all: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cd = Vec::new();
        let mut first_offset = None;
        for e in entries {
            let (payload, method) = if e.deflate {
                let mut enc =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
                enc.write_all(&e.data).unwrap();
                (enc.finish().unwrap(), 8u16)
            } else {
                (e.data.clone(), 0u16)
            };
            let crc = crc32fast::hash(&e.data);
            let size = e.declared_size.unwrap_or(e.data.len() as u32);
            let offset = if let (true, Some(first)) = (overlap_all, first_offset) {
                first
            } else {
                let offset = out.len() as u32;
                out.extend_from_slice(&LFH_SIG.to_le_bytes());
                out.extend_from_slice(&20u16.to_le_bytes());
                out.extend_from_slice(&0u16.to_le_bytes());
                out.extend_from_slice(&method.to_le_bytes());
                out.extend_from_slice(&[0, 0, 0x21, 0]);
                out.extend_from_slice(&crc.to_le_bytes());
                out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
                out.extend_from_slice(&0u16.to_le_bytes());
                out.extend_from_slice(e.name.as_bytes());
                out.extend_from_slice(&payload);
                first_offset.get_or_insert(offset);
                offset
            };
            cd.extend_from_slice(&CDH_SIG.to_le_bytes());
            let made_by: u16 = if e.unix_mode.is_some() {
                (3 << 8) | 20
            } else {
                20
            };
            cd.extend_from_slice(&made_by.to_le_bytes());
            cd.extend_from_slice(&20u16.to_le_bytes());
            cd.extend_from_slice(&0u16.to_le_bytes());
            cd.extend_from_slice(&method.to_le_bytes());
            cd.extend_from_slice(&[0, 0, 0x21, 0]);
            cd.extend_from_slice(&crc.to_le_bytes());
            cd.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            cd.extend_from_slice(&size.to_le_bytes());
            cd.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            cd.extend_from_slice(&[0u8; 8]); // extra len, comment len, disk, internal attr
            cd.extend_from_slice(&(e.unix_mode.unwrap_or(0) << 16).to_le_bytes());
            cd.extend_from_slice(&offset.to_le_bytes());
            cd.extend_from_slice(e.name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&cd);
        out.extend_from_slice(&EOCD_SIG.to_le_bytes());
        out.extend_from_slice(&[0u8; 4]);
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    fn unsafe_msg(bytes: &[u8]) -> String {
        match read_zip(bytes, &Limits::default()) {
            Err(ArchiveProblem::Unsafe(m)) => m,
            other => panic!("expected an unsafe-archive refusal, got {other:?}"),
        }
    }

    fn entries(pairs: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(n, b)| (n.to_string(), b.to_vec()))
            .collect()
    }

    #[test]
    fn round_trips_through_our_reader() {
        let e = entries(&[("b/x.bin", &[1, 2, 3]), ("a.txt", b"hello hello hello")]);
        let z = write_zip(&e).unwrap();
        let a = read_zip(&z, &Limits::default()).unwrap();
        assert_eq!(a.entries, e);
    }

    #[test]
    fn same_entries_give_identical_bytes() {
        let e = entries(&[("m.onnx", &[7u8; 5000]), ("manifest.json", b"{}")]);
        assert_eq!(write_zip(&e).unwrap(), write_zip(&e).unwrap());
    }

    #[test]
    fn honest_crafted_zip_is_accepted() {
        let z = craft_zip(
            &[RawEntry::new("a", b"abc"), RawEntry::new("dir/b", b"xyz")],
            false,
        );
        let a = read_zip(&z, &Limits::default()).unwrap();
        assert_eq!(a.entries["dir/b"], b"xyz");
    }

    #[test]
    fn rejects_zip_slip_and_absolute_paths() {
        for name in [
            "../evil",
            "a/../../evil",
            "/etc/passwd",
            "C:/x",
            "a\\..\\b",
            "./a",
            "a//b",
        ] {
            let m = unsafe_msg(&craft_zip(&[RawEntry::new(name, b"x")], false));
            assert!(!m.is_empty(), "{name}");
        }
    }

    #[test]
    fn rejects_symlink_entries() {
        let mut e = RawEntry::new("link", b"/etc/passwd");
        e.unix_mode = Some(0o120_777);
        assert!(unsafe_msg(&craft_zip(&[e], false)).contains("symbolic link"));
    }

    #[test]
    fn rejects_duplicate_and_case_colliding_names() {
        let z = craft_zip(
            &[RawEntry::new("a.txt", b"1"), RawEntry::new("a.txt", b"2")],
            false,
        );
        assert!(unsafe_msg(&z).contains("duplicate"));
        let z = craft_zip(
            &[
                RawEntry::new("Model.onnx", b"1"),
                RawEntry::new("model.ONNX", b"2"),
            ],
            false,
        );
        assert!(unsafe_msg(&z).contains("case-insensitive"));
    }

    #[test]
    fn rejects_entry_inflating_past_declared_size() {
        let mut e = RawEntry::new("big", &[0u8; 10_000]);
        e.deflate = true;
        e.declared_size = Some(100);
        assert!(unsafe_msg(&craft_zip(&[e], false)).contains("past its declared size"));
    }

    #[test]
    fn entry_shorter_than_declared_is_corrupt() {
        let mut e = RawEntry::new("short", &[1u8; 100]);
        e.deflate = true;
        e.declared_size = Some(5000);
        let r = read_zip(&craft_zip(&[e], false), &Limits::default());
        assert!(matches!(r, Err(ArchiveProblem::Corrupt(_))), "{r:?}");
    }

    #[test]
    fn rejects_overlapping_entries() {
        // b's directory entry points at a's local header, whose name is 'a'.
        let z = craft_zip(
            &[RawEntry::new("a", b"same"), RawEntry::new("b", b"same")],
            true,
        );
        assert!(unsafe_msg(&z).contains("different file"));

        // The Fifield-style bomb: a's data span contains b's complete local entry, so the
        // same bytes are counted (and inflated) twice.
        let inner = craft_zip(&[RawEntry::new("b", b"payload")], false);
        let cd_at = u32_at(&inner, inner.len() - 6).unwrap() as usize;
        let b_local = &inner[..cd_at];
        let outer = craft_zip(&[RawEntry::new("a", b_local)], false);
        let outer_cd_at = u32_at(&outer, outer.len() - 6).unwrap() as usize;
        let mut z = outer[..outer_cd_at].to_vec();
        let a_cd = &outer[outer_cd_at..outer.len() - 22];
        let mut b_cd = inner[cd_at..inner.len() - 22].to_vec();
        b_cd[42..46].copy_from_slice(&(31u32).to_le_bytes()); // b's header sits inside a's data
        let cd_offset = z.len() as u32;
        z.extend_from_slice(a_cd);
        z.extend_from_slice(&b_cd);
        z.extend_from_slice(&EOCD_SIG.to_le_bytes());
        z.extend_from_slice(&[0u8; 4]);
        z.extend_from_slice(&2u16.to_le_bytes());
        z.extend_from_slice(&2u16.to_le_bytes());
        z.extend_from_slice(&((a_cd.len() + b_cd.len()) as u32).to_le_bytes());
        z.extend_from_slice(&cd_offset.to_le_bytes());
        z.extend_from_slice(&0u16.to_le_bytes());
        assert!(unsafe_msg(&z).contains("overlap"));
    }

    #[test]
    fn rejects_high_compression_ratio_and_total_size() {
        let mut e = RawEntry::new("zeros", &vec![0u8; 4 * 1024 * 1024]);
        e.deflate = true;
        assert!(unsafe_msg(&craft_zip(&[e], false)).contains("compression ratio"));
        let z = craft_zip(&[RawEntry::new("a", &[1u8; 2000])], false);
        let limits = Limits {
            max_total_bytes: 1000,
            ..Limits::default()
        };
        assert!(
            matches!(read_zip(&z, &limits), Err(ArchiveProblem::Unsafe(m)) if m.contains("total"))
        );
        let limits = Limits {
            max_entries: 0,
            ..Limits::default()
        };
        assert!(
            matches!(read_zip(&z, &limits), Err(ArchiveProblem::Unsafe(m)) if m.contains("entries"))
        );
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(unsafe_msg(b"not a zip at all, not at all").contains("not a zip"));
        let z = write_zip(&entries(&[("a", b"abc")])).unwrap();
        let r = read_zip(&z[..z.len() - 5], &Limits::default());
        assert!(matches!(r, Err(ArchiveProblem::Unsafe(_))));
    }

    #[test]
    fn flipped_data_byte_is_corrupt_not_unsafe() {
        let z = craft_zip(&[RawEntry::new("a", b"hello world")], false);
        let mut bad = z.clone();
        bad[30 + 1 + 3] ^= 0xff; // inside the stored data of 'a'
        assert!(matches!(
            read_zip(&bad, &Limits::default()),
            Err(ArchiveProblem::Corrupt(_))
        ));
    }

    #[test]
    fn extract_never_writes_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        std::os::unix::fs::symlink(outside.path(), dest.join("sub")).unwrap();
        let a = Archive {
            entries: entries(&[("sub/x", b"pwned")]),
            ..Default::default()
        };
        let e = extract(&a, &dest).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        // A symlinked file is replaced, not followed.
        let target = outside.path().join("victim");
        std::fs::write(&target, b"keep").unwrap();
        std::os::unix::fs::symlink(&target, dest.join("f")).unwrap();
        extract(
            &Archive {
                entries: entries(&[("f", b"new")]),
                ..Default::default()
            },
            &dest,
        )
        .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert_eq!(std::fs::read(dest.join("f")).unwrap(), b"new");
    }
}
