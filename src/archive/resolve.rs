//! Resolving an archive key: S3 says which object the key holds (HeadObject), the store
//! says whether that object was loaded (and gave which image) or refused; a new object is
//! streamed from S3 into the Engine's image load and checked on the way
//! ([`super::verdict`]). The answer is the image id, as a [`Desired`] digest, so the deploy
//! stage treats an archive like a tag: up to date, blocked, held, swapped, rolled back.
//!
//! Nothing is stopped before this answers, so a refused archive leaves every container as
//! it was. One load per key at a time; each object is loaded once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use futures::StreamExt;
use sha2::{Digest as _, Sha256};
use tracing::{info, warn};

use super::{NOT_LOADED, ObjectFacts, REFUSED, Refusal, Streamed, verdict};
use crate::event::{Digest, ImageRef};
use crate::image::Desired;
use crate::notify::{HeldNotice, Notice, Notifier};
use crate::ports::{Archives, Managed, Registry, RemoteError, Resolution, Runtime, RuntimeError};
use crate::store::{ArchiveLoad, Store};

/// Resolves `s3://` sources for the [`Registry`] seam (see [`super::sources`]).
pub struct ArchiveResolver<A, RT> {
    archives: Arc<A>,
    runtime: Arc<RT>,
    store: Arc<Store>,
    notifier: Notifier,
    mirror: Option<String>,
    locks: Mutex<HashMap<ImageRef, Arc<tokio::sync::Mutex<()>>>>,
}

impl<A: Archives, RT: Runtime> ArchiveResolver<A, RT> {
    pub fn new(archives: Arc<A>, runtime: Arc<RT>, store: Arc<Store>) -> Self {
        Self {
            archives,
            runtime,
            store,
            notifier: Notifier::disabled(),
            mirror: None,
            locks: Mutex::default(),
        }
    }

    /// Tells the containers' operators about refused archives.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// The registry mirror, as the deploy stage has it (to list the managed containers).
    pub fn with_mirror(mut self, mirror: Option<String>) -> Self {
        self.mirror = mirror;
        self
    }

