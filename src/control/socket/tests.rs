use std::os::unix::fs::PermissionsExt;

use super::*;

#[tokio::test]
async fn a_request_is_answered_the_socket_is_0660_and_removed_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/control.sock");
    let listener = bind(&path).await.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let server = tokio::spawn(serve(
        listener,
        path.clone(),
        |r: Request| async move {
            Reply {
                code: 0,
                stdout: format!("{r:?}\n"),
                stderr: String::new(),
            }
        },
        tasks.clone(),
        stop.clone(),
        CancellationToken::new(),
    ));
    let reply = call(&path, &Request::Sweep { dry_run: true })
        .await
        .unwrap();
    assert_eq!(reply.stdout, "Sweep { dry_run: true }\n");
    // A second daemon does not take over a live socket.
    assert!(
        bind(&path)
            .await
            .unwrap_err()
            .contains("another ecr-deployd")
    );
    stop.cancel();
    server.await.unwrap();
    assert!(!path.exists());
    assert!(matches!(
        call(&path, &Request::Ping).await,
        Err(CallError::Unreachable { .. })
    ));
}

#[test]
fn root_the_service_user_and_members_of_its_group_by_any_of_their_groups_are_allowed() {
    let service = Service { uid: 998, gid: 997 };
    let caller = |uid, gid, groups: &[u32]| Caller {
        uid,
        gid,
        groups: groups.to_vec(),
    };
    assert!(caller(0, 0, &[]).allowed(&service).is_ok(), "root");
    assert!(
        caller(998, 998, &[]).allowed(&service).is_ok(),
        "service user"
    );
    assert!(
        caller(1000, 997, &[]).allowed(&service).is_ok(),
        "primary group"
    );
    assert!(
        caller(1000, 1000, &[27, 997]).allowed(&service).is_ok(),
        "supplementary"
    );
    let denied = caller(1000, 1000, &[27, 100])
        .allowed(&service)
        .unwrap_err();
    assert!(
        denied.contains("uid 1000") && denied.contains("group 997"),
        "{denied}"
    );
}

#[test]
fn so_peergroups_gives_the_connecting_process_its_own_supplementary_groups() {
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut ours = vec![0 as libc::gid_t; 1024];
    // SAFETY: `ours` holds the stated number of entries.
    let n = unsafe { libc::getgroups(ours.len() as libc::c_int, ours.as_mut_ptr()) };
    ours.truncate(n.max(0) as usize);
    let mut theirs = peer_groups(a.as_raw_fd()).unwrap();
    ours.sort_unstable();
    theirs.sort_unstable();
    assert_eq!(theirs, ours);
}

/// Serves with a handler that records the requests it gets.
fn recording_server(
    listener: UnixListener,
    path: PathBuf,
    stop: &CancellationToken,
) -> (
    tokio::task::JoinHandle<()>,
    Arc<std::sync::Mutex<Vec<Request>>>,
) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let server = tokio::spawn(serve(
        listener,
        path,
        move |r: Request| {
            record.lock().unwrap().push(r);
            async { Reply::default() }
        },
        TaskTracker::new(),
        stop.clone(),
        CancellationToken::new(),
    ));
    (server, seen)
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_sends_nothing_gets_an_error_after_the_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let stop = CancellationToken::new();
    let (server, seen) = recording_server(bind(&path).await.unwrap(), path.clone(), &stop);
    let silent = UnixStream::connect(&path).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut answer = String::new();
    BufReader::new(silent).read_line(&mut answer).await.unwrap();
    assert!(started.elapsed() >= READ_TIMEOUT);
    let reply: Reply = serde_json::from_str(&answer).unwrap();
    assert_eq!(reply.code, 2);
    assert!(reply.stderr.contains("no request line within"), "{reply:?}");
    assert!(seen.lock().unwrap().is_empty());
    stop.cancel();
    server.await.unwrap();
}

/// Connects to `path` as uid/gid 65534 with supplementary `groups`, sends a ping and exits
/// at once, before the daemon looks at the connection (so nothing of it is left in /proc).
fn ping_as_nobody_and_exit(path: &Path, groups: &'static [libc::gid_t]) {
    use std::os::unix::process::CommandExt;
    let script = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ns.sendall(b'{\"op\":\"ping\"}\\n')";
    let mut child = std::process::Command::new("python3");
    child.args(["-c", script]).arg(path);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        child.pre_exec(move || {
            let ok = libc::setgroups(groups.len(), groups.as_ptr()) == 0
                && libc::setgid(65534) == 0
                && libc::setuid(65534) == 0;
            match ok {
                true => Ok(()),
                false => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let status = child.status().unwrap();
    assert!(status.success(), "the caller could not connect: {status}");
}

/// The kernel's record of the caller decides, not /proc (gone here: the caller has exited,
/// and under ProtectProc=invisible it is hidden) nor the user database (nobody is in no
/// group of the service there).
#[tokio::test]
async fn a_member_of_the_service_group_by_its_supplementary_groups_is_allowed_even_after_it_exited()
{
    // SAFETY: plain getters.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid != 0 {
        eprintln!("skipped: needs root to connect as another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("control.sock");
    let listener = bind(&path).await.unwrap();
    // Open to all here, so that the outsider reaches the daemon's own check.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    static SERVICE_GROUP: [libc::gid_t; 2] = [100, 0];
    assert_eq!(gid, 0);
    // Both callers connect and exit before the daemon accepts (they wait in the backlog).
    ping_as_nobody_and_exit(&path, &SERVICE_GROUP);
    ping_as_nobody_and_exit(&path, &[]);
    let stop = CancellationToken::new();
    let (server, seen) = recording_server(listener, path.clone(), &stop);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Both connections have been answered once a third one, from this process, is.
    let reply = call(&path, &Request::Ping).await.unwrap();
    assert_eq!(reply.code, 0);
    assert_eq!(
        *seen.lock().unwrap(),
        [Request::Ping, Request::Ping],
        "the member's ping and this test's, not the outsider's"
    );
    stop.cancel();
    server.await.unwrap();
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced_and_garbage_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists(), "stale file left by a dead process");
    let listener = bind(&path).await.unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        path.clone(),
        |_r: Request| async { Reply::default() },
        TaskTracker::new(),
        stop.clone(),
        CancellationToken::new(),
    ));
    let mut s = UnixStream::connect(&path).await.unwrap();
    s.write_all(b"{\"op\":\"reboot\"}\n").await.unwrap();
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).await.unwrap();
    let reply: Reply = serde_json::from_str(&answer).unwrap();
    assert_eq!(reply.code, 2);
    assert!(reply.stderr.contains("bad control request"), "{reply:?}");
    stop.cancel();
    server.await.unwrap();
}
