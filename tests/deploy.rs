//! Container redeploys on the real stack: moto (SQS, ECR), a local registry with basic auth
//! that accepts only the ECR credentials, and the machine's Docker Engine.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::docker::*;
use common::site::*;
use common::*;
use ecr_deployd::adapters::docker::DockerRuntime;
use ecr_deployd::adapters::ecr::{EcrCredentials, EcrRegistry};
use ecr_deployd::adapters::sqs::SqsQueue;
use ecr_deployd::app::{Agent, deploy_config};
use ecr_deployd::config::Settings;
use ecr_deployd::deploy::Executor;
use ecr_deployd::store::{Deployment, Outcome, Store};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

type RealAgent = Agent<SqsQueue, EcrRegistry, Executor<DockerRuntime, EcrCredentials>>;

/// The one harness's site; the agent runs in this process (the tests look at its queue,
/// registry and store directly).
struct Stack {
    site: Site,
}

impl std::ops::Deref for Stack {
    type Target = Site;
    fn deref(&self) -> &Site {
        &self.site
    }
}

impl Stack {
    async fn new(test: &str) -> Self {
        Self {
            site: Site::builder(test).without_dlq().start().await,
        }
    }

    fn settings(&self) -> Settings {
        let mut s = self.site.settings(0);
        s.sweep = Default::default();
        s.deploy.debounce_millis = 200;
        s.deploy.health_timeout_seconds = 20;
        s.deploy.stop_timeout_seconds = 5;
        s
    }

    fn image(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.registry.host)
    }

    async fn agent(&self) -> Running {
        let settings = self.settings();
        let sdk = self.sdk.clone();
        let store = Arc::new(Store::open(&settings.state.path).unwrap());
        let executor = Executor::new(
            Arc::new(
                DockerRuntime::new(under_test().docker_host.as_deref())
                    .expect("the Engine under test"),
            ),
            Arc::new(EcrCredentials::new(&sdk)),
            store,
            deploy_config(&settings),
        );
        assert_eq!(executor.recover().await.unwrap(), 0);
        let agent = Arc::new(Agent {
            queue: Arc::new(SqsQueue::new(&sdk, &self.url, Duration::from_secs(1))),
            registry: Arc::new(EcrRegistry::new(&sdk)),
            deployer: Arc::new(executor),
            stats: Arc::default(),
            notifier: ecr_deployd::notify::Notifier::disabled(),
        });
        let token = CancellationToken::new();
        let (a, t) = (agent.clone(), token.clone());
        let task = tokio::spawn(async move { a.run(&settings, t, Duration::from_secs(30)).await });
        Running { agent, token, task }
    }

    async fn drained(&self) {
        eventually(Duration::from_secs(60), "queue drained", || async {
            queue_counts(&self.sqs, &self.url).await == (0, 0)
        })
        .await;
    }
}

struct Running {
    agent: Arc<RealAgent>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn history(&self, container: &str) -> Vec<Deployment> {
        self.agent
            .deployer
            .store()
            .history(Some(container), 50)
            .unwrap()
    }

    async fn until_outcomes(&self, container: &str, n: usize) -> Vec<Deployment> {
        eventually(Duration::from_secs(90), "deployment recorded", || async {
            self.history(container)
                .iter()
                .filter(|d| d.outcome.is_some())
                .count()
                >= n
        })
        .await;
        self.history(container)
    }

    async fn stop(self) {
        self.token.cancel();
        self.task.await.unwrap();
    }
}

fn inspect(name: &str) -> Value {
    let out = docker(&["inspect", name]);
    serde_json::from_str::<Value>(&out).unwrap()[0].clone()
}

