//! A cosign signature's `critical.identity.docker-reference` (simple signing, SPEC §11)
//! against where the image is: it must name the image's repository, and its registry host must
//! be the image's own registry (`<account>.dkr.ecr.<region>.amazonaws.com`) or the mirror the
//! image is pulled from (`[registry] mirror`/`mirrors`). cosign writes the reference as it was
//! given when signing (`127.0.0.1:5000/team/app`, or `--sign-container-identity`'s value).
//!
//! Read as Docker reads a reference: the first component is a registry host when it holds a
//! `.` or a `:`, is `localhost`, or has an upper-case letter; else the reference is Docker
//! Hub's (`team/app` is `docker.io/team/app`), which is never the image's registry. Hosts are
//! compared without regard to case (DNS names), a port is part of the host, and `:443`
//! (HTTPS's port) is the same as none. Pure.

use crate::model::reference::same_host;

/// Where the image is: its repository, its own registry host, and the host it is pulled
/// from when that is another (the mirror).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub repository: String,
    pub registry: String,
    pub mirror: Option<String>,
}

impl Place {
    /// An image of `repository` at `registry`, pulled from `pull_host`.
    pub fn new(repository: &str, registry: &str, pull_host: &str) -> Self {
        Self {
            repository: repository.to_owned(),
            registry: registry.to_owned(),
            mirror: (!same_host(registry, pull_host)).then(|| pull_host.to_owned()),
        }
    }

    /// Why `reference` does not name this image, or `None` when it does.
    pub fn mismatch(&self, reference: &str) -> Option<String> {
        let (host, path) = split(reference);
        if path != self.repository {
            return Some(format!("another repository ({path})"));
        }
        let hosts = std::iter::once(&self.registry).chain(&self.mirror);
        if hosts.into_iter().any(|h| same_host(h, &host)) {
            return None;
        }
        let host = match reference_host(reference) {
            Some(_) => host,
            None => format!("{host}, as a reference without a host means"),
        };
        Some(format!(
            "another registry host ({host}; the image's registry is {}{})",
            self.registry,
            self.mirror
                .as_ref()
                .map(|m| format!(", its mirror {m}"))
                .unwrap_or_default()
        ))
    }
}

/// The registry host a reference names, when its first component is one.
fn reference_host(reference: &str) -> Option<&str> {
    let (first, _) = reference.split_once('/')?;
    let host = first.contains(['.', ':'])
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase());
    host.then_some(first)
}

/// A docker reference's registry host (Docker Hub's `docker.io` when it names none) and
/// repository path, without tag or digest.
pub fn split(reference: &str) -> (String, &str) {
    let r = reference.split('@').next().unwrap_or(reference);
    let (host, path) = match reference_host(r) {
        Some(host) => (host.to_owned(), &r[host.len() + 1..]),
        None => ("docker.io".to_owned(), r),
    };
    let path = match path.rsplit_once(':') {
        Some((head, tag)) if !tag.contains('/') => head,
        _ => path,
    };
    (host, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECR: &str = "123456789012.dkr.ecr.eu-west-2.amazonaws.com";

    fn place() -> Place {
        Place::new("team/web", ECR, "127.0.0.1:5000")
    }

    #[test]
    fn references_split_into_host_and_path_as_docker_reads_them() {
        for (reference, host, path) in [
            ("127.0.0.1:5000/team/web", "127.0.0.1:5000", "team/web"),
            ("127.0.0.1:5000/team/web:v1", "127.0.0.1:5000", "team/web"),
            (
                "127.0.0.1:5000/team/web@sha256:abc",
                "127.0.0.1:5000",
                "team/web",
            ),
            ("localhost/team/web", "localhost", "team/web"),
            ("[::1]:5000/team/web", "[::1]:5000", "team/web"),
            ("Registry/team/web", "Registry", "team/web"),
            (&format!("{ECR}/team/web"), ECR, "team/web"),
            // No host: Docker Hub's.
            ("team/web", "docker.io", "team/web"),
            ("team/web:v1", "docker.io", "team/web"),
            ("web", "docker.io", "web"),
        ] {
            assert_eq!(split(reference), (host.to_owned(), path), "{reference}");
        }
    }

    #[test]
    fn the_images_registry_and_its_mirror_are_accepted_in_any_case_and_with_https_port() {
        let p = place();
        for ok in [
            format!("{ECR}/team/web"),
            format!("{ECR}:443/team/web"),
            format!("{}/team/web:v1", ECR.to_uppercase()),
            "127.0.0.1:5000/team/web".to_owned(),
            "127.0.0.1:5000/team/web@sha256:abc".to_owned(),
        ] {
            assert_eq!(p.mismatch(&ok), None, "{ok}");
        }
    }

    #[test]
    fn another_host_or_port_or_no_host_is_refused_naming_both_hosts() {
        let p = place();
        for (bad, named) in [
            (
                "210987654321.dkr.ecr.eu-west-2.amazonaws.com/team/web",
                "210987654321.dkr.ecr.eu-west-2.amazonaws.com",
            ),
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/web",
                "us-east-1",
            ),
            ("127.0.0.1:5001/team/web", "127.0.0.1:5001"),
            ("127.0.0.1/team/web", "127.0.0.1;"),
            ("localhost/team/web", "localhost"),
            ("team/web", "docker.io, as a reference without a host means"),
        ] {
            let why = p.mismatch(bad).unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(
                why.starts_with("another registry host")
                    && why.contains(named)
                    && why.contains(ECR)
                    && why.contains("its mirror 127.0.0.1:5000"),
                "{bad}: {why}"
            );
        }
        // The repository is looked at first.
        let why = p.mismatch("127.0.0.1:5000/team/api").unwrap();
        assert_eq!(why, "another repository (team/api)");
    }

    #[test]
    fn without_a_mirror_only_the_images_registry_counts() {
        let p = Place::new("team/web", ECR, &ECR.to_uppercase());
        assert_eq!(p.mirror, None);
        assert_eq!(p.mismatch(&format!("{ECR}/team/web")), None);
        let why = p.mismatch("127.0.0.1:5000/team/web").unwrap();
        assert!(!why.contains("mirror"), "{why}");
        assert!(same_host("Cache:443", "cache") && !same_host("cache:5000", "cache"));
    }
}
