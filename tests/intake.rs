//! Queue intake and ECR resolve against a real SQS/ECR API (moto), in-process.
//!
//! The deployer is the port that the container executor will fill; here a recorder stands in
//! for it so the tests can count hand-offs. SQS and ECR are real.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ecr_deployd::adapters::{ecr::EcrRegistry, sqs::SqsQueue};
use ecr_deployd::app::Agent;
use ecr_deployd::config::Settings;
use ecr_deployd::ports::{DeployError, DeployRequest, Deployer};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Recorder(Mutex<Vec<DeployRequest>>);

impl Recorder {
    fn desired(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.desired.digest.to_string())
            .collect()
    }
}

impl Deployer for Recorder {
    async fn deploy(&self, request: DeployRequest) -> Result<(), DeployError> {
        self.0.lock().unwrap().push(request);
        Ok(())
    }
}

struct Running {
    agent: Arc<Agent<SqsQueue, EcrRegistry, Recorder>>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) -> Arc<Agent<SqsQueue, EcrRegistry, Recorder>> {
        self.token.cancel();
        self.task.await.unwrap();
        self.agent
    }
}

fn settings(url: &str, debounce_millis: u64) -> Settings {
    let mut s = Settings::default();
    s.queue.url = url.to_owned();
    s.queue.visibility_timeout_seconds = 10;
    s.deploy.debounce_millis = debounce_millis;
    s
}

