//! The rewrite over archives made by the tar crate (an independent writer and reader):
//! classic and OCI-layout `docker save` archives, plain and compressed, and the tricks that
//! could slip a name past it.

use std::io::{Read, Write};

use futures::StreamExt;
use sha2::{Digest as _, Sha256};

use super::*;
use crate::archive::body::{Compression, Watch, to_engine};

/// A 64-hex id of `c`.
pub(crate) fn hex(c: char) -> String {
    c.to_string().repeat(64)
}

/// An entry whose header holds `name` as it is (the tar crate refuses `..` and `/`), of type
/// `kind`.
fn raw(b: &mut tar::Builder<Vec<u8>>, name: &[u8], kind: u8, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.as_mut_bytes()[..name.len()].copy_from_slice(name);
    h.as_mut_bytes()[156] = kind;
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn add(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, path, data).unwrap();
}

/// A `docker save` archive of the classic layout: per image (config id char, its names) a
/// config, a layer directory, its `manifest.json` entry and `repositories` line.
pub(crate) fn docker_save(images: &[(char, &[&str])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut manifest = Vec::new();
    let mut repositories = serde_json::Map::new();
    for (c, tags) in images {
        let layer = format!("{}{c}", "f".repeat(63));
        add(&mut b, &format!("{layer}/VERSION"), b"1.0");
        add(&mut b, &format!("{layer}/layer.tar"), &[7u8; 1500]);
        add(
            &mut b,
            &format!("{}.json", hex(*c)),
            br#"{"architecture":"amd64"}"#,
        );
        manifest.push(serde_json::json!({
            "Config": format!("{}.json", hex(*c)),
            "RepoTags": tags,
            "Layers": [format!("{layer}/layer.tar")],
        }));
        for t in *tags {
            let (repo, tag) = t.rsplit_once(':').unwrap();
            repositories.insert(repo.into(), serde_json::json!({ tag: layer }));
        }
    }
    add(&mut b, MANIFEST, &serde_json::to_vec(&manifest).unwrap());
    let repositories = serde_json::to_vec(&repositories).unwrap();
    add(&mut b, REPOSITORIES, &repositories);
    b.into_inner().unwrap()
}

/// An OCI-layout `docker save` (Docker 25+): blobs, `oci-layout`, `index.json` naming the
/// image, and `manifest.json`.
fn oci_save(tag: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let config = hex('c');
    add(&mut b, &format!("blobs/sha256/{config}"), b"{}");
    add(&mut b, &format!("blobs/sha256/{}", hex('d')), &[1u8; 700]);
    add(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", hex('e')),
            "size": 400,
            "annotations": {
                "io.containerd.image.name": format!("docker.io/{tag}"),
                "org.opencontainers.image.ref.name": "prod",
                "org.opencontainers.image.created": "2026-01-01T00:00:00Z",
            },
        }],
    });
    add(&mut b, INDEX, &serde_json::to_vec(&index).unwrap());
    let manifest = serde_json::json!([{
        "Config": format!("blobs/sha256/{config}"),
        "RepoTags": [tag],
        "Layers": [format!("blobs/sha256/{}", hex('d'))],
    }]);
    add(&mut b, MANIFEST, &serde_json::to_vec(&manifest).unwrap());
    b.into_inner().unwrap()
}

/// The rewrite of `tar`, read in pieces of `chunk` bytes.
pub(crate) fn rewrite(tar: &[u8]) -> io::Result<(Vec<u8>, Seen)> {
    let seen = Arc::default();
    let mut strip = Strip::new(tokio_test_reader(tar), Arc::clone(&seen));
    let mut out = Vec::new();
    let run = async {
        while let Some(piece) = strip.next().await? {
            out.extend_from_slice(&piece);
        }
        Ok::<_, io::Error>(())
    };
    futures::executor::block_on(run)?;
    let seen = seen.lock().unwrap().clone();
    Ok((out, seen))
}

/// `bytes` as a reader that hands out 100 bytes at a time.
fn tokio_test_reader(bytes: &[u8]) -> impl AsyncRead + Unpin + Send + 'static {
    let chunks: Vec<io::Result<bytes::Bytes>> = bytes
        .chunks(100)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    tokio_util::io::StreamReader::new(futures::stream::iter(chunks))
}

/// The entries of `tar`: (path, type, data).
pub(crate) fn entries(tar: &[u8]) -> Vec<(String, tar::EntryType, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            let path = e.path().unwrap().display().to_string();
            (path, e.header().entry_type(), data)
        })
        .collect()
}

fn json_of(entries: &[(String, tar::EntryType, Vec<u8>)], name: &str) -> Value {
    let (_, _, data) = entries.iter().find(|e| e.0 == name).unwrap();
    serde_json::from_slice(data).unwrap()
}

