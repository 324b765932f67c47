//! The deploy stage's safety holes, closed, on the real stack: a hung Engine fails a deploy
//! as transient (the old container runs, the lock is free again), and a container whose
//! namespace another container shares is refused before anything is touched.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::docker::*;
use common::site::*;
use common::*;
use ecr_deployd::adapters::docker::DockerRuntime;
use ecr_deployd::adapters::ecr::EcrCredentials;
use ecr_deployd::app::deploy_config;
use ecr_deployd::config::Settings;
use ecr_deployd::deploy::Executor;
use ecr_deployd::event::{Digest, ImageRef};
use ecr_deployd::image::Desired;
use ecr_deployd::ports::{DeployRequest, Deployer, Trigger};
use ecr_deployd::store::{Outcome, Store};

/// A socket in front of the Engine that forwards, or — once told to hang — accepts new
/// connections and never answers them (an Engine stuck on a lock, a full disk, a bug).
struct HangingProxy {
    path: std::path::PathBuf,
    hang: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl HangingProxy {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let hang = Arc::new(AtomicBool::new(false));
        let flag = hang.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut client, _)) = listener.accept().await {
                if flag.load(Ordering::SeqCst) {
                    held.push(client);
                    continue;
                }
                tokio::spawn(async move {
                    if let Ok(mut engine) =
                        tokio::net::UnixStream::connect(common::matrix::under_test().socket()).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                    }
                });
            }
        });
        Self {
            path,
            hang,
            task,
            _dir: dir,
        }
    }
}

impl Drop for HangingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn settings(site: &Site) -> Settings {
    let mut s = Settings::default();
    s.registry.mirror = site.registry.host.clone();
    s.deploy.min_uptime_seconds = 1;
    s.deploy.stop_timeout_seconds = 5;
    s.state.path = site.state.clone();
    s
}

/// The deploy stage on the site's emulator and store, talking to the Engine at `docker_host`
/// (a socket in front of it) with calls bounded by `call_timeout`.
async fn executor_via(
    site: &Site,
    docker_host: &str,
    call_timeout: Duration,
) -> Executor<DockerRuntime, EcrCredentials> {
    let runtime = DockerRuntime::new(Some(docker_host))
        .unwrap()
        .with_call_timeout(call_timeout);
    let sdk = sdk_for(&site.endpoint).await;
    let settings = settings(site);
    Executor::new(
        Arc::new(runtime),
        Arc::new(EcrCredentials::new(&sdk)),
        Arc::new(Store::open(&settings.state.path).unwrap()),
        deploy_config(&settings),
    )
}

