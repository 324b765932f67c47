//! Where "what should run" comes from: ECR for `repository:tag`, S3 for `s3://` archives,
//! and a registry of the site's own for its images (SPEC §18). One [`Registry`] to the
//! reconcile stage and the sweep, which never tell them apart.

use std::collections::HashMap;

use crate::event::ImageRef;
use crate::ports::{Registry, Resolution};

/// ECR tags go to `ecr`, archive keys to `archives`, tags of `[[registries]]` to `sites`.
pub struct Sources<E, S, T> {
    pub ecr: E,
    pub archives: S,
    pub sites: T,
}

impl<E: Registry, S: Registry, T: Registry> Registry for Sources<E, S, T> {
    async fn resolve(&self, images: &[ImageRef]) -> HashMap<ImageRef, Resolution> {
        self.either(images, false).await
    }

    async fn peek(&self, images: &[ImageRef]) -> HashMap<ImageRef, Resolution> {
        self.either(images, true).await
    }
}

impl<E: Registry, S: Registry, T: Registry> Sources<E, S, T> {
    async fn either(&self, images: &[ImageRef], peek: bool) -> HashMap<ImageRef, Resolution> {
        let (archives, tags): (Vec<ImageRef>, Vec<ImageRef>) =
            images.iter().cloned().partition(ImageRef::is_archive);
        let (sites, tags): (Vec<ImageRef>, Vec<ImageRef>) =
            tags.into_iter().partition(|i| i.site_host().is_some());
        let from_sites = async {
            match sites.is_empty() {
                true => HashMap::new(),
                false => self.sites.resolve(&sites).await,
            }
        };
        let from_ecr = async {
            match tags.is_empty() {
                true => HashMap::new(),
                false => self.ecr.resolve(&tags).await,
            }
        };
        let from_s3 = async {
            match (archives.is_empty(), peek) {
                (true, _) => HashMap::new(),
                (false, true) => self.archives.peek(&archives).await,
                (false, false) => self.archives.resolve(&archives).await,
            }
        };
        let (mut all, s3, site) = futures::join!(from_ecr, from_s3, from_sites);
        all.extend(s3);
        all.extend(site);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{OneTag, digest};

    fn fixed(c: char) -> OneTag {
        OneTag::new(digest(c))
    }

    #[tokio::test]
    async fn tags_go_to_ecr_archive_keys_to_s3_and_site_tags_to_their_registry_each_once() {
        let sources = Sources {
            ecr: fixed('a'),
            archives: fixed('b'),
            sites: fixed('c'),
        };
        let tag = ImageRef::parse_repo_tag("team/app:prod").unwrap();
        let archive = ImageRef::archive("releases", "app-latest.tar.xz");
        let site = ImageRef::site(
            "registry.site:5000",
            tag.repository.clone(),
            tag.tag.clone(),
        );
        let got = sources
            .resolve(&[tag.clone(), archive.clone(), site.clone()])
            .await;
        assert_eq!(got.len(), 3);
        let found = |i: &ImageRef| got[i].as_ref().unwrap().as_ref().unwrap().digest.clone();
        assert_eq!(found(&tag), digest('a'));
        assert_eq!(found(&archive), digest('b'));
        assert_eq!(found(&site), digest('c'));
        assert_eq!(sources.ecr.asked(), vec![tag]);
        assert_eq!(sources.archives.asked(), vec![archive]);
        assert_eq!(sources.sites.asked(), vec![site]);
    }
}
