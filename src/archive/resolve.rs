//! Resolving an archive key: S3 says which object the key holds (HeadObject), the store
//! says whether that object was loaded (and gave which image) or refused; a new object is
//! checked against `[archives]` before anything is downloaded ([`super::precheck`]), then
//! streamed from S3 into the Engine's image load without its names ([`super::body`]) and
//! checked on the way ([`super::verdict`]). The answer is the image id, as a [`Desired`]
//! digest, so the deploy stage treats an archive like a tag: up to date, blocked, held,
//! swapped (which names the image as the container's image), rolled back.
//!
//! The Engine applies no name of the archive's, so a refused archive moves no tag; an image
//! it loaded that was not on the host before goes again (unless a container uses it).
//! Nothing is stopped before this answers, so a refused archive leaves every container as
//! it was. One load at a time; each object is loaded once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tracing::{info, warn};

use super::body::{Watch, to_engine};
use super::{NOT_LOADED, ObjectFacts, REFUSED, Refusal, precheck, verdict};
use crate::config::ArchiveSettings;
use crate::event::{Digest, ImageRef, Mirrors};
use crate::image::Desired;
use crate::notify::{HeldNotice, Notice, Notifier};
use crate::ports::{Archives, Managed, Registry, RemoteError, Resolution, Runtime, RuntimeError};
use crate::stats::{MapSizes, Stats};
use crate::store::{ArchiveLoad, Store};

/// Resolves `s3://` sources for the [`Registry`] seam (see [`super::sources`]).
pub struct ArchiveResolver<A, RT> {
    archives: Arc<A>,
    runtime: Arc<RT>,
    store: Arc<Store>,
    notifier: Notifier,
    mirrors: Mirrors,
    /// `[deploy] scope`: only this scope's containers are followers.
    scope: String,
    limits: ArchiveSettings,
    locks: Mutex<HashMap<ImageRef, Arc<tokio::sync::Mutex<()>>>>,
    /// One load at a time: what was on the host before a load is what it was.
    loading: tokio::sync::Mutex<()>,
    /// Objects refused before download whose followers were told (once per process: the
    /// refusal depends on the configuration, so it is not recorded).
    told: Mutex<std::collections::HashSet<String>>,
    /// Where the maps' sizes are published.
    stats: Arc<Stats>,
}

/// At most this many refused objects are remembered as told.
const TOLD_MAX: usize = 1024;

impl<A: Archives, RT: Runtime> ArchiveResolver<A, RT> {
    pub fn new(archives: Arc<A>, runtime: Arc<RT>, store: Arc<Store>) -> Self {
        Self {
            archives,
            runtime,
            store,
            notifier: Notifier::disabled(),
            mirrors: Mirrors::default(),
            scope: String::new(),
            limits: ArchiveSettings::default(),
            locks: Mutex::default(),
            loading: tokio::sync::Mutex::default(),
            told: Mutex::default(),
            stats: Arc::default(),
        }
    }

