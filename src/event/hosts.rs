//! Registry hosts (SPEC §3, §4): which ECR registry (account and region) an image reference
//! names, the registry of the agent's credentials ([`Home`]), the host an image is pulled
//! from ([`Mirrors`]), and the registries of the site's own (SPEC §18). Pure.

use std::collections::{BTreeMap, BTreeSet};

use super::{ImageRef, Repository, Tag, same_host};

/// The account id and region of an ECR registry host, e.g.
/// `123456789012.dkr.ecr.eu-west-2.amazonaws.com`.
fn ecr_host(host: &str) -> Option<(&str, &str)> {
    let (account, rest) = host.split_once('.')?;
    let region_and_suffix = rest.strip_prefix("dkr.ecr.")?;
    let region = region_and_suffix
        .strip_suffix(".amazonaws.com")
        .or_else(|| region_and_suffix.strip_suffix(".amazonaws.com.cn"))?;
    let valid_region = !region.is_empty() && !region.contains('.');
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && valid_region)
        .then_some((account, region))
}

/// The ECR registry host of `account` in `region` (China's regions have their own suffix).
fn ecr_host_of(account: &str, region: &str) -> String {
    let suffix = match region.starts_with("cn-") {
        true => "amazonaws.com.cn",
        false => "amazonaws.com",
    };
    format!("{account}.dkr.ecr.{region}.{suffix}")
}

/// Whether `host` is an ECR registry's host.
pub fn is_ecr_host(host: &str) -> bool {
    ecr_host(host).is_some()
}

/// The registry of this agent's credentials (from GetAuthorizationToken's endpoint): a
/// followed image or an event that names no account or region is in it (SPEC §4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Home {
    pub account: Option<String>,
    pub region: Option<String>,
}

impl Home {
    /// The home of an ECR registry host; unknown parts for any other host.
    pub fn of_registry_host(host: &str) -> Self {
        match ecr_host(host) {
            Some((account, region)) => Self {
                account: Some(account.to_owned()),
                region: Some(region.to_owned()),
            },
            None => Self::default(),
        }
    }
}

/// Where images are pulled from (`[registry] mirror` and `mirrors`, SPEC §3), and the hosts
/// of `[[registries]]` (SPEC §18), whose images are their own source and never mirrored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mirrors {
    /// `mirror`: the images of every ECR registry are pulled from this host.
    pub all: Option<String>,
    /// `mirrors`: ECR registry host → the host its images are pulled from; wins over `all`.
    pub by_host: BTreeMap<String, String>,
    /// `[[registries]] host`s: registries of the site's own.
    pub sites: BTreeSet<String>,
}

impl Mirrors {
    /// One mirror for every registry (or none).
    pub fn single(mirror: Option<&str>) -> Self {
        Self {
            all: mirror.map(str::to_owned),
            ..Self::default()
        }
    }

