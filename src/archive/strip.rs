//! An archive's own names, removed on its way to the Engine (SPEC §13): the `docker save` tar
//! is rewritten as it streams — `manifest.json` with every `RepoTags` emptied, the legacy
//! `repositories` file dropped, the name annotations taken out of an OCI `index.json` —
//! and every other entry passes through byte for byte. The Engine then loads the images
//! without applying a name, and the agent decides before any name is given.
//!
//! Only the small JSON files are held in memory. Paths are read as the Engine's tar reader
//! (Go's `archive/tar`) reads them (PAX and GNU long names, USTAR and star prefixes), cleaned
//! as it cleans them, and an archive that could slip a file past the rewrite is refused:
//! one of those three names that is not a regular file, an entry under a symbolic link, a
//! GNU sparse entry.

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The archive's manifest: one entry per image.
pub const MANIFEST: &str = "manifest.json";
/// The OCI image layout's index (Docker 25+ saves).
pub const INDEX: &str = "index.json";
/// The legacy (pre-1.10) name map.
pub const REPOSITORIES: &str = "repositories";
/// The name annotations of an OCI index's entries.
pub const NAME_ANNOTATIONS: [&str; 2] = [
    "io.containerd.image.name",
    "org.opencontainers.image.ref.name",
];

const BLOCK: usize = 512;
/// Larger JSON files or extended headers are not a `docker save` archive's.
const MAX_SMALL: u64 = 16 << 20;
/// Bytes passed on at once.
const CHUNK: u64 = 64 << 10;

/// What the rewrite found in the archive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The image ids `manifest.json` names (its `Config` digests, `sha256:<hex>`).
    pub configs: Vec<String>,
    /// The names the archive carried and the Engine was not given.
    pub names: Vec<String>,
    pub manifest: bool,
}

/// The rewriting reader: [`Strip::next`] gives the rewritten tar piece by piece.
pub struct Strip<R> {
    src: R,
    seen: Arc<Mutex<Seen>>,
    /// Extended headers read, for the entry they describe.
    pending: Vec<u8>,
    pax_path: Option<Vec<u8>>,
    pax_size: Option<u64>,
    gnu_name: Option<Vec<u8>>,
    symlinks: HashSet<String>,
    /// Data bytes (with padding) of the entry being passed on.
    left: u64,
    done: bool,
}

impl<R: AsyncRead + Unpin> Strip<R> {
    /// Reads the tar `src`; what it finds goes to `seen`.
    pub fn new(src: R, seen: Arc<Mutex<Seen>>) -> Self {
        Self {
            src,
            seen,
            pending: Vec::new(),
            pax_path: None,
            pax_size: None,
            gnu_name: None,
            symlinks: HashSet::new(),
            left: 0,
            done: false,
        }
    }

