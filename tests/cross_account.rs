//! Images of another account and region (SPEC §3, §4; issue 31 #1, issue 30 #11), on the real
//! stack: moto keeps a repository of account 210987654321 in us-east-1 apart from the home
//! account's (123456789012, eu-west-2); two local registries stand for the two accounts' hosts,
//! the other one through `[registry] mirrors`. The same `team/cross:prod` exists in both: a
//! push in one account deploys only the container that follows that account's image, pulled
//! from that account's registry.

mod common;

use aws_config::Region;
use common::docker::*;
use common::site::*;
use common::*;

const OTHER_ACCOUNT: &str = "210987654321";
const OTHER_REGION: &str = "us-east-1";
const REPO: &str = "team/cross";

/// An ECR client of the home principal in the other region.
async fn ecr_in_other_region(site: &Site) -> aws_sdk_ecr::Client {
    let sdk = sdk_for(&site.endpoint).await;
    let conf = aws_sdk_ecr::config::Builder::from(&sdk)
        .region(Region::new(OTHER_REGION))
        .build();
    aws_sdk_ecr::Client::from_conf(conf)
}

/// Points the other account's `team/cross:prod` at `digest`.
async fn put_other(ecr: &aws_sdk_ecr::Client, digest: &str) {
    let _ = ecr
        .create_repository()
        .registry_id(OTHER_ACCOUNT)
        .repository_name(REPO)
        .send()
        .await;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","note":"stands for {digest}"}}"#
    );
    ecr.put_image()
        .registry_id(OTHER_ACCOUNT)
        .repository_name(REPO)
        .image_tag("prod")
        .image_manifest(manifest)
        .image_digest(digest)
        .send()
        .await
        .unwrap();
}

/// A push event of the other account, as EventBridge delivers it.
fn other_push(digest: &str) -> String {
    let mut body: serde_json::Value =
        serde_json::from_str(&push_body(REPO, "prod", digest)).unwrap();
    body["account"] = OTHER_ACCOUNT.into();
    body["region"] = OTHER_REGION.into();
    body["id"] = format!("other-{digest}").into();
    body.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_in_another_account_deploys_only_its_follower_from_that_accounts_registry() {
    let site = Site::new("cross").await;
    let other_registry = TestRegistry::start();
    let other_host = format!("{OTHER_ACCOUNT}.dkr.ecr.{OTHER_REGION}.amazonaws.com");
    let other_ecr = ecr_in_other_region(&site).await;
    // The home account's container (through `mirror`) and the other account's (through its
    // own mirror), both following team/cross:prod.
    let (home, home_v1) = site.container(REPO, "home").await;
    let other_v1 = other_registry.publish(REPO, "v1", Kind::Serve, "other-v1", true);
    let other_prod = format!("{}/{REPO}:prod", other_registry.host);
    docker(&[
        "tag",
        &format!("{}/{REPO}:v1", other_registry.host),
        &other_prod,
    ]);
    put_other(&other_ecr, &other_v1).await;
    let other = site.scope.name("other");
    site.scope
        .run(&other, &["--label", "ecr-deployd.enable=true", &other_prod]);
    let mut settings = site.settings(0);
    settings
        .registry
        .mirrors
        .insert(other_host.to_string(), other_registry.host.clone());
    let config = config_of(&settings);
    let (code, out, err) = run_cli(&config, &["status", "--json"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    for name in [&home, &other] {
        assert_eq!(
            status_of(&config, name)["state"],
            "up_to_date",
            "{name}: {out}"
        );
    }

    let agent = AgentProcess::start(&config, &["run"]);
    // The other account pushes v2: only its follower moves, pulled from its registry.
    let other_v2 = other_registry.publish(REPO, "v2", Kind::Serve, "other-v2", false);
    put_other(&other_ecr, &other_v2).await;
    send_all(&site.sqs, &site.url, &[other_push(&other_v2)]).await;
    let row = site.outcome(&other, &other_v2).await;
    assert_eq!(
        row.outcome,
        Some(ecr_deployd::store::Outcome::Succeeded),
        "{row:?}\n{}",
        agent.log_text()
    );
    assert_eq!(running_digest(&other), other_v2);
    assert!(
        repo_digests(&other).contains(&format!("{}/{REPO}@{other_v2}", other_registry.host)),
        "pulled from the other account's registry: {:?}",
        repo_digests(&other)
    );
    assert_eq!(
        running_digest(&home),
        home_v1,
        "another account's push leaves it alone"
    );
    assert!(site.history(&home).is_empty());

    // The home account pushes: only the home follower moves.
    let home_v2 = site.silent_push(REPO, Kind::Serve, "v2").await;
    send_all(&site.sqs, &site.url, &[push_body(REPO, "prod", &home_v2)]).await;
    site.outcome(&home, &home_v2).await;
    assert_eq!(running_digest(&home), home_v2);
    assert_eq!(running_digest(&other), other_v2);
    assert_eq!(site.history(&other).len(), 1, "{}", agent.log_text());
    // The test's containers go before the other registry's images (they use them).
    drop(agent);
    drop(site);
    drop(other_registry);
}