/// An event's request for `image` (`repo:tag`) to run `digest`.
fn request_for(image: &str, digest: &str) -> DeployRequest {
    DeployRequest {
        image: ImageRef::parse_repo_tag(image).unwrap(),
        desired: Desired::single(Digest::parse(digest).unwrap()),
        trigger: Trigger::Event,
        event_time: None,
        resolved_in: Duration::ZERO,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_engine_fails_the_deploy_as_transient_and_holds_no_lock() {
    let site = Site::new("hung").await;
    let (name, v1) = site.container("team/hung", "web").await;
    let v2 = site.silent_push("team/hung", Kind::Serve, "v2").await;
    let proxy = HangingProxy::start();
    let docker_host = format!("unix://{}", proxy.path.display());
    let executor = executor_via(&site, &docker_host, Duration::from_secs(2)).await;
    let request = || request_for("team/hung:prod", &v2);
    // The Engine answers the first calls (pooled connection), then hangs on new ones.
    executor.runtime().version().await.unwrap();
    proxy.hang.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let first = tokio::time::timeout(Duration::from_secs(120), executor.deploy(request()))
        .await
        .expect("a hung Engine must not hang the deploy");
    let err = first.expect_err("the deploy cannot be finished against a hung Engine");
    assert!(err.reason.contains("no answer from the Engine"), "{err}");
    eprintln!("failed after {:?}: {err}", started.elapsed());
    let present = containers_named(&name);
    assert_eq!(present.len(), 1, "the old container alone: {present:?}");
    assert!(present[0].1, "and running");
    assert_eq!(running_digest(&name), v1);
    assert!(
        docker(&["ps", "-aq", "--filter", &format!("name={name}.ecr-deployd")]).is_empty(),
        "nothing half-made left behind"
    );

    // The Engine recovers: the same executor (same locks, same slots) deploys at once.
    proxy.hang.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(120), executor.deploy(request()))
        .await
        .expect("no lock or slot was left held")
        .unwrap();
    assert_eq!(running_digest(&name), v2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_whose_network_namespace_is_shared_is_refused_and_nothing_is_touched() {
    let site = Site::new("shared-ns").await;
    let (name, v1) = site.container("team/shared", "app").await;
    let app_id = docker(&["inspect", "--format", "{{.Id}}", &name]);
    let sidecar = site.scope.name("vpn");
    let image = format!("{}/team/shared:prod", site.registry.host);
    site.scope.run(
        &sidecar,
        &[
            "--network",
            &format!("container:{name}"),
            "--entrypoint",
            "/bin/busybox",
            &image,
            "sleep",
            "3600",
        ],
    );
    site.silent_push("team/shared", Kind::Serve, "v2").await;

    let (code, out, err) = site.cli(&["sweep"]);
    assert_eq!(code, 0, "{out}{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_default();
    assert!(row.contains("refused") && row.contains(&sidecar), "{out}");
    assert!(row.contains("network namespace"), "{row}");
    // Nothing was touched: the same container, running, on v1; no deployment recorded.
    assert_eq!(docker(&["inspect", "--format", "{{.Id}}", &name]), app_id);
    assert_eq!(running_digest(&name), v1);
    assert_eq!(containers_named(&name).len(), 1);
    let (_, out, _) = site.cli(&["history", &name, "--json"]);
    assert_eq!(json(&out)["deployments"], serde_json::json!([]));

    let (_, out, _) = site.cli(&["status", "--json"]);
    let status = json(&out);
    let entry = status["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name.as_str())
        .cloned()
        .unwrap();
    assert_eq!(entry["state"], "refused", "{entry}");
    assert!(
        entry["detail"].as_str().unwrap().contains(&sidecar),
        "{entry}"
    );
    let (_, out, _) = site.cli(&["doctor"]);
    let line = out
        .lines()
        .find(|l| l.contains("deploys not refused"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.starts_with("warn") && line.contains(&sidecar),
        "{line}"
    );
    // The sidecar still has its network: the app is reachable from inside it.
    docker(&[
        "exec",
        &sidecar,
        "/bin/busybox",
        "wget",
        "-qO-",
        "http://127.0.0.1:8080/",
    ]);
}

/// Issue 30 #4 and #5 on a real Engine, through a socket that fails chosen calls. First
/// deploy: the stop's answer is lost while the Engine does stop the old container, and the
/// restore's first start of it is refused — the swap is undone in-process, the old container
/// runs alone again and v2 is not blocked. Second deploy: one inspect of the new container in
/// the health gate gets no answer — asked again, v2 deployed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_stop_a_refused_restore_and_a_lost_health_check_leave_nothing_down_or_blocked() {
    use common::faults::{Fault, FaultyEngine};
    use std::sync::Mutex;
    let site = Site::new("faults").await;
    let (name, v1) = site.container("team/faults", "web").await;
    let v2 = site.silent_push("team/faults", Kind::Serve, "v2").await;
    let old_id = docker(&["inspect", "--format", "{{.Id}}", &name]);
    let original = old_id.clone();
    let health_armed = Arc::new(AtomicBool::new(false));
    let armed = health_armed.clone();
    // (stop faulted, restore start faulted, the new container's id, its inspect faulted)
    let state = Mutex::new((false, false, None::<String>, false));
    let proxy = FaultyEngine::start(Box::new(move |line: &str| {
        let mut s = state.lock().unwrap();
        let post = line.starts_with("POST ");
        if post && line.contains(&format!("/containers/{old_id}/stop")) && !s.0 {
            s.0 = true;
            return Fault::AnswerLost;
        }
        if post && line.contains(&format!("/containers/{old_id}/start")) && !s.1 {
            s.1 = true;
            return Fault::Refused;
        }
        if !armed.load(Ordering::SeqCst) {
            return Fault::Pass;
        }
        let started = line
            .split("/containers/")
            .nth(1)
            .and_then(|rest| rest.strip_suffix("/start HTTP/1.1"));
        if let (true, Some(id), None) = (post, started, &s.2) {
            s.2 = Some(id.to_owned());
        }
        let inspect = s.2.as_ref().map(|id| format!("/containers/{id}/json"));
        if let (false, Some(path)) = (s.3, inspect)
            && line.starts_with("GET ")
            && line.contains(&path)
        {
            s.3 = true;
            return Fault::Refused;
        }
        Fault::Pass
    }));
    let executor = executor_via(&site, &proxy.docker_host(), Duration::from_secs(5)).await;
    let request = || request_for("team/faults:prod", &v2);
    let settings = settings(&site);
    let first = tokio::time::timeout(Duration::from_secs(180), executor.deploy(request()))
        .await
        .expect("the undo ends");
    eprintln!("first deploy: {first:?}");
    assert_eq!(
        proxy.faulted(Fault::AnswerLost).len(),
        1,
        "{:?}",
        proxy.seen
    );
    assert_eq!(proxy.faulted(Fault::Refused).len(), 1, "{:?}", proxy.seen);
    let present = containers_named(&name);
    assert_eq!(present.len(), 1, "the old container alone: {present:?}");
    assert!(present[0].1, "and running again");
    assert_eq!(
        docker(&["inspect", "--format", "{{.Id}}", &name]),
        original,
        "the very container it ran before"
    );
    assert_eq!(running_digest(&name), v1);
    assert!(
        docker(&["ps", "-aq", "--filter", &format!("name={name}.ecr-deployd")]).is_empty(),
        "nothing half-made left behind"
    );
    let store = Store::open(&settings.state.path).unwrap();
    let rows = store.history(Some(&name), 5).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].outcome.is_some(),
        "closed once the old one runs: {rows:?}"
    );

    health_armed.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(180), executor.deploy(request()))
        .await
        .expect("the deploy ends")
        .expect("v2 is not blocked and one lost inspect does not fail it");
    assert_eq!(
        proxy.faulted(Fault::Refused).len(),
        2,
        "the health gate's inspect was faulted: {:?}",
        proxy.seen
    );
    assert_eq!(running_digest(&name), v2);
    assert_eq!(containers_named(&name).len(), 1);
    let rows = store.history(Some(&name), 5).unwrap();
    assert_eq!(rows[0].outcome, Some(Outcome::Succeeded), "{rows:?}");
}
