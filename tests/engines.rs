//! The engine matrix (issue 32, SPEC §15): one scenario, the Engine its parameter, run on a
//! side Docker 28 Engine (`tests/common/engine.rs`) with the classic image store and with the
//! containerd image store. The agent is the built binary, pointed at the side Engine by
//! `DOCKER_HOST`. The system Engine only builds the test images and pushes them to the test
//! registry; the side Engine pulls them from there (the agent with the ECR credentials).
//!
//! `RECORD_ENGINE_FIXTURES=1` also writes the side Engine's image inspect answers into
//! `tests/fixtures/engines/` (the parse tests of `src/adapters/docker/image.rs` read them).

mod common;

use std::time::{Duration, Instant};

use common::docker::*;
use common::engine::{SideEngine, Store};
use common::site::*;
use common::*;
use ecr_deployd::store::Outcome;

struct OnEngine {
    // Fields drop in order: the side Engine (and everything on it) before the registry.
    engine: SideEngine,
    site: Site,
}

impl OnEngine {
    async fn new(test: &str, store: Store) -> Self {
        let site = Site::new(test).await;
        let engine = SideEngine::start(store);
        Self { engine, site }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        vec![("DOCKER_HOST", self.engine.docker_host.as_str())]
    }

    /// v1 of `repo` in the registry and on the side Engine as `…:prod`, which ECR names.
    async fn first_version(&self, repo: &str, kind: Kind) -> (String, String) {
        let side = ["-H", self.engine.docker_host.as_str()];
        let fetch = |pinned: &str, prod: &str| {
            self.site
                .registry
                .docker_logged_in(&[&side[..], &["pull", "-q", pinned]].concat());
            self.engine.docker(&["tag", pinned, prod]);
        };
        self.site.first_version_fetched(repo, kind, fetch).await
    }

    /// Exactly one container called `name` (none parked), running; its inspect.
    fn one_running(&self, name: &str) -> serde_json::Value {
        let all = self.engine.docker(&["ps", "-a", "--format", "{{.Names}}"]);
        let mine: Vec<&str> = all.lines().filter(|l| l.starts_with(name)).collect();
        assert_eq!(mine, vec![name], "exactly one, none parked: {all}");
        let seen = self.engine.inspect("container", name);
        assert_eq!(seen["State"]["Running"], true, "{name} runs");
        seen
    }

    fn record(&self, what: &str, image: &str) {
        if std::env::var_os("RECORD_ENGINE_FIXTURES").is_none() {
            return;
        }
        let store = match self.engine.store {
            Store::Classic => "classic",
            Store::Containerd => "containerd",
        };
        let version = self.engine.version.split('.').next().unwrap_or("x");
        let api = self
            .engine
            .docker(&["version", "--format", "{{.Server.APIVersion}}"]);
        let out = self.engine.docker(&["image", "inspect", image]);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/engines");
        std::fs::create_dir_all(dir).unwrap();
        let path = format!("{dir}/docker{version}-{store}-api{api}-image-{what}.json");
        std::fs::write(&path, serde_json::to_string_pretty(&value[0]).unwrap()).unwrap();
    }
}