    /// What `image`'s key holds now, loaded when new unless `peek` (then it is reported).
    async fn resolve_one(&self, image: &ImageRef, peek: bool) -> Resolution {
        let Some((bucket, key)) = image.archive_location() else {
            return Ok(None);
        };
        let Some(facts) = self.archives.head(bucket, key).await? else {
            return Ok(None);
        };
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            locks.entry(image.clone()).or_default().clone()
        };
        let _one_load_per_key = lock.lock().await;
        let object = facts.describe(bucket, key);
        match self
            .store
            .archive_load(bucket, key, &facts)
            .map_err(store)?
        {
            Some(ArchiveLoad::Image(id))
                if self.runtime.has_image(&id).await.map_err(engine)? =>
            {
                return desired(&id);
            }
            Some(ArchiveLoad::Refused(why)) => return Err(refused(&object, &why)),
            _ => {}
        }
        if peek {
            return Err(RemoteError {
                operation: NOT_LOADED,
                message: format!("{object} is not loaded yet"),
                transient: false,
            });
        }
        // The rule delivers every upload under the prefix (`app-<sha>.tar.xz` beside
        // `app-latest.tar.xz`): only a key a container follows is worth a download.
        let followers = self.followers(image).await;
        if followers.is_empty() {
            info!(%object, "no container follows this key; not loaded");
            return Ok(None);
        }
        let id = self.load(image, &followers, &facts, &object).await?;
        desired(&id)
    }

    /// Streams the object into the Engine and checks it; records what it came to.
    async fn load(
        &self,
        image: &ImageRef,
        followers: &[Managed],
        facts: &ObjectFacts,
        object: &str,
    ) -> Result<String, RemoteError> {
        let (bucket, key) = image.archive_location().unwrap_or_default();
        let started = Instant::now();
        let body = self.archives.open(bucket, key, facts).await?;
        let tally: Arc<Mutex<Tally>> = Arc::default();
        let seen = tally.clone();
        let counted = body
            .inspect(move |chunk| {
                let mut t = seen.lock().unwrap_or_else(PoisonError::into_inner);
                match chunk {
                    Ok(bytes) => {
                        t.bytes += bytes.len() as u64;
                        t.hasher.update(bytes);
                    }
                    Err(e) => t.read_error = Some(e.to_string()),
                }
            })
            .boxed();
        let loaded = self.runtime.load(counted).await;
        // Loading may move names (the archive's own tags) onto the new image: until a swap,
        // each follower's image reference names what it runs.
        self.restore_tags(followers).await;
        let streamed =
            std::mem::take(&mut *tally.lock().unwrap_or_else(PoisonError::into_inner)).finish();
        let reported = loaded.clone().map_err(|e| (e.to_string(), e.transient));
        match verdict(facts, &streamed, reported) {
            Ok(id) => {
                info!(%object, image = %id, bytes = streamed.bytes, took_ms = started.elapsed().as_millis() as u64, "archive loaded");
                let load = ArchiveLoad::Image(id.clone());
                self.store
                    .record_archive_load(bucket, key, facts, &load)
                    .map_err(store)?;
                Ok(id)
            }
            Err(Refusal::Transient(why)) => Err(RemoteError {
                operation: "load S3 archive",
                message: format!("{object}: {why}"),
                transient: true,
            }),
            Err(Refusal::Refused(why)) => {
                warn!(%object, reason = %why, "archive refused; nothing deployed");
                let load = ArchiveLoad::Refused(why.clone());
                self.store
                    .record_archive_load(bucket, key, facts, &load)
                    .map_err(store)?;
                self.notify_refused(
                    image,
                    followers,
                    &streamed.sha256,
                    &format!("{object}: {why}"),
                );
                Err(refused(object, &why))
            }
        }
    }

    /// Each follower's image reference names its running image again (a load may have
    /// moved it to the loaded image).
    async fn restore_tags(&self, followers: &[Managed]) {
        for c in followers {
            let Some(running) = c.running() else { continue };
            if c.image.starts_with("sha256:") {
                continue;
            }
            if let Err(e) = self.runtime.tag(running.as_str(), &c.image).await {
                warn!(container = %c.name, error = %e, "could not tag the running image back");
            }
        }
    }

    async fn followers(&self, image: &ImageRef) -> Vec<Managed> {
        match self.runtime.managed(self.mirror.as_deref()).await {
            Ok(all) => all
                .into_iter()
                .filter(|c| image.matches(&c.follows))
                .collect(),
            Err(e) => {
                warn!(error = %e, "could not list the containers that follow a refused archive");
                Vec::new()
            }
        }
    }

    /// One `refused` notice per follower and object (a refused object is not tried again).
    fn notify_refused(&self, image: &ImageRef, followers: &[Managed], sha256: &str, why: &str) {
        for c in followers {
            self.notifier.send(Notice::Held(HeldNotice {
                host: self.notifier.host().to_owned(),
                kind: "container",
                container: c.name.clone(),
                repository: image.repository.as_str().to_owned(),
                tag: image.tag.as_str().to_owned(),
                running_digest: c.running().map(Digest::to_string),
                desired_digest: format!("sha256:{sha256}"),
                state: crate::deploy::hold::REFUSED,
                detail: why.to_owned(),
            }));
        }
    }
}

impl<A: Archives, RT: Runtime> ArchiveResolver<A, RT> {
    async fn resolve_all(&self, images: &[ImageRef], peek: bool) -> HashMap<ImageRef, Resolution> {
        let each = images
            .iter()
            .map(|i| async move { (i.clone(), self.resolve_one(i, peek).await) });
        futures::future::join_all(each).await.into_iter().collect()
    }
}

impl<A: Archives, RT: Runtime> Registry for ArchiveResolver<A, RT> {
    async fn resolve(&self, images: &[ImageRef]) -> HashMap<ImageRef, Resolution> {
        self.resolve_all(images, false).await
    }

    async fn peek(&self, images: &[ImageRef]) -> HashMap<ImageRef, Resolution> {
        self.resolve_all(images, true).await
    }
}

/// The bytes streamed so far and their hash.
#[derive(Default)]
struct Tally {
    bytes: u64,
    hasher: Sha256,
    read_error: Option<String>,
}

impl Tally {
    fn finish(self) -> Streamed {
        let sha256 = self
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Streamed {
            bytes: self.bytes,
            sha256,
            read_error: self.read_error,
        }
    }
}

fn desired(id: &str) -> Resolution {
    Digest::parse(id)
        .map(|d| Some(Desired::single(d)))
        .map_err(|e| RemoteError {
            operation: "load S3 archive",
            message: format!("the Engine reported an image id that is not a digest: {e}"),
            transient: false,
        })
}

fn refused(object: &str, why: &str) -> RemoteError {
    RemoteError {
        operation: REFUSED,
        message: format!("{object}: {why}"),
        transient: false,
    }
}

fn store(e: crate::store::StoreError) -> RemoteError {
    RemoteError {
        operation: "state store",
        message: e.to_string(),
        transient: true,
    }
}

fn engine(e: RuntimeError) -> RemoteError {
    RemoteError {
        operation: "inspect image",
        message: e.to_string(),
        transient: e.transient,
    }
}

#[cfg(test)]
mod tests;
