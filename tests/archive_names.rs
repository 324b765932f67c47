//! S3 archives whose manifest names images that are not theirs to name (SPEC §13, issue 30
//! item 3), on moto's S3 and the system Docker Engine, through `ecr-deployd sweep`.
//!
//! Each archive's manifest also names `victim/app:prod`, which a local image holds. Edges:
//! a refused archive (bad checksum; two images) leaves `victim/app:prod` on its image, the
//! follower's name on what it runs, and no image of its own behind; an image that was on the
//! host before a refused load stays; an object over `[archives] max_bytes` is refused with
//! nothing downloaded (and, the limit raised, the same object loads: the refusal was not
//! remembered); an accepted archive gets only the follower's name; `require_checksum`
//! refuses an object without a SHA-256.

mod common;

use std::path::Path;

use common::archive::*;
use common::docker::*;
use common::site::status_of;
use common::*;

/// Whether image `id` is on the host.
fn present(id: &str) -> bool {
    docker_command()
        .args(["image", "inspect", id])
        .output()
        .unwrap()
        .status
        .success()
}

fn id_of(reference: &str) -> String {
    docker(&["image", "inspect", "--format", "{{.Id}}", reference])
}

struct Names<'a> {
    lab: &'a Lab,
    victim: String,
    victim_id: String,
    v1: String,
}

impl Names<'_> {
    /// `docker save | xz` of `ids`, each named as given, into `file`; afterwards
    /// `REPO:latest` and the victim's name are where they were, and the versions' own tags
    /// (`REPO:<version>` for each of `versions`) are gone, so those images are not on the host.
    fn save(&self, named: &[(&str, &str)], versions: &[&str], file: &str) -> Vec<u8> {
        for (id, name) in named {
            docker(&["tag", id, name]);
        }
        let names: Vec<&str> = named.iter().map(|(_, n)| *n).collect();
        let path = self.lab.dir.path().join(file);
        save_xz(&names, "-1", &path);
        docker(&["tag", &self.v1, &format!("{}:latest", self.lab.images.repo)]);
        docker(&["tag", &self.victim_id, &self.victim]);
        for v in versions {
            docker(&["rmi", &format!("{}:{v}", self.lab.images.repo)]);
        }
        std::fs::read(Path::new(&path)).unwrap()
    }

    fn latest(&self) -> String {
        format!("{}:latest", self.lab.images.repo)
    }

    /// The victim's name and the follower's name are where they were.
    fn untouched(&self, name: &str) {
        assert_eq!(id_of(&self.victim), self.victim_id, "victim's name moved");
        assert_eq!(id_of(&self.latest()), self.v1, "follower's name moved");
        assert_eq!(image_of(name), self.v1);
    }
}

fn sweep(config: &str, env: &[(&str, &str)]) -> String {
    let (code, out, err) = run_cli(config, &["sweep"], env);
    format!("exit {code}\n{out}\n{err}")
}

