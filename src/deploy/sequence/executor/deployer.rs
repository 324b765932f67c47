//! The executor as the [`Deployer`] the reconcile stage hands work to: which targets follow
//! a request's tag, batched so that a Compose project's services go one at a time; gate
//! hints, fleet results and promotions recorded for the stages that feed them.

use std::collections::HashMap;

use super::*;
use crate::ports::RecordError;

impl<RT: Runtime, C: Credentials> Deployer for Executor<RT, C> {
    fn recheck(&self, hint: &crate::event::GateHint) -> Result<usize, RecordError> {
        let repository = hint.repository.as_str();
        match &hint.digest {
            Some(d) => self.store.clear_rejections(repository, d.as_str()),
            None => self.store.clear_gate_rejections(repository, "signature"),
        }
        .map_err(|e| RecordError::new("gate hint", e))
    }

    fn fleet_result(&self, result: &crate::fleet::FleetResult) -> Result<bool, RecordError> {
        self.record_fleet_result(result)
    }

    fn promotions_due(
        &self,
        after_ms: i64,
        now_ms: i64,
    ) -> Result<crate::ports::PromotionsDue, RecordError> {
        self.due_promotions(after_ms, now_ms)
    }

    async fn deploy(&self, request: DeployRequest) -> Result<(), DeployError> {
        let fail = |e: RuntimeError| DeployError::runtime(&request.image, &e);
        let all = self.targets().await.map_err(fail)?;
        let home = match all.iter().any(|t| request.image.needs_home(t.follows())) {
            // The credentials' home registry is asked of AWS: unreachable for now.
            true => self
                .home()
                .await
                .map_err(|reason| DeployError::new(&request.image, reason, true))?,
            false => Home::default(),
        };
        let targets: Vec<Target> = all
            .into_iter()
            .filter(|t| request.image.matches_in(t.follows(), &home))
            .collect();
        if targets.is_empty() {
            info!(image = %request.image, desired = %request.desired.digest, "desired digest resolved; no managed container or service follows this tag");
            return Ok(());
        }
        // The services of one Compose project go one at a time; the rest in parallel.
        let results = futures::future::join_all(one_at_a_time(targets).into_iter().map(|batch| {
            let request = &request;
            async move {
                let mut out = Vec::new();
                for t in &batch {
                    out.push(
                        self.deploy_target(
                            t,
                            &request.desired,
                            request.trigger,
                            request.resolved_in,
                            request.event_time,
                        )
                        .await,
                    );
                }
                out
            }
        }))
        .await;
        // Anything that could not be finished keeps the request on the queue.
        results
            .into_iter()
            .flatten()
            .find_map(Result::err)
            .map_or(Ok(()), Err)
    }
}

/// Targets in batches deployed one after another within a batch: the containers of one
/// Compose project share a batch (their services are updated one at a time, SPEC §12);
/// every other target is a batch of its own.
pub fn one_at_a_time(targets: Vec<Target>) -> Vec<Vec<Target>> {
    let mut batches: Vec<Vec<Target>> = Vec::new();
    let mut by_project: HashMap<String, usize> = HashMap::new();
    for t in targets {
        let project = match &t {
            Target::Container(c) => c.compose_project.clone(),
            Target::Service(_) => None,
        };
        if let Some(p) = project {
            if let Some(&i) = by_project.get(&p) {
                batches[i].push(t);
                continue;
            }
            by_project.insert(p, batches.len());
        }
        batches.push(vec![t]);
    }
    batches
}
