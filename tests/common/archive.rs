//! The S3 archive lab shared by tests/archives.rs and tests/archive_names.rs: moto's S3,
//! images built here (removed when the test ends) and their `docker save | xz` archives.

use std::path::Path;
use std::process::Command;

use super::docker::*;
use super::site::{Site, config_of, json};
use super::*;

pub const BUCKET: &str = "edt-archives";
pub const KEY: &str = "app/app-latest.tar.xz";

/// The images a test builds and loads, removed (by id) when it ends, after its containers.
pub struct Images {
    pub repo: String,
    pub ids: std::sync::Mutex<Vec<String>>,
}

impl Images {
    /// Builds `repo:version` serving `version` (or exiting, per `kind`); its id.
    pub fn build(&self, version: &str, kind: Kind) -> String {
        let reference = format!("{}:{version}", self.repo);
        build_image(&reference, kind, version);
        let id = docker(&["image", "inspect", "--format", "{{.Id}}", &reference]);
        // The builder's intermediate images go too, the image before its parents.
        let mut chain = vec![id.clone()];
        loop {
            let last = chain.last().unwrap().clone();
            let parent = docker(&["image", "inspect", "--format", "{{.Parent}}", &last]);
            if parent.is_empty() {
                break;
            }
            chain.push(parent);
        }
        self.ids.lock().unwrap().extend(chain);
        id
    }

    /// `docker save REPO:latest | xz` of image `id` into `path`: the archive names the image
    /// as the pipeline's does. `latest` goes back to `keep` afterwards, and the version's own
    /// tag is removed, so the only way the image reaches a container is the load.
    pub fn archive(&self, id: &str, version: &str, keep: &str, path: &Path) -> Vec<u8> {
        let latest = format!("{}:latest", self.repo);
        docker(&["tag", id, &latest]);
        save_xz(&[&latest], "-1", path);
        docker(&["tag", keep, &latest]);
        if id != keep {
            // Its last name: the image goes with it.
            docker(&["rmi", &format!("{}:{version}", self.repo)]);
        }
        std::fs::read(path).unwrap()
    }

    pub fn latest(&self) -> String {
        let latest = format!("{}:latest", self.repo);
        docker(&["image", "inspect", "--format", "{{.Id}}", &latest])
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        for id in self.ids.lock().unwrap().iter() {
            let _ = docker_command().args(["rmi", "-f", id]).output();
        }
    }
}

/// What both tests stand on: the one harness's site and the images the test builds. Fields
/// drop in order: the site's containers before the images.
pub struct Lab {
    pub site: Site,
    pub images: Images,
    pub s3: aws_sdk_s3::Client,
}

impl std::ops::Deref for Lab {
    type Target = Site;
    fn deref(&self) -> &Site {
        &self.site
    }
}

impl Lab {
    pub async fn new(test: &str) -> Self {
        let site = Site::new(test).await;
        let unique = sha256_hex(format!("{test} {:?}", std::time::SystemTime::now()).as_bytes());
        Self {
            s3: s3_client(&site.sdk),
            images: Images {
                repo: format!("edt-{test}-{}/app", &unique[..8]),
                ids: Default::default(),
            },
            site,
        }
    }
}

impl Lab {
    /// The agent's config for the host whose queue is `queue_url` (sweeps only when asked):
    /// no registry, the archives are the images' only way in.
    ///
    /// In a scope of the lab's own (SPEC: `[deploy] scope`): its follower is found by its
    /// source label, which names the same bucket and key in every lab, and the archive tests
    /// run side by side on one Engine (`scripts/lanes.sh`) — without a scope each lab's agent
    /// would load its archive into the other's follower.
    pub fn config(&self, queue_url: &str) -> String {
        let mut s = self.site.settings(3600);
        s.queue.url = queue_url.to_owned();
        s.registry.mirror = String::new();
        s.deploy.scope = self.scope.id.clone();
        config_of(&s)
    }

    /// Runs the managed container that follows `s3://BUCKET/KEY`, made from `REPO:latest`;
    /// its name.
    pub fn follower(&self) -> String {
        let name = self.scope.name("app");
        let source = format!("ecr-deployd.source=s3://{BUCKET}/{KEY}");
        let latest = format!("{}:latest", self.images.repo);
        let scope = format!("ecr-deployd.scope={}", self.scope.id);
        let labels = [
            "--label",
            "ecr-deployd.enable=true",
            "--label",
            &source,
            "--label",
            &scope,
        ];
        self.scope
            .run(&name, &[&labels[..], &[latest.as_str()]].concat());
        name
    }
}

/// `docker save NAMES` on the Engine under test, compressed by `xz LEVEL` into `path`; each
/// step checked (a failed save must not pass as an empty archive).
pub fn save_xz(names: &[&str], level: &str, path: &Path) {
    let tar = path.with_extension("plain");
    let saved = docker_command()
        .args(["save", "-o"])
        .arg(&tar)
        .args(names)
        .output()
        .unwrap();
    assert!(
        saved.status.success(),
        "docker save {names:?}: {}",
        String::from_utf8_lossy(&saved.stderr)
    );
    let xz = Command::new("xz")
        .args([level, "-T0", "-c"])
        .arg(&tar)
        .stdout(std::fs::File::create(path).unwrap())
        .status()
        .unwrap();
    assert!(xz.success(), "xz {level} {}", tar.display());
    let _ = std::fs::remove_file(&tar);
}

pub async fn upload(s3: &aws_sdk_s3::Client, key: &str, bytes: Vec<u8>, sha256: Option<String>) {
    let mut put = s3.put_object().bucket(BUCKET).key(key).body(bytes.into());
    if let Some(sha) = sha256 {
        put = put.metadata("sha256", sha);
    }
    put.send().await.unwrap();
}

/// Uploads `bytes` as a one-part multipart upload with S3's SHA-256 checksum, as `aws s3 cp
/// --checksum-algorithm SHA256` does above its threshold: the object's checksum is then of the
/// parts' checksums (composite), not of the bytes.
pub async fn upload_multipart(s3: &aws_sdk_s3::Client, key: &str, bytes: Vec<u8>) {
    use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
    let upload = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let part = s3
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(id)
        .part_number(1)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(bytes.into())
        .send()
        .await
        .unwrap();
    let done = CompletedPart::builder()
        .part_number(1)
        .set_e_tag(part.e_tag().map(str::to_owned))
        .set_checksum_sha256(part.checksum_sha256().map(str::to_owned))
        .build();
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().parts(done).build())
        .send()
        .await
        .unwrap();
}

pub async fn notifications(s3: &aws_sdk_s3::Client, on: bool) {
    let mut config = aws_sdk_s3::types::NotificationConfiguration::builder();
    if on {
        config = config.event_bridge_configuration(
            aws_sdk_s3::types::EventBridgeConfiguration::builder().build(),
        );
    }
    s3.put_bucket_notification_configuration()
        .bucket(BUCKET)
        .notification_configuration(config.build())
        .send()
        .await
        .unwrap();
}

/// `history --json` rows of `name`, newest first.
pub fn history(config: &str, name: &str) -> Vec<serde_json::Value> {
    let (code, out, err) = run_cli(config, &["history", name, "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    json(&out)["deployments"].as_array().cloned().unwrap()
}

pub fn image_of(container: &str) -> String {
    docker(&["inspect", "--format", "{{.Image}}", container])
}
