//! Which `ecr-deployd.*` labels count (SPEC §4): only those set on the container. The Engine
//! shows a container's labels merged with its image's (`LABEL` in a Dockerfile, a base
//! image's), so a label whose value equals the image's is taken as inherited and ignored —
//! an image cannot opt a container in, switch a gate off, choose what it follows or add a
//! hook. The one exception is a gate label that can only make a gate stricter
//! (`ecr-deployd.verify=signed`, a `scan-max-severity` severity): it still counts, as a floor.
//! Pure.

use std::collections::HashMap;

/// Every label of the agent starts with this.
pub const PREFIX: &str = "ecr-deployd.";
/// The signature gate's label.
pub const VERIFY: &str = "ecr-deployd.verify";
/// The scan gate's label.
pub const SCAN: &str = "ecr-deployd.scan-max-severity";

/// The agent a container belongs to (SPEC §4): `[deploy] scope` must equal it.
pub const SCOPE: &str = "ecr-deployd.scope";

/// Whether a container labelled `labelled` (its own `ecr-deployd.scope`, if any) belongs to
/// an agent of scope `scope` ("" = no scope): exactly equal, and an agent without a scope
/// never takes a scoped container.
pub fn in_scope(labelled: Option<&str>, scope: &str) -> bool {
    labelled.map(str::trim).unwrap_or("") == scope
}

/// A scope name: empty, or up to 64 of `[A-Za-z0-9_.-]`.
pub fn check_scope(scope: &str) -> Result<(), String> {
    let ok = scope.len() <= 64
        && scope
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    match ok {
        true => Ok(()),
        false => Err(format!(
            "{scope:?} is not a scope name: up to 64 letters, digits, '_', '.' or '-'"
        )),
    }
}

/// A container's labels split by where they came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provenance {
    /// Every label that is not the agent's, and the agent's labels set on the container.
    pub own: HashMap<String, String>,
    /// Agent labels the container inherited from its image (equal to the image's value).
    pub inherited: HashMap<String, String>,
}

impl Provenance {
    /// Splits `container`'s labels (as the Engine shows them, merged) against its `image`'s.
    pub fn split(container: &HashMap<String, String>, image: &HashMap<String, String>) -> Self {
        let mut out = Self::default();
        for (k, v) in container {
            if k.starts_with(PREFIX) && image.get(k) == Some(v) {
                out.inherited.insert(k.clone(), v.clone());
            } else {
                out.own.insert(k.clone(), v.clone());
            }
        }
        out
    }

    /// An inherited gate label that can only tighten its gate: `verify=signed`.
    pub fn inherited_signed(&self) -> bool {
        self.inherited.get(VERIFY).map(|v| v.trim()) == Some("signed")
    }

    /// An inherited scan severity (not `none`): a floor under the container's own limit.
    pub fn inherited_scan(&self) -> Option<&str> {
        self.inherited
            .get(SCAN)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty() && *v != "none")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn scopes_match_exactly_and_no_scope_never_takes_a_scoped_container() {
        assert!(in_scope(None, ""));
        assert!(in_scope(Some("demo"), "demo"));
        assert!(!in_scope(Some("demo"), ""));
        assert!(!in_scope(None, "demo"));
        assert!(!in_scope(Some("prod"), "demo"));
        assert!(check_scope("").is_ok() && check_scope("demo-1.a_b").is_ok());
        assert!(check_scope("a b").unwrap_err().contains("not a scope name"));
        assert!(check_scope(&"x".repeat(65)).is_err());
    }

    #[test]
    fn an_image_label_does_not_count_as_the_containers() {
        let image = map(&[
            ("ecr-deployd.verify", "none"),
            ("ecr-deployd.enable", "true"),
            ("ecr-deployd.hook.pre-update", "curl evil"),
            ("maintainer", "x"),
        ]);
        let container = map(&[
            ("ecr-deployd.verify", "none"),
            ("ecr-deployd.enable", "true"),
            ("ecr-deployd.hook.pre-update", "curl evil"),
            ("maintainer", "x"),
        ]);
        let p = Provenance::split(&container, &image);
        // Not the agent's labels: kept whatever their origin (Compose, OCI annotations).
        assert_eq!(p.own, map(&[("maintainer", "x")]));
        assert_eq!(p.inherited.len(), 3);
        assert!(!p.inherited_signed());
    }

    #[test]
    fn a_container_label_that_differs_from_the_images_is_its_own() {
        let image = map(&[("ecr-deployd.verify", "none")]);
        let container = map(&[
            ("ecr-deployd.verify", "signed"),
            ("ecr-deployd.enable", "true"),
        ]);
        let p = Provenance::split(&container, &image);
        assert_eq!(p.own, container);
        assert!(p.inherited.is_empty());
    }

    #[test]
    fn inherited_gate_labels_that_tighten_still_count() {
        let both = map(&[
            ("ecr-deployd.verify", "signed"),
            ("ecr-deployd.scan-max-severity", "HIGH"),
        ]);
        let p = Provenance::split(&both, &both);
        assert!(p.own.is_empty());
        assert!(p.inherited_signed());
        assert_eq!(p.inherited_scan(), Some("HIGH"));
        let loosening = map(&[("ecr-deployd.scan-max-severity", "none")]);
        let p = Provenance::split(&loosening, &loosening);
        assert_eq!(p.inherited_scan(), None);
    }
}
