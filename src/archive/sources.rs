//! Where "what should run" comes from: ECR for `repository:tag`, S3 for `s3://` archives.
//! One [`Registry`] to the reconcile stage and the sweep, which never tell them apart.

use std::collections::HashMap;

use crate::event::ImageRef;
use crate::ports::{Registry, Resolution};

/// ECR tags go to `ecr`, archive keys to `archives` (`None`: no archives on this host,
/// and an archive key resolves to an error saying so).
pub struct Sources<E, S> {
    pub ecr: E,
    pub archives: Option<S>,
}

impl<E: Registry, S: Registry> Registry for Sources<E, S> {
    async fn resolve(&self, images: &[ImageRef]) -> HashMap<ImageRef, Resolution> {
        self.either(images, false).await
    }

    async fn peek(&self, images: &[ImageRef]) -> HashMap<ImageRef, Resolution> {
        self.either(images, true).await
    }
}

impl<E: Registry, S: Registry> Sources<E, S> {
    async fn either(&self, images: &[ImageRef], peek: bool) -> HashMap<ImageRef, Resolution> {
        let (archives, tags): (Vec<ImageRef>, Vec<ImageRef>) =
            images.iter().cloned().partition(ImageRef::is_archive);
        let from_ecr = async {
            match tags.is_empty() {
                true => HashMap::new(),
                false => self.ecr.resolve(&tags).await,
            }
        };
        let from_s3 = async {
            match (&self.archives, archives.is_empty()) {
                (_, true) => HashMap::new(),
                (Some(s3), false) if peek => s3.peek(&archives).await,
                (Some(s3), false) => s3.resolve(&archives).await,
                (None, false) => archives
                    .into_iter()
                    .map(|a| {
                        let e = crate::ports::RemoteError {
                            operation: "S3 archive",
                            message: format!("{a}: this agent reads no S3 archives"),
                            transient: false,
                        };
                        (a, Err(e))
                    })
                    .collect(),
            }
        };
        let (mut all, s3) = futures::join!(from_ecr, from_s3);
        all.extend(s3);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Digest;
    use crate::image::Desired;
    use std::sync::Mutex;

    /// Answers every image with `digest` and remembers what it was asked.
    struct Fixed(Digest, Mutex<Vec<ImageRef>>);

    impl Registry for Fixed {
        async fn resolve(&self, images: &[ImageRef]) -> HashMap<ImageRef, Resolution> {
            self.1.lock().unwrap().extend(images.iter().cloned());
            images
                .iter()
                .map(|i| (i.clone(), Ok(Some(Desired::single(self.0.clone())))))
                .collect()
        }
    }

    fn fixed(c: char) -> Fixed {
        Fixed(
            Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap(),
            Mutex::default(),
        )
    }

    #[tokio::test]
    async fn tags_go_to_ecr_and_archive_keys_to_s3_each_once() {
        let sources = Sources {
            ecr: fixed('a'),
            archives: Some(fixed('b')),
        };
        let tag = ImageRef::parse_repo_tag("team/app:prod").unwrap();
        let archive = ImageRef::archive("releases", "app-latest.tar.xz");
        let got = sources.resolve(&[tag.clone(), archive.clone()]).await;
        assert_eq!(got.len(), 2);
        let digest = |i: &ImageRef| got[i].as_ref().unwrap().as_ref().unwrap().digest.clone();
        assert_eq!(digest(&tag), sources.ecr.0);
        assert_eq!(digest(&archive), sources.archives.as_ref().unwrap().0);
        assert_eq!(*sources.ecr.1.lock().unwrap(), vec![tag]);
        assert_eq!(
            *sources.archives.as_ref().unwrap().1.lock().unwrap(),
            vec![archive]
        );
    }

    #[tokio::test]
    async fn without_archives_an_archive_key_is_an_error_that_says_so() {
        let sources: Sources<Fixed, Fixed> = Sources {
            ecr: fixed('a'),
            archives: None,
        };
        let archive = ImageRef::archive("releases", "app.tar");
        let got = sources.resolve(std::slice::from_ref(&archive)).await;
        let e = got[&archive].clone().unwrap_err();
        assert!(e.message.contains("reads no S3 archives"), "{e}");
        assert!(sources.ecr.1.lock().unwrap().is_empty());
    }
}