/// A container following a tag on `store`: a push found by the sweep re-creates it with its
/// whole configuration (env, labels, a named volume, a published port, a user network with an
/// alias), `status` then says up to date (on the containerd store too, where the image id is
/// the manifest digest), and an image that never gets healthy is rolled back.
async fn deploy_keeps_the_configuration_and_rolls_back(store: Store, test: &str) {
    let started = Instant::now();
    let e = OnEngine::new(test, store).await;
    eprintln!(
        "side Engine {} ({store:?}) up after {:?}",
        e.engine.version,
        started.elapsed()
    );
    let scope = e.site.scope.id.clone();
    let label = format!("{TEST_LABEL}={scope}");
    let (_v1, prod) = e.first_version("team/web", Kind::Serve).await;
    e.record("pulled", &prod);
    let name = e.site.scope.name("web");
    let net = format!("{name}-net");
    let vol = format!("{name}-data");
    e.engine
        .docker(&["network", "create", "--label", &label, &net]);
    e.engine
        .docker(&["volume", "create", "--label", &label, &vol]);
    e.engine.run(
        &scope,
        &name,
        &[
            "--label",
            "ecr-deployd.enable=true",
            "--label",
            "team=web",
            "-e",
            "MODE=prod",
            "-p",
            "127.0.0.1::8080",
            "-v",
            &format!("{vol}:/data"),
            "--network",
            &net,
            "--network-alias",
            "web-alias",
            "--stop-timeout",
            "2",
            &prod,
        ],
    );
    e.engine
        .docker(&["exec", &name, "/bin/sh", "-c", "echo kept > /data/file"]);
    let old = e.one_running(&name);

    // The sweep (every second) finds the push; no event.
    let mut settings = e.site.settings(1);
    settings.deploy.health_timeout_seconds = 4;
    settings.deploy.stop_timeout_seconds = 2;
    let config = config_of(&settings);
    let agent = AgentProcess::start_with_env(&config, &["run"], &e.env());
    let v2 = e.site.silent_push("team/web", Kind::Serve, "v2").await;
    let done = e.site.outcome(&name, &v2).await;
    assert_eq!(done.outcome, Some(Outcome::Succeeded), "{done:?}");
    let new = e.one_running(&name);
    assert_ne!(new["Id"], old["Id"], "re-created");
    assert_eq!(e.engine.running_digest(&name).as_deref(), Some(v2.as_str()));
    let env: Vec<&str> = new["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(env.contains(&"MODE=prod"), "{env:?}");
    assert_eq!(new["Config"]["Labels"]["team"], "web");
    assert_eq!(new["Config"]["Labels"][TEST_LABEL], scope.as_str());
    let mount = &new["Mounts"][0];
    assert_eq!(
        (&mount["Type"], &mount["Name"]),
        (&"volume".into(), &vol.as_str().into())
    );
    assert_eq!(
        e.engine
            .docker(&["exec", &name, "/bin/sh", "-c", "cat /data/file"]),
        "kept"
    );
    let aliases = &new["NetworkSettings"]["Networks"][&net]["Aliases"];
    assert!(
        aliases
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "web-alias")),
        "{aliases}"
    );
    let port = e.engine.docker(&["port", &name, "8080"]);
    let addr = port.lines().next().unwrap().trim().to_owned();
    let mut answer = (0, String::new());
    eventually(Duration::from_secs(10), "the new container serves", || {
        answer = http(&addr, "GET", "/");
        std::future::ready(answer.0 == 200)
    })
    .await;
    assert_eq!(answer.1.trim(), "v2");
    e.record("deployed", new["Image"].as_str().unwrap());

    // Identity: up to date, with the image id the manifest digest on the containerd store.
    let (code, out, err) = run_cli(&config, &["status", "--json"], &e.env());
    assert_eq!(code, 0, "{err}");
    let row = json(&out)["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{name} not in status: {out}"));
    assert_eq!(row["state"], "up_to_date", "{row}\n{}", agent.log_text());

    // An image that never gets healthy within the health timeout: rolled back.
    let v3 = e
        .site
        .silent_push("team/web", Kind::NeverHealthy, "v3")
        .await;
    let done = e.site.outcome(&name, &v3).await;
    assert_eq!(done.outcome, Some(Outcome::RolledBack), "{done:?}");
    assert_eq!(e.one_running(&name)["Id"], new["Id"]);
    assert_eq!(e.engine.running_digest(&name).as_deref(), Some(v2.as_str()));
    drop(agent);
    drop(e);
    eprintln!("{test}: {:?} in all", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker28_classic_store_deploy_keeps_the_configuration_and_rolls_back() {
    deploy_keeps_the_configuration_and_rolls_back(Store::Classic, "eng-d28-classic").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker28_containerd_store_deploy_keeps_the_configuration_and_rolls_back() {
    deploy_keeps_the_configuration_and_rolls_back(Store::Containerd, "eng-d28-ctrd").await;
}

/// An OCI archive (`index.json` → an index of an arm64 and an s390x manifest) whose layer
/// blobs are absent: the Engine loads it, but no manifest has all its content here. Returns
/// (archive, digest of the inner index, the id the Engine reports).
fn archive_without_platform_content(seed: &str) -> (Vec<u8>, String) {
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |bytes: Vec<u8>, keep: bool| {
        let digest = format!("sha256:{}", sha256_hex(&bytes));
        let size = bytes.len();
        if keep {
            blobs.push((digest.clone(), bytes));
        }
        (digest, size)
    };
    let mut manifests = Vec::new();
    for arch in ["arm64", "s390x"] {
        let (layer, layer_size) = add(format!("{seed} {arch} layer").into_bytes(), false);
        let config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Labels": {format!("{TEST_LABEL}.image"): seed}},
            "rootfs": {"type": "layers", "diff_ids": [layer]}
        });
        let (config, config_size) = add(config.to_string().into_bytes(), true);
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size}]
        });
        let (digest, size) = add(manifest.to_string().into_bytes(), true);
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
            "platform": {"architecture": arch, "os": "linux"}
        }));
    }
    let inner = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests
    });
    let (inner, inner_size) = add(inner.to_string().into_bytes(), true);
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": inner, "size": inner_size}]
    });
    let mut tar = tar::Builder::new(Vec::new());
    let mut put = |path: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, bytes).unwrap();
    };
    put("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    put("index.json", index.to_string().as_bytes());
    for (digest, bytes) in &blobs {
        put(&format!("blobs/sha256/{}", &digest[7..]), bytes);
    }
    (tar.into_inner().unwrap(), inner)
}

/// The containerd store answers the inspect of an image none of whose manifests has all its
/// content here with `"RootFS": {}` (no `Type`): the load still gives the image's id (it
/// failed with "missing field `Type`" while the inspect was read by bollard's model).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker28_containerd_store_loads_an_archive_whose_platform_content_is_absent() {
    use ecr_deployd::adapters::docker::DockerRuntime;
    use ecr_deployd::ports::Runtime;
    use futures::StreamExt;
    let started = Instant::now();
    let engine = SideEngine::start(Store::Containerd);
    let seed = format!("eng-archive-{}", std::process::id());
    let (archive, index) = archive_without_platform_content(&seed);
    let runtime = DockerRuntime::new(Some(&engine.docker_host)).unwrap();
    let body = futures::stream::once(async move { Ok(bytes::Bytes::from(archive)) }).boxed();
    let loaded = runtime.load(body).await.expect("the archive loads");
    assert_eq!(loaded, vec![index.clone()]);
    let answer = engine.inspect("image", &index);
    assert_eq!(answer["RootFS"], serde_json::json!({}), "{answer}");
    assert!(runtime.has_image(&index).await.unwrap());
    drop(engine);
    eprintln!(
        "archive without platform content: {:?} in all",
        started.elapsed()
    );
}