#[test]
fn a_classic_save_loses_its_repo_tags_and_repositories_and_keeps_every_other_byte() {
    let tar = docker_save(&[('a', &["victim/app:prod", "team/app:latest"])]);
    let (out, seen) = rewrite(&tar).unwrap();
    let got = entries(&out);
    let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
    let layer = format!("{}a", "f".repeat(63));
    assert_eq!(
        names,
        [
            format!("{layer}/VERSION"),
            format!("{layer}/layer.tar"),
            format!("{}.json", hex('a')),
            MANIFEST.into()
        ]
    );
    let manifest = json_of(&got, MANIFEST);
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!([]));
    assert_eq!(manifest[0]["Config"], format!("{}.json", hex('a')));
    assert_eq!(manifest[0]["Layers"][0], format!("{layer}/layer.tar"));
    assert_eq!(seen.names, ["victim/app:prod", "team/app:latest"]);
    assert_eq!(seen.configs, [format!("sha256:{}", hex('a'))]);
    assert!(seen.manifest);
    // The entries before manifest.json, headers and data, byte for byte.
    let kept = (2 + 4 + 2) * 512; // VERSION, layer.tar (1500 B), the config: blocks
    assert_eq!(out[..kept], tar[..kept]);
    assert!(out.ends_with(&[0; 1024]));
    assert_eq!(out.len() % 512, 0);
}

#[test]
fn an_oci_layout_save_loses_the_name_annotations_of_its_index_and_keeps_the_others() {
    let (out, seen) = rewrite(&oci_save("victim/app:prod")).unwrap();
    let got = entries(&out);
    let index = json_of(&got, INDEX);
    let annotations = &index["manifests"][0]["annotations"];
    assert_eq!(
        *annotations,
        serde_json::json!({ "org.opencontainers.image.created": "2026-01-01T00:00:00Z" })
    );
    assert_eq!(index["manifests"][0]["size"], 400);
    assert_eq!(
        json_of(&got, MANIFEST)[0]["RepoTags"],
        serde_json::json!([])
    );
    assert_eq!(seen.configs, [format!("sha256:{}", hex('c'))]);
    assert_eq!(
        seen.names,
        ["docker.io/victim/app:prod", "prod", "victim/app:prod"]
    );
    let blob = got.iter().find(|e| e.0.ends_with(&hex('d'))).unwrap();
    assert_eq!(blob.2, [1u8; 700]);
    assert!(got.iter().any(|e| e.0 == "oci-layout"));
    // An index whose entries carry only name annotations loses the annotations whole.
    let mut seen = Seen::default();
    let index = br#"{"manifests":[{"digest":"sha256:x","annotations":{"io.containerd.image.name":"a:b"}}]}"#;
    let stripped: Value = serde_json::from_slice(&strip_index(index, &mut seen).unwrap()).unwrap();
    assert_eq!(
        stripped,
        serde_json::json!({"manifests":[{"digest":"sha256:x"}]})
    );
}

#[test]
fn names_given_by_pax_gnu_long_names_or_unclean_paths_are_still_the_manifest() {
    let manifest = br#"[{"Config":"x.json","RepoTags":["victim/app:prod"],"Layers":[]}]"#;
    // A PAX path record naming manifest.json over a decoy header name.
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("path", &b"manifest.json"[..])])
        .unwrap();
    add(&mut b, "decoy", manifest);
    // A GNU long name, and `./a/../manifest.json`.
    let long = format!("{}/../manifest.json", "d".repeat(120));
    raw(
        &mut b,
        b"././@LongLink",
        b'L',
        &[long.as_bytes(), b"\0"].concat(),
    );
    raw(&mut b, &long.as_bytes()[..100], b'0', manifest);
    raw(&mut b, b"./a/../manifest.json", b'0', manifest);
    raw(&mut b, b"/repositories", b'0', b"{}");
    let (out, seen) = rewrite(&b.into_inner().unwrap()).unwrap();
    let got = entries(&out);
    assert_eq!(
        got.len(),
        3,
        "{:?}",
        got.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
    for (path, kind, data) in &got {
        assert_eq!((path.as_str(), *kind), (MANIFEST, tar::EntryType::Regular));
        let m: Value = serde_json::from_slice(data).unwrap();
        assert_eq!(m[0]["RepoTags"], serde_json::json!([]));
    }
    assert_eq!(seen.names, ["victim/app:prod"; 3]);
}

