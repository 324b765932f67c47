//! The resolver over an in-memory S3 and the in-memory runtime: what is loaded, when, and
//! what is remembered.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use sha2::{Digest as _, Sha256};

use super::*;
use crate::archive::strip::tests::{docker_save, entries};
use crate::archive::{ObjectFacts, is_not_loaded, is_refusal};
use crate::fakes::{FakeRuntime, digest};

/// One bucket in memory: key → (facts, bytes); reads can be cut short.
#[derive(Default)]
struct FakeS3 {
    objects: Mutex<HashMap<String, (ObjectFacts, Vec<u8>)>>,
    opens: AtomicUsize,
    /// The next read fails after its first chunk.
    cut_next_read: Mutex<bool>,
}

impl FakeS3 {
    fn put(&self, key: &str, etag: &str, bytes: &[u8], size: u64, sha256: Option<String>) {
        let facts = ObjectFacts {
            etag: etag.into(),
            version_id: String::new(),
            size,
            sha256,
        };
        let object = (facts, bytes.to_vec());
        self.objects.lock().unwrap().insert(key.into(), object);
    }
}

impl Archives for FakeS3 {
    async fn head(&self, _: &str, key: &str) -> Result<Option<ObjectFacts>, RemoteError> {
        Ok(self.objects.lock().unwrap().get(key).map(|o| o.0.clone()))
    }

    async fn open(
        &self,
        _: &str,
        key: &str,
        _: &ObjectFacts,
    ) -> Result<crate::ports::ArchiveBody, RemoteError> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        let bytes = self.objects.lock().unwrap()[key].1.clone();
        let cut = std::mem::take(&mut *self.cut_next_read.lock().unwrap());
        let mut chunks: Vec<Result<bytes::Bytes, std::io::Error>> = bytes
            .chunks(4)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        if cut {
            chunks.truncate(1);
            chunks.push(Err(std::io::Error::other("connection reset")));
        }
        Ok(futures::stream::iter(chunks).boxed())
    }
}

const KEY: &str = "app/app-latest.tar.xz";