    /// The same, with the registries of the site's own at `hosts`.
    pub fn with_sites<'a>(mut self, hosts: impl IntoIterator<Item = &'a str>) -> Self {
        self.sites = hosts.into_iter().map(str::to_owned).collect();
        self
    }

    /// The ECR registry host of `image`: its own account and region, a part it leaves
    /// unnamed being that of `home_host` (the credentials' registry). A home that is not an
    /// ECR host (a test endpoint) is kept as it is for an image that names neither part.
    /// An image of the site's own registry is at that registry's host.
    pub fn registry_host(image: &ImageRef, home_host: &str) -> String {
        if let Some(host) = image.site_host() {
            return host.to_owned();
        }
        let home = ecr_host(home_host);
        let account = image.registry.as_deref().or(home.map(|h| h.0));
        let region = image.region.as_deref().or(home.map(|h| h.1));
        match (account, region) {
            (Some(a), Some(r)) if image.registry.is_some() || image.region.is_some() => {
                ecr_host_of(a, r)
            }
            _ => home_host.to_owned(),
        }
    }

    /// The host `image` is pulled (and its signatures fetched) from: the mirror of its
    /// registry, else the mirror of all, else its registry itself. A registry of the site's
    /// own is never mirrored.
    pub fn pull_host(&self, image: &ImageRef, home_host: &str) -> String {
        if let Some(host) = image.site_host() {
            return host.to_owned();
        }
        let registry = Self::registry_host(image, home_host);
        self.by_host
            .get(&registry)
            .or(self.all.as_ref())
            .cloned()
            .unwrap_or(registry)
    }

    /// The ECR registry a configured image's `host` stands for: `Some((account, region))`
    /// for an ECR host or the mirror of one; `Some(None)` for the mirror of all (the home
    /// registry); `None` for any other host.
    fn origin(&self, host: &str) -> Option<Option<(String, String)>> {
        if let Some((account, region)) = ecr_host(host) {
            return Some(Some((account.to_owned(), region.to_owned())));
        }
        let mirrored = self.by_host.iter().find(|(_, m)| m.as_str() == host);
        if let Some((registry, _)) = mirrored {
            let (account, region) = ecr_host(registry)?;
            return Some(Some((account.to_owned(), region.to_owned())));
        }
        (self.all.as_deref() == Some(host)).then_some(None)
    }

    /// `(host, rest)` when `reference` is `host/rest` with `host` a registry of the site's
    /// own (compared as Docker does: case-insensitive, `:443` the same as no port).
    fn site_of<'r>(&self, reference: &'r str) -> Option<(&str, &'r str)> {
        let (host, rest) = reference.split_once('/')?;
        let host = self.sites.iter().find(|s| same_host(s, host))?;
        Some((host.as_str(), rest))
    }
}

/// `repository[:tag]` at the site's own registry `host`.
fn site_image(host: &str, rest: &str) -> Result<ImageRef, String> {
    let (repository, tag) = super::split_reference(rest);
    Ok(ImageRef::site(
        host,
        Repository::parse_distribution(repository)?,
        Tag::parse(tag)?,
    ))
}