#[tokio::test(flavor = "multi_thread")]
async fn archive_names_are_applied_only_after_the_verdict_and_only_the_followers() {
    let lab = Lab::new("names").await;
    create_bucket(&lab.s3, BUCKET).await;
    let config = lab.config(&format!("{}/{ACCOUNT}/unused", lab.moto.endpoint));
    let images = &lab.images;
    let victims = Images {
        repo: format!("{}-victim/app", images.repo.trim_end_matches("/app")),
        ids: Default::default(),
    };
    let victim_id = victims.build("prod", Kind::Serve);
    let v1 = images.build("v1", Kind::Serve);
    docker(&["tag", &v1, &format!("{}:latest", images.repo)]);
    let name = lab.follower();
    let t = Names {
        lab: &lab,
        victim: format!("{}:prod", victims.repo),
        victim_id,
        v1: v1.clone(),
    };
    let (latest, victim) = (t.latest(), t.victim.clone());

    // A valid archive naming the follower's tag and the victim's, with a wrong checksum.
    let x2 = images.build("x2", Kind::Serve);
    let a2 = t.save(&[(&x2, &latest), (&x2, &victim)], &["x2"], "x2.tar.xz");
    assert!(!present(&x2));
    upload(&lab.s3, KEY, a2, Some("0".repeat(64))).await;
    let out = sweep(&config, &[]);
    let s = status_of(&config, &name);
    assert_eq!(s["state"], "refused", "{s}\n{out}");
    assert!(s["detail"].as_str().unwrap().contains("SHA-256"), "{s}");
    t.untouched(&name);
    assert!(
        !present(&x2),
        "the refused archive's image was left behind\n{out}"
    );

    // Two images, the checksum right: refused, neither left behind.
    let x3 = images.build("x3", Kind::Serve);
    let x4 = images.build("x4", Kind::Serve);
    let x4_ref = format!("{}:x4", images.repo);
    let a34 = t.save(
        &[(&x3, &victim), (&x4, &x4_ref)],
        &["x3", "x4"],
        "x34.tar.xz",
    );
    assert!(!present(&x3) && !present(&x4));
    upload(&lab.s3, KEY, a34.clone(), Some(sha256_hex(&a34))).await;
    let out = sweep(&config, &[]);
    let s = status_of(&config, &name);
    assert!(
        s["detail"].as_str().unwrap().contains("holds 2 images"),
        "{s}\n{out}"
    );
    t.untouched(&name);
    assert!(!present(&x3) && !present(&x4), "{out}");

    // An image on the host before a refused load of it stays (no container uses it).
    let w = images.build("w", Kind::Serve);
    let w_ref = format!("{}:w", images.repo);
    let aw = t.save(&[(&w, &latest), (&w, &victim)], &[], "w.tar.xz");
    upload(&lab.s3, KEY, aw, Some("0".repeat(64))).await;
    let out = sweep(&config, &[]);
    assert_eq!(status_of(&config, &name)["state"], "refused", "{out}");
    t.untouched(&name);
    assert!(present(&w), "an image that was there before went\n{out}");
    assert_eq!(id_of(&w_ref), w);

    // Over max_bytes: refused before any download, so nothing is loaded.
    let x5 = images.build("x5", Kind::Serve);
    let a5 = t.save(&[(&x5, &latest), (&x5, &victim)], &["x5"], "x5.tar.xz");
    let small = (a5.len() - 1).to_string();
    upload(&lab.s3, KEY, a5.clone(), Some(sha256_hex(&a5))).await;
    let out = sweep(&config, &[("ECR_DEPLOYD_ARCHIVES_MAX_BYTES", &small)]);
    assert!(out.contains("more than [archives] max_bytes"), "{out}");
    assert!(out.contains("nothing downloaded"), "{out}");
    assert!(!out.contains("archive loaded"), "{out}");
    assert!(!present(&x5));
    t.untouched(&name);

    // The default limit: the same object loads, and is deployed under the follower's name
    // alone; the victim's name stays on the victim.
    let out = sweep(&config, &[]);
    assert!(out.contains("archive loaded"), "{out}");
    assert_eq!(image_of(&name), x5, "{out}");
    assert_eq!(
        id_of(&victim),
        t.victim_id,
        "the archive's foreign name was applied"
    );
    let tags = docker(&["image", "inspect", "--format", "{{json .RepoTags}}", &x5]);
    assert_eq!(tags, format!("[\"{latest}\"]"));

    // require_checksum: an object without a SHA-256 is refused, nothing downloaded.
    let x6 = images.build("x6", Kind::Serve);
    let a6 = t.save(&[(&x6, &latest)], &["x6"], "x6.tar.xz");
    docker(&["tag", &x5, &latest]);
    upload(&lab.s3, KEY, a6, None).await;
    let env = [("ECR_DEPLOYD_ARCHIVES_REQUIRE_CHECKSUM", "true")];
    let out = sweep(&config, &env);
    assert!(out.contains("require_checksum"), "{out}");
    assert!(!out.contains("archive loaded"), "{out}");
    assert!(!present(&x6));
    assert_eq!(image_of(&name), x5);

    // A multipart upload with S3's SHA-256 (composite: of the parts' checksums, not the
    // bytes): no checksum of the object. require_checksum refuses it before any download;
    // without it, it loads (a composite was once compared with the bytes and refused).
    let x7 = images.build("x7", Kind::Serve);
    let a7 = t.save(&[(&x7, &latest)], &["x7"], "x7.tar.xz");
    docker(&["tag", &x5, &latest]);
    upload_multipart(&lab.s3, KEY, a7).await;
    let out = sweep(&config, &env);
    assert!(out.contains("require_checksum"), "{out}");
    assert!(!present(&x7));
    let out = sweep(&config, &[]);
    assert!(out.contains("archive loaded"), "{out}");
    assert_eq!(image_of(&name), x7, "{out}");
}