#[test]
fn links_that_could_carry_a_name_past_the_rewrite_refuse_the_archive() {
    let refused = |build: &dyn Fn(&mut tar::Builder<Vec<u8>>)| {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        let e = rewrite(&b.into_inner().unwrap()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        e.to_string()
    };
    let link = |b: &mut tar::Builder<Vec<u8>>, kind, path: &str, target: &str| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(0);
        b.append_link(&mut h, path, target).unwrap();
    };
    let e = refused(&|b| {
        link(b, tar::EntryType::Symlink, "d", ".");
        add(b, "d/manifest.json", b"[]");
    });
    assert!(
        e.contains("d/manifest.json lies under the symbolic link d"),
        "{e}"
    );
    let e = refused(&|b| {
        add(b, "evil.json", b"[]");
        link(b, tar::EntryType::Symlink, "manifest.json", "evil.json");
    });
    assert!(e.contains("manifest.json is not a regular file"), "{e}");
    let e = refused(&|b| link(b, tar::EntryType::Link, "index.json", "evil.json"));
    assert!(e.contains("index.json is not a regular file"), "{e}");
}

#[test]
fn what_is_not_a_whole_tar_is_an_error() {
    let e = rewrite(&[b'x'; 1024]).unwrap_err();
    assert!(e.to_string().contains("not a tar archive"), "{e}");
    let tar = docker_save(&[('a', &["team/app:latest"])]);
    let e = rewrite(&tar[..700]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    let e = rewrite(b"[not json").map(|_| ()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    let mut seen = Seen::default();
    let e = strip_manifest(br#"{"RepoTags":["a:b"]}"#, &mut seen).unwrap_err();
    assert!(e.to_string().contains("not a list of images"), "{e}");
    // A tar that simply stops between entries ends as if it had its end blocks.
    let (out, _) = rewrite(&tar[..1024]).unwrap();
    assert_eq!(entries(&out).len(), 1);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn bzip2(bytes: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// `object` through [`to_engine`] in 7-byte chunks, S3 announcing `size`: what the Engine
/// reads, and what was watched.
fn through(object: &[u8], size: u64) -> (Vec<u8>, crate::archive::Streamed, Seen) {
    let chunks: Vec<io::Result<bytes::Bytes>> = object
        .chunks(7)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let watch: Arc<Mutex<Watch>> = Arc::default();
    let mut body = to_engine(futures::stream::iter(chunks).boxed(), size, watch.clone());
    let mut read = Vec::new();
    futures::executor::block_on(async {
        while let Some(Ok(piece)) = body.next().await {
            read.extend_from_slice(&piece);
        }
    });
    drop(body);
    let (streamed, seen) = std::mem::take(&mut *watch.lock().unwrap()).finish();
    (read, streamed, seen)
}

#[test]
fn gzip_bzip2_and_xz_archives_reach_the_engine_as_the_plain_tar_without_names() {
    let tar = docker_save(&[('a', &["victim/app:prod"])]);
    let (plain, _) = rewrite(&tar).unwrap();
    for (object, compression) in [
        (tar.clone(), Compression::None),
        (gzip(&tar), Compression::Gzip),
        (bzip2(&tar), Compression::Bzip2),
        (xz(&tar), Compression::Xz),
    ] {
        assert_eq!(Compression::of(&object), compression);
        let (read, streamed, seen) = through(&object, object.len() as u64);
        assert_eq!(read, plain, "{compression:?}");
        assert_eq!(streamed.bytes, object.len() as u64);
        let sha: String = Sha256::digest(&object)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(streamed.sha256, sha, "the hash is of the bytes S3 sent");
        assert_eq!((streamed.too_long, streamed.format_error), (false, None));
        assert_eq!(seen.names, ["victim/app:prod"]);
    }
    // Concatenated gzip members, as pigz and `cat a.gz b.gz` make them.
    let half = tar.len() / 2;
    let two = [gzip(&tar[..half]), gzip(&tar[half..])].concat();
    assert_eq!(through(&two, two.len() as u64).0, plain);
}

#[test]
fn a_stream_longer_than_announced_or_not_an_archive_is_cut_and_says_why() {
    let object = gzip(&docker_save(&[('a', &["victim/app:prod"])]));
    let (read, streamed, _) = through(&object, 20);
    assert!(streamed.too_long && streamed.bytes <= 27, "{streamed:?}");
    assert!(
        read.len() < 512,
        "nothing of the archive's end reached the Engine"
    );
    assert_eq!(streamed.format_error, None);
    // A truncated xz: the decoder's error is the archive's, not S3's.
    let cut = xz(&docker_save(&[('a', &["victim/app:prod"])]));
    let cut = &cut[..cut.len() - 30];
    let (read, streamed, _) = through(cut, cut.len() as u64);
    assert!(streamed.format_error.is_some(), "{streamed:?}");
    assert_eq!(streamed.read_error, None);
    assert!(
        !read.ends_with(&[0; 1024]),
        "no end of archive reached the Engine"
    );
}
