//! Pull by digest, then tag: the one Engine call that moves bytes. On the containerd image
//! store two pulls that share layers can race inside the Engine ("failed to commit snapshot
//! …: lease does not exist", a layer's ingest renamed away under it, a tag that "already
//! exists"): the pull is asked again a few
//! times before it is reported, and a race that outlasts the attempts is transient (the
//! message stays and the work is tried again), never a failed deploy.

use bollard::auth::DockerCredentials;
use bollard::query_parameters::{CreateImageOptionsBuilder, TagImageOptionsBuilder};
use futures::StreamExt;
use tracing::{debug, warn};

use super::{DockerRuntime, PULL_TIMEOUT, timed};
use crate::event::{Digest, split_reference};
use crate::ports::{PullAuth, RuntimeError};

/// Attempts of one pull or tag when the Engine's content store races with itself.
const ATTEMPTS: u32 = 4;
/// The wait before the second attempt; doubled before each further one.
const FIRST_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// Whether an Engine error is one of the containerd store's races between concurrent pulls
/// or tags of shared content, which go away when asked again.
pub(super) fn content_store_race(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("lease does not exist")
        || (m.contains("failed to commit snapshot") && m.contains("not found"))
        || (m.contains("failed to extract layer") && m.contains("not found"))
        || (m.contains("failed commit on ref") && m.contains("no such file or directory"))
        || m.contains(": already exists")
        || m.contains("alreadyexists")
}

impl DockerRuntime {
    /// Pulls `source` (a name@digest), checks the Engine holds `digest`, tags it `tag_as`.
    pub(super) async fn pull_by_digest(
        &self,
        source: &str,
        digest: &Digest,
        auth: &PullAuth,
        tag_as: &str,
    ) -> Result<(), RuntimeError> {
        let mut wait = FIRST_WAIT;
        for attempt in 1..=ATTEMPTS {
            match self.pull_once(source, digest, auth, tag_as).await {
                Err(e) if content_store_race(&e.message) => {
                    if attempt == ATTEMPTS {
                        return Err(RuntimeError::transient(e.operation, e.message));
                    }
                    warn!(%source, attempt, error = %e.message, "the Engine's content store raced; pulling again");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                other => return other,
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn pull_once(
        &self,
        source: &str,
        digest: &Digest,
        auth: &PullAuth,
        tag_as: &str,
    ) -> Result<(), RuntimeError> {
        let docker = self.docker().await?;
        let host = source.split('/').next().unwrap_or_default();
        // An anonymous registry of the site's own (no user name) gets no credentials.
        let credentials = (!auth.username.is_empty()).then(|| DockerCredentials {
            username: Some(auth.username.clone()),
            password: Some(auth.password.clone()),
            serveraddress: Some(host.to_owned()),
            ..Default::default()
        });
        let options = CreateImageOptionsBuilder::new().from_image(source).build();
        let pulled = async {
            let mut stream = docker.create_image(Some(options), None, credentials);
            while let Some(item) = stream.next().await {
                item?;
            }
            Ok(())
        };
        timed("pull", PULL_TIMEOUT, pulled).await?;
        let image = self
            .inspect_image_facts("inspect pulled image", source)
            .await?;
        let digests = image.repo_digests.unwrap_or_default();
        if !digests.iter().any(|d| d.ends_with(&format!("@{digest}"))) {
            return Err(RuntimeError::permanent(
                "pull",
                format!("pulled {source} but the image's digests are {digests:?}, not {digest}"),
            ));
        }
        let (repo, tag) = split_reference(tag_as);
        let options = TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
        timed(
            "tag image",
            self.call_timeout,
            docker.tag_image(source, Some(options)),
        )
        .await?;
        debug!(%source, %tag_as, "pulled and tagged");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::content_store_race;

    #[test]
    fn the_containerd_stores_races_are_known_and_real_refusals_are_not() {
        for raced in [
            "Docker stream error: failed to commit snapshot extract-21884246-RlLr sha256:143c: NotFound: lease does not exist: not found",
            "failed to extract layer sha256:1e2f: failed to commit snapshot: not found",
            "Docker responded with status code 500: image \"docker.io/x:y\": already exists",
            "rpc error: code = AlreadyExists desc = image already exists",
            "Docker stream error: failed commit on ref \"layer-sha256:02bb\": commit failed: rename /d/ingest/b65e/data /d/blobs/sha256/02bb: no such file or directory",
        ] {
            assert!(content_store_race(raced), "{raced}");
        }
        for refused in [
            "Docker responded with status code 404: manifest unknown",
            "Docker stream error: unauthorized: authentication required",
            "Docker stream error: no matching manifest for linux/amd64 in the manifest list entries",
            "pulled x@sha256:1 but the image's digests are [], not sha256:1",
        ] {
            assert!(!content_store_race(refused), "{refused}");
        }
    }
}
