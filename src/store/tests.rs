use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("sub/state.db")).unwrap();
    (dir, store)
}

fn new<'a>(container: &'a str, to: &'a str) -> NewDeployment<'a> {
    NewDeployment {
        container,
        repository: "team/api",
        tag: "prod",
        from_digest: Some("sha256:old"),
        to_digest: to,
        platform_digest: None,
        trigger: "event",
        old_id: "abc",
    }
}

#[test]
fn a_deployment_is_journalled_step_by_step_until_it_has_an_outcome() {
    let (_d, s) = store();
    let id = s.begin(&new("web", "sha256:new")).unwrap();
    s.step(id, Step::Creating).unwrap();
    s.set_new_id(id, "def").unwrap();
    let open = s.unfinished().unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].step, Some(Step::Creating));
    assert_eq!(open[0].new_id.as_deref(), Some("def"));
    let phases = Phases {
        pull_ms: 5,
        ..Default::default()
    };
    s.finish(id, Outcome::Succeeded, &phases, None).unwrap();
    assert!(s.unfinished().unwrap().is_empty());
    let h = s.history(Some("web"), 10).unwrap();
    assert_eq!(h[0].outcome, Some(Outcome::Succeeded));
    assert_eq!(h[0].phases.pull_ms, 5);
}

#[test]
fn history_is_newest_first_filtered_and_limited() {
    let (_d, s) = store();
    for to in ["sha256:1", "sha256:2", "sha256:3"] {
        s.begin(&new("web", to)).unwrap();
    }
    s.begin(&new("db", "sha256:x")).unwrap();
    let h = s.history(Some("web"), 2).unwrap();
    assert_eq!(
        h.iter().map(|d| d.to_digest.as_str()).collect::<Vec<_>>(),
        ["sha256:3", "sha256:2"]
    );
    assert_eq!(s.history(None, 10).unwrap().len(), 4);
}

#[test]
fn a_store_written_by_the_first_release_opens_and_keeps_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        // Exactly what the first release created: schema v1, no user_version.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute(
                "INSERT INTO deployments (container, repository, tag, to_digest, trigger, outcome, step, started_at_ms)
                 VALUES ('web', 'shop/web', 'prod', 'sha256:1', 'event', 'succeeded', 'done', 1)",
                [],
            )
            .unwrap();
        conn.execute_batch("INSERT INTO blocked VALUES ('web', 'sha256:bad', 1, 'rolled back')")
            .unwrap();
    }
    let s = Store::open(&path).unwrap();
    let h = s.history(Some("web"), 10).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].to_digest, "sha256:1");
    assert_eq!(h[0].platform_digest, None);
    assert!(s.is_blocked("web", "sha256:bad").unwrap());
    let version: i64 = s
        .conn()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    drop(s);
    // Opening again changes nothing.
    assert_eq!(
        Store::open(&path).unwrap().history(None, 10).unwrap().len(),
        1
    );
}

#[test]
fn processes_opening_a_store_at_once_all_get_it() {
    // A daemon starting while an operator polls `history`: connections open, read and
    // close (the last one out checkpoints the WAL) while another opens.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..200 {
                        let store = Store::open(&path)?;
                        store.history(None, 1)?;
                    }
                    Ok::<(), StoreError>(())
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    });
}

#[test]
fn a_store_from_a_newer_agent_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    Store::open(&path).unwrap();
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let err = Store::open(&path)
        .err()
        .expect("a newer schema must be refused");
    let text = err.to_string();
    assert!(matches!(err, StoreError::TooNew { .. }), "{text}");
    assert!(text.contains("newer ecr-deployd"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
}

#[test]
fn blocks_are_per_container_and_digest_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    Store::open(&path)
        .unwrap()
        .block("web", "sha256:bad", "rolled back")
        .unwrap();
    let s = Store::open(&path).unwrap();
    assert!(s.is_blocked("web", "sha256:bad").unwrap());
    assert!(!s.is_blocked("db", "sha256:bad").unwrap());
    assert!(!s.is_blocked("web", "sha256:good").unwrap());
}
