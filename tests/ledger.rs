//! The fleet ledger (SPEC §17) on the real stack: one emulator (moto: S3, SQS, ECR), one
//! test registry, the system's Engine, and four agent processes — three write to one ledger
//! bucket, the fourth names a bucket that does not exist. Each agent manages only the
//! container of its own `[deploy] scope`. One test, one setup, the scenarios in turn:
//!
//! - after a push, `fleet --json` shows each host's new digest and the one before it;
//! - `fleet in-use` lists exactly the running and the rollback digests;
//! - `fleet --html` rendered by a real headless browser (Debian's chromium), its table read
//!   back from the DOM, and a screenshot taken;
//! - the agent whose ledger cannot be written deploys all the same, and says so in `doctor`
//!   and in a metric;
//! - a stopped agent's host turns stale (sweep interval 2 s: stale after 6 s), the others not;
//! - `fleet --ledger` needs no config file.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::docker::*;
use common::fleet::Host;
use common::site::{Site, config_of, json};
use common::*;
use serde_json::Value;
use std::path::Path;

const REPO: &str = "shop/web";
const BUCKET: &str = "fleet-ledger";
const LEDGER: &str = "s3://fleet-ledger/prod/";
const HOSTS: [&str; 3] = ["h1", "h2", "h3"];
const NO_BUCKET: &str = "s3://no-such-ledger/prod/";

/// Host `name`'s config on the site: its queue, `[deploy] scope`, ledger, HTTP listener and
/// state store; sweeps every 2 s.
fn config(
    site: &Site,
    queue: &str,
    name: &str,
    ledger: &str,
    listen: &str,
    state: &Path,
) -> String {
    let mut s = site.settings(2);
    s.queue.url = queue.to_owned();
    s.deploy.scope = name.to_owned();
    s.fleet.name = name.to_owned();
    s.fleet.ledger = ledger.to_owned();
    s.state.path = state.join("state.db");
    s.http.listen = listen.to_owned();
    config_of(&s)
}

