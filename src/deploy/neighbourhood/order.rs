//! Start order (SPEC §12): `ecr-deployd.depends-on=NAME[,NAME…]` on an opted-in container
//! says it must be restarted after NAME is swapped. Which containers, and in what order, is
//! a pure function of the labels: everything that depends on the swapped container, directly
//! or through others, each after what it depends on. A cycle is an error naming it.

use std::collections::{BTreeSet, HashMap};

use tracing::{info, instrument, warn};

use crate::deploy::sequence::executor::Executor;
use crate::ports::{Credentials, Ordered, Runtime, RuntimeError};

pub use crate::model::labels::{LABEL_DEPENDS_ON, parse_depends_on};

/// The containers to restart after `swapped`, in order. `Err` names a cycle.
pub fn restart_order<'a>(swapped: &str, all: &'a [Ordered]) -> Result<Vec<&'a Ordered>, String> {
    let by_name: HashMap<&str, &Ordered> = all.iter().map(|o| (o.name.as_str(), o)).collect();
    // Everything that reaches `swapped` through depends-on edges.
    let mut affected: BTreeSet<&str> = BTreeSet::new();
    let mut frontier = vec![swapped];
    while let Some(name) = frontier.pop() {
        for o in all
            .iter()
            .filter(|o| o.depends_on.iter().any(|d| d == name))
        {
            if o.name == swapped {
                return Err(cycle(swapped, &by_name));
            }
            if affected.insert(o.name.as_str()) {
                frontier.push(o.name.as_str());
            }
        }
    }
    // Kahn's order within the affected set: a container comes after the affected ones it
    // depends on.
    let mut done: Vec<&Ordered> = Vec::new();
    let mut left: BTreeSet<&str> = affected.clone();
    while !left.is_empty() {
        let ready: Vec<&str> = left
            .iter()
            .copied()
            .filter(|n| {
                by_name[n]
                    .depends_on
                    .iter()
                    .all(|d| !left.contains(d.as_str()))
            })
            .collect();
        if ready.is_empty() {
            let start = left.iter().next().copied().unwrap_or(swapped);
            return Err(cycle(start, &by_name));
        }
        for n in ready {
            left.remove(n);
            done.push(by_name[n]);
        }
    }
    Ok(done)
}

/// A readable cycle through `start`, e.g. `depends-on cycle: a → b → a`.
fn cycle(start: &str, by_name: &HashMap<&str, &Ordered>) -> String {
    fn walk<'a>(
        at: &'a str,
        start: &str,
        by_name: &HashMap<&str, &'a Ordered>,
        path: &mut Vec<&'a str>,
    ) -> bool {
        let Some(o) = by_name.get(at) else {
            return false;
        };
        for d in &o.depends_on {
            if d == start {
                path.push(d);
                return true;
            }
            if !path.contains(&d.as_str()) && by_name.contains_key(d.as_str()) {
                path.push(d);
                if walk(d, start, by_name, path) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start];
    let text = if walk(start, start, by_name, &mut path) {
        path.join(" → ")
    } else {
        format!("{start} → …")
    };
    format!(
        "label {LABEL_DEPENDS_ON} makes a cycle: {text}; no restart order exists, so the deploy is refused"
    )
}

impl<RT: Runtime, C: Credentials> Executor<RT, C> {
    /// After `name` was swapped: restarts the running opted-in containers that depend on it,
    /// in order, each once the one before it has started again. A failure is logged and the
    /// rest still restart; the swap stands (it passed its own gate).
    #[instrument(name = "restart_dependents", skip_all, fields(container = %name))]
    pub(in crate::deploy) async fn restart_dependents_of(&self, name: &str) {
        let all = match self.runtime.ordering().await {
            Ok(all) => all,
            Err(e) => {
                warn!(container = %name, error = %e, "could not list the containers that depend on it; not restarted");
                return;
            }
        };
        let order = match restart_order(name, &all) {
            Ok(order) => order,
            Err(why) => {
                warn!(container = %name, %why, "containers that depend on it not restarted");
                return;
            }
        };
        for o in order.into_iter().filter(|o| o.running) {
            let restarted = async {
                self.runtime.stop(&o.id, self.cfg.stop_timeout).await?;
                self.runtime.start(&o.id).await
            };
            match restarted.await {
                Ok(()) => info!(container = %o.name, after = %name, "restarted (depends-on)"),
                Err(e) => {
                    let e: RuntimeError = e;
                    warn!(container = %o.name, after = %name, error = %e, "could not restart a container that depends on it")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, deps: &str) -> Ordered {
        Ordered {
            id: format!("id-{name}"),
            name: name.into(),
            depends_on: parse_depends_on(deps),
            running: true,
        }
    }

    fn names(v: Vec<&Ordered>) -> Vec<&str> {
        v.into_iter().map(|o| o.name.as_str()).collect()
    }

    #[test]
    fn the_label_lists_names_separated_by_commas() {
        assert_eq!(parse_depends_on(" db, /cache ,,"), vec!["db", "cache"]);
        assert!(parse_depends_on("").is_empty());
    }

    #[test]
    fn dependents_restart_after_what_they_depend_on_transitively() {
        // db ← api ← web, db ← worker; web also waits for worker. cron depends on nothing here.
        let all = [
            c("web", "api,worker"),
            c("api", "db"),
            c("worker", "db"),
            c("cron", "other"),
            c("db", ""),
        ];
        assert_eq!(
            names(restart_order("db", &all).unwrap()),
            vec!["api", "worker", "web"]
        );
        assert_eq!(names(restart_order("api", &all).unwrap()), vec!["web"]);
        assert!(restart_order("web", &all).unwrap().is_empty());
        assert!(restart_order("nobody", &all).unwrap().is_empty());
    }

    #[test]
    fn a_cycle_through_the_swapped_container_is_named() {
        let all = [c("a", "b"), c("b", "a")];
        let err = restart_order("a", &all).unwrap_err();
        assert!(err.contains("cycle: a → b → a"), "{err}");
    }

    #[test]
    fn a_cycle_among_its_dependents_is_named_too() {
        let all = [c("db", ""), c("x", "db,y"), c("y", "x")];
        let err = restart_order("db", &all).unwrap_err();
        assert!(err.contains("cycle: x → y → x"), "{err}");
    }
}