fn exec(name: &str, script: &str) -> String {
    docker(&["exec", "-u", "0", name, "/bin/busybox", "sh", "-c", script])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_replaces_the_container_keeping_its_whole_configuration_and_data() {
    let s = Stack::new("config").await;
    let v1 = s.first_version("team/web", Kind::Healthy).await.0;
    let name = s.scope.name("web");
    let octet = s.scope.octet();
    let front = s.scope.name("front");
    let back = s.scope.name("back");
    s.scope.network(&front, &format!("10.231.{octet}.0/24"));
    s.scope.network(&back, &format!("10.232.{octet}.0/24"));
    let named = s.scope.name("data");
    s.scope.volume(&named);
    let bind_dir = tempfile::tempdir().unwrap();
    std::fs::write(bind_dir.path().join("hello"), "from the host").unwrap();
    let ip = format!("10.231.{octet}.10");
    s.scope.run(
        &name,
        &[
            "--label",
            "ecr-deployd.enable=true",
            "--label",
            "team=web",
            "--network",
            &front,
            "--ip",
            &ip,
            "--network-alias",
            "web",
            "-e",
            "MODE=prod",
            "-u",
            "1000:1000",
            "-w",
            "/",
            "--restart",
            "unless-stopped",
            "-p",
            "127.0.0.1::8081",
            "-v",
            &format!("{named}:/named"),
            "-v",
            "/anon",
            "-v",
            &format!("{}:/host:ro", bind_dir.path().display()),
            "--health-cmd",
            "/bin/busybox true",
            "--health-interval",
            "1s",
            "--log-opt",
            "max-size=1m",
            &s.image("team/web", "prod"),
            "/bin/busybox",
            "httpd",
            "-f",
            "-p",
            "8081",
            "-h",
            "/www",
        ],
    );
    docker(&["network", "connect", "--alias", "web-back", &back, &name]);
    exec(
        &name,
        "echo named-data > /named/f && echo anon-data > /anon/f",
    );
    let before = inspect(&name);

    let running = s.agent().await;
    let v2 = s.silent_push("team/web", Kind::Healthy, "v2").await;
    s.event("team/web", &v2).await;
    let history = running.until_outcomes(&name, 1).await;
    s.drained().await;
    running.stop().await;

    let d = &history[0];
    assert_eq!(d.outcome, Some(Outcome::Succeeded), "{d:?}");
    assert_eq!(
        (
            d.from_digest.as_deref(),
            d.to_digest.as_str(),
            d.trigger.as_str()
        ),
        (Some(v1.as_str()), v2.as_str(), "event")
    );
    assert!(d.phases.pull_ms > 0 && d.ended_at_ms.is_some());
    let present = containers_named(&name);
    assert_eq!(
        present.len(),
        1,
        "exactly one container, no parked old one: {present:?}"
    );
    assert!(present[0].1, "running");
    assert_eq!(running_digest(&name), v2);

    let after = inspect(&name);
    assert_ne!(after["Id"], before["Id"]);
    let (c, h) = (&after["Config"], &after["HostConfig"]);
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        env.contains(&"MODE=prod") && env.contains(&"IMAGE_DEFAULT=yes"),
        "{env:?}"
    );
    assert_eq!(c["Cmd"], before["Config"]["Cmd"]);
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["WorkingDir"], "/");
    assert_eq!(c["Labels"]["team"], "web");
    assert_eq!(c["Labels"]["ecr-deployd.enable"], "true");
    assert_eq!(c["Healthcheck"], before["Config"]["Healthcheck"]);
    assert_ne!(
        c["Hostname"], before["Config"]["Hostname"],
        "hostname not inherited from the old id"
    );
    assert_eq!(h["RestartPolicy"]["Name"], "unless-stopped");
    assert_eq!(h["PortBindings"], before["HostConfig"]["PortBindings"]);
    let nets = &after["NetworkSettings"]["Networks"];
    if let Some(podman) = under_test().podman() {
        // Podman shows the log size limit in its own inspect only, and shows no static IP at
        // all (IPAMConfig null, README "Supported engines"): the successor is on the network
        // with an address of Podman's choosing.
        assert_eq!(
            podman.inspect(&name)["HostConfig"]["LogConfig"]["Size"],
            "1MB"
        );
        let got = nets[&front]["IPAddress"].as_str().unwrap_or_default();
        assert!(got.starts_with(&format!("10.231.{octet}.")), "{nets}");
    } else {
        assert_eq!(h["LogConfig"]["Config"]["max-size"], "1m");
        assert_eq!(nets[&front]["IPAddress"], ip, "static IP kept");
    }
    assert!(
        nets[&front]["Aliases"]
            .as_array()
            .unwrap()
            .contains(&Value::from("web"))
    );
    assert!(
        nets[&back]["Aliases"]
            .as_array()
            .unwrap()
            .contains(&Value::from("web-back"))
    );
    assert_eq!(
        exec(&name, "cat /named/f /anon/f /host/hello"),
        "named-data\nanon-data\nfrom the host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_exits_at_once_is_rolled_back_blocked_and_the_next_good_push_deploys() {
    let s = Stack::new("exits").await;
    let v1 = s.first_version("team/api", Kind::Serve).await.0;
    let name = s.scope.name("api");
    s.scope.run(
        &name,
        &[
            "--label",
            "ecr-deployd.enable=true",
            &s.image("team/api", "prod"),
        ],
    );
    let running = s.agent().await;

    let bad = s.silent_push("team/api", Kind::ExitAtOnce, "bad").await;
    s.event("team/api", &bad).await;
    let h = running.until_outcomes(&name, 1).await;
    assert_eq!(h[0].outcome, Some(Outcome::RolledBack), "{:?}", h[0]);
    assert!(
        h[0].error.as_deref().unwrap_or("").contains("exited"),
        "{:?}",
        h[0].error
    );
    assert_eq!(containers_named(&name).len(), 1);
    assert!(containers_named(&name)[0].1, "the old container runs again");
    assert_eq!(running_digest(&name), v1);

    // The same digest again (a replayed or duplicate event): blocked, no second attempt.
    s.event("team/api", &bad).await;
    s.drained().await;
    assert_eq!(running.history(&name).len(), 1);

    let good = s.silent_push("team/api", Kind::Serve, "v3").await;
    s.event("team/api", &good).await;
    let h = running.until_outcomes(&name, 2).await;
    s.drained().await;
    // The emulator's token "expired" in 2015: cached anyway for a floor period, not refetched
    // in a loop — one GetAuthorizationToken for both deploys.
    assert_eq!(running.agent.deployer.credentials().fetches(), 1);
    running.stop().await;
    assert_eq!(h[0].outcome, Some(Outcome::Succeeded), "{:?}", h[0]);
    assert_eq!(running_digest(&name), good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_never_becomes_healthy_is_rolled_back_after_its_health_timeout() {
    let s = Stack::new("unhealthy").await;
    let v1 = s.first_version("team/slow", Kind::Healthy).await.0;
    let name = s.scope.name("slow");
    s.scope.run(
        &name,
        &[
            "--label",
            "ecr-deployd.enable=true",
            "--label",
            "ecr-deployd.health-timeout=3",
            &s.image("team/slow", "prod"),
        ],
    );
    let running = s.agent().await;
    let stuck = s
        .silent_push("team/slow", Kind::NeverHealthy, "stuck")
        .await;
    s.event("team/slow", &stuck).await;
    let h = running.until_outcomes(&name, 1).await;
    running.stop().await;
    assert_eq!(h[0].outcome, Some(Outcome::RolledBack));
    let error = h[0].error.as_deref().unwrap_or("");
    if under_test().podman().is_some() {
        // Podman counts a failed check inside the start period (Docker does not): the image
        // is reported unhealthy, and rolled back for that, before its health timeout.
        assert!(
            error.contains("within 3s") || error.contains("is unhealthy"),
            "{error}"
        );
    } else {
        assert!(error.contains("within 3s"), "{error}");
        assert!(h[0].phases.health_ms >= 3000);
    }
    assert_eq!(running_digest(&name), v1);
    assert_eq!(containers_named(&name).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pull_leaves_the_old_container_untouched_and_unmanaged_containers_are_never_touched()
 {
    let s = Stack::new("pullfail").await;
    s.first_version("team/job", Kind::Serve).await;
    let name = s.scope.name("job");
    let bystander = s.scope.name("bystander");
    let managed_id = s.scope.run(
        &name,
        &[
            "--label",
            "ecr-deployd.enable=true",
            &s.image("team/job", "prod"),
        ],
    );
    let bystander_id = s.scope.run(&bystander, &[&s.image("team/job", "prod")]);
    let stopped = s.scope.name("stopped");
    let stopped_id = s.scope.run(
        &stopped,
        &[
            "--label",
            "ecr-deployd.enable=true",
            &s.image("team/job", "prod"),
        ],
    );
    docker(&["stop", &stopped]);
    let running = s.agent().await;

    // ECR names a digest the registry does not have.
    let missing = format!("sha256:{}", "e".repeat(64));
    put_digest(&s.ecr, "team/job", "prod", &missing).await;
    s.event("team/job", &missing).await;
    let h = running.until_outcomes(&name, 1).await;
    assert_eq!(h[0].outcome, Some(Outcome::Failed));
    assert!(
        h[0].error.as_deref().unwrap_or("").contains("pull"),
        "{:?}",
        h[0].error
    );
    assert_eq!(
        inspect(&name)["Id"],
        managed_id.as_str(),
        "same container, never stopped"
    );
    assert_eq!(inspect(&name)["State"]["Running"], true);

    // A good push: the managed container moves, the one without the label does not.
    let v2 = s.silent_push("team/job", Kind::Serve, "v2").await;
    s.event("team/job", &v2).await;
    running.until_outcomes(&name, 2).await;
    s.drained().await;
    running.stop().await;
    assert_eq!(running_digest(&name), v2);
    assert_eq!(inspect(&bystander)["Id"], bystander_id.as_str());
    // A managed container its operator stopped is neither started nor replaced.
    assert_eq!(inspect(&stopped)["Id"], stopped_id.as_str());
    assert_eq!(inspect(&stopped)["State"]["Running"], false);
    assert!(
        Store::open(&s.settings().state.path)
            .unwrap()
            .history(Some(&stopped), 5)
            .unwrap()
            .is_empty()
    );
    assert_ne!(running_digest(&bystander), v2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mac_address_the_user_set_and_a_static_ip_survive_and_assigned_macs_are_not_copied() {
    let s = Stack::new("mac").await;
    s.first_version("team/mac", Kind::Serve).await;
    let octet = s.scope.octet();
    let lan = s.scope.name("lan");
    s.scope.network(&lan, &format!("10.233.{octet}.0/24"));
    let (pinned, plain) = (s.scope.name("pinned"), s.scope.name("plain"));
    let mac = format!("02:42:0a:e9:{octet:02x}:20");
    let ip = format!("10.233.{octet}.20");
    let labels = serde_json::json!({"ecr-deployd.enable": "true", TEST_LABEL: s.scope.id});
    create_via_api(
        &pinned,
        &serde_json::json!({
            "Image": s.image("team/mac", "prod"), "MacAddress": mac, "Labels": labels,
            "HostConfig": {"Init": true, "NetworkMode": lan},
            "NetworkingConfig": {"EndpointsConfig": {lan.clone(): {"IPAMConfig": {"IPv4Address": ip}}}}
        }),
    );
    create_via_api(
        &plain,
        &serde_json::json!({"Image": s.image("team/mac", "prod"), "Labels": labels, "HostConfig": {"Init": true, "NetworkMode": lan}}),
    );
    docker(&["start", &pinned, &plain]);
    let assigned = inspect(&plain)["NetworkSettings"]["Networks"][&lan]["MacAddress"].clone();

    let running = s.agent().await;
    let v2 = s.silent_push("team/mac", Kind::Serve, "v2").await;
    s.event("team/mac", &v2).await;
    running.until_outcomes(&pinned, 1).await;
    running.until_outcomes(&plain, 1).await;
    running.stop().await;

    let after = inspect(&pinned);
    if under_test().podman().is_some() {
        // Podman's inspect shows neither the MAC nor the static IP the user set (README
        // "Supported engines"), so neither can be told from an assigned one: both successors
        // run the new image on the network, with addresses of Podman's choosing, none shared.
        let on_lan = |v: &Value| v["NetworkSettings"]["Networks"][&lan].clone();
        let (a, b) = (on_lan(&after), on_lan(&inspect(&plain)));
        assert_eq!(
            (running_digest(&pinned), running_digest(&plain)),
            (v2.clone(), v2)
        );
        assert!(
            a["IPAddress"].as_str().is_some_and(|ip| !ip.is_empty()),
            "{a}"
        );
        assert_ne!(a["IPAddress"], b["IPAddress"]);
        assert_ne!(a["MacAddress"], b["MacAddress"]);
        return;
    }
    assert_eq!(after["Config"]["MacAddress"], mac.as_str());
    assert_eq!(
        after["NetworkSettings"]["Networks"][&lan]["MacAddress"],
        mac.as_str()
    );
    assert_eq!(
        after["NetworkSettings"]["Networks"][&lan]["IPAddress"],
        ip.as_str()
    );
    let plain_after = inspect(&plain);
    assert_eq!(running_digest(&plain), v2);
    assert_eq!(
        plain_after["Config"]["MacAddress"].as_str().unwrap_or(""),
        "",
        "no MAC frozen into the config"
    );
    // The address Docker assigned the old container is free again and may be reused; what
    // matters is that two containers never share one.
    assert_ne!(
        plain_after["NetworkSettings"]["Networks"][&lan]["MacAddress"],
        after["Config"]["MacAddress"]
    );
    let _ = assigned;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_api_1_44_a_per_network_mac_the_user_set_survives_and_assigned_macs_are_not_copied() {
    use common::matrix::{Flavour, runs_on};
    let modern = [
        Flavour::Docker26,
        Flavour::Docker28,
        Flavour::Docker28Containerd,
    ];
    if !runs_on(&modern, "a MAC per network is set by the CLI from API 1.44") {
        return;
    }
    let s = Stack::new("mac144").await;
    s.first_version("team/mac", Kind::Serve).await;
    let octet = s.scope.octet();
    let (lan, side) = (s.scope.name("lan"), s.scope.name("side"));
    s.scope.network(&lan, &format!("10.234.{octet}.0/24"));
    s.scope.network(&side, &format!("10.235.{octet}.0/24"));
    let (pinned, plain) = (s.scope.name("pinned"), s.scope.name("plain"));
    let mac = format!("02:42:0a:ea:{octet:02x}:20");
    let ip = format!("10.234.{octet}.20");
    let image = s.image("team/mac", "prod");
    let on_lan = format!("name={lan},mac-address={mac},ip={ip}");
    let on_side = format!("name={side},alias=pinned-side");
    let managed = ["--label", "ecr-deployd.enable=true"];
    s.scope.run(
        &pinned,
        &[
            &managed[..],
            &["--network", &on_lan, "--network", &on_side, &image],
        ]
        .concat(),
    );
    s.scope.run(
        &plain,
        &[&managed[..], &["--network", &lan, &image]].concat(),
    );
    let mac_on = |name: &str, net: &str| {
        inspect(name)["NetworkSettings"]["Networks"][net]["MacAddress"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let (side_before, plain_before) = (mac_on(&pinned, &side), mac_on(&plain, &lan));

    let running = s.agent().await;
    let v2 = s.silent_push("team/mac", Kind::Serve, "v2").await;
    s.event("team/mac", &v2).await;
    let pinned_history = running.until_outcomes(&pinned, 1).await;
    running.until_outcomes(&plain, 1).await;
    running.stop().await;

    let d = &pinned_history[0];
    assert_eq!(d.outcome, Some(Outcome::Succeeded), "{d:?}");
    assert_eq!(running_digest(&pinned), v2);
    assert_eq!(running_digest(&plain), v2);
    let after = inspect(&pinned);
    let nets = &after["NetworkSettings"]["Networks"];
    assert_eq!(nets[&lan]["MacAddress"], mac.as_str(), "the user's MAC");
    assert_eq!(nets[&lan]["IPAddress"], ip.as_str(), "the static IP");
    assert!(
        nets[&side]["Aliases"]
            .as_array()
            .is_some_and(|a| a.contains(&Value::from("pinned-side"))),
        "{nets}"
    );
    // Up to API 1.51 the Engine shows the MAC asked for on the first network here.
    assert_eq!(after["Config"]["MacAddress"], mac.as_str());
    assert_eq!(
        inspect(&plain)["Config"]["MacAddress"]
            .as_str()
            .unwrap_or_default(),
        "",
        "no assigned MAC frozen in as if the user had set it"
    );
    if under_test().flavour != Flavour::Docker26 {
        // Docker 28 assigns random MACs (26 derives them from the IP): a copied one would
        // come back the same.
        assert_ne!(mac_on(&pinned, &side), side_before, "second network");
        assert_ne!(mac_on(&plain, &lan), plain_before, "first network");
    }
}

/// A Unix socket that forwards to the Engine while "up": the test cuts Docker off and back.
struct DockerProxy {
    path: std::path::PathBuf,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl DockerProxy {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            path: dir.path().join("docker.sock"),
            task: None,
            _dir: dir,
        }
    }

    fn up(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let listener = tokio::net::UnixListener::bind(&self.path).unwrap();
        self.task = Some(tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut engine) =
                        tokio::net::UnixStream::connect(common::matrix::under_test().socket()).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                    }
                });
            }
        }));
    }

    fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_unreachable_keeps_the_message_and_the_deploy_happens_once_it_is_back() {
    let s = Stack::new("dockerdown").await;
    s.first_version("team/down", Kind::Serve).await;
    let name = s.scope.name("down");
    s.scope.run(
        &name,
        &[
            "--label",
            "ecr-deployd.enable=true",
            &s.image("team/down", "prod"),
        ],
    );
    let mut proxy = DockerProxy::new();
    let settings = s.settings();
    let sdk = s.moto.sdk().await;
    let executor = Executor::new(
        Arc::new(
            DockerRuntime::new(Some(&format!("unix://{}", proxy.path.display())))
                .expect("a unix:// address"),
        ),
        Arc::new(EcrCredentials::new(&sdk)),
        Arc::new(Store::open(&settings.state.path).unwrap()),
        deploy_config(&settings),
    );
    let agent = Arc::new(Agent {
        queue: Arc::new(SqsQueue::new(&sdk, &s.url, Duration::from_secs(1))),
        registry: Arc::new(EcrRegistry::new(&sdk)),
        deployer: Arc::new(executor),
        stats: Arc::default(),
        notifier: ecr_deployd::notify::Notifier::disabled(),
    });
    let token = CancellationToken::new();
    let task = {
        let (a, t, st) = (agent.clone(), token.clone(), settings.clone());
        tokio::spawn(async move { a.run(&st, t, Duration::from_secs(30)).await })
    };
    let running = Running { agent, token, task };

    let v2 = s.silent_push("team/down", Kind::Serve, "v2").await;
    s.event("team/down", &v2).await;
    eventually(
        Duration::from_secs(30),
        "the request was tried and left for later",
        || async { ecr_deployd::stats::Stats::get(&running.agent.stats.retried_later) >= 1 },
    )
    .await;
    assert_eq!(
        queue_counts(&s.sqs, &s.url).await,
        (0, 1),
        "kept, not deleted"
    );
    assert!(running.history(&name).is_empty());

    proxy.up();
    // The message comes back after the retry delay and is deployed.
    let h = running.until_outcomes(&name, 1).await;
    s.drained().await;
    running.stop().await;
    proxy.down();
    assert_eq!(h[0].outcome, Some(Outcome::Succeeded));
    assert_eq!(running_digest(&name), v2);
}