    /// The next bytes of the rewritten tar; `None` after its end. An error ends it.
    pub async fn next(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            if self.left > 0 {
                return self.pass().await.map(Some);
            }
            if self.done {
                return Ok(None);
            }
            let Some(block) = self.block().await? else {
                return self.end().await.map(Some);
            };
            if block.iter().all(|b| *b == 0) {
                return self.end().await.map(Some);
            }
            let header = header(&block)?;
            if let Some(out) = self.entry(&block, &header).await? {
                return Ok(Some(out));
            }
        }
    }

    /// One header: extended headers are kept for their entry (`None`), an entry is passed
    /// on, rewritten or dropped.
    async fn entry(
        &mut self,
        block: &[u8; BLOCK],
        header: &tar::Header,
    ) -> io::Result<Option<Bytes>> {
        let kind = block[156];
        if matches!(kind, b'x' | b'L' | b'K') {
            let size = header.entry_size()?;
            let data = self.small(size, "an extended header").await?;
            match kind {
                b'x' => self.pax(&data)?,
                b'L' => self.gnu_name = Some(until_nul(&data).to_vec()),
                _ => {}
            }
            self.pending.extend_from_slice(block);
            self.pending.extend_from_slice(&data);
            self.pending
                .resize(self.pending.len() + pad(size) as usize, 0);
            return Ok(None);
        }
        if kind == b'S' {
            return Err(bad(
                "a GNU sparse entry is not part of a docker save archive",
            ));
        }
        let size = match self.pax_size.take() {
            Some(s) => s,
            None => header.entry_size()?,
        };
        let raw = match (self.gnu_name.take(), self.pax_path.take()) {
            (Some(gnu), _) => gnu,
            (None, Some(pax)) => pax,
            (None, None) => name(block),
        };
        let pending = std::mem::take(&mut self.pending);
        let path = clean(&String::from_utf8_lossy(&raw));
        if let Some(link) = self.under_symlink(&path) {
            return Err(bad(format!("{path} lies under the symbolic link {link}")));
        }
        if kind == b'2' {
            self.symlinks.insert(path.clone());
        }
        let regular = matches!(kind, b'0' | 0);
        match path.as_str() {
            MANIFEST | INDEX | REPOSITORIES if !regular => Err(bad(format!(
                "{path} is not a regular file (type {:?})",
                kind as char
            ))),
            REPOSITORIES => {
                self.skip(size + pad(size)).await?;
                Ok(None)
            }
            MANIFEST | INDEX => {
                let data = self.small(size, &path).await?;
                let data = {
                    let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
                    match path.as_str() {
                        MANIFEST => strip_manifest(&data, &mut seen)?,
                        _ => strip_index(&data, &mut seen)?,
                    }
                };
                Ok(Some(file(&path, header.mtime().unwrap_or(0), &data)?))
            }
            _ => {
                self.left = size + pad(size);
                let mut out = pending;
                out.extend_from_slice(block);
                Ok(Some(out.into()))
            }
        }
    }

    /// The PAX records that change what the Engine reads: `path` and `size`.
    fn pax(&mut self, data: &[u8]) -> io::Result<()> {
        for (key, value) in pax_records(data)? {
            match key {
                b"path" => self.pax_path = Some(value.to_vec()),
                b"size" => {
                    let size = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| bad("a PAX size is not a number"))?;
                    self.pax_size = Some(size);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn under_symlink(&self, path: &str) -> Option<String> {
        let mut prefix = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.symlinks.contains(&prefix) {
                return Some(prefix);
            }
        }
        None
    }

    /// One header block; `None` at the end of the input between entries.
    async fn block(&mut self) -> io::Result<Option<[u8; BLOCK]>> {
        let mut block = [0; BLOCK];
        let mut got = 0;
        while got < BLOCK {
            match self.src.read(&mut block[got..]).await? {
                0 if got == 0 => return Ok(None),
                0 => return Err(eof()),
                n => got += n,
            }
        }
        Ok(Some(block))
    }

    /// Up to [`CHUNK`] bytes of the entry being passed on.
    async fn pass(&mut self) -> io::Result<Bytes> {
        let mut buf = vec![0; self.left.min(CHUNK) as usize];
        let n = self.src.read(&mut buf).await?;
        if n == 0 {
            return Err(eof());
        }
        buf.truncate(n);
        self.left -= n as u64;
        Ok(buf.into())
    }

    /// A small entry's data (its padding read past).
    async fn small(&mut self, size: u64, what: &str) -> io::Result<Vec<u8>> {
        if size > MAX_SMALL {
            return Err(bad(format!("{what} of {size} bytes is too large")));
        }
        let mut data = vec![0; size as usize];
        self.src.read_exact(&mut data).await?;
        self.skip(pad(size)).await?;
        Ok(data)
    }

    async fn skip(&mut self, n: u64) -> io::Result<()> {
        let skipped = tokio::io::copy(&mut (&mut self.src).take(n), &mut tokio::io::sink()).await?;
        match skipped == n {
            true => Ok(()),
            false => Err(eof()),
        }
    }

    /// The end of the archive: what follows it is read (and ignored), the end is written.
    async fn end(&mut self) -> io::Result<Bytes> {
        if !self.pending.is_empty() {
            return Err(bad("the archive ends after an extended header"));
        }
        tokio::io::copy(&mut self.src, &mut tokio::io::sink()).await?;
        self.done = true;
        Ok(Bytes::from(vec![0; 2 * BLOCK]))
    }
}

/// `manifest.json` with every `RepoTags` emptied; its image ids and names go to `seen`.
pub fn strip_manifest(data: &[u8], seen: &mut Seen) -> io::Result<Vec<u8>> {
    let mut manifest: Value =
        serde_json::from_slice(data).map_err(|e| bad(format!("{MANIFEST} is not JSON: {e}")))?;
    let items = manifest
        .as_array_mut()
        .ok_or_else(|| bad(format!("{MANIFEST} is not a list of images")))?;
    seen.manifest = true;
    for item in items {
        let item = item
            .as_object_mut()
            .ok_or_else(|| bad(format!("an entry of {MANIFEST} is not an object")))?;
        if let Some(config) = item.get("Config").and_then(Value::as_str) {
            let file = config.rsplit('/').next().unwrap_or_default();
            let hex = file.strip_suffix(".json").unwrap_or(file);
            if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                seen.configs
                    .push(format!("sha256:{}", hex.to_ascii_lowercase()));
            }
        }
        if let Some(tags) = item.get("RepoTags").and_then(Value::as_array) {
            let tags = tags.iter().filter_map(Value::as_str).map(str::to_owned);
            seen.names.extend(tags);
        }
        if item.contains_key("RepoTags") {
            item.insert("RepoTags".into(), Value::Array(Vec::new()));
        }
    }
    serde_json::to_vec(&manifest).map_err(io::Error::other)
}

