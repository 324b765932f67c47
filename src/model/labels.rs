//! Which `ecr-deployd.*` labels count (SPEC §4): only those set on the container. The Engine
//! shows a container's labels merged with its image's (`LABEL` in a Dockerfile, a base
//! image's), so a label whose value equals the image's is taken as inherited and ignored —
//! an image cannot opt a container in, switch a gate off, choose what it follows or add a
//! hook. The one exception is a gate label that can only make a gate stricter
//! (`ecr-deployd.verify=signed`, a `scan-max-severity` severity): it still counts, as a floor.
//! Pure.

use std::collections::HashMap;
use std::time::Duration;

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

// What a container follows and how (SPEC §4).

/// Opt-in label (SPEC §4): nothing without it is ever touched.
pub const LABEL_ENABLE: &str = "ecr-deployd.enable";

/// Whether an [`LABEL_ENABLE`] value opts in: exactly `true` (SPEC §4); anything else,
/// `True` and `1` included, leaves the container alone.
pub fn opted_in(value: Option<&str>) -> bool {
    value == Some("true")
}

/// The `repository:tag` a container follows, when not its configured image's.
pub const LABEL_IMAGE: &str = "ecr-deployd.image";
/// The S3 archive a container follows instead of an ECR tag: `s3://BUCKET/KEY` (SPEC §13).
pub const LABEL_SOURCE: &str = "ecr-deployd.source";
/// Per-container health timeout in seconds.
pub const LABEL_HEALTH_TIMEOUT: &str = "ecr-deployd.health-timeout";

// Start order (SPEC §12).

/// The containers an opted-in container is restarted after.
pub const LABEL_DEPENDS_ON: &str = "ecr-deployd.depends-on";

/// The names a `depends-on` label lists (comma-separated, blanks ignored).
pub fn parse_depends_on(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|n| n.trim().trim_start_matches('/'))
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

// Update control (SPEC §10).

/// Label: the container's update policy.
pub const LABEL_POLICY: &str = "ecr-deployd.policy";
/// Label: the maintenance window a `window` container uses.
pub const LABEL_WINDOW: &str = "ecr-deployd.window";

/// A container's own policy labels, as found (not yet checked).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyLabels {
    pub policy: Option<String>,
    pub window: Option<String>,
}

// Supply-chain gates (SPEC §11).

/// Per container: `signed` or `none`, overriding `[verify] require`.
pub const LABEL_VERIFY: &str = VERIFY;
/// Per container: a severity (or `none`), overriding `[scan] max_severity`.
pub const LABEL_SCAN: &str = SCAN;

/// A container's gate labels, as labelled on the container (SPEC §4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GateLabels {
    pub verify: Option<String>,
    pub scan: Option<String>,
    /// Inherited from the image: counts only where it is stricter than what applies
    /// without it (a floor under `verify` and `scan`).
    pub inherited_signed: bool,
    pub inherited_scan: Option<String>,
}

impl GateLabels {
    /// The labels as set on a container or service (nothing inherited).
    pub fn from_labels(labels: &HashMap<String, String>) -> Self {
        Self {
            verify: labels.get(LABEL_VERIFY).cloned(),
            scan: labels.get(LABEL_SCAN).cloned(),
            ..Self::default()
        }
    }

    /// A container's own gate labels, with the inherited ones that may only tighten.
    pub fn from_provenance(labels: &Provenance) -> Self {
        Self {
            inherited_signed: labels.inherited_signed(),
            inherited_scan: labels.inherited_scan().map(str::to_owned),
            ..Self::from_labels(&labels.own)
        }
    }
}

// Lifecycle hooks (SPEC §12): the labels and their parsing; running them is
// `deploy::sequence::hooks`.

pub const LABEL_PRE_UPDATE: &str = "ecr-deployd.hook.pre-update";
pub const LABEL_POST_UPDATE: &str = "ecr-deployd.hook.post-update";
pub const LABEL_TIMEOUT: &str = "ecr-deployd.hook.timeout";
/// A hook's time limit when the container does not set one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The hook labels as the container carries them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookLabels {
    pub pre_update: Option<String>,
    pub post_update: Option<String>,
    pub timeout: Option<String>,
}

impl HookLabels {
    pub fn from_labels(labels: &HashMap<String, String>) -> Self {
        let get = |k: &str| labels.get(k).cloned();
        Self {
            pre_update: get(LABEL_PRE_UPDATE),
            post_update: get(LABEL_POST_UPDATE),
            timeout: get(LABEL_TIMEOUT),
        }
    }

    /// The hooks to run; a label that cannot be used is an error naming it.
    pub fn hooks(&self) -> Result<Hooks, String> {
        let command = |label: &str, v: &Option<String>| match v.as_deref().map(str::trim) {
            None => Ok(None),
            Some("") => Err(format!("label {label} is empty: give the command to run")),
            Some(c) => Ok(Some(c.to_owned())),
        };
        let timeout = match self.timeout.as_deref().map(str::trim) {
            None => DEFAULT_TIMEOUT,
            Some(s) => match s.parse::<u64>() {
                Ok(n) if (1..=86_400).contains(&n) => Duration::from_secs(n),
                _ => {
                    return Err(format!(
                        "label {LABEL_TIMEOUT}: {s:?} is not a number of seconds from 1 to 86400"
                    ));
                }
            },
        };
        Ok(Hooks {
            pre_update: command(LABEL_PRE_UPDATE, &self.pre_update)?,
            post_update: command(LABEL_POST_UPDATE, &self.post_update)?,
            timeout,
        })
    }
}

/// A container's hooks, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hooks {
    pub pre_update: Option<String>,
    pub post_update: Option<String>,
    pub timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exactly_true_opts_in() {
        assert!(opted_in(Some("true")));
        for other in [
            None,
            Some(""),
            Some("True"),
            Some("1"),
            Some("yes"),
            Some(" true"),
        ] {
            assert!(!opted_in(other), "{other:?}");
        }
    }

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
