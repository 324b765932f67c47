//! What the agent reads of an image (`GET /images/{name}/json`): its id, its registry digests
//! and its labels — a model of our own, every field optional. bollard's `ImageInspect` requires
//! fields an Engine may leave out: on the containerd image store, an image none of whose
//! manifests has all its content on the host (moby's `multiPlatformSummary` finds no best
//! match) is answered with `"RootFS": {}`, no `Architecture`, no `Os` — and bollard refuses
//! the whole answer ("missing field `Type`"), which failed an archive load on Docker 28.5
//! (issue 32). The real answers of each Engine are in `tests/fixtures/engines/`.

use std::collections::HashMap;

use hyper::Method;
use serde::Deserialize;
use serde_json::Value;

use super::DockerRuntime;
use crate::ports::RuntimeError;

/// An image as the agent needs it; absent fields are `None` or empty, never an error.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ImageFacts {
    /// The image id: the config digest on the classic store, the manifest or index digest
    /// on the containerd store.
    #[serde(rename = "Id", default)]
    pub id: Option<String>,
    #[serde(rename = "RepoDigests", default)]
    pub repo_digests: Option<Vec<String>>,
    #[serde(rename = "Config", default)]
    config: Option<ConfigFacts>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
struct ConfigFacts {
    #[serde(rename = "Labels", default)]
    labels: Option<HashMap<String, String>>,
}

impl ImageFacts {
    /// Reads an inspect answer; only a body that is not a JSON object is refused.
    pub fn from_value(value: Value) -> Result<Self, String> {
        if !value.is_object() {
            return Err(format!(
                "an image inspect answer that is not an object: {value}"
            ));
        }
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    /// The image's own labels (its config's), empty when it shows none.
    pub fn labels(&self) -> HashMap<String, String> {
        self.config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default()
    }
}

impl DockerRuntime {
    /// Inspects image `name` (a reference or an id); `operation` names the call in errors.
    /// A missing image is an HTTP 404 error (`is_not_found`).
    pub(super) async fn inspect_image_facts(
        &self,
        operation: &'static str,
        name: &str,
    ) -> Result<ImageFacts, RuntimeError> {
        let path = format!("/images/{name}/json");
        let value = self.raw(operation, Method::GET, &path, None, &[]).await?;
        ImageFacts::from_value(value).map_err(|e| RuntimeError::permanent(operation, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every recorded answer: (file, JSON).
    const RECORDED: &[(&str, &str)] = &[
        (
            "docker20-classic-api1.41-image-built",
            include_str!(
                "../../../tests/fixtures/engines/docker20-classic-api1.41-image-built.json"
            ),
        ),
        (
            "docker28-classic-api1.51-image-pulled",
            include_str!(
                "../../../tests/fixtures/engines/docker28-classic-api1.51-image-pulled.json"
            ),
        ),
        (
            "docker28-classic-api1.51-image-deployed",
            include_str!(
                "../../../tests/fixtures/engines/docker28-classic-api1.51-image-deployed.json"
            ),
        ),
        (
            "docker28-containerd-api1.51-image-pulled",
            include_str!(
                "../../../tests/fixtures/engines/docker28-containerd-api1.51-image-pulled.json"
            ),
        ),
        (
            "docker28-containerd-api1.51-image-deployed",
            include_str!(
                "../../../tests/fixtures/engines/docker28-containerd-api1.51-image-deployed.json"
            ),
        ),
        (
            "docker28-containerd-api1.51-image-no-platform-content",
            include_str!(
                "../../../tests/fixtures/engines/docker28-containerd-api1.51-image-no-platform-content.json"
            ),
        ),
    ];

    fn value(json: &str) -> Value {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn every_recorded_image_answer_is_read_with_its_id_digests_and_labels() {
        for (name, json) in RECORDED {
            let raw = value(json);
            let facts =
                ImageFacts::from_value(raw.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(facts.id.as_deref(), raw["Id"].as_str(), "{name}");
            assert!(
                facts.id.as_deref().unwrap().starts_with("sha256:"),
                "{name}"
            );
            let digests: Vec<String> =
                serde_json::from_value(raw["RepoDigests"].clone()).unwrap_or_default();
            assert_eq!(
                facts.repo_digests.clone().unwrap_or_default(),
                digests,
                "{name}"
            );
            let labels = facts.labels();
            if name.contains("no-platform-content") {
                assert!(labels.is_empty(), "{name}: no config to read");
            } else {
                assert!(
                    labels.contains_key("ecr-deployd.test.image"),
                    "{name}: {labels:?}"
                );
            }
        }
    }

    #[test]
    fn bollards_model_refuses_the_containerd_answer_without_platform_content_ours_reads_it() {
        // The answer that failed an archive load on Docker 28.5's containerd store.
        for (name, json) in RECORDED {
            let parsed = serde_json::from_str::<bollard::models::ImageInspect>(json);
            if name.contains("no-platform-content") {
                let e = parsed.expect_err("bollard requires RootFS.Type");
                assert!(e.to_string().contains("missing field `Type`"), "{e}");
                assert_eq!(value(json)["RootFS"], serde_json::json!({}));
            } else {
                parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
        let facts = ImageFacts::from_value(value(RECORDED[5].1)).unwrap();
        assert_eq!(
            facts.id.as_deref(),
            Some("sha256:c66eb4dfc71b56e25d9531b0a1d66c773f9a630666252843237e224bb30958c3")
        );
    }

    #[test]
    fn absent_and_null_fields_are_empty_and_a_non_object_is_refused() {
        let facts = ImageFacts::from_value(serde_json::json!({})).unwrap();
        assert_eq!(facts, ImageFacts::default());
        let facts = ImageFacts::from_value(
            serde_json::json!({"Id": "sha256:ab", "RepoDigests": null, "Config": {"Labels": null}}),
        )
        .unwrap();
        assert_eq!(facts.id.as_deref(), Some("sha256:ab"));
        assert!(facts.repo_digests.is_none() && facts.labels().is_empty());
        assert!(ImageFacts::from_value(Value::String("page not found".into())).is_err());
    }
}
