//! Pull by digest, then tag: the one Engine call that moves bytes. On the containerd image
//! store two pulls that share layers can race inside the Engine ("failed to commit snapshot
//! …: lease does not exist", a layer's ingest renamed away under it, a tag that "already
//! exists" — or that existed and was gone a moment later, when two deploys of one tag tag it
//! at once), and a pull can race the store's garbage collection after an image was removed
//! (the blob it found a moment ago is gone: "content digest …: not found", or a file of the
//! snapshot it is extracting: "failed to extract layer … no such file or directory"): the
//! pull is asked again a few times before it is reported, and a race that outlasts the
//! attempts is transient (the message stays and the work is tried again), never a failed
//! deploy.

use backon::Retryable;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{CreateImageOptionsBuilder, TagImageOptionsBuilder};
use futures::StreamExt;
use tracing::{debug, warn};

use super::{DockerRuntime, PULL_TIMEOUT, timed};
use crate::event::{Digest, split_reference};
use crate::ports::{PullAuth, RuntimeError};
use crate::retry;

/// Whether an Engine error is one of the containerd store's races (concurrent pulls or tags
/// of shared content, a pull and the collection of a removed image's blobs), which go away
/// when asked again.
pub(super) fn content_store_race(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("lease does not exist")
        || (m.contains("failed to commit snapshot") && m.contains("not found"))
        || (m.contains("failed to extract layer")
            && (m.contains("not found") || m.contains("no such file or directory")))
        || (m.contains("failed commit on ref") && m.contains("no such file or directory"))
        || (m.contains("content digest") && m.contains("not found"))
        || m.contains("already exists")
        || m.contains("alreadyexists")
}

/// Runs `call` again while it answers a content-store race, with the project's policy for a
/// few quick attempts ([`retry::few`]); a race that outlasts them is transient.
pub(super) async fn again_on_race<T, F, Fut>(what: &str, call: F) -> Result<T, RuntimeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, RuntimeError>>,
{
    let answered = call
        .retry(retry::few())
        .when(|e| content_store_race(&e.message))
        .notify(|e, delay| warn!(%what, error = %e.message, retry_in = ?delay, "the Engine's content store raced; asking again"))
        .await;
    answered.map_err(|e| match content_store_race(&e.message) {
        true => RuntimeError::transient(e.operation, e.message),
        false => e,
    })
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
        again_on_race(source, || self.pull_once(source, digest, auth, tag_as)).await
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
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::{again_on_race, content_store_race};
    use crate::ports::RuntimeError;

    /// How many times `again_on_race` asked a call that always answers `error`, and its answer.
    async fn asked_with(error: RuntimeError) -> (u32, RuntimeError) {
        let calls = AtomicU32::new(0);
        let answer = again_on_race("x", || {
            calls.fetch_add(1, Ordering::SeqCst);
            let error = error.clone();
            async move { Err::<(), _>(error) }
        })
        .await;
        (calls.load(Ordering::SeqCst), answer.unwrap_err())
    }

    #[tokio::test(start_paused = true)]
    async fn a_race_is_asked_again_and_one_that_outlasts_the_attempts_is_transient() {
        let raced = RuntimeError {
            status: Some(404),
            ..RuntimeError::permanent(
                "tag image",
                "creating image x:prod failed because it already exists, but accessing it also failed: No such image: x:prod",
            )
        };
        let (calls, e) = asked_with(raced).await;
        assert_eq!(calls, 4, "the first call and three more");
        assert!(e.transient, "{e:?}");
        assert!(e.message.contains("already exists"), "{e:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_real_refusal_is_asked_once_and_answered_as_it_was() {
        let refused = RuntimeError::permanent(
            "pull",
            "Docker responded with status code 404: manifest unknown",
        );
        let (calls, e) = asked_with(refused).await;
        assert_eq!(calls, 1);
        assert!(!e.transient, "{e:?}");
        assert_eq!(
            e.message,
            "Docker responded with status code 404: manifest unknown"
        );
    }

    #[test]
    fn the_containerd_stores_races_are_known_and_real_refusals_are_not() {
        for raced in [
            "Docker stream error: failed to commit snapshot extract-21884246-RlLr sha256:143c: NotFound: lease does not exist: not found",
            "failed to extract layer sha256:1e2f: failed to commit snapshot: not found",
            "Docker responded with status code 500: image \"docker.io/x:y\": already exists",
            "rpc error: code = AlreadyExists desc = image already exists",
            // Docker 28, containerd store: two deploys of one tag tagged it at once.
            "Docker responded with status code 404: creating image 127.0.0.1:46525/team/mac:prod failed because it already exists, but accessing it also failed: No such image: 127.0.0.1:46525/team/mac:prod",
            "Docker stream error: failed commit on ref \"layer-sha256:02bb\": commit failed: rename /d/ingest/b65e/data /d/blobs/sha256/02bb: no such file or directory",
            // Docker 28, containerd store: the pull raced the collection of a removed image's blob.
            "Docker stream error: NotFound: content digest sha256:78bae571: not found",
            // Docker 28, containerd store: a file of the snapshot being extracted vanished
            // (the store's collection after an image was removed, a moment before the pull).
            "Docker stream error: failed to extract layer (application/vnd.docker.image.rootfs.diff.tar.gzip sha256:a655) to overlayfs as \"extract-833223708-Exbp sha256:8862\": failed to Lchown \"/d/snapshots/200/fs/bin/sh\" for UID 0, GID 0: lchown /d/snapshots/200/fs/bin/sh: no such file or directory",
        ] {
            assert!(content_store_race(raced), "{raced}");
        }
        for refused in [
            "Docker responded with status code 404: manifest unknown",
            "Docker stream error: blob unknown: blob unknown to registry",
            "Docker responded with status code 404: No such image: sha256:1e2f",
            "Docker stream error: unauthorized: authentication required",
            "Docker stream error: no matching manifest for linux/amd64 in the manifest list entries",
            "pulled x@sha256:1 but the image's digests are [], not sha256:1",
            // A full disk or a broken layer is not a race.
            "Docker stream error: failed to extract layer sha256:1e2f to overlayfs: write /d/snapshots/9/fs/bin/busybox: no space left on device",
            "Docker stream error: failed to extract layer sha256:1e2f: unexpected EOF",
        ] {
            assert!(!content_store_race(refused), "{refused}");
        }
    }
}
