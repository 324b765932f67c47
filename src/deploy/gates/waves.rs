//! The fleet-wave gate (SPEC §14), after the update-control gate: on a host of wave N > 1 a
//! digest is deployed by events, sweeps and promotions only once wave N − 1 promoted it and
//! its bake time passed, and never when an earlier wave halted it. `approve` is not held.
//! Also the executor's side of the fleet results: recording them, and the promotions due.

use std::collections::BTreeSet;

use serde::Serialize;
use tracing::info;

use super::verdicts::Held;
use crate::deploy::sequence::executor::Executor;
use crate::event::{ImageRef, Repository, Tag};
use crate::fleet::{self, FleetResult, Seen, WaveVerdict};
use crate::image::Desired;
use crate::ports::{Credentials, PromotionsDue, RecordError, Runtime, Target};
use crate::store::{StoreError, now_ms};

/// What `status` shows of a container on a host of wave N > 1.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct WaveStatus {
    pub wave: u32,
    /// The newest digest of the tag the previous wave promoted, if any.
    pub promoted_digest: Option<String>,
    /// Seconds of bake time left for the desired digest (0 when none is left).
    pub bake_left_seconds: Option<u64>,
    /// The results seen for the tag's desired digest.
    pub results: Vec<Seen>,
    /// The verdict for the desired digest, as a sentence.
    pub verdict: String,
}

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// The verdict for deploying `desired` to `t` now (always `Go` on wave 1).
    pub fn wave_verdict(&self, t: &Target, desired: &Desired) -> Result<WaveVerdict, StoreError> {
        let fleet = &self.cfg.fleet;
        if !fleet.follows_results() {
            return Ok(WaveVerdict::Go);
        }
        let follows = t.follows();
        let seen = self
            .store
            .results_for(follows.repository.as_str(), Some(desired.digest.as_str()))?;
        Ok(fleet::verdict(
            fleet,
            follows.tag.as_str(),
            desired.digest.as_str(),
            &seen,
            now_ms(),
        ))
    }

    /// The wave gate: `Some` when the deploy is held by it.
    pub(in crate::deploy) fn wave_gate(
        &self,
        t: &Target,
        desired: &Desired,
    ) -> Result<Option<Held>, StoreError> {
        let verdict = self.wave_verdict(t, desired)?;
        let detail = verdict.explain(&self.cfg.fleet, now_ms());
        Ok(match verdict {
            WaveVerdict::Go => None,
            WaveVerdict::Waiting { .. } | WaveVerdict::Baking { .. } => Some(Held::Waiting(detail)),
            WaveVerdict::Halted { .. } => Some(Held::Halted(detail)),
        })
    }

    /// `status`'s fleet columns for a container that follows `follows` and whose tag names
    /// `desired` (`None` on wave 1).
    pub fn wave_status(
        &self,
        follows: &ImageRef,
        desired: Option<&str>,
    ) -> Result<Option<WaveStatus>, StoreError> {
        let fleet = &self.cfg.fleet;
        if !fleet.follows_results() {
            return Ok(None);
        }
        let all = self.store.results_for(follows.repository.as_str(), None)?;
        let tag = follows.tag.as_str();
        let now = now_ms();
        // The newest promoted digest: the one whose promotion came last, unless halted.
        let digests: BTreeSet<&str> = all
            .iter()
            .filter(|s| s.tag == tag)
            .map(|s| s.digest.as_str())
            .collect();
        let promoted_digest = digests
            .into_iter()
            .filter_map(|d| Some((fleet::due_ms(fleet, tag, d, &all)?, d.to_owned())))
            .max()
            .map(|(_, d)| d);
        let mut status = WaveStatus {
            wave: fleet.wave,
            promoted_digest,
            bake_left_seconds: None,
            results: Vec::new(),
            verdict: "ECR names no digest".into(),
        };
        if let Some(digest) = desired {
            status.results = all.into_iter().filter(|s| s.digest == digest).collect();
            let verdict = fleet::verdict(fleet, tag, digest, &status.results, now);
            status.bake_left_seconds = fleet::due_ms(fleet, tag, digest, &status.results)
                .map(|at| ((at - now).max(0) as u64).div_ceil(1000));
            status.verdict = verdict.explain(fleet, now);
        }
        Ok(Some(status))
    }

    /// Records a fleet host's result; `true` when it is news.
    pub fn record_fleet_result(&self, r: &FleetResult) -> Result<bool, RecordError> {
        if r.host == self.cfg.fleet.name {
            // Our own result, routed back by a broad rule: it says nothing about another host.
            info!(host = %r.host, "a fleet result of this host itself; not counted");
            return Ok(false);
        }
        self.store
            .record_result(r)
            .map_err(|e| RecordError::new("fleet result", e))
    }

    /// The promotions due in `(after_ms, now_ms]` as tags to look at.
    pub fn due_promotions(&self, after_ms: i64, now_ms: i64) -> Result<PromotionsDue, RecordError> {
        let (due, next) = self
            .store
            .promotions_due(&self.cfg.fleet, after_ms, now_ms)
            .map_err(|e| RecordError::new("promotions due", e))?;
        let images = due
            .into_iter()
            .filter_map(|d| {
                let image = ImageRef::new(
                    None,
                    Repository::parse(&d.repository).ok()?,
                    Tag::parse(&d.tag).ok()?,
                );
                Some((image, d.digest))
            })
            .collect();
        Ok((images, next))
    }
}

#[cfg(test)]
mod tests;
