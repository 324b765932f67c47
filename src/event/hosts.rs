//! Registry hosts (SPEC §3, §4): which ECR registry (account and region) an image reference
//! names, the registry of the agent's credentials ([`Home`]), and the host an image is pulled
//! from ([`Mirrors`]). Pure.

use std::collections::BTreeMap;

use super::ImageRef;

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

/// Where images are pulled from (`[registry] mirror` and `mirrors`, SPEC §3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mirrors {
    /// `mirror`: the images of every ECR registry are pulled from this host.
    pub all: Option<String>,
    /// `mirrors`: ECR registry host → the host its images are pulled from; wins over `all`.
    pub by_host: BTreeMap<String, String>,
}

impl Mirrors {
    /// One mirror for every registry (or none).
    pub fn single(mirror: Option<&str>) -> Self {
        Self {
            all: mirror.map(str::to_owned),
            by_host: BTreeMap::new(),
        }
    }

    /// The ECR registry host of `image`: its own account and region, a part it leaves
    /// unnamed being that of `home_host` (the credentials' registry). A home that is not an
    /// ECR host (a test endpoint) is kept as it is for an image that names neither part.
    pub fn registry_host(image: &ImageRef, home_host: &str) -> String {
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
    /// registry, else the mirror of all, else its registry itself.
    pub fn pull_host(&self, image: &ImageRef, home_host: &str) -> String {
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
}

/// `ecr-deployd.image` label value or the container's configured image reference → what it
/// follows. The configured reference must name an ECR registry host
/// (`<account>.dkr.ecr.<region>.amazonaws.com`) or a configured mirror (a registry's own
/// mirror stands for that registry; the mirror of all for the home registry).
pub fn follows(
    configured: &str,
    label: Option<&str>,
    mirrors: &Mirrors,
) -> Result<ImageRef, String> {
    if let Some(label) = label {
        return ImageRef::parse_repo_tag(label)
            .map_err(|e| format!("label ecr-deployd.image: {e}"));
    }
    let without_digest = configured.split('@').next().unwrap_or(configured);
    let Some((host, rest)) = without_digest.split_once('/') else {
        return Err(format!("image {configured:?} has no registry host"));
    };
    let Some(origin) = mirrors.origin(host) else {
        return Err(format!(
            "image {configured:?} is neither from an ECR registry nor from a mirror; set the ecr-deployd.image label"
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
        };
        let via = follows("other-cache:5000/team/api:prod", None, &mirrors).unwrap();
        assert_eq!(via.registry.as_deref(), Some("210987654321"));
        assert_eq!(via.region.as_deref(), Some("us-east-1"));
        let all = follows("cache:5000/team/api:prod", None, &mirrors).unwrap();
        assert_eq!((all.registry, all.region), (None, None));
        let err = follows("elsewhere:5000/team/api:prod", None, &mirrors).unwrap_err();
        assert!(err.contains("nor from a mirror"), "{err}");
        assert!(is_ecr_host(OTHER) && !is_ecr_host("cache:5000"));
    }
}
