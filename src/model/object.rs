//! What S3 says an object is (HeadObject), and the readings of its checksums: the identity
//! of an S3 archive before it is loaded (SPEC §13). Pure.

/// What S3 says a key holds now (HeadObject).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectFacts {
    /// The ETag, without quotes.
    pub etag: String,
    /// Empty when the bucket is not versioned.
    pub version_id: String,
    pub size: u64,
    /// The SHA-256 of the whole object, lowercase hex, when S3 has one: a full-object
    /// `ChecksumSHA256` or `sha256` user metadata.
    pub sha256: Option<String>,
}

impl ObjectFacts {
    /// How logs and refusals name this object.
    pub fn describe(&self, bucket: &str, key: &str) -> String {
        match self.version_id.as_str() {
            "" => format!("s3://{bucket}/{key} (ETag {})", self.etag),
            v => format!("s3://{bucket}/{key} (ETag {}, version {v})", self.etag),
        }
    }
}

/// The `ChecksumSHA256` S3 reports (base64 of the 32 bytes) as hex, when it is the whole
/// object's: a multipart upload's composite checksum (`…-N`) is not the bytes' SHA-256.
pub fn checksum_hex(checksum: &str) -> Option<String> {
    use base64::Engine as _;
    if checksum.contains('-') {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(checksum)
        .ok()?;
    (bytes.len() == 32).then(|| bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether an ETag is a multipart upload's (`<hex>-<parts>`): its SHA-256, if any, is composite.
pub fn is_multipart_etag(etag: &str) -> bool {
    let etag = etag.trim_matches('"');
    etag.rsplit_once('-').is_some_and(|(hex, parts)| {
        !hex.is_empty() && !parts.is_empty() && parts.bytes().all(|b| b.is_ascii_digit())
    })
}

/// A `sha256` user metadata value, when it is 64 hex characters (a `sha256:` prefix is
/// allowed).
pub fn metadata_hex(value: &str) -> Option<String> {
    let v = value.trim();
    let hex = v.strip_prefix("sha256:").unwrap_or(v).to_ascii_lowercase();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}