/// `fleet <args> --ledger LEDGER` with `config`; exit 0 expected.
fn fleet(config: &str, args: &[&str]) -> String {
    let mut all = vec!["fleet"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--ledger", LEDGER]);
    let (code, out, err) = run_cli(config, &all, &[]);
    assert_eq!(code, 0, "fleet {args:?}: {err}");
    out
}

fn rows(config: &str) -> Vec<Value> {
    json(&fleet(config, &["--json"]))["rows"]
        .as_array()
        .cloned()
        .unwrap()
}

/// The fleet's rows once `check` holds for all of them (and there are three).
async fn until_rows(config: &str, what: &str, check: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut last = Vec::new();
    eventually(Duration::from_secs(90), what, || {
        last = rows(config);
        std::future::ready(last.len() == 3 && last.iter().all(&check))
    })
    .await;
    last
}

#[tokio::test(flavor = "multi_thread")]
async fn three_hosts_write_one_ledger_that_shows_digests_rollbacks_staleness_and_a_page() {
    let started = Instant::now();
    let site = Site::new("ledger").await;
    let (registry, scope) = (&site.registry, &site.scope);
    let s3 = s3_client(&site.sdk);
    create_bucket(&s3, BUCKET).await;
    let v1 = registry.publish(REPO, "v1", Kind::Serve, "v1", true);
    put_digest(&site.ecr, REPO, "prod", &v1).await;
    let image = format!("{}/{REPO}:prod", registry.host);
    docker(&["tag", &format!("{}/{REPO}:v1", registry.host), &image]);
    let metrics_port = free_port();
    let mut hosts: Vec<Host> = Vec::new();
    for name in HOSTS.into_iter().chain(["h4"]) {
        let (queue, _) = create_queue(&site.sqs, &format!("ledger-{name}"), None).await;
        let container = scope.name(name);
        let scope_label = format!("ecr-deployd.scope={name}");
        scope.run(
            &container,
            &[
                "--label",
                "ecr-deployd.enable=true",
                "--label",
                &scope_label,
                &image,
            ],
        );
        let state = tempfile::tempdir().unwrap();
        let (ledger, listen) = match name {
            "h4" => (NO_BUCKET, format!("127.0.0.1:{metrics_port}")),
            _ => (LEDGER, String::new()),
        };
        let config = config(&site, &queue, name, ledger, &listen, state.path());
        let mut host = Host::new(name, container, config, queue, state);
        host.start();
        hosts.push(host);
    }
    let reader = hosts[0].config.clone();

    // The start-up sweeps: every host on v1, nothing deployed yet, so no previous digest.
    let first = until_rows(&reader, "three hosts on v1", |r| {
        r["running_digest"] == v1.as_str()
    })
    .await;
    let names: Vec<&str> = first.iter().map(|r| r["host"].as_str().unwrap()).collect();
    assert_eq!(
        names, HOSTS,
        "h4's bucket does not exist: only three objects"
    );
    assert!(
        first
            .iter()
            .all(|r| r["previous_digest"].is_null() && r["state"] == "up_to_date")
    );

    // A push: every host (h4 too) deploys v2; the ledger shows v2 and v1 before it.
    let v2 = registry.publish(REPO, "v2", Kind::Serve, "v2", false);
    put_digest(&site.ecr, REPO, "prod", &v2).await;
    for h in &hosts {
        send_all(&site.sqs, &h.queue_url, &[push_body(REPO, "prod", &v2)]).await;
    }
    let pushed = Instant::now();
    let after = until_rows(&reader, "three hosts on v2 with v1 before", |r| {
        r["running_digest"] == v2.as_str() && r["previous_digest"] == v1.as_str()
    })
    .await;
    let shown_in = pushed.elapsed();
    for (r, h) in after.iter().zip(&hosts) {
        assert_eq!(
            (r["host"].as_str(), r["container"].as_str()),
            (Some(h.name.as_str()), Some(h.container.as_str()))
        );
        assert_eq!(
            (r["repository"].as_str(), r["tag"].as_str()),
            (Some(REPO), Some("prod"))
        );
        assert_eq!(
            (r["state"].as_str(), r["last_outcome"].as_str()),
            (Some("up_to_date"), Some("succeeded"))
        );
        assert_eq!(r["stale"], false);
        assert!(r["since"].as_str().is_some_and(|s| s.ends_with('Z')), "{r}");
        assert_eq!(
            running_digest_now(&h.container).as_deref(),
            Some(v2.as_str())
        );
    }
    let h4 = &hosts[3];
    eventually(
        Duration::from_secs(60),
        "h4 deploys without its ledger",
        || std::future::ready(running_digest_now(&h4.container).as_deref() == Some(v2.as_str())),
    )
    .await;

    // What a clean-up must keep: exactly v2 (running) and v1 (rollback), on h1..h3.
    let used = json(&fleet(&reader, &["in-use", REPO, "--json"]));
    let digests: Vec<(String, Value)> = used["digests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["digest"].as_str().unwrap().to_owned(),
                d["kept_as"].clone(),
            )
        })
        .collect();
    let mut want = vec![
        (v1.clone(), serde_json::json!(["rollback"])),
        (v2.clone(), serde_json::json!(["running"])),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(digests, want);
    let used_by: Vec<String> = hosts[..3]
        .iter()
        .map(|h| format!("{}/{}", h.name, h.container))
        .collect();
    assert_eq!(used["digests"][0]["used_by"], serde_json::json!(used_by));
    let other = json(&fleet(&reader, &["in-use", "shop/other", "--json"]));
    assert_eq!(other["digests"], serde_json::json!([]));
    let text = fleet(&reader, &["in-use"]);
    assert!(
        text.contains(&v1) && text.contains(&v2) && text.contains("rollback"),
        "{text}"
    );

    // The page, as a browser renders it.
    let page = page_read_back(&reader, &v2, &v1, &used_by);

    // No ledger for h4: deploys went on; doctor and the metric say so.
    let (_, doctor, _) = run_cli(&h4.config, &["doctor"], &[]);
    let line = doctor
        .lines()
        .find(|l| l.contains("fleet ledger written"))
        .unwrap_or_else(|| panic!("{doctor}"));
    assert!(
        line.starts_with("FAIL") && line.contains("s3://no-such-ledger/prod/h4.json"),
        "{line}"
    );
    assert!(line.contains("NoSuchBucket"), "{line}");
    let (_, metrics) = http(&format!("127.0.0.1:{metrics_port}"), "GET", "/metrics");
    let failures: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ecr_deployd_ledger_write_failures_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(failures >= 1.0, "{failures}");
    let doctor = run_cli(&hosts[0].config, &["doctor"], &[]).1;
    assert!(
        doctor
            .lines()
            .any(|l| l.starts_with("ok   fleet ledger written: s3://fleet-ledger/prod/h1.json")),
        "{doctor}"
    );

    // A stopped agent: its host turns stale after 3 sweep intervals; the others stay fresh.
    let mut h3 = hosts.remove(2);
    h3.stop();
    let stopped = Instant::now();
    let stale = until_rows(&reader, "h3 stale, h1 and h2 fresh", |r| {
        r["stale"] == (r["host"] == "h3")
    })
    .await;
    let stale_after = stopped.elapsed();
    assert_eq!(stale.len(), 3);
    let table = fleet(&reader, &[]);
    assert!(
        table.contains("h3 (stale)") && !table.contains("h1 (stale)"),
        "{table}"
    );

    // Any machine with read access: no config file, the AWS chain's endpoint.
    let out = Command::new(agent_bin())
        .args([
            "--config",
            "/nonexistent/config.toml",
            "fleet",
            "--ledger",
            LEDGER,
            "--json",
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL", &site.endpoint)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        json(&String::from_utf8_lossy(&out.stdout))["rows"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let object = s3
        .get_object()
        .bucket(BUCKET)
        .key("prod/h1.json")
        .send()
        .await
        .unwrap();
    let size = object.content_length().unwrap_or(0);
    eprintln!(
        "fleet table:\n{table}\nledger object (1 container): {size} bytes; push → ledger shows v2 on 3 hosts: {shown_in:?}; \
         stale after stop: {stale_after:?}; page: {page}; test wall time {:?}",
        started.elapsed()
    );
    drop(h3);
}

/// `fleet --html`, rendered by headless chromium: the DOM's table cells hold the digests
/// and hosts; a screenshot is taken. Returns what was measured.
fn page_read_back(config: &str, v2: &str, v1: &str, hosts: &[String]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.html");
    let path = file.to_str().unwrap();
    fleet(config, &["--html", path]);
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(!html.contains("<script"), "no scripts");
    let chromium = |extra: &[&str]| {
        let profile = format!("--user-data-dir={}", dir.path().join("profile").display());
        let mut args = vec!["--headless", "--no-sandbox", "--disable-gpu", &profile];
        args.extend_from_slice(extra);
        let url = format!("file://{path}");
        args.push(&url);
        let out = Command::new("chromium")
            .args(&args)
            .output()
            .expect("chromium (scripts/setup.sh installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = chromium(&["--dump-dom"]);
    let section = dom
        .split("<h2>shop/web:prod</h2>")
        .nth(1)
        .expect("a table for shop/web:prod");
    let first_row = section
        .split("<tbody>")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    let cells: Vec<String> = first_row
        .split("<td")
        .skip(1)
        .map(|c| {
            let inner = &c[c.find('>').unwrap() + 1..c.find("</td>").unwrap()];
            inner
                .replace("<br>", "\n")
                .replace("<code>", "")
                .replace("</code>", "")
        })
        .collect();
    assert_eq!(cells[0], v2, "newest digest first: {first_row}");
    assert_eq!(cells[2].lines().collect::<Vec<_>>(), hosts, "{first_row}");
    assert_eq!(cells[3], "1");
    assert_eq!(cells[5], v1, "the digest before it");
    assert_eq!(cells[6], "up_to_date");
    let png = dir.path().join("fleet.png");
    let shot = format!("--screenshot={}", png.display());
    chromium(&[&shot, "--window-size=1400,700", "--hide-scrollbars"]);
    let png_size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(png_size > 1000, "a screenshot was taken");
    if let Some(keep) = std::env::var_os("LEDGER_PAGE_OUT") {
        let _ = std::fs::copy(&png, keep);
    }
    format!(
        "{} bytes of HTML, screenshot 1400×700 {png_size} bytes",
        html.len()
    )
}
