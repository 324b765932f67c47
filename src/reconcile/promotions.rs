//! Promotions falling due (SPEC §14), on a host of wave N > 1: when an earlier wave's result
//! promotes a digest — at once, or when its bake time ends — the tag is looked at now rather
//! than at the next sweep. The promotions are derived from the state store, so one that
//! fell due while the agent was down is caught by the sweep at start-up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::event::ImageRef;
use crate::ports::{Deployer, Trigger};
use crate::request::Request;
use crate::store::now_ms;

/// The wall clock is looked at again at least this often (a clock step, a missed wake-up).
const RECHECK: Duration = Duration::from_secs(30);
/// After the state store failed to answer.
const RETRY: Duration = Duration::from_secs(5);
/// Each look reaches back this far: a result recorded while the previous look ran is not
/// missed. What was already handed on in that margin is not handed on again.
const MARGIN_MS: i64 = 2_000;

/// Runs until `shutdown`: hands a request for each tag whose promotion fell due to reconcile.
pub async fn run<D: Deployer>(
    deployer: Arc<D>,
    tx: mpsc::Sender<Request>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    // Promotions due before the start are the start-up sweep's.
    let mut after = now_ms();
    let mut handed: HashMap<(ImageRef, String), i64> = HashMap::new();
    loop {
        let now = now_ms();
        let nap = match deployer.promotions_due(after - MARGIN_MS, now) {
            Ok((due, next)) => {
                // A tag handed on before this look's window can no longer come back in it.
                handed.retain(|_, at| *at >= after - MARGIN_MS);
                for (image, digest) in due {
                    if handed.insert((image.clone(), digest), now).is_some() {
                        continue;
                    }
                    info!(%image, "an earlier wave promoted a digest of the tag; looking at it");
                    let request = Request {
                        image,
                        trigger: Trigger::Promotion,
                        message: None,
                        receive_count: 0,
                        event_time: None,
                        digest_hint: None,
                        object_version: None,
                    };
                    if tx.send(request).await.is_err() {
                        return;
                    }
                }
                after = now;
                next.map_or(RECHECK, |at| {
                    Duration::from_millis((at - now).max(1) as u64).min(RECHECK)
                })
            }
            Err(e) => {
                warn!(error = %e, "reading fleet promotions failed; trying again");
                RETRY
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(nap) => {}
        }
    }
}