/// An OCI `index.json` without the name annotations of its entries.
pub fn strip_index(data: &[u8], seen: &mut Seen) -> io::Result<Vec<u8>> {
    let mut index: Value =
        serde_json::from_slice(data).map_err(|e| bad(format!("{INDEX} is not JSON: {e}")))?;
    let entries = index
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten();
    for entry in entries {
        let Some(annotations) = entry.get_mut("annotations").and_then(Value::as_object_mut) else {
            continue;
        };
        for key in NAME_ANNOTATIONS {
            if let Some(Value::String(name)) = annotations.remove(key)
                && !seen.names.contains(&name)
            {
                seen.names.push(name);
            }
        }
        if annotations.is_empty()
            && let Some(entry) = entry.as_object_mut()
        {
            entry.remove("annotations");
        }
    }
    serde_json::to_vec(&index).map_err(io::Error::other)
}

/// The header block as the tar crate reads it, its checksum checked.
fn header(block: &[u8; BLOCK]) -> io::Result<tar::Header> {
    let mut header = tar::Header::new_old();
    header.as_mut_bytes().copy_from_slice(block);
    let stated = header.cksum().map_err(|_| bad("not a tar archive"))?;
    let unsigned: u32 = block[..148]
        .iter()
        .chain(&[b' '; 8])
        .chain(&block[156..])
        .map(|b| u32::from(*b))
        .sum();
    let signed: i64 = block[..148]
        .iter()
        .chain(&[b' '; 8])
        .chain(&block[156..])
        .map(|b| i64::from(*b as i8))
        .sum();
    if stated != unsigned && i64::from(stated) != signed {
        return Err(bad(
            "not a tar archive (a header's checksum does not match)",
        ));
    }
    Ok(header)
}

/// The name in a header block, as Go's `archive/tar` reads it: USTAR's 155-byte prefix,
/// star's 131-byte one, none for GNU and V7 headers.
fn name(block: &[u8; BLOCK]) -> Vec<u8> {
    let name = until_nul(&block[..100]);
    let prefix = match (&block[257..265], &block[508..512]) {
        (b"ustar\x0000", b"tar\0") => until_nul(&block[345..476]),
        (b"ustar\x0000", _) => until_nul(&block[345..500]),
        _ => &[],
    };
    match prefix.is_empty() {
        true => name.to_vec(),
        false => [prefix, b"/", name].concat(),
    }
}

/// The path cleaned as the Engine cleans it before extracting (`.` and empty parts dropped,
/// `..` applied, a leading `/` ignored).
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// PAX records (`LEN key=value\n`), read by their lengths as Go reads them.
fn pax_records(mut data: &[u8]) -> io::Result<Vec<(&[u8], &[u8])>> {
    let malformed = || bad("a malformed PAX header");
    let mut records = Vec::new();
    while !data.is_empty() {
        let space = data.iter().position(|b| *b == b' ').ok_or_else(malformed)?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|l| l.parse().ok())
            .filter(|l| *l > space + 1 && *l <= data.len())
            .ok_or_else(malformed)?;
        let record = data[space + 1..len]
            .strip_suffix(b"\n")
            .ok_or_else(malformed)?;
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .ok_or_else(malformed)?;
        records.push((&record[..eq], &record[eq + 1..]));
        data = &data[len..];
    }
    Ok(records)
}

/// A regular file entry `path` holding `data`.
fn file(path: &str, mtime: u64, data: &[u8]) -> io::Result<Bytes> {
    let mut header = tar::Header::new_ustar();
    header.set_path(path)?;
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len() + pad(data.len() as u64) as usize, 0);
    Ok(out.into())
}

fn pad(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn until_nul(b: &[u8]) -> &[u8] {
    b.iter().position(|c| *c == 0).map_or(b, |n| &b[..n])
}

fn bad(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the archive ends inside an entry",
    )
}

#[cfg(test)]
pub(crate) mod tests;
