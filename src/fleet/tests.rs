use super::*;

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn fleet(wave: u32, promote_after: u32, bake_s: u64) -> Fleet {
    Fleet {
        name: "me".into(),
        wave,
        promote_after,
        bake: Duration::from_secs(bake_s),
    }
}

fn seen(host: &str, wave: u32, digest: &str, outcome: &str, at: i64) -> Seen {
    Seen {
        host: host.into(),
        wave,
        tag: "prod".into(),
        digest: digest.into(),
        outcome: outcome.into(),
        error: None,
        seen_ms: at,
    }
}

#[test]
fn wave_one_always_goes() {
    assert_eq!(
        verdict(&fleet(1, 3, 600), "prod", D1, &[], 0),
        WaveVerdict::Go
    );
}

#[test]
fn waits_for_promote_after_distinct_hosts_of_the_previous_wave() {
    let f = fleet(2, 2, 0);
    let one = [seen("a", 1, D1, "succeeded", 10)];
    assert_eq!(
        verdict(&f, "prod", D1, &one, 100),
        WaveVerdict::Waiting {
            succeeded: vec!["a".into()],
            needed: 2
        }
    );
    // The same host again (a duplicate, or a second container) does not count twice.
    let dup = [
        seen("a", 1, D1, "succeeded", 10),
        seen("a", 1, D1, "succeeded", 20),
    ];
    assert!(matches!(
        verdict(&f, "prod", D1, &dup, 100),
        WaveVerdict::Waiting { .. }
    ));
    let two = [
        seen("a", 1, D1, "succeeded", 10),
        seen("b", 1, D1, "succeeded", 20),
    ];
    assert_eq!(verdict(&f, "prod", D1, &two, 100), WaveVerdict::Go);
}

#[test]
fn only_the_previous_wave_promotes_and_only_for_the_same_tag_and_digest() {
    let f = fleet(3, 1, 0);
    let others = [
        seen("w1", 1, D1, "succeeded", 10),
        seen("w3", 3, D1, "succeeded", 10),
        seen("w2", 2, D2, "succeeded", 10),
        Seen {
            tag: "staging".into(),
            ..seen("w2b", 2, D1, "succeeded", 10)
        },
        seen("w2c", 2, D1, "failed", 10),
    ];
    assert!(matches!(
        verdict(&f, "prod", D1, &others, 100),
        WaveVerdict::Waiting { .. }
    ));
    let mut promoted = others.to_vec();
    promoted.push(seen("w2", 2, D1, "succeeded", 50));
    assert_eq!(verdict(&f, "prod", D1, &promoted, 100), WaveVerdict::Go);
}

#[test]
fn bakes_from_the_moment_the_last_needed_host_was_seen() {
    let f = fleet(2, 2, 60);
    let s = [
        seen("b", 1, D1, "succeeded", 5_000),
        seen("a", 1, D1, "succeeded", 1_000),
        // A late third host does not move the promotion.
        seen("c", 1, D1, "succeeded", 30_000),
    ];
    assert_eq!(
        verdict(&f, "prod", D1, &s, 6_000),
        WaveVerdict::Baking { until_ms: 65_000 }
    );
    assert_eq!(verdict(&f, "prod", D1, &s, 65_000), WaveVerdict::Go);
    assert_eq!(due_ms(&f, "prod", D1, &s), Some(65_000));
    assert_eq!(
        WaveVerdict::Baking { until_ms: 65_000 }.explain(&f, 6_000),
        "promoted, baking for 59 s more"
    );
}

#[test]
fn a_rollback_or_rejection_in_any_earlier_wave_halts_the_digest_only() {
    let f = fleet(3, 1, 0);
    let s = [
        seen("w2", 2, D1, "succeeded", 10),
        Seen {
            error: Some("exited with 1".into()),
            ..seen("canary", 1, D1, "rolled_back", 20)
        },
        seen("w2", 2, D2, "succeeded", 30),
    ];
    let v = verdict(&f, "prod", D1, &s, 100);
    assert_eq!(
        v.explain(&f, 100),
        "rolled back on canary (wave 1): exited with 1"
    );
    assert!(matches!(v, WaveVerdict::Halted { .. }));
    // A newer digest that succeeded goes.
    assert_eq!(verdict(&f, "prod", D2, &s, 100), WaveVerdict::Go);
    // A rollback in the same or a later wave does not halt.
    let later = [
        seen("w2", 2, D1, "succeeded", 10),
        seen("w3", 3, D1, "rolled_back", 20),
        seen("w4", 4, D1, "rejected", 20),
    ];
    assert_eq!(verdict(&f, "prod", D1, &later, 100), WaveVerdict::Go);
    let rejected = [seen("w2", 2, D1, "rejected", 10)];
    assert!(matches!(
        verdict(&f, "prod", D1, &rejected, 100),
        WaveVerdict::Halted { .. }
    ));
}

#[test]
fn no_results_means_waiting_and_says_for_whom() {
    let f = fleet(2, 2, 0);
    let v = verdict(&f, "prod", D1, &[], 0);
    assert_eq!(
        v.explain(&f, 0),
        "waiting for wave 1: 0 of 2 hosts succeeded"
    );
    assert_eq!(due_ms(&f, "prod", D1, &[]), None);
}
