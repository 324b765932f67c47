//! The executor as the [`Sweeper`] the sweep asks: the targets on this host and, for one a
//! sweep finds behind, the gates' and the sequence's answer in the sweep's terms — held,
//! blocked, refused, rejected, deployed, rolled back — or, in a dry run, what the gates say
//! without deploying.

use super::*;
use crate::control::policy::PolicyVerdict;
use crate::deploy::gates::verdicts::Checked;
use crate::image::Match;
use crate::model::sweep::{Action, Row, Settled};
use crate::ports::Sweeper;

impl<RT: Runtime, C: Credentials> Sweeper for Executor<RT, C> {
    async fn recover_idle(&self) -> Result<usize, RuntimeError> {
        Executor::recover_idle(self).await
    }

    async fn targets(&self) -> Result<Vec<Target>, RuntimeError> {
        Executor::targets(self).await
    }

    async fn platform(&self) -> Result<Platform, RuntimeError> {
        Executor::platform(self).await
    }

    async fn settle(
        &self,
        target: &Target,
        desired: &Desired,
        matched: &Match,
        trigger: Trigger,
        resolved_in: Duration,
    ) -> Settled {
        if matched.up_to_date() {
            // A paused container is shown paused even while nothing is waiting.
            if let Ok(Gate::Held(h @ Held::Paused(_))) = self.gate(target, jiff::Timestamp::now()) {
                let Settled { action, detail, .. } = self.held(target, &h);
                let why = detail.map_or("up to date".into(), |w| format!("{w} (up to date)"));
                return Settled::new(action, Some(why));
            }
            return Settled::new(Action::UpToDate, None);
        }
        if !target.running_now() {
            return Settled::new(Action::Stopped, None);
        }
        if self.is_blocked(target.block_key(), &desired.digest) {
            return Settled::new(Action::Blocked, None);
        }
        if !trigger.changes() {
            return self.preview(target, desired).await;
        }
        let result = self
            .deploy_target(target, desired, trigger, resolved_in, None)
            .await;
        match result {
            Ok(Done::Finished(outcome)) => Settled::new(outcome.into(), None),
            Ok(Done::Refused(why)) => Settled::new(Action::Refused, Some(why)),
            Ok(Done::Held(h)) => self.held(target, &h),
            Ok(Done::Rejected(why)) => Settled::new(Action::Rejected, Some(why)),
            Ok(Done::Deferred(why)) => Settled::new(Action::Deferred, Some(why)),
            // Someone else (an event) deployed it meanwhile.
            Ok(Done::Nothing) => Settled::new(Action::UpToDate, None),
            Err(e) => Settled::new(Action::Failed, Some(e.to_string())),
        }
    }

    fn swept(&self, rows: &[Row]) {
        if let Some(m) = self.metrics() {
            m.swept(&crate::metrics::SweepCounts::of(rows));
        }
        self.ledger().swept(rows.iter().map(Into::into).collect());
        self.prune_history();
    }
}

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// A dry run's answer for a target behind: the hold, the fleet wave, a journal row it
    /// cannot read, a refusal, then the supply-chain gates, in the order a deploy meets them
    /// ([`nothing_to_do`](Executor::nothing_to_do)); nothing is changed.
    async fn preview(&self, target: &Target, desired: &Desired) -> Settled {
        match self.gate(target, jiff::Timestamp::now()) {
            Ok(Gate::Go) | Err(_) => {}
            Ok(Gate::Held(h)) => return self.held(target, &h),
            Ok(Gate::Invalid(why)) => return Settled::new(Action::Refused, Some(why)),
        }
        if let Ok(Some(h)) = self.wave_gate(target, desired) {
            return self.held(target, &h);
        }
        if let Ok(Some(why)) = self.stuck(target) {
            return Settled::new(Action::Refused, Some(why));
        }
        match self.refusal(target).await {
            Ok(Some(why)) => Settled::new(Action::Refused, Some(why)),
            Ok(None) => gated(self.preview_gates(target, desired).await),
            Err(e) => Settled::new(Action::WouldDeploy, Some(e.to_string())),
        }
    }

    /// The answer for a held target; one its policy holds until a window opens says when.
    fn held(&self, target: &Target, h: &Held) -> Settled {
        let action = match h {
            Held::Paused(_) => Action::Paused,
            Held::Pending(_) => Action::Pending,
            Held::Monitor => Action::Monitor,
            Held::Waiting(_) => Action::Waiting,
            Held::Halted(_) => Action::Halted,
        };
        let mut settled = Settled::new(action, Some(h.detail()).filter(|d| !d.is_empty()));
        if let Held::Pending(_) = h {
            let policies = &self.cfg.policies;
            if let PolicyVerdict::Pending { until: Some(t), .. } =
                policies.verdict(target.policy(), jiff::Timestamp::now())
            {
                settled.pending_until = Some(policies.show(t));
            }
        }
        settled
    }
}

/// The dry-run answer for a target the supply-chain gates look at.
fn gated(checked: Checked) -> Settled {
    match checked {
        Checked::Go(why) => Settled::new(
            Action::WouldDeploy,
            Some(why.join("; ")).filter(|w| !w.is_empty()),
        ),
        Checked::Pending(why) => Settled::new(Action::Pending, Some(why)),
        Checked::Rejected { gate, reason } => {
            Settled::new(Action::Rejected, Some(format!("{gate}: {reason}")))
        }
        Checked::Unknown(why) => Settled::new(
            Action::Refused,
            Some(format!("gates could not be checked: {why}")),
        ),
    }
}
