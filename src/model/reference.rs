//! The domain's references: a content [`Digest`], a [`Repository`] and [`Tag`], and the
//! [`ImageRef`] the agent follows (an ECR tag, a tag of a registry of the site's own, or an S3
//! archive). Validated on construction. Pure; moved here from `event` (which re-exports
//! them) so that every stage can name them without importing the queue parser.

use std::fmt;

/// A content digest, always `sha256:<64 lowercase hex>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Validates `s` as a sha256 digest.
    pub fn parse(s: &str) -> Result<Self, String> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("digest {s:?} does not start with \"sha256:\""))?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!(
                "digest {s:?} is not \"sha256:\" followed by 64 lowercase hex characters"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex characters, as operators see them in `docker images`.
    pub fn short(&self) -> &str {
        &self.0[7..19]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

/// An ECR repository name, validated with ECR's own pattern:
/// `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`, 2–256 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository(String);

impl Repository {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("repository name {s:?} is not a valid ECR repository name");
        if s.len() < 2 || s.len() > 256 {
            return Err(bad());
        }
        for component in s.split('/') {
            // Each component: alphanumeric runs separated by single '.', '_' or '-'.
            let mut prev_sep = true;
            if component.is_empty() {
                return Err(bad());
            }
            for b in component.bytes() {
                match b {
                    b'a'..=b'z' | b'0'..=b'9' => prev_sep = false,
                    b'.' | b'_' | b'-' if !prev_sep => prev_sep = true,
                    _ => return Err(bad()),
                }
            }
            if prev_sep {
                return Err(bad());
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// A repository name of a registry of the site's own, with the distribution
    /// specification's grammar (wider than ECR's: `__` and runs of `-` inside a component,
    /// one-character names): components `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, at most 255.
    pub fn parse_distribution(s: &str) -> Result<Self, String> {
        let bad = || format!("repository name {s:?} is not a valid distribution repository name");
        if s.is_empty() || s.len() > 255 {
            return Err(bad());
        }
        for component in s.split('/') {
            let bytes = component.as_bytes();
            let mut i = 0;
            let mut prev_sep = true;
            while i < bytes.len() {
                let sep_len = match bytes[i] {
                    b'a'..=b'z' | b'0'..=b'9' => 0,
                    b'.' => 1,
                    b'_' if bytes.get(i + 1) == Some(&b'_') => 2,
                    b'_' => 1,
                    b'-' => bytes[i..].iter().take_while(|b| **b == b'-').count(),
                    _ => return Err(bad()),
                };
                if sep_len == 0 {
                    prev_sep = false;
                    i += 1;
                    continue;
                }
                if prev_sep {
                    return Err(bad());
                }
                prev_sep = true;
                i += sep_len;
            }
            if prev_sep {
                return Err(bad());
            }
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An image tag with Docker's rules: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && !s.starts_with(['.', '-'])
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("image tag {s:?} is not a valid tag"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How operators read a stored `repository` and `tag`: `repo:tag`, or `s3://bucket/key` for
/// an archive (kept as repository `s3://bucket`, tag `key`).
pub fn source_text(repository: &str, tag: &str) -> String {
    match repository.starts_with(ARCHIVE_SCHEME) {
        true => format!("{repository}/{tag}"),
        false => format!("{repository}:{tag}"),
    }
}

/// How an S3 archive source starts (`ecr-deployd.source=s3://BUCKET/KEY`).
pub const ARCHIVE_SCHEME: &str = "s3://";

/// What the agent follows: a `repository:tag` in one ECR registry, in a registry of the
/// site's own (SPEC §18, [`ImageRef::site_host`]), or an S3 archive ([`ImageRef::archive`]).
///
/// `registry` is the 12-digit account id and `region` the AWS region when known (events
/// delivered by real AWS carry both, an image from an ECR host names both); `None` means
/// "the account (or region) of our credentials", the [`Home`] registry. For a registry of
/// the site's own, `registry` is its `host[:port]` (never 12 digits) and `region` is `None`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    pub registry: Option<String>,
    pub region: Option<String>,
    pub repository: Repository,
    pub tag: Tag,
}

impl ImageRef {
    pub fn new(registry: Option<String>, repository: Repository, tag: Tag) -> Self {
        Self {
            registry,
            region: None,
            repository,
            tag,
        }
    }

    /// The same reference, in `region` (`None`: the home region).
    pub fn in_region(self, region: Option<String>) -> Self {
        Self { region, ..self }
    }

    /// An S3 archive followed instead of an ECR tag (SPEC §13): `s3://BUCKET/KEY`. It is
    /// kept as repository `s3://BUCKET` and tag `KEY` (no ECR repository has a `:`), so
    /// coalescing, matching, history and notices treat it like any tag.
    pub fn archive(bucket: &str, key: &str) -> Self {
        Self {
            registry: None,
            region: None,
            repository: Repository(format!("{ARCHIVE_SCHEME}{bucket}")),
            tag: Tag(key.to_owned()),
        }
    }

    /// `(bucket, key)` when this follows an S3 archive.
    pub fn archive_location(&self) -> Option<(&str, &str)> {
        let bucket = self.repository.0.strip_prefix(ARCHIVE_SCHEME)?;
        Some((bucket, self.tag.as_str()))
    }

    pub fn is_archive(&self) -> bool {
        self.archive_location().is_some()
    }

    /// An image of the site's own registry at `host` (SPEC §18).
    pub fn site(host: &str, repository: Repository, tag: Tag) -> Self {
        Self::new(Some(host.to_owned()), repository, tag)
    }

    /// The `host[:port]` of the site's own registry this image is in; `None` for ECR and
    /// S3. An account id is 12 digits; a host is anything else.
    pub fn site_host(&self) -> Option<&str> {
        self.registry
            .as_deref()
            .filter(|r| !(r.len() == 12 && r.bytes().all(|b| b.is_ascii_digit())))
    }

    /// Parses `repository[:tag]` (no tag = `latest`), as in the `ecr-deployd.image` label.
    pub fn parse_repo_tag(s: &str) -> Result<Self, String> {
        let (repo, tag) = match s.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, t),
            _ => (s, "latest"),
        };
        Ok(Self::new(None, Repository::parse(repo)?, Tag::parse(tag)?))
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((bucket, key)) = self.archive_location() {
            return write!(f, "{ARCHIVE_SCHEME}{bucket}/{key}");
        }
        if let Some(host) = self.site_host() {
            write!(f, "{host}/")?;
        }
        write!(f, "{}:{}", self.repository.as_str(), self.tag.as_str())
    }
}

/// Splits a reference into the repository part and tag (`latest` when absent), dropping any
/// `@digest`: `host:5000/team/web:prod` → (`host:5000/team/web`, `prod`).
pub fn split_reference(reference: &str) -> (&str, &str) {
    let r = reference.split('@').next().unwrap_or(reference);
    match r.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (r, "latest"),
    }
}

/// Whether two `host[:port]`s name one registry: case-insensitive, `:443` being no port.
pub fn same_host(a: &str, b: &str) -> bool {
    let norm = |h: &str| {
        let h = h.trim().to_ascii_lowercase();
        h.strip_suffix(":443").map(str::to_owned).unwrap_or(h)
    };
    norm(a) == norm(b)
}
