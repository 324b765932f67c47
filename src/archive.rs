//! S3 archives as an image source (SPEC §13): what an object is, whether it may be
//! downloaded at all, and whether what was streamed into the Engine is the image it should
//! be. Pure; the way of the bytes (decompressed, rewritten without the archive's names) is
//! [`body`] and [`strip`], the loading is [`resolve`], the S3 calls are `adapters::s3`.
//!
//! A `docker save` archive has no registry digest (the Engine drops RepoDigests on load), so
//! an archive's identity is the id of the image it holds: the config digest. The agent
//! knows it only once the archive is loaded, so resolving an archive key loads it (once per
//! object: the store remembers which object gave which image, and which was refused).

pub mod body;
pub mod resolve;
pub mod sources;
pub mod strip;

pub use crate::model::object::{ObjectFacts, checksum_hex, is_multipart_etag, metadata_hex};

use crate::config::ArchiveSettings;
use crate::ports::RemoteError;

/// Why the object `facts` describes is refused before anything is downloaded: larger than
/// `[archives] max_bytes`, or without a SHA-256 when `require_checksum` is set.
pub fn precheck(facts: &ObjectFacts, limits: &ArchiveSettings) -> Result<(), String> {
    if facts.size > limits.max_bytes {
        return Err(format!(
            "the object is {} bytes, more than [archives] max_bytes ({}); not downloaded",
            facts.size, limits.max_bytes
        ));
    }
    if limits.require_checksum && facts.sha256.is_none() {
        return Err(
            "the object has neither a full-object SHA-256 checksum nor sha256 user \
             metadata, and [archives] require_checksum is set; not downloaded"
                .into(),
        );
    }
    Ok(())
}

/// What streaming an object into the Engine came to, as the resolver saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Streamed {
    /// The bytes S3 sent (the original, compressed ones).
    pub bytes: u64,
    /// SHA-256 of the bytes S3 sent, lowercase hex.
    pub sha256: String,
    /// Reading from S3 stopped with this error before the end.
    pub read_error: Option<String>,
    /// More bytes arrived than HeadObject announced: the stream was cut there.
    pub too_long: bool,
    /// The bytes are not a (compressed) tar the rewrite could pass on: the stream was cut.
    pub format_error: Option<String>,
}

/// Why a load is refused, or which image it gave. `loaded`: the image ids the Engine
/// reported loading (`Err` when the load failed, with whether that was transient).
pub fn verdict(
    facts: &ObjectFacts,
    streamed: &Streamed,
    loaded: Result<Vec<String>, (String, bool)>,
) -> Result<String, Refusal> {
    if let Some(e) = &streamed.read_error {
        return Err(Refusal::Transient(format!(
            "reading the object stopped: {e}"
        )));
    }
    if streamed.too_long {
        return Err(Refusal::Refused(format!(
            "more than the {} bytes S3 announced arrived; cut there",
            facts.size
        )));
    }
    if let Some(e) = &streamed.format_error {
        return Err(Refusal::Refused(format!(
            "could not load it as a docker save archive: {e}"
        )));
    }
    if streamed.bytes != facts.size {
        return Err(Refusal::Refused(format!(
            "truncated: {} of {} bytes arrived",
            streamed.bytes, facts.size
        )));
    }
    if let Some(want) = &facts.sha256
        && *want != streamed.sha256
    {
        return Err(Refusal::Refused(format!(
            "the bytes' SHA-256 is {} but S3 has {want} for the object",
            streamed.sha256
        )));
    }
    let ids = match loaded {
        Ok(ids) => ids,
        Err((e, true)) => return Err(Refusal::Transient(e)),
        Err((e, false)) => {
            return Err(Refusal::Refused(format!(
                "the Engine could not load it as a docker save archive: {e}"
            )));
        }
    };
    match ids.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Refusal::Refused(
            "the archive holds no image (its manifest.json names none)".into(),
        )),
        many => Err(Refusal::Refused(format!(
            "the archive holds {} images ({}); one is expected",
            many.len(),
            many.join(", ")
        ))),
    }
}

/// Why an archive gave no image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The object is not a valid archive of one image: remembered, never loaded again.
    Refused(String),
    /// S3 or the Engine failed on the way: tried again.
    Transient(String),
}

/// The operation of a [`RemoteError`] for an archive that was refused (recorded: the
/// message that asked for it may go).
pub const REFUSED: &str = "S3 archive refused";
/// The operation of a [`RemoteError`] for an archive not loaded yet (`status` only looks).
pub const NOT_LOADED: &str = "S3 archive not loaded";

/// Whether `e` says the archive was refused, rather than that S3 could not be asked.
pub fn is_refusal(e: &RemoteError) -> bool {
    e.operation == REFUSED
}

/// Whether `e` says the archive is new and not loaded yet (a dry run does not load).
pub fn is_not_loaded(e: &RemoteError) -> bool {
    e.operation == NOT_LOADED
}

#[cfg(test)]
mod tests;
