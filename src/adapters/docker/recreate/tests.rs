use serde_json::json;

use super::*;

const V1_41: ApiVersion = ApiVersion::V1_41;

fn old() -> Value {
    json!({
        "Id": "0123456789abcdef0123456789abcdef",
        "Image": "sha256:oldimage",
        "Config": {
            "Hostname": "0123456789ab",
            "User": "app",
            "Env": ["PATH=/bin", "MODE=prod"],
            "Cmd": ["serve"],
            "Entrypoint": ["/bin/busybox"],
            "WorkingDir": "/srv",
            "Image": "127.0.0.1:5000/team/web:prod",
            "MacAddress": "02:42:ac:11:00:99",
            "Labels": {"ecr-deployd.enable": "true", "from.image": "x"},
            "Volumes": {"/data": {}, "/image-vol": {}},
            "ExposedPorts": {"8080/tcp": {}}
        },
        "HostConfig": {
            "NetworkMode": "front",
            "Binds": ["named:/named", "/srv/host:/host:ro"],
            "RestartPolicy": {"Name": "unless-stopped"},
            "CapAdd": ["NET_ADMIN"]
        },
        "Mounts": [
            {"Type": "volume", "Name": "named", "Destination": "/named", "RW": true},
            {"Type": "volume", "Name": "anon123", "Destination": "/data", "RW": true},
            {"Type": "volume", "Name": "anon456", "Destination": "/image-vol", "RW": false},
            {"Type": "bind", "Source": "/srv/host", "Destination": "/host", "RW": false}
        ],
        "NetworkSettings": {"Networks": {
            "front": {"IPAMConfig": {"IPv4Address": "172.30.0.10"}, "Aliases": ["web", "0123456789ab"], "MacAddress": "02:42:ac:1e:00:0a"},
            "back": {"IPAMConfig": null, "Aliases": ["web-back"], "MacAddress": "02:42:ac:1f:00:02"}
        }}
    })
}

fn image() -> Value {
    json!({
        "Env": ["PATH=/bin"],
        "Cmd": ["default"],
        "Entrypoint": ["/bin/busybox"],
        "WorkingDir": "/srv",
        "User": "",
        "Labels": {"from.image": "x"},
        "Volumes": {"/image-vol": {}},
        "ExposedPorts": {"8080/tcp": {}}
    })
}

#[test]
fn the_users_settings_are_kept_and_the_old_images_defaults_dropped() {
    let plan = recreation(&old(), &image(), V1_41);
    let b = &plan.body;
    assert_eq!(
        b["Env"],
        json!(["MODE=prod"]),
        "image env not frozen into the container"
    );
    assert_eq!(b["Cmd"], json!(["serve"]), "user cmd kept");
    assert!(
        b.get("Entrypoint").is_none() && b.get("WorkingDir").is_none(),
        "image defaults dropped"
    );
    assert_eq!(b["User"], "app");
    assert_eq!(b["Labels"], json!({"ecr-deployd.enable": "true"}));
    assert_eq!(b["Volumes"], json!({"/data": {}}));
    assert!(
        b.get("ExposedPorts")
            .unwrap()
            .as_object()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        b["Image"], "127.0.0.1:5000/team/web:prod",
        "same reference, now the new image"
    );
    assert_eq!(
        b["MacAddress"], "02:42:ac:11:00:99",
        "a MAC the user set is kept"
    );
    assert!(
        b.get("Hostname").is_none(),
        "hostname derived from the old id is not reused"
    );
    assert_eq!(b["HostConfig"]["CapAdd"], json!(["NET_ADMIN"]));
    assert_eq!(b["HostConfig"]["RestartPolicy"]["Name"], "unless-stopped");
}

#[test]
fn anonymous_volumes_are_carried_over_by_name() {
    let plan = recreation(&old(), &image(), V1_41);
    let binds: Vec<&str> = plan.body["HostConfig"]["Binds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        binds,
        [
            "named:/named",
            "/srv/host:/host:ro",
            "anon123:/data",
            "anon456:/image-vol:ro"
        ]
    );
}