/// `ecr-deployd.image` label value or the container's configured image reference → what it
/// follows. The configured reference must name an ECR registry host
/// (`<account>.dkr.ecr.<region>.amazonaws.com`), a configured mirror (a registry's own
/// mirror stands for that registry; the mirror of all for the home registry) or a registry
/// of the site's own (`[[registries]]`). A label names `repository:tag` in the home ECR
/// registry, or `host/repository:tag` in a registry of the site's own.
pub fn follows(
    configured: &str,
    label: Option<&str>,
    mirrors: &Mirrors,
) -> Result<ImageRef, String> {
    if let Some(label) = label {
        return match mirrors.site_of(label) {
            Some((host, rest)) => site_image(host, rest),
            None => ImageRef::parse_repo_tag(label),
        }
        .map_err(|e| format!("label ecr-deployd.image: {e}"));
    }
    let without_digest = configured.split('@').next().unwrap_or(configured);
    if let Some((host, rest)) = mirrors.site_of(without_digest) {
        return site_image(host, rest);
    }
    let Some((host, rest)) = without_digest.split_once('/') else {
        return Err(format!("image {configured:?} has no registry host"));
    };
    let Some(origin) = mirrors.origin(host) else {
        return Err(format!(
            "image {configured:?} is neither from an ECR registry, a mirror nor a [[registries]] host; set the ecr-deployd.image label"
        ));
    };
    let mut image = ImageRef::parse_repo_tag(rest)?;
    let (registry, region) = origin.unzip();
    image.registry = registry;
    Ok(image.in_region(region))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: &str = "123456789012.dkr.ecr.eu-west-2.amazonaws.com";
    const OTHER: &str = "210987654321.dkr.ecr.us-east-1.amazonaws.com";

    #[test]
    fn an_image_is_pulled_from_its_own_registry_or_that_registrys_mirror() {
        let mirrors = Mirrors {
            all: Some("cache:5000".into()),
            by_host: [(OTHER.to_owned(), "other-cache:5000".to_owned())].into(),
            ..Default::default()
        };
        let none = Mirrors::default();
        let cross = follows(&format!("{OTHER}/team/api:prod"), None, &none).unwrap();
        let bare = ImageRef::parse_repo_tag("team/api:prod").unwrap();
        let home_in_other_region = bare.clone().in_region(Some("us-east-1".into()));
        // No mirror: the image's own account and region, not the credentials' endpoint.
        assert_eq!(none.pull_host(&cross, HOME), OTHER);
        assert_eq!(none.pull_host(&bare, HOME), HOME);
        assert_eq!(
            none.pull_host(&home_in_other_region, HOME),
            "123456789012.dkr.ecr.us-east-1.amazonaws.com"
        );
        // That registry's mirror wins over the mirror of all.
        assert_eq!(mirrors.pull_host(&cross, HOME), "other-cache:5000");
        assert_eq!(mirrors.pull_host(&bare, HOME), "cache:5000");
        // A home that is not an ECR host (tests) stays as it is.
        assert_eq!(none.pull_host(&bare, "127.0.0.1:5000"), "127.0.0.1:5000");
        let china = bare.clone().in_region(Some("cn-north-1".into()));
        assert_eq!(
            none.pull_host(&china, HOME),
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn a_mirrors_image_follows_the_registry_it_mirrors() {
        let mirrors = Mirrors {
            all: Some("cache:5000".into()),
            by_host: [(OTHER.to_owned(), "other-cache:5000".to_owned())].into(),
            ..Default::default()
        };
        let via = follows("other-cache:5000/team/api:prod", None, &mirrors).unwrap();
        assert_eq!(via.registry.as_deref(), Some("210987654321"));
        assert_eq!(via.region.as_deref(), Some("us-east-1"));
        let all = follows("cache:5000/team/api:prod", None, &mirrors).unwrap();
        assert_eq!((all.registry, all.region), (None, None));
        let err = follows("elsewhere:5000/team/api:prod", None, &mirrors).unwrap_err();
        assert!(err.contains("a mirror nor a [[registries]] host"), "{err}");
        assert!(is_ecr_host(OTHER) && !is_ecr_host("cache:5000"));
    }

    #[test]
    fn an_image_of_a_registry_of_the_sites_own_is_its_own_source_never_mirrored() {
        let mirrors =
            Mirrors::single(Some("cache:5000")).with_sites(["Registry.Site:5000", "hub.site"]);
        // By the configured reference, whatever the case, with or without a digest.
        let image = follows("registry.site:5000/team/api:prod@sha256:ab", None, &mirrors).unwrap();
        assert_eq!(image.site_host(), Some("Registry.Site:5000"));
        assert_eq!(image.to_string(), "Registry.Site:5000/team/api:prod");
        assert_eq!(mirrors.pull_host(&image, HOME), "Registry.Site:5000");
        assert_eq!(Mirrors::registry_host(&image, HOME), "Registry.Site:5000");
        // `:443` is the same registry as no port.
        let https = follows("hub.site:443/lib/app", None, &mirrors).unwrap();
        assert_eq!(
            (https.site_host(), https.tag.as_str()),
            (Some("hub.site"), "latest")
        );
        // By the label: `host/repository:tag`; without a configured host it is an ECR repository.
        let labelled = follows("x", Some("hub.site/lib/app:v2"), &mirrors).unwrap();
        assert_eq!(labelled.site_host(), Some("hub.site"));
        let ecr = follows("x", Some("lib/app:v2"), &mirrors).unwrap();
        assert_eq!(ecr.site_host(), None);
        // The distribution grammar, wider than ECR's: `__`, runs of `-`, one character.
        let wide = follows("hub.site/my__team/a--b/x:1", None, &mirrors).unwrap();
        assert_eq!(wide.repository.as_str(), "my__team/a--b/x");
        for bad in [
            "hub.site/Team/app",
            "hub.site/a___b",
            "hub.site/-a",
            "hub.site/a/",
        ] {
            assert!(follows(bad, None, &mirrors).is_err(), "{bad}");
        }
        // Another host is still refused, naming what to configure.
        let err = follows("other.site/lib/app", None, &mirrors).unwrap_err();
        assert!(err.contains("[[registries]]"), "{err}");
        // A 12-digit account is never taken for a host, and an ECR image is no site image.
        let cross = follows(&format!("{OTHER}/team/api:prod"), None, &mirrors).unwrap();
        assert_eq!(cross.site_host(), None);
        assert!(!image.matches(&cross) && !cross.matches(&image));
    }
}
