//! An archive's bytes on their way from S3 to the Engine (SPEC §13): counted and hashed as
//! S3 sent them (cut past the size HeadObject gave), decompressed (gzip, bzip2, xz, or
//! none), and rewritten without the archive's names ([`super::strip`]). All of it streams:
//! only the small JSON files of the archive are held whole.
//!
//! Decompression uses `async-compression` (tokio's `AsyncBufRead` decoders over `flate2`,
//! `bzip2` and `liblzma`), each with concatenated streams allowed as their command-line tools
//! allow them.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use async_compression::tokio::bufread::{BzDecoder, GzipDecoder, XzDecoder};
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt};
use tokio_util::io::StreamReader;

use super::Streamed;
use super::strip::{Seen, Strip};
use crate::ports::ArchiveBody;

/// What the way to the Engine came to, shared with the resolver that reads it afterwards.
#[derive(Default)]
pub struct Watch {
    bytes: u64,
    hasher: Sha256,
    read_error: Option<String>,
    too_long: bool,
    format_error: Option<String>,
    seen: Arc<Mutex<Seen>>,
}

impl Watch {
    /// The bytes counted, their hash, and what stopped the stream, if anything.
    pub fn finish(self) -> (Streamed, Seen) {
        let sha256 = self
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let seen = std::mem::take(&mut *self.seen.lock().unwrap_or_else(PoisonError::into_inner));
        let streamed = Streamed {
            bytes: self.bytes,
            sha256,
            read_error: self.read_error,
            too_long: self.too_long,
            format_error: self.format_error,
        };
        (streamed, seen)
    }
}

/// `body` (an object of `size` bytes) as the uncompressed tar without names the Engine
/// loads; what happened on the way goes to `watch`.
pub fn to_engine(body: ArchiveBody, size: u64, watch: Arc<Mutex<Watch>>) -> ArchiveBody {
    let seen = lock(&watch).seen.clone();
    let counting = watch.clone();
    let counted = body.map(move |chunk| {
        let mut w = lock(&counting);
        match chunk {
            Ok(bytes) => {
                w.bytes += bytes.len() as u64;
                if w.bytes > size {
                    w.too_long = true;
                    return Err(io::Error::other(format!(
                        "more than the {size} bytes S3 announced arrived"
                    )));
                }
                w.hasher.update(&bytes);
                Ok(bytes)
            }
            Err(e) => {
                w.read_error = Some(e.to_string());
                Err(e)
            }
        }
    });
    let raw = StreamReader::new(counted);
    let stripped = futures::stream::once(async move { decoded(raw).await })
        .map_ok(move |tar| {
            futures::stream::try_unfold(Strip::new(tar, seen.clone()), |mut strip| async move {
                Ok(strip.next().await?.map(|bytes| (bytes, strip)))
            })
        })
        .try_flatten();
    stripped
        .inspect_err(move |e: &io::Error| {
            let mut w = lock(&watch);
            if w.read_error.is_none() && !w.too_long && w.format_error.is_none() {
                w.format_error = Some(e.to_string());
            }
        })
        .boxed()
}

/// The compression an archive's first bytes show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
}

impl Compression {
    pub fn of(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if head.starts_with(b"BZh") {
            Self::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Self::Xz
        } else {
            Self::None
        }
    }
}

type Tar = Box<dyn AsyncRead + Send + Unpin>;

/// `raw` decompressed as its first bytes say.
async fn decoded<R: AsyncBufRead + Send + Unpin + 'static>(mut raw: R) -> io::Result<Tar> {
    const MAGIC: usize = 6;
    let mut head = Vec::with_capacity(MAGIC);
    while head.len() < MAGIC {
        let buf = raw.fill_buf().await?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(MAGIC - head.len());
        head.extend_from_slice(&buf[..n]);
        raw.consume(n);
    }
    let compression = Compression::of(&head);
    let input = std::io::Cursor::new(head).chain(raw);
    Ok(match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => {
            let mut d = GzipDecoder::new(input);
            d.multiple_members(true);
            Box::new(d)
        }
        Compression::Bzip2 => {
            let mut d = BzDecoder::new(input);
            d.multiple_members(true);
            Box::new(d)
        }
        Compression::Xz => {
            let mut d = XzDecoder::new(input);
            d.multiple_members(true);
            Box::new(d)
        }
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