    /// Publishes the sizes of its maps in `stats` (`/metrics`).
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = stats;
        self
    }

    /// `[archives]`: the largest object loaded, whether a SHA-256 is required.
    pub fn with_limits(mut self, limits: ArchiveSettings) -> Self {
        self.limits = limits;
        self
    }

    /// Tells the containers' operators about refused archives.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// The registry mirrors, as the deploy stage has them (to list the managed containers).
    pub fn with_mirrors(mut self, mirrors: Mirrors) -> Self {
        self.mirrors = mirrors;
        self
    }

    /// `[deploy] scope`: another scope's containers are not followers (their archives are
    /// neither loaded nor refused here).
    pub fn with_scope(mut self, scope: &str) -> Self {
        self.scope = scope.to_owned();
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
        let object = facts.describe(bucket, key);
        if let Some(known) = self.known(image, &facts, &object).await? {
            return known;
        }
        if peek {
            if let Err(why) = precheck(&facts, &self.limits) {
                return Err(refused(&object, &why));
            }
            return Err(RemoteError {
                operation: NOT_LOADED,
                message: format!("{object} is not loaded yet"),
                transient: false,
            });
        }
        // The rule delivers every upload under the prefix (`app-<sha>.tar.xz` beside
        // `app-latest.tar.xz`): only a key a container follows is worth a download, or a
        // lock (the map of locks holds followed keys only, and only while in use).
        let followers = self.followers(image).await;
        if followers.is_empty() {
            info!(%object, "no container follows this key; not loaded");
            return Ok(None);
        }
        let lock = self.lock_for(image);
        let _one_load_per_key = lock.lock().await;
        // Another resolve of this key may have loaded (or refused) it while we waited.
        if let Some(known) = self.known(image, &facts, &object).await? {
            return known;
        }
        if let Err(why) = precheck(&facts, &self.limits) {
            self.tell_refused_once(image, &followers, &facts, &object, &why);
            return Err(refused(&object, &why));
        }
        let id = self.load(image, &followers, &facts, &object).await?;
        desired(&id)
    }

    /// What the store knows of this object: the image it gave (when the Engine still has
    /// it), or why it was refused. `None`: load it.
    async fn known(
        &self,
        image: &ImageRef,
        facts: &ObjectFacts,
        object: &str,
    ) -> Result<Option<Resolution>, RemoteError> {
        let (bucket, key) = image.archive_location().unwrap_or_default();
        match self.store.archive_load(bucket, key, facts).map_err(store)? {
            Some(ArchiveLoad::Image(id))
                if self.runtime.has_image(&id).await.map_err(engine)? =>
            {
                Ok(Some(desired(&id)))
            }
            Some(ArchiveLoad::Refused(why)) => Ok(Some(Err(refused(object, &why)))),
            _ => Ok(None),
        }
    }

    /// `image`'s load lock. Only locks someone holds or waits for stay in the map.
    fn lock_for(&self, image: &ImageRef) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        locks.retain(|k, lock| k == image || Arc::strong_count(lock) > 1);
        let lock = locks.entry(image.clone()).or_default().clone();
        MapSizes::set(&self.stats.maps.archive_locks, locks.len());
        lock
    }

    /// How many load locks the map holds.
    pub fn lock_keys(&self) -> usize {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Warns and tells the followers about an object refused before download, once per
    /// object while the agent runs (the set is bounded: past [`TOLD_MAX`] it starts over,
    /// at worst telling again).
    fn tell_refused_once(
        &self,
        image: &ImageRef,
        followers: &[Managed],
        facts: &ObjectFacts,
        object: &str,
        why: &str,
    ) {
        let first = {
            let mut told = self.told.lock().unwrap_or_else(PoisonError::into_inner);
            if told.len() >= TOLD_MAX {
                told.clear();
            }
            let first = told.insert(object.to_owned());
            MapSizes::set(&self.stats.maps.archive_told, told.len());
            first
        };
        if first {
            warn!(%object, reason = %why, "archive refused; nothing downloaded");
            let sha = facts.sha256.as_deref().unwrap_or_default();
            self.notify_refused(image, followers, sha, &format!("{object}: {why}"));
        }
    }

    /// Streams the object into the Engine without its names and checks it; records what it
    /// came to. A refused load's new images go again.
    async fn load(
        &self,
        image: &ImageRef,
        followers: &[Managed],
        facts: &ObjectFacts,
        object: &str,
    ) -> Result<String, RemoteError> {
        let (bucket, key) = image.archive_location().unwrap_or_default();
        let _one_load = self.loading.lock().await;
        let before = self.runtime.image_ids().await.map_err(engine)?;
        let started = Instant::now();
        let body = self.archives.open(bucket, key, facts).await?;
        let watch: Arc<Mutex<Watch>> = Arc::default();
        let loaded = self
            .runtime
            .load(to_engine(body, facts.size, watch.clone()))
            .await;
        let (streamed, seen) =
            std::mem::take(&mut *watch.lock().unwrap_or_else(PoisonError::into_inner)).finish();
        let reported = loaded.map_err(|e| (e.to_string(), e.transient));
        match verdict(facts, &streamed, reported.clone()) {
            Ok(id) => {
                let names = seen.names.join(", ");
                info!(%object, image = %id, bytes = streamed.bytes, names_not_applied = %names, took_ms = started.elapsed().as_millis() as u64, "archive loaded");
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
                let mut loaded = reported.unwrap_or_default();
                loaded.extend(seen.configs);
                self.remove_new(&before, loaded).await;
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

    /// Removes the images of a refused load that were not on the host `before` it (and that
    /// no container uses).
    async fn remove_new(&self, before: &std::collections::HashSet<String>, loaded: Vec<String>) {
        let mut gone = Vec::new();
        for id in loaded {
            if before.contains(&id) || gone.contains(&id) {
                continue;
            }
            match self.runtime.has_image(&id).await {
                Ok(false) => continue,
                Ok(true) => {}
                Err(e) => {
                    warn!(image = %id, error = %e, "could not look for a refused archive's image")
                }
            }
            match self.runtime.remove_image_if_unused(&id).await {
                Ok(()) => {
                    info!(image = %id, "a refused archive's image removed (kept if a container uses it)")
                }
                Err(e) => {
                    warn!(image = %id, error = %e, "could not remove a refused archive's image")
                }
            }
            gone.push(id);
        }
    }

    async fn followers(&self, image: &ImageRef) -> Vec<Managed> {
        match self.runtime.managed(&self.mirrors).await {
            Ok(all) => all
                .into_iter()
                .filter(|c| image.matches(&c.follows))
                .filter(|c| crate::model::labels::in_scope(c.scope.as_deref(), &self.scope))
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
                // Empty for an object refused before download without a checksum.
                desired_digest: match sha256 {
                    "" => String::new(),
                    hex => format!("sha256:{hex}"),
                },
                state: crate::model::HELD_REFUSED,
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
