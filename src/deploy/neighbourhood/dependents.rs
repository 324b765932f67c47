//! A container's neighbourhood (SPEC §12), as it decides whether a swap may start: the
//! containers that share its network, IPC or PID namespace or its volumes
//! (`--network container:NAME`, compose `network_mode: service:NAME`, `--volumes-from`).
//! Docker stores the parent's id, so after a swap such a container keeps only `lo` and cannot
//! even be restarted: opted-in dependents are swapped with it as one group
//! ([`group`](super::group)); one that did not opt in is never touched, and the parent's
//! deploy is refused before anything is pulled or stopped, with a reason naming it.
//! The `depends-on` start order ([`order`](super::order)) must have no cycle, and the
//! container's hook labels must be usable.

use super::order;
use crate::deploy::sequence::executor::Executor;
use crate::ports::{Credentials, Dependent, Runtime, RuntimeError, Target};

/// The reason a swap is refused, naming every dependent that did not opt in; `None` when
/// every dependent did (or there are none).
pub fn refusal_reason(dependents: &[Dependent]) -> Option<String> {
    let outsiders: Vec<String> = dependents
        .iter()
        .filter(|d| !d.opted_in)
        .map(|d| format!("{} (its {} namespace)", d.name, d.shares))
        .collect();
    if outsiders.is_empty() {
        return None;
    }
    Some(format!(
        "not swapped: {} share{} this container's namespace without ecr-deployd.enable=true and would be cut off by a re-creation; opt {} in (they are then swapped with it) or update them together by hand",
        outsiders.join(", "),
        if outsiders.len() == 1 { "s" } else { "" },
        if outsiders.len() == 1 { "it" } else { "them" },
    ))
}

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// Why a deploy of `target` must not be made now, if it must not.
    pub async fn refusal(&self, target: &Target) -> Result<Option<String>, RuntimeError> {
        let Target::Container(c) = target else {
            return Ok(None);
        };
        if let Err(why) = c.hooks.hooks() {
            return Ok(Some(why));
        }
        let dependents = self.runtime.dependents(&c.id).await?;
        if let Some(why) = refusal_reason(&dependents) {
            return Ok(Some(why));
        }
        // A dependent's own dependents would be cut off by its re-creation: one level only.
        for d in &dependents {
            let nested = self.runtime.dependents(&d.id).await?;
            if let Some(n) = nested.first() {
                return Ok(Some(format!(
                    "not swapped: {} shares the {} namespace of {}, which shares this container's; dependents of dependents are not re-created — update them together by hand",
                    n.name, n.shares, d.name
                )));
            }
        }
        let ordering = self.runtime.ordering().await?;
        Ok(order::restart_order(&c.name, &ordering).err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(name: &str, shares: &'static str, opted_in: bool) -> Dependent {
        Dependent {
            id: format!("id-{name}"),
            name: name.into(),
            shares,
            opted_in,
            running: true,
        }
    }

    #[test]
    fn only_dependents_that_did_not_opt_in_refuse_and_each_is_named() {
        assert_eq!(refusal_reason(&[]), None);
        assert_eq!(refusal_reason(&[dep("vpn", "network", true)]), None);
        let one = refusal_reason(&[dep("vpn", "network", false), dep("ok", "IPC", true)]).unwrap();
        assert!(one.contains("vpn (its network namespace) shares"), "{one}");
        assert!(!one.contains("ok"), "{one}");
        let two =
            refusal_reason(&[dep("vpn", "network", false), dep("debug", "PID", false)]).unwrap();
        assert!(
            two.contains("vpn (its network namespace), debug (its PID namespace) share "),
            "{two}"
        );
    }
}
