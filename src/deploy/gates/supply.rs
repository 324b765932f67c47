//! The supply-chain gates in the deploy sequence (SPEC §11), after the update-control gate
//! and before the pull: nothing is pulled or stopped for a digest they do not accept.
//!
//! A rejection is recorded (the `rejected` row and a history row), counted and told once;
//! it holds until something changes: a newer digest, or a hint (the signature pushed, the
//! scan completed) that clears it. A scan still to come holds the deploy as `pending`,
//! counted from when this digest was first seen waiting; past `wait_seconds` it is rejected.

use std::time::{Duration, SystemTime};

use tracing::{debug, info, instrument, warn};

use super::verdicts::{Checked, Held};
use crate::deploy::sequence::executor::{DeployCheckError, Done, Executor};
use crate::deploy::sequence::report::Finished;
use crate::event::{Digest, ImageRef, Mirrors};
use crate::gate::{Found, Place, ScanFacts, SupplyVerdict, Trust, found};
use crate::image::Desired;
use crate::model::Trigger;
use crate::ports::{Credentials, Runtime, Supply, Target};
use crate::store::{NewDeployment, Outcome, Phases, StoreError, now_ms};

/// The hold kind under which a digest waiting for its scan is recorded.
const SCAN_HOLD: &str = "scan";

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// The gates' verdict on `desired` for `t`; nothing recorded. `waited`: how long this
    /// digest has been waiting for its scan. `Err` only for a transient failure.
    pub async fn check_gates(
        &self,
        t: &Target,
        desired: &Desired,
        waited: Duration,
    ) -> Result<Checked, String> {
        let applies = match self.cfg.gates.applying(t.gate_labels()) {
            Ok(a) => a,
            Err(why) => return Ok(Checked::Unknown(why)),
        };
        if !applies.any() {
            return Ok(Checked::Go(Vec::new()));
        }
        if t.follows().is_archive() {
            // Fail closed: an archive has no ECR signature or scan to look at.
            return Ok(Checked::Rejected {
                gate: if applies.signed { "signature" } else { "scan" },
                reason: format!(
                    "{} is an S3 archive: it has no signature or ECR scan for the gates to check",
                    t.follows()
                ),
            });
        }
        let Some(supply) = &self.supply else {
            return Ok(Checked::Unknown(
                "gates configured but no way to check them".into(),
            ));
        };
        let follows = t.follows();
        let unknown = |e: crate::ports::RemoteError| match e.transient {
            true => Err(e.to_string()),
            false => Ok(Checked::Unknown(e.to_string())),
        };
        let mut accepted = Vec::new();
        if applies.signed {
            match self.signature_verdict(desired, follows).await? {
                Ok(SupplyVerdict::Accepted(why)) => accepted.push(why),
                Ok(SupplyVerdict::Pending(why)) => return Ok(Checked::Pending(why)),
                Ok(SupplyVerdict::Rejected(reason)) => {
                    return Ok(Checked::Rejected {
                        gate: "signature",
                        reason,
                    });
                }
                Err(e) => return unknown(e),
            }
        }
        if let Some(rule) = applies.scan {
            // ECR scans images, not indexes: for an index, this host's platform manifest.
            let facts = match follows.site_host() {
                // A registry of the site's own has no findings to read: `on_missing` (§18).
                Some(host) => ScanFacts::Unavailable(format!(
                    "{host} is a registry of the site's own, with no ECR scan findings"
                )),
                None => {
                    let scanned = self.scanned_digest(desired).await?;
                    let image = self.relative_to_home(follows).await?;
                    match supply.scan(&image, &scanned).await {
                        Ok(f) => f,
                        Err(e) => return unknown(e),
                    }
                }
            };
            match rule.verdict(&facts, waited) {
                SupplyVerdict::Accepted(why) => accepted.push(why),
                SupplyVerdict::Pending(why) => return Ok(Checked::Pending(why)),
                SupplyVerdict::Rejected(reason) => {
                    return Ok(Checked::Rejected {
                        gate: "scan",
                        reason,
                    });
                }
            }
        }
        Ok(Checked::Go(accepted))
    }

    /// The signature gate: a trusted signature of the digest or, for an index, of this
    /// host's platform manifest. `Err(Err(_))`: a transient failure; `Ok(Err(_))`: the
    /// signatures could not be read.
    async fn signature_verdict(
        &self,
        desired: &Desired,
        follows: &ImageRef,
    ) -> Result<Result<SupplyVerdict, crate::ports::RemoteError>, String> {
        let Some(supply) = &self.supply else {
            return Ok(Ok(SupplyVerdict::Rejected(
                "no way to read signatures".into(),
            )));
        };
        let (auth, host) = self
            .pull_auth_and_host(follows)
            .await
            .map_err(|f| f.reason)?;
        // A `.sig`'s docker-reference names the image's own registry or the mirror.
        let registry = Mirrors::registry_host(follows, &auth.registry_host);
        let place = Place::new(follows.repository.as_str(), &registry, &host);
        let mut digests = vec![desired.digest.clone()];
        if !desired.entries.is_empty() {
            let platform = self.platform().await.map_err(|e| e.to_string())?;
            digests.extend(desired.for_platform(&platform).cloned());
        }
        let (mut pending, mut why) = (None, Vec::new());
        for digest in &digests {
            let mut found = match supply
                .signatures(&host, &auth, &follows.repository, digest)
                .await
            {
                Ok(f) => f,
                Err(e) if e.transient => return Err(e.to_string()),
                Err(e) => return Ok(Err(e)),
            };
            let trust = &self.cfg.gates.trust;
            ask_aws_signer(supply.as_ref(), &mut found, digest, trust).await;
            match found::verdict(&found, digest, &place, trust, SystemTime::now()) {
                SupplyVerdict::Accepted(who) if *digest == desired.digest => {
                    return Ok(Ok(SupplyVerdict::Accepted(who)));
                }
                SupplyVerdict::Accepted(who) => {
                    return Ok(Ok(SupplyVerdict::Accepted(format!(
                        "{who} (this host's platform manifest {})",
                        digest.short()
                    ))));
                }
                SupplyVerdict::Pending(w) => pending = pending.or(Some(w)),
                SupplyVerdict::Rejected(w) => why.push(w),
            }
        }
        Ok(Ok(match pending {
            Some(w) => SupplyVerdict::Pending(w),
            None => SupplyVerdict::Rejected(why.join("; and ")),
        }))
    }

    /// The digest whose scan decides for `desired`: the digest itself, or for an index the
    /// manifest of this host's platform (the index itself when it has none for it).
    async fn scanned_digest(&self, desired: &Desired) -> Result<crate::event::Digest, String> {
        if desired.entries.is_empty() {
            return Ok(desired.digest.clone());
        }
        let host = self.platform().await.map_err(|e| e.to_string())?;
        Ok(desired
            .for_platform(&host)
            .unwrap_or(&desired.digest)
            .clone())
    }

    /// `image` with its account and region left unnamed where they are the credentials' own:
    /// only the home registry's scanning rules can be asked.
    async fn relative_to_home(&self, image: &ImageRef) -> Result<ImageRef, String> {
        if image.registry.is_none() && image.region.is_none() {
            return Ok(image.clone());
        }
        let home = self.home().await?;
        let mut relative = image.clone();
        if relative.registry.is_some() && relative.registry == home.account {
            relative.registry = None;
        }
        if relative.region.is_some() && relative.region == home.region {
            relative.region = None;
        }
        Ok(relative)
    }

    /// What the gates would say now (`sweep --dry-run`, `status`): a recorded rejection, or
    /// the verdict on the facts as they are. Nothing recorded.
    pub(in crate::deploy) async fn preview_gates(&self, t: &Target, desired: &Desired) -> Checked {
        if let Ok(Some(r)) = self.store.rejection(t.block_key(), desired.digest.as_str()) {
            let gate = if r.gate == "signature" {
                "signature"
            } else {
                "scan"
            };
            return Checked::Rejected {
                gate,
                reason: r.reason,
            };
        }
        self.check_gates(t, desired, self.waited(t, desired))
            .await
            .unwrap_or_else(Checked::Unknown)
    }

    /// How long `desired` has been waiting for its scan on `t` (zero when it is not).
    pub fn waited(&self, t: &Target, desired: &Desired) -> Duration {
        match self.store.held_since(t.block_key(), SCAN_HOLD) {
            Ok(Some((d, since))) if d == desired.digest.as_str() => {
                Duration::from_millis(now_ms().saturating_sub(since).max(0) as u64)
            }
            _ => Duration::ZERO,
        }
    }

    /// The gates in the deploy sequence: `Some` when they stop it (recorded), `None`: go.
    #[instrument(name = "gates", skip_all, fields(container = %t.name(), digest = %desired.digest.short(), %trigger))]
    pub(in crate::deploy) async fn supply_gates(
        &self,
        t: &Target,
        desired: &Desired,
        trigger: Trigger,
    ) -> Result<Option<Done>, DeployCheckError> {
        if !trigger.gated() {
            // The operator's `rollback` returns to what ran here before: not a new digest.
            return Ok(None);
        }
        let digest = &desired.digest;
        if let Some(r) = self.store.rejection(t.block_key(), digest.as_str())? {
            debug!(name = %t.name(), digest = %digest.short(), reason = %r.reason, "digest rejected before; not checking again");
            return Ok(Some(Done::Rejected(r.reason)));
        }
        let checked = self
            .check_gates(t, desired, self.waited(t, desired))
            .await
            .map_err(DeployCheckError::Remote)?;
        Ok(match checked {
            Checked::Go(why) => {
                if !why.is_empty() {
                    info!(name = %t.name(), digest = %digest.short(), gates = %why.join("; "), "gates passed");
                }
                None
            }
            Checked::Pending(why) => {
                let held = Held::Pending(why);
                self.store.hold(t.block_key(), SCAN_HOLD, digest.as_str())?;
                self.record_hold(t, desired, &held)?;
                Some(Done::Held(held))
            }
            Checked::Rejected { gate, reason } => {
                self.record_rejection(t, desired, trigger, gate, &reason)
                    .await?;
                Some(Done::Rejected(reason))
            }
            Checked::Unknown(why) => {
                warn!(name = %t.name(), digest = %digest.short(), %why, "gates could not be checked; not deploying");
                Some(Done::Refused(format!("gates could not be checked: {why}")))
            }
        })
    }

    /// The rejection's row (for an index, with this host's platform manifest: its scan
    /// event clears the rejection), history, metric and notice.
    async fn record_rejection(
        &self,
        t: &Target,
        desired: &Desired,
        trigger: Trigger,
        gate: &'static str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let follows = t.follows();
        let scanned = match desired.entries.is_empty() {
            true => None,
            false => self.scanned_digest(desired).await.ok(),
        };
        let platform = scanned.as_ref().map(|d| d.as_str());
        self.store.reject(
            &NewDeployment {
                container: t.block_key(),
                repository: follows.repository.as_str(),
                tag: follows.tag.as_str(),
                from_digest: t.digests().first().map(|d| d.as_str()),
                to_digest: desired.digest.as_str(),
                platform_digest: platform,
                trigger: trigger.as_str(),
                old_id: &t.journal_old_id(),
            },
            gate,
            reason,
        )?;
        warn!(name = %t.name(), digest = %desired.digest.short(), gate, %reason, "digest rejected");
        self.report(&Finished {
            target: t,
            to: &desired.digest,
            platform: scanned.as_ref(),
            outcome: Outcome::Rejected,
            trigger,
            took: Duration::ZERO,
            phases: &Phases::default(),
            event_time: None,
            error: Some(reason),
            transient: false,
        });
        Ok(())
    }
}

/// Asks AWS Signer about the AWS Signer signatures `found` that pass every other check;
/// a call that fails (refused, unreachable) is kept as its reason: the verdict then waits.
async fn ask_aws_signer(supply: &dyn Supply, found: &mut Found, digest: &Digest, trust: &Trust) {
    for query in found::aws_signer_queries(found, digest, trust, SystemTime::now()) {
        let answer = supply.aws_signer_revoked(&query).await;
        if let Err(e) = &answer {
            warn!(%e, "AWS Signer's revocation status could not be read");
        }
        found
            .aws_signer
            .insert(query, answer.map_err(|e| e.to_string()));
    }
}

#[cfg(test)]
mod tests;
