//! Archives into the Engine (SPEC §13): `POST /images/load` streamed from S3 (as the
//! resolver rewrote it: an uncompressed tar without names), the loaded images read back from
//! the Engine's own report (`Loaded image ID: sha256:…` per image, as nothing names them),
//! the images on the host, and local images tagged for a swap.

use std::collections::HashSet;

use bollard::query_parameters::{
    ImportImageOptionsBuilder, ListImagesOptionsBuilder, TagImageOptionsBuilder,
};
use futures::StreamExt;

use super::pull::again_on_race;
use super::{DockerRuntime, PULL_TIMEOUT, timed};
use crate::event::split_reference;
use crate::ports::{ArchiveBody, RuntimeError};

impl DockerRuntime {
    /// Loads the archive `body` streams; the ids of the images the Engine says it loaded.
    pub(super) async fn load_archive(
        &self,
        body: ArchiveBody,
    ) -> Result<Vec<String>, RuntimeError> {
        let docker = self.docker().await?;
        let options = ImportImageOptionsBuilder::new().quiet(true).build();
        let loading = async {
            let mut said = Vec::new();
            let mut stream = docker.import_image_stream(options, body, None);
            while let Some(item) = stream.next().await {
                if let Some(line) = item?.stream {
                    said.push(line);
                }
            }
            Ok(said)
        };
        let said = timed("load image", PULL_TIMEOUT, loading).await?;
        let mut ids: Vec<String> = Vec::new();
        for name in loaded_names(&said) {
            let image = self
                .inspect_image_facts("inspect loaded image", &name)
                .await?;
            let id = image.id.unwrap_or(name);
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    pub(super) async fn list_image_ids(&self) -> Result<HashSet<String>, RuntimeError> {
        let docker = self.docker().await?;
        let options = ListImagesOptionsBuilder::new().all(true).build();
        let images = timed(
            "list images",
            self.call_timeout,
            docker.list_images(Some(options)),
        )
        .await?;
        Ok(images.into_iter().map(|i| i.id).collect())
    }

    pub(super) async fn image_exists(&self, image_id: &str) -> Result<bool, RuntimeError> {
        match self.inspect_image_facts("inspect image", image_id).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn tag_local(
        &self,
        image_id: &str,
        reference: &str,
    ) -> Result<(), RuntimeError> {
        let docker = self.docker().await?;
        let (repo, tag) = split_reference(reference);
        let options = TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
        // Two deploys of one archive may tag its image at once (a race on the containerd
        // store answers 404 "already exists, but accessing it also failed"): asked again.
        let tagged = again_on_race(reference, || {
            timed(
                "tag image",
                self.call_timeout,
                docker.tag_image(image_id, Some(options.clone())),
            )
        });
        tagged.await.map_err(|e| match e.is_not_found() {
            true => RuntimeError::permanent(
                "tag image",
                format!("image {image_id} is no longer on this host"),
            ),
            false => e,
        })
    }
}

/// The images a load reports: `Loaded image: NAME` per tag, `Loaded image ID: ID` per
/// untagged image (Podman says `Loaded image: ID` or `Loaded image(s): A,B`).
pub fn loaded_names(said: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    for line in said.iter().flat_map(|s| s.lines()) {
        let line = line.trim();
        let rest = ["Loaded image ID:", "Loaded image(s):", "Loaded image:"]
            .iter()
            .find_map(|p| line.strip_prefix(p));
        if let Some(rest) = rest {
            names.extend(
                rest.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_report_names_each_tag_and_untagged_image() {
        let said = [
            "Loaded image: app:v2\n".to_owned(),
            "Loaded image: registry.local/app:latest\nLoaded image ID: sha256:abc\n".to_owned(),
            "Loaded image(s): localhost/a:1,localhost/b:2\n".to_owned(),
            "some progress\n".to_owned(),
        ];
        assert_eq!(
            loaded_names(&said),
            [
                "app:v2",
                "registry.local/app:latest",
                "sha256:abc",
                "localhost/a:1",
                "localhost/b:2"
            ]
        );
        assert!(loaded_names(&[]).is_empty());
    }
}