struct Setup {
    notices: tokio::sync::mpsc::Receiver<crate::notify::Notice>,
    s3: Arc<FakeS3>,
    runtime: Arc<FakeRuntime>,
    resolver: ArchiveResolver<FakeS3, FakeRuntime>,
    image: ImageRef,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.db")).unwrap());
    let image = ImageRef::archive("releases", KEY);
    let runtime = Arc::new(FakeRuntime::with(&["app"], &digest('1')));
    *runtime.follows.lock().unwrap() = Some(image.clone());
    runtime.images.lock().unwrap().push(digest('1').to_string());
    let s3 = Arc::new(FakeS3::default());
    let (notifier, notices) = Notifier::capture("host-a");
    let resolver = ArchiveResolver::new(s3.clone(), runtime.clone(), store).with_notifier(notifier);
    Setup {
        notices,
        s3,
        runtime,
        resolver,
        image,
        _dir: dir,
    }
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Setup {
    async fn resolve(&self) -> Resolution {
        let all = self
            .resolver
            .resolve(std::slice::from_ref(&self.image))
            .await;
        all[&self.image].clone()
    }

    async fn peek(&self) -> Resolution {
        let all = self.resolver.peek(std::slice::from_ref(&self.image)).await;
        all[&self.image].clone()
    }

    fn loads(&self, answer: Result<Vec<String>, RuntimeError>) {
        self.runtime.loads.lock().unwrap().push_back(answer);
    }

    fn images(&self) -> Vec<String> {
        self.runtime.images.lock().unwrap().clone()
    }
}

/// A one-image archive that also names `victim/app:prod`.
fn archive(c: char) -> Vec<u8> {
    docker_save(&[(c, &["mirror/team/api:prod", "victim/app:prod"])])
}

#[tokio::test]
async fn a_new_object_is_loaded_once_without_its_names_and_its_image_id_is_what_the_key_holds() {
    let t = setup();
    let bytes = archive('2');
    t.s3.put(KEY, "e2", &bytes, bytes.len() as u64, Some(sha(&bytes)));
    assert!(
        is_not_loaded(&t.peek().await.unwrap_err()),
        "a peek loads nothing"
    );
    assert_eq!(t.s3.opens.load(Ordering::SeqCst), 0);
    t.loads(Ok(vec![digest('2').to_string()]));
    let desired = t.resolve().await.unwrap().unwrap();
    assert_eq!(desired.digest, digest('2'));
    // The sweep's next look, and a peek: from the store, nothing downloaded again.
    assert_eq!(t.resolve().await.unwrap().unwrap().digest, digest('2'));
    assert_eq!(t.peek().await.unwrap().unwrap().digest, digest('2'));
    assert_eq!(t.s3.opens.load(Ordering::SeqCst), 1);
    // The Engine was given no name: no RepoTags, no repositories file; nothing was tagged
    // (the swap names the image as the container's image).
    let body = t.runtime.loaded_bodies.lock().unwrap()[0].clone();
    let got = entries(&body);
    assert!(got.iter().all(|e| e.0 != "repositories"));
    let manifest = &got.iter().find(|e| e.0 == "manifest.json").unwrap().2;
    let manifest: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!([]));
    assert!(t.runtime.tags.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_image_removed_from_the_host_is_loaded_again() {
    let t = setup();
    let bytes = archive('2');
    t.s3.put(KEY, "e2", &bytes, bytes.len() as u64, None);
    t.loads(Ok(vec![digest('2').to_string()]));
    t.resolve().await.unwrap();
    t.runtime
        .images
        .lock()
        .unwrap()
        .retain(|i| *i != digest('2').to_string());
    t.loads(Ok(vec![digest('2').to_string()]));
    assert_eq!(t.resolve().await.unwrap().unwrap().digest, digest('2'));
    assert_eq!(t.s3.opens.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_object_is_remembered_told_once_and_never_downloaded_again_until_replaced() {
    let mut t = setup();
    // S3 says 100 bytes more than arrive.
    let bytes = archive('2');
    let n = bytes.len() as u64;
    t.s3.put(KEY, "cut", &bytes, n + 100, None);
    t.loads(Err(RuntimeError::permanent("load image", "unexpected EOF")));
    let e = t.resolve().await.unwrap_err();
    assert!(is_refusal(&e), "{e}");
    let truncated = format!("(ETag cut): truncated: {n} of {} bytes", n + 100);
    assert!(e.message.contains(&truncated), "{e}");
    let again = t.resolve().await.unwrap_err();
    assert_eq!(again.message, e.message);
    // Told once, for the container that follows the key, with the bytes' digest.
    let Ok(crate::notify::Notice::Held(n)) = t.notices.try_recv() else {
        panic!("a refused notice")
    };
    assert_eq!((n.state, n.container.as_str()), ("refused", "app"));
    assert_eq!(n.desired_digest, format!("sha256:{}", sha(&bytes)));
    assert!(n.detail.contains("truncated"), "{}", n.detail);
    assert!(t.notices.try_recv().is_err(), "one notice per object");
    assert!(is_refusal(&t.peek().await.unwrap_err()));
    assert_eq!(t.s3.opens.load(Ordering::SeqCst), 1);
    // A checksum that does not match, then a good upload: each object on its own merits.
    let v3 = archive('3');
    t.s3.put(KEY, "bad-sum", &v3, v3.len() as u64, Some("0".repeat(64)));
    t.loads(Ok(vec![digest('3').to_string()]));
    let e = t.resolve().await.unwrap_err();
    assert!(
        e.message.contains(&format!("S3 has {}", "0".repeat(64))),
        "{e}"
    );
    // The refused load's image, new on the host, went again.
    assert!(!t.images().contains(&digest('3').to_string()));
    let v4 = archive('4');
    t.s3.put(KEY, "good", &v4, v4.len() as u64, Some(sha(&v4)));
    t.loads(Ok(vec![digest('4').to_string()]));
    assert_eq!(t.resolve().await.unwrap().unwrap().digest, digest('4'));
    assert!(t.images().contains(&digest('4').to_string()));
}

#[tokio::test]
async fn a_refusal_removes_only_the_images_the_load_brought() {
    let t = setup();
    // '5' was on the host before the load; '6' is new; '1' is what the follower runs.
    t.runtime
        .images
        .lock()
        .unwrap()
        .push(digest('5').to_string());
    let bytes = docker_save(&[('5', &["a:1"]), ('6', &["b:1"])]);
    t.s3.put(KEY, "two", &bytes, bytes.len() as u64, None);
    t.loads(Ok(vec![digest('5').to_string(), digest('6').to_string()]));
    let e = t.resolve().await.unwrap_err();
    assert!(
        is_refusal(&e) && e.message.contains("holds 2 images"),
        "{e}"
    );
    assert_eq!(
        *t.runtime.removed_images.lock().unwrap(),
        [digest('6').to_string()]
    );
    let left = t.images();
    assert!(left.contains(&digest('1').to_string()) && left.contains(&digest('5').to_string()));
    assert!(!left.contains(&digest('6').to_string()));
    // An archive of the running image that is refused: the image stays (it was there).
    let one = archive('1');
    t.s3.put(KEY, "sum", &one, one.len() as u64, Some("0".repeat(64)));
    t.loads(Ok(vec![digest('1').to_string()]));
    assert!(is_refusal(&t.resolve().await.unwrap_err()));
    assert!(t.images().contains(&digest('1').to_string()));
    assert_eq!(t.runtime.removed_images.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn objects_too_large_or_without_a_required_checksum_are_refused_without_a_download() {
    let mut t = setup();
    t.resolver = t.resolver.with_limits(ArchiveSettings {
        max_bytes: 1000,
        require_checksum: true,
    });
    let big = archive('2');
    t.s3.put(KEY, "big", &big, 5000, Some(sha(&big)));
    let e = t.resolve().await.unwrap_err();
    assert!(is_refusal(&e), "{e}");
    assert!(
        e.message
            .contains("5000 bytes, more than [archives] max_bytes (1000)"),
        "{e}"
    );
    assert!(
        is_refusal(&t.peek().await.unwrap_err()),
        "status shows it refused"
    );
    assert!(is_refusal(&t.resolve().await.unwrap_err()));
    let Ok(crate::notify::Notice::Held(n)) = t.notices.try_recv() else {
        panic!("a refused notice")
    };
    assert!(n.detail.contains("max_bytes"), "{}", n.detail);
    assert!(t.notices.try_recv().is_err(), "told once");
    t.s3.put(KEY, "nosum", b"tiny", 4, None);
    let e = t.resolve().await.unwrap_err();
    assert!(
        is_refusal(&e) && e.message.contains("require_checksum"),
        "{e}"
    );
    assert_eq!(t.s3.opens.load(Ordering::SeqCst), 0, "nothing downloaded");
    assert!(
        t.runtime.loaded_bodies.lock().unwrap().is_empty(),
        "nothing loaded"
    );
}

#[tokio::test]
async fn a_body_that_is_not_an_archive_is_refused_as_such_and_reaches_no_engine_end() {
    let t = setup();
    t.s3.put(KEY, "junk", &[b'x'; 2048], 2048, None);
    t.loads(Err(RuntimeError::permanent("load image", "unexpected EOF")));
    let e = t.resolve().await.unwrap_err();
    assert!(
        is_refusal(&e)
            && e.message
                .contains("could not load it as a docker save archive: not a tar archive"),
        "{e}"
    );
}

#[tokio::test]
async fn a_read_cut_short_is_tried_again_and_not_remembered() {
    let t = setup();
    let bytes = archive('2');
    t.s3.put(KEY, "e2", &bytes, bytes.len() as u64, None);
    *t.s3.cut_next_read.lock().unwrap() = true;
    t.loads(Err(RuntimeError::permanent("load image", "unexpected EOF")));
    let e = t.resolve().await.unwrap_err();
    assert!(e.transient && !is_refusal(&e), "{e}");
    assert!(e.message.contains("connection reset"), "{e}");
    t.loads(Ok(vec![digest('2').to_string()]));
    assert_eq!(t.resolve().await.unwrap().unwrap().digest, digest('2'));
    assert_eq!(t.s3.opens.load(Ordering::SeqCst), 2);
}
#[tokio::test]
async fn a_missing_key_names_nothing_to_deploy() {
    let t = setup();
    assert_eq!(t.resolve().await.unwrap(), None);
    assert_eq!(t.s3.opens.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_key_no_container_follows_is_not_downloaded() {
    let t = setup();
    let other = ImageRef::archive("releases", "app/app-0123abcd.tar.xz");
    t.s3.put("app/app-0123abcd.tar.xz", "e9", b"v9", 2, None);
    let all = t.resolver.resolve(std::slice::from_ref(&other)).await;
    assert!(matches!(all[&other], Ok(None)));
    assert_eq!(t.s3.opens.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn another_scopes_follower_gets_nothing_loaded() {
    let mut t = setup();
    t.resolver = t.resolver.with_scope("blue");
    let bytes = archive('2');
    t.s3.put(KEY, "e2", &bytes, bytes.len() as u64, Some(sha(&bytes)));
    t.loads(Ok(vec![digest('2').to_string()]));
    let _ = t.resolve().await;
    assert_eq!(t.s3.opens.load(Ordering::SeqCst), 0, "not downloaded");
    assert!(
        t.runtime.loaded_bodies.lock().unwrap().is_empty(),
        "not loaded"
    );
    // The container of no scope is this agent's only when it has no scope either.
    t.resolver = t.resolver.with_scope("");
    assert_eq!(t.resolve().await.unwrap().unwrap().digest, digest('2'));
}

#[tokio::test]
async fn keys_nobody_follows_take_no_lock_and_a_followed_keys_lock_goes_after_use() {
    let t = setup();
    // The rule delivers every upload under the prefix: a thousand keys no container follows.
    for i in 0..1000 {
        let key = format!("app/app-{i:08x}.tar.xz");
        t.s3.put(&key, "e", b"xx", 2, None);
        let other = ImageRef::archive("releases", &key);
        let all = t.resolver.resolve(std::slice::from_ref(&other)).await;
        assert!(matches!(all[&other], Ok(None)));
    }
    assert_eq!(
        t.resolver.lock_keys(),
        0,
        "no lock for a key nobody follows"
    );
    // The followed key: loaded under its lock, which nobody holds afterwards.
    let bytes = archive('2');
    t.s3.put(KEY, "e2", &bytes, bytes.len() as u64, None);
    t.loads(Ok(vec![digest('2').to_string()]));
    assert_eq!(t.resolve().await.unwrap().unwrap().digest, digest('2'));
    assert!(t.resolver.lock_keys() <= 1);
    // Once loaded, a look is answered from the store without the lock.
    let again = ArchiveResolver::new(t.s3.clone(), t.runtime.clone(), t.resolver.store.clone());
    let all = again.resolve(std::slice::from_ref(&t.image)).await;
    assert_eq!(all[&t.image].clone().unwrap().unwrap().digest, digest('2'));
    assert_eq!(again.lock_keys(), 0);
}