async fn start_agent(moto: &Moto, settings: Settings) -> Running {
    let sdk = moto.sdk().await;
    let agent = Arc::new(Agent {
        queue: Arc::new(SqsQueue::new(
            &sdk,
            &settings.queue.url,
            Duration::from_secs(20),
        )),
        registry: Arc::new(EcrRegistry::new(&sdk)),
        deployer: Arc::new(Recorder::default()),
        stats: Arc::default(),
        notifier: ecr_deployd::notify::Notifier::disabled(),
    });
    let token = CancellationToken::new();
    let (a, t) = (agent.clone(), token.clone());
    let task = tokio::spawn(async move { a.run(&settings, t, Duration::from_secs(10)).await });
    Running { agent, token, task }
}

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_duplicate_events_make_one_resolve_at_once_at_most_one_follow_up_and_one_handoff() {
    let Aws { moto, sqs, ecr, .. } = Aws::start().await;
    let digest = put_image(&ecr, "team/api", "prod", "v1").await;
    let (url, _) = create_queue(&sqs, "host-a", None).await;
    send_all(
        &sqs,
        &url,
        &vec![push_body("team/api", "prod", &digest); 50],
    )
    .await;

    let running = start_agent(&moto, settings(&url, 3000)).await;
    eventually(T, "queue drained", || async {
        queue_counts(&sqs, &url).await == (0, 0)
    })
    .await;
    let agent = running.stop().await;

    // Leading edge: the first receive batch is resolved at once; what arrives while it is
    // worked on folds into one follow-up, which finds what was just handed off.
    let calls = agent.registry.calls();
    assert!(
        (1..=2).contains(&calls),
        "at most two BatchGetImage calls for 50 duplicates: {calls}"
    );
    assert_eq!(agent.deployer.desired(), vec![digest]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_push_inside_the_debounce_window_is_handed_off_at_once_and_its_duplicates_wait() {
    let Aws { moto, sqs, ecr, .. } = Aws::start().await;
    let v1 = put_image(&ecr, "team/api", "prod", "v1").await;
    let (url, _) = create_queue(&sqs, "host-a", None).await;
    // A window far longer than the test waits for anything: what is handed off within `T`
    // did not wait for it.
    let running = start_agent(&moto, settings(&url, 120_000)).await;
    send_all(&sqs, &url, &[push_body("team/api", "prod", &v1)]).await;
    eventually(T, "first push handed off and deleted", || async {
        running.agent.deployer.desired().len() == 1 && queue_counts(&sqs, &url).await == (0, 0)
    })
    .await;
    // The next push, inside the window after that work: a digest other than the one just
    // handed off goes at once.
    let v2 = put_image(&ecr, "team/api", "prod", "v2").await;
    send_all(&sqs, &url, &[push_body("team/api", "prod", &v2)]).await;
    eventually(
        T,
        "the new digest handed off without the window",
        || async {
            running.agent.deployer.desired().len() == 2 && queue_counts(&sqs, &url).await == (0, 0)
        },
    )
    .await;
    // A redelivery of that push names the digest just handed off: it folds into the window
    // (received, held, not resolved), and is handed back to the queue at shutdown.
    let calls = running.agent.registry.calls();
    send_all(&sqs, &url, &[push_body("team/api", "prod", &v2)]).await;
    eventually(T, "duplicate received and held", || async {
        queue_counts(&sqs, &url).await == (0, 1)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(running.agent.registry.calls(), calls, "the duplicate waits");
    let agent = running.stop().await;
    assert_eq!(agent.deployer.desired(), vec![v1, v2]);
    eventually(T, "the held duplicate handed back", || async {
        queue_counts(&sqs, &url).await == (1, 0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_event_arriving_after_a_newer_one_still_deploys_what_ecr_has_now() {
    let Aws { moto, sqs, ecr, .. } = Aws::start().await;
    let old = put_image(&ecr, "team/api", "prod", "v1").await;
    let new = put_image(&ecr, "team/api", "prod", "v2").await;
    assert_ne!(old, new);
    let (url, _) = create_queue(&sqs, "host-a", None).await;
    let running = start_agent(&moto, settings(&url, 200)).await;

    send_all(&sqs, &url, &[push_body("team/api", "prod", &new)]).await;
    eventually(T, "first hand-off", || async {
        running.agent.deployer.desired().len() == 1
    })
    .await;
    // The event of the older push is delivered late (reordering, replay). ECR is asked
    // again and still names the newer image, which was just handed off: nothing older is
    // ever handed off, and nothing is handed off twice.
    send_all(&sqs, &url, &[push_body("team/api", "prod", &old)]).await;
    eventually(T, "queue drained", || async {
        queue_counts(&sqs, &url).await == (0, 0)
    })
    .await;
    let agent = running.stop().await;
    assert_eq!(
        agent.registry.calls(),
        2,
        "the late event was resolved in ECR"
    );
    assert_eq!(agent.deployer.desired(), vec![new]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_go_to_the_dlq_foreign_ones_are_deleted_and_the_agent_keeps_working() {
    let Aws { moto, sqs, ecr, .. } = Aws::start().await;
    let digest = put_image(&ecr, "team/api", "prod", "v1").await;
    let (url, dlq) = create_queue(&sqs, "host-a", Some(1)).await;
    let dlq = dlq.unwrap();
    let bad_digest = push_body("team/api", "prod", "sha256:1234");
    let bodies = vec![
        "this is not json".to_owned(),
        bad_digest.clone(),
        // An S3 event is an archive hint (SPEC §13): without its bucket and key, malformed.
        r#"{"source":"aws.s3","detail-type":"Object Created","detail":{}}"#.to_owned(),
        r#"{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","detail":{}}"#
            .to_owned(),
        push_body("team/api", "prod", &digest),
    ];
    send_all(&sqs, &url, &bodies).await;
    let mut s = settings(&url, 200);
    s.queue.wait_time_seconds = 1;
    let running = start_agent(&moto, s).await;

    // The good message is handled although bad ones came first in the same receive.
    eventually(T, "hand-off", || async {
        running.agent.deployer.desired().len() == 1
    })
    .await;
    // After their visibility timeout the agent's next receive exceeds maxReceiveCount = 1 and
    // the queue moves them to its DLQ: they were never deleted.
    let mut in_dlq: Vec<String> = Vec::new();
    let start = std::time::Instant::now();
    while in_dlq.len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "DLQ holds only {in_dlq:?}"
        );
        in_dlq.extend(peek(&sqs, &dlq, 1).await);
    }
    in_dlq.sort();
    let mut expected = vec!["this is not json".to_owned(), bad_digest, bodies[2].clone()];
    expected.sort();
    assert_eq!(in_dlq, expected);
    assert_eq!(
        queue_counts(&sqs, &url).await,
        (0, 0),
        "foreign and good messages deleted"
    );
    let agent = running.stop().await;
    assert_eq!(agent.deployer.desired(), vec![digest]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_wrapped_and_eventbridge_delivered_events_are_handled() {
    let Aws {
        moto,
        sdk,
        sqs,
        ecr,
    } = Aws::start().await;
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let api = put_image(&ecr, "team/api", "prod", "v1").await;
    let web = put_image(&ecr, "team/web", "stable", "w1").await;
    let (url, _) = create_queue(&sqs, "host-a", None).await;

    // SNS fan-out delivery: the envelope is a string in Message.
    let sns = serde_json::json!({
        "Type": "Notification",
        "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
        "TopicArn": "arn:aws:sns:eu-west-2:123456789012:ecr-pushes",
        "Message": push_body("team/api", "prod", &api),
    });
    send_all(&sqs, &url, &[sns.to_string()]).await;

    // A real EventBridge rule delivering to the queue (the emulator omits `account`).
    let queue_arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:host-a");
    events
        .put_rule()
        .name("ecr-push-host-a")
        .event_pattern(r#"{"source":["aws.ecr"],"detail-type":["ECR Image Action"],"detail":{"action-type":["PUSH"],"result":["SUCCESS"]}}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("ecr-push-host-a")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    put_ecr_event(&events, "team/web", "stable", &web, "PUSH", "SUCCESS").await;

    let running = start_agent(&moto, settings(&url, 200)).await;
    eventually(T, "two hand-offs", || async {
        running.agent.deployer.desired().len() == 2
    })
    .await;
    eventually(T, "queue drained", || async {
        queue_counts(&sqs, &url).await == (0, 0)
    })
    .await;
    let agent = running.stop().await;
    let mut got = agent.deployer.desired();
    got.sort();
    let mut want = vec![api, web];
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_missing_in_ecr_is_not_handed_off_and_its_message_is_deleted() {
    let Aws { moto, sqs, ecr, .. } = Aws::start().await;
    let digest = put_image(&ecr, "team/api", "prod", "v1").await;
    let (url, _) = create_queue(&sqs, "host-a", None).await;
    send_all(
        &sqs,
        &url,
        &[
            push_body("team/api", "deleted-since", &digest),
            push_body("no/such-repo", "prod", &digest),
        ],
    )
    .await;
    let running = start_agent(&moto, settings(&url, 200)).await;
    eventually(T, "queue drained", || async {
        queue_counts(&sqs, &url).await == (0, 0)
    })
    .await;
    let agent = running.stop().await;
    assert!(agent.deployer.desired().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_batches_many_tags_of_one_repository_into_calls_of_at_most_100() {
    use ecr_deployd::event::ImageRef;
    use ecr_deployd::ports::Registry;
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    let ecr = aws_sdk_ecr::Client::new(&sdk);
    let mut want = Vec::new();
    for i in 0..150 {
        want.push(put_image(&ecr, "team/many", &format!("t{i}"), &format!("m{i}")).await);
    }
    put_image(&ecr, "team/other", "prod", "o").await;
    let mut refs: Vec<ImageRef> = (0..150)
        .map(|i| ImageRef::parse_repo_tag(&format!("team/many:t{i}")).unwrap())
        .collect();
    refs.push(ImageRef::parse_repo_tag("team/other:prod").unwrap());
    refs.push(ImageRef::parse_repo_tag("team/other:missing").unwrap());
    let registry = EcrRegistry::new(&sdk);
    let resolved = registry.resolve(&refs).await;
    assert_eq!(
        registry.calls(),
        3,
        "2 calls for 150 tags of one repository + 1 for the other"
    );
    for (i, digest) in want.iter().enumerate() {
        let got = resolved[&refs[i]].as_ref().unwrap().as_ref().unwrap();
        assert_eq!(got.digest.as_str(), digest);
    }
    assert!(resolved[&refs[151]].as_ref().unwrap().is_none());
}

/// The heartbeat's call: a receipt SQS refuses (here one that names no message) in the
/// first batch of ten fails alone; the rest of that batch and the next batch are extended,
/// and the error names only the refused receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_receipt_in_a_visibility_batch_does_not_keep_the_others_from_being_extended() {
    use ecr_deployd::ports::{Queue, Receipt};
    let aws = Aws::start().await;
    let (url, _) = create_queue(&aws.sqs, "heartbeat", None).await;
    let bodies: Vec<String> = (0..12).map(|i| format!("message {i}")).collect();
    send_all(&aws.sqs, &url, &bodies).await;
    let queue = SqsQueue::new(&aws.sdk, &url, Duration::from_secs(1));
    let short = Duration::from_secs(2);
    let mut receipts = vec![Receipt("not-a-receipt-handle".into())];
    while receipts.len() < 13 {
        let got = queue
            .receive(10, Duration::from_secs(1), short)
            .await
            .unwrap();
        receipts.extend(got.into_iter().map(|m| m.receipt));
    }
    let err = queue
        .set_visibility(&receipts, Duration::from_secs(60))
        .await
        .expect_err("the bogus receipt is refused");
    assert_eq!(err.failed, [receipts[0].clone()], "{err}");
    // Past the short visibility: every real message was extended, none is visible again.
    tokio::time::sleep(short + Duration::from_secs(1)).await;
    assert_eq!(queue_counts(&aws.sqs, &url).await, (0, 12));
}
