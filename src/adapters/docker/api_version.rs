//! The Engine API version negotiated with the Engine (`1.41` … `1.52`), and the versions whose
//! rules a re-created container follows (moby's `api/docs/CHANGELOG.md`, SPEC §15).

use std::fmt;
use std::str::FromStr;

/// An Engine API version, `major.minor`, ordered as the Engine orders them (`1.9 < 1.41`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    major: u16,
    minor: u16,
}

impl ApiVersion {
    /// Debian 12's Docker 20.10 and Podman's Docker-compatible service.
    pub const V1_41: Self = Self::new(1, 41);
    /// Per-endpoint `MacAddress` (the container-wide `Config.MacAddress` deprecated), every
    /// network at create, health `StartInterval`; Docker 29's default minimum.
    pub const V1_44: Self = Self::new(1, 44);
    /// `Aliases` hold exactly what was submitted: no short id (that is in `DNSNames`).
    pub const V1_45: Self = Self::new(1, 45);
    /// `GwPriority` of an endpoint.
    pub const V1_48: Self = Self::new(1, 48);
    /// The last version whose inspect shows a container's user-set MAC (`Config.MacAddress`).
    pub const V1_51: Self = Self::new(1, 51);
    /// `Config.MacAddress` refused on create, `KernelMemoryTCP` and the top-level
    /// `NetworkSettings` addresses gone (Docker 29).
    pub const V1_52: Self = Self::new(1, 52);

    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }
}

impl FromStr for ApiVersion {
    type Err = String;

    /// `1.41` (a leading `v` is allowed, as in a request path).
    fn from_str(text: &str) -> Result<Self, String> {
        let bare = text.trim().trim_start_matches('v');
        let parsed = bare
            .split_once('.')
            .and_then(|(major, minor)| Some(Self::new(major.parse().ok()?, minor.parse().ok()?)));
        parsed.ok_or_else(|| format!("not an Engine API version: {text:?}"))
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order_by_number_not_by_text() {
        let v: ApiVersion = "1.41".parse().unwrap();
        assert_eq!(v, ApiVersion::V1_41);
        assert_eq!("v1.52".parse::<ApiVersion>().unwrap(), ApiVersion::V1_52);
        assert!(
            "1.9".parse::<ApiVersion>().unwrap() < v,
            "1.9 is older than 1.41"
        );
        assert!(ApiVersion::V1_44 < ApiVersion::V1_45 && ApiVersion::V1_51 < ApiVersion::V1_52);
        assert_eq!(ApiVersion::V1_48.to_string(), "1.48");
        for bad in ["", "1", "one.two", "1.x", "1.41.2"] {
            assert!(bad.parse::<ApiVersion>().is_err(), "{bad}");
        }
    }
}
