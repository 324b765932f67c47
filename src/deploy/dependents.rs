//! Containers that share a managed container's network, IPC or PID namespace
//! (`--network container:NAME`, compose `network_mode: service:NAME`). Docker stores the
//! id, so after a swap such a container keeps only `lo` and cannot even be restarted. Until
//! dependents are swapped with their parent, a deploy of the parent is refused before
//! anything is pulled or stopped, with a reason that names them.

use super::executor::Executor;
use super::target::Target;
use crate::ports::{Credentials, Dependent, Runtime, RuntimeError};

/// The reason a swap is refused, naming every dependent; `None` without dependents.
pub fn refusal_reason(dependents: &[Dependent]) -> Option<String> {
    if dependents.is_empty() {
        return None;
    }
    let names: Vec<String> = dependents
        .iter()
        .map(|d| format!("{} (its {} namespace)", d.name, d.shares))
        .collect();
    Some(format!(
        "not swapped: {} share{} this container's namespace and would be cut off by a re-creation; remove the sharing or update them together by hand",
        names.join(", "),
        if dependents.len() == 1 { "s" } else { "" }
    ))
}

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// Why a deploy of `target` must not be made now, if it must not.
    pub async fn refusal(&self, target: &Target) -> Result<Option<String>, RuntimeError> {
        match target {
            Target::Container(c) => Ok(refusal_reason(&self.runtime.dependents(&c.id).await?)),
            Target::Service(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(name: &str, shares: &'static str) -> Dependent {
        Dependent {
            name: name.into(),
            shares,
            opted_in: false,
        }
    }

    #[test]
    fn the_reason_names_every_dependent_and_what_it_shares() {
        assert_eq!(refusal_reason(&[]), None);
        let one = refusal_reason(&[dep("vpn", "network")]).unwrap();
        assert!(one.contains("vpn (its network namespace) shares"), "{one}");
        let two = refusal_reason(&[dep("vpn", "network"), dep("debug", "PID")]).unwrap();
        assert!(
            two.contains("vpn (its network namespace), debug (its PID namespace) share "),
            "{two}"
        );
    }
}