#[test]
fn every_network_keeps_static_ips_and_aliases_but_not_docker_assigned_values() {
    let plan = recreation(&old(), &image(), V1_41);
    let primary = &plan.body["NetworkingConfig"]["EndpointsConfig"]["front"];
    assert_eq!(primary["IPAMConfig"]["IPv4Address"], "172.30.0.10");
    assert_eq!(
        primary["Aliases"],
        json!(["web"]),
        "the old short id alias is dropped"
    );
    assert!(
        primary.get("MacAddress").is_none(),
        "assigned MACs are never copied"
    );
    assert_eq!(plan.extra_networks.len(), 1);
    assert_eq!(plan.extra_networks[0].0, "back");
    assert_eq!(plan.extra_networks[0].1, json!({"Aliases": ["web-back"]}));
}

#[test]
fn a_hostname_the_user_chose_is_kept() {
    let mut o = old();
    o["Config"]["Hostname"] = json!("web-1");
    assert_eq!(recreation(&o, &image(), V1_41).body["Hostname"], "web-1");
}

/// A sidecar in the namespace of container `parent` (id 0123…), sharing its volumes too.
fn sidecar(network_mode: &str, volumes_from: Value) -> Value {
    json!({
        "Id": "fedcba9876543210fedcba9876543210",
        "Image": "sha256:sidecar",
        "Config": {
            "Hostname": "0123456789ab",
            "Domainname": "",
            "Image": "vpn:1",
            "Labels": {"ecr-deployd.enable": "true"}
        },
        "HostConfig": {
            "NetworkMode": network_mode,
            "IpcMode": "container:0123456789abcdef0123456789abcdef",
            "PidMode": "container:other",
            "VolumesFrom": volumes_from
        },
        "Mounts": [],
        "NetworkSettings": {"Networks": {}}
    })
}

fn parent() -> Repoint {
    Repoint {
        old_id: "0123456789abcdef0123456789abcdef".into(),
        old_name: "app".into(),
        new_id: "9999".into(),
    }
}

#[test]
fn a_dependent_is_pointed_at_the_new_parent_by_id_whatever_named_the_old_one() {
    for (mode, expected) in [
        (
            "container:0123456789abcdef0123456789abcdef",
            "container:9999",
        ),
        ("container:0123456789ab", "container:9999"),
        ("container:app", "container:9999"),
        ("container:/app", "container:9999"),
        ("container:application", "container:application"),
        ("bridge", "bridge"),
    ] {
        let old = sidecar(
            mode,
            json!(["app:ro", "0123456789abcdef", "data-only", "apps"]),
        );
        let mut plan = recreation(&old, &Value::Null, V1_41);
        repoint(&mut plan.body, &parent());
        let host = &plan.body["HostConfig"];
        assert_eq!(host["NetworkMode"], expected, "{mode}");
        assert_eq!(host["IpcMode"], "container:9999");
        assert_eq!(
            host["PidMode"], "container:other",
            "another container's stays"
        );
        assert_eq!(
            host["VolumesFrom"],
            json!(["9999:ro", "9999", "data-only", "apps"]),
            "{mode}"
        );
    }
}

#[test]
fn a_container_in_anothers_network_namespace_gets_no_hostname_of_its_own() {
    // The Engine fills in the owner's hostname and refuses it back on create.
    let plan = recreation(
        &sidecar("container:0123456789abcdef0123456789abcdef", Value::Null),
        &Value::Null,
        V1_41,
    );
    assert!(plan.body.get("Hostname").is_none());
    assert!(plan.body.get("Domainname").is_none());
    assert!(plan.body.get("NetworkingConfig").is_none());
}

#[test]
fn a_compose_container_keeps_every_compose_label_and_names_its_new_image() {
    let mut o = old();
    o["Config"]["Labels"] = json!({
        "com.docker.compose.project": "shop",
        "com.docker.compose.service": "web",
        "com.docker.compose.config-hash": "abc",
        "com.docker.compose.image": "sha256:oldimage",
        "ecr-deployd.enable": "true"
    });
    let mut plan = recreation(&o, &image(), V1_41);
    set_compose_image(&mut plan.body, "sha256:newimage");
    let labels = &plan.body["Labels"];
    assert_eq!(labels["com.docker.compose.image"], "sha256:newimage");
    assert_eq!(labels["com.docker.compose.project"], "shop");
    assert_eq!(labels["com.docker.compose.service"], "web");
    assert_eq!(labels["com.docker.compose.config-hash"], "abc");
    // Not a Compose v2 container: no such label is added.
    let mut plain = recreation(&old(), &image(), V1_41);
    set_compose_image(&mut plain.body, "sha256:newimage");
    assert!(
        plain.body["Labels"]
            .get("com.docker.compose.image")
            .is_none()
    );
}
