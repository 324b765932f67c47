use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(text: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    Settings::load(&path, false, env(vars))
}

fn err_text(r: Result<Settings, ConfigError>) -> String {
    r.expect_err("expected the config to be rejected")
        .to_string()
}

const QUEUE: &str = "https://sqs.eu-west-2.amazonaws.com/123456789012/ecr-deployd";

#[test]
fn empty_file_gives_the_documented_defaults() {
    let s = load("", &[]).unwrap();
    assert_eq!(s.queue.wait_time_seconds, 20);
    assert_eq!(s.queue.max_messages, 10);
    assert_eq!(s.queue.visibility_timeout_seconds, 300);
    assert_eq!(s.sweep.interval_seconds, 300);
    assert_eq!(s.deploy.debounce_millis, 1500);
    assert_eq!(s.http.listen, "127.0.0.1:9464");
    assert_eq!(s.state.path, PathBuf::from("/var/lib/ecr-deployd/state.db"));
}

#[test]
fn missing_default_file_is_empty_but_missing_explicit_file_is_an_error() {
    let p = Path::new("/nonexistent/ecr-deployd.toml");
    assert!(Settings::load(p, true, vec![]).is_ok());
    let e = Settings::load(p, false, vec![]).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/ecr-deployd.toml"), "{e}");
}

#[test]
fn unknown_key_is_named() {
    let e = err_text(load("[queue]\nurll = \"x\"\n", &[]));
    assert!(e.contains("urll"), "{e}");
    let e = err_text(load("[queues]\n", &[]));
    assert!(e.contains("queues"), "{e}");
}

#[test]
fn wrong_type_names_the_key() {
    let e = err_text(load("[queue]\nmax_messages = \"ten\"\n", &[]));
    assert!(e.contains("max_messages"), "{e}");
}

#[test]
fn out_of_range_values_name_key_and_range() {
    for (text, key) in [
        ("[queue]\nwait_time_seconds = 21", "queue.wait_time_seconds"),
        ("[queue]\nwait_time_seconds = 0", "queue.wait_time_seconds"),
        ("[queue]\nmax_messages = 11", "queue.max_messages"),
        (
            "[queue]\nvisibility_timeout_seconds = 50000",
            "queue.visibility_timeout_seconds",
        ),
        ("[deploy]\nmax_parallel = 0", "deploy.max_parallel"),
        (
            "[deploy]\nhealth_timeout_seconds = 0",
            "deploy.health_timeout_seconds",
        ),
        ("[http]\nlisten = \"localhost\"", "http.listen"),
        (
            "[registry]\nmirror = \"http://mirror:5000\"",
            "registry.mirror",
        ),
        ("[aws]\nendpoint_url = \"not a url\"", "aws.endpoint_url"),
    ] {
        let e = err_text(load(text, &[]));
        assert!(e.contains(key), "{text}: {e}");
    }
}

#[test]
fn malformed_queue_urls_are_rejected_with_the_reason() {
    for (url, why) in [
        ("sqs.eu-west-2.amazonaws.com/123456789012/q", "not a URL"),
        (
            "ftp://sqs.eu-west-2.amazonaws.com/123456789012/q",
            "http(s)",
        ),
        ("https://sqs.eu-west-2.amazonaws.com/q", "form"),
        ("https://sqs.eu-west-2.amazonaws.com/1234/q", "12 digits"),
        (
            "https://sqs.eu-west-2.amazonaws.com/123456789012/bad name!",
            "queue name",
        ),
    ] {
        let e = err_text(load(&format!("[queue]\nurl = {url:?}\n"), &[]));
        assert!(e.contains("queue.url") && e.contains(why), "{url}: {e}");
    }
    load(&format!("[queue]\nurl = {QUEUE:?}\n"), &[]).unwrap();
    load(
        "[queue]\nurl = \"http://127.0.0.1:5000/123456789012/q.fifo\"\n",
        &[],
    )
    .unwrap();
}

#[test]
fn environment_overrides_file_with_typed_values() {
    let s = load(
        "[queue]\nmax_messages = 5\n",
        &[
            ("ECR_DEPLOYD_QUEUE_URL", QUEUE),
            ("ECR_DEPLOYD_QUEUE_MAX_MESSAGES", "7"),
            ("ECR_DEPLOYD_DEPLOY_REMOVE_OLD_IMAGES", "false"),
            (
                "ECR_DEPLOYD_NOTIFY_WEBHOOKS",
                "https://a.example/x, https://b.example/y",
            ),
            ("ECR_DEPLOYD_CONFIG", "/ignored"),
            ("OTHER", "ignored"),
        ],
    )
    .unwrap();
    assert_eq!(s.queue.url, QUEUE);
    assert_eq!(s.queue.max_messages, 7);
    assert!(!s.deploy.remove_old_images);
    assert_eq!(s.notify.webhooks.len(), 2);
    let s = load(
        "",
        &[("ECR_DEPLOYD_NOTIFY_WEBHOOKS", r#"["https://a.example/x"]"#)],
    )
    .unwrap();
    assert_eq!(s.notify.webhooks, vec!["https://a.example/x"]);
}

#[test]
fn bad_environment_values_name_the_variable() {
    let e = err_text(load("", &[("ECR_DEPLOYD_QUEUE_MAX_MESSAGES", "many")]));
    assert!(e.contains("ECR_DEPLOYD_QUEUE_MAX_MESSAGES"), "{e}");
    let e = err_text(load("", &[("ECR_DEPLOYD_QUEUE_MAXMESSAGES", "1")]));
    assert!(
        e.contains("ECR_DEPLOYD_QUEUE_MAXMESSAGES") && e.contains("not a known"),
        "{e}"
    );
    let e = err_text(load("", &[("ECR_DEPLOYD_QUEUE_MAX_MESSAGES", "0")]));
    assert!(e.contains("queue.max_messages"), "{e}");
}

#[test]
fn run_requires_a_queue_url() {
    let s = load("", &[]).unwrap();
    let e = s.require_queue().unwrap_err().to_string();
    assert!(e.contains("queue.url"), "{e}");
}

#[test]
fn redacted_output_hides_webhook_secrets_but_keeps_the_host() {
    let s = load(
        "[notify]\nwebhooks = [\"https://hooks.slack.example/services/T000/B000/XXXXSECRET\"]\n[aws]\nendpoint_url = \"http://user:pw@127.0.0.1:5000\"\n",
        &[],
    )
    .unwrap();
    let out = s.to_redacted_toml();
    assert!(!out.contains("XXXXSECRET"), "{out}");
    assert!(!out.contains("pw@"), "{out}");
    assert!(out.contains("hooks.slack.example"), "{out}");
    // The redacted rendering is itself a valid config: operators can paste it back.
    assert!(Settings::from_toml(&out).is_ok(), "{out}");
}

#[test]
fn webhook_errors_do_not_echo_the_secret() {
    let e = err_text(load("[notify]\nwebhooks = [\"SECRETTOKEN\"]\n", &[]));
    assert!(
        e.contains("notify.webhooks[0]") && !e.contains("SECRETTOKEN"),
        "{e}"
    );
}

#[test]
fn the_packaged_default_config_documents_every_key_with_its_default() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/config.toml");
    let shipped = Settings::load(Path::new(path), false, vec![]).unwrap();
    assert_eq!(shipped, Settings::default());
    let text = std::fs::read_to_string(path).unwrap();
    let defaults = toml::Table::try_from(Settings::default()).unwrap();
    for (section, keys) in &defaults {
        let Some(keys) = keys.as_table() else {
            // An array of tables (`[[registries]]`): empty by default, shown commented out.
            assert!(
                text.contains(&format!("[[{section}]]")),
                "[[{section}]] missing"
            );
            continue;
        };
        assert!(
            text.contains(&format!("[{section}]")),
            "[{section}] missing"
        );
        let scalars = keys.iter().filter(|(_, v)| !v.is_table());
        for (key, _) in scalars {
            assert!(
                text.contains(&format!("\n{key} = ")),
                "{section}.{key} missing"
            );
        }
    }
}

#[test]
fn policy_windows_are_compiled_and_their_errors_name_the_key() {
    let ok = load(
        "[policy]\ndefault = \"window\"\ntimezone = \"Europe/London\"\nwindow = \"nightly\"\n\
         [policy.windows.nightly]\nschedule = \"0 2 * * *\"\nduration_minutes = 120\n",
        &[("ECR_DEPLOYD_POLICY_DEFAULT", "manual")],
    )
    .unwrap();
    let p = ok.policies().unwrap();
    assert_eq!(p.default.as_str(), "manual", "the environment wins");
    assert_eq!(p.tz.iana_name(), Some("Europe/London"));
    assert_eq!(p.default_window.as_deref(), Some("nightly"));
    for (text, key, reason) in [
        (
            "[policy]\ndefault = \"sometimes\"\n",
            "policy.default",
            "not one of",
        ),
        (
            "[policy]\ntimezone = \"Mars/Olympus\"\n",
            "policy.timezone",
            "Mars/Olympus",
        ),
        (
            "[policy]\nwindow = \"nightly\"\n",
            "policy.window",
            "not a window",
        ),
        (
            "[policy.windows.nightly]\nschedule = \"0 2 * *\"\nduration_minutes = 60\n",
            "policy.windows.nightly",
            "5-field",
        ),
        (
            "[policy.windows.nightly]\nschedule = \"0 2 * * *\"\nduration_minutes = 0\n",
            "policy.windows.nightly",
            "duration_minutes",
        ),
        ("[control]\nsocket = \"\"\n", "control.socket", "empty"),
    ] {
        let e = err_text(load(text, &[]));
        assert!(e.contains(key) && e.contains(reason), "{text}: {e}");
    }
    let e = err_text(load(
        "[policy.windows.nightly]\nschedule = \"0 2 * * *\"\n",
        &[],
    ));
    assert!(e.contains("duration_minutes"), "{e}");
    let e = err_text(load(
        "[policy.windows.nightly]\nschedule = \"0 2 * * *\"\nduration_minutes = 5\nopen = true\n",
        &[],
    ));
    assert!(e.contains("open"), "unknown key named: {e}");
}

#[test]
fn fleet_defaults_to_wave_one_under_the_host_name_and_checks_its_ranges() {
    let ok = load("", &[]).unwrap();
    let f = ok.fleet().unwrap();
    assert_eq!((f.wave, f.promote_after, f.bake), (1, 1, Duration::ZERO));
    assert_eq!(f.name, crate::notify::host_name());
    let two = load(
        "[fleet]\nname = \"edge-7\"\nwave = 2\npromote_after = 3\nbake_minutes = 15\n",
        &[],
    )
    .unwrap()
    .fleet()
    .unwrap();
    assert_eq!(
        (two.name.as_str(), two.wave, two.promote_after, two.bake),
        ("edge-7", 2, 3, Duration::from_secs(900))
    );
    for (text, key) in [
        ("[fleet]\nwave = 0\n", "fleet.wave"),
        ("[fleet]\npromote_after = 0\n", "fleet.promote_after"),
        ("[fleet]\nbake_minutes = 99999\n", "fleet.bake_minutes"),
        ("[fleet]\nname = \"two words\"\n", "fleet.name"),
    ] {
        let e = err_text(load(text, &[]));
        assert!(e.contains(key), "{text}: {e}");
    }
    let e = err_text(load("[fleet]\nwaves = 2\n", &[]));
    assert!(e.contains("waves"), "{e}");
    let env = load("", &[("ECR_DEPLOYD_FLEET_WAVE", "3")]).unwrap();
    assert_eq!(env.fleet().unwrap().wave, 3);
}

#[test]
fn fleet_ledger_is_an_s3_url_with_a_prefix_ending_in_a_slash_and_needs_a_name_without_one() {
    assert_eq!(load("", &[]).unwrap().ledger(), None);
    let s = load(
        "[fleet]\nname = \"edge-7\"\nledger = \"s3://fleet-ledger/prod/\"\n",
        &[],
    )
    .unwrap();
    let url = s.ledger().unwrap();
    assert_eq!(url.key(&s.fleet().unwrap().name), "prod/edge-7.json");
    let env = load("", &[("ECR_DEPLOYD_FLEET_LEDGER", "s3://fleet-ledger/")]).unwrap();
    assert_eq!(env.ledger().unwrap().bucket, "fleet-ledger");
    for (text, says) in [
        (
            "[fleet]\nledger = \"s3://fleet-ledger/prod\"\n",
            "fleet.ledger",
        ),
        ("[fleet]\nledger = \"https://x/\"\n", "fleet.ledger"),
        (
            "[fleet]\nname = \"a/b\"\nledger = \"s3://fleet-ledger/\"\n",
            "fleet.name",
        ),
    ] {
        let e = err_text(load(text, &[]));
        assert!(e.contains(says), "{text}: {e}");
    }
}

#[test]
fn smtp_needs_relay_addresses_and_credentials_together_and_check_config_hides_the_password() {
    let base = "[notify]\nsmtp = { relay = \"mail.example:587\", from = \"agent@example.org\", to = [\"ops@example.org\"]";
    let ok = load(&format!("{base} }}\n"), &[]).unwrap();
    let smtp = ok.notify.smtp.as_ref().unwrap();
    assert!(smtp.starttls, "STARTTLS unless turned off");
    let with_password = load(
        &format!("{base}, username = \"agent\", password = \"hunter2\" }}\n"),
        &[],
    )
    .unwrap();
    let shown = with_password.to_redacted_toml();
    assert!(
        !shown.contains("hunter2") && shown.contains("<redacted>"),
        "{shown}"
    );
    // Plain text with a password only on loopback.
    let local = "[notify]\nsmtp = { relay = \"127.0.0.1:2525\", from = \"a@b\", to = [\"c@d\"], starttls = false, username = \"u\", password_file = \"/p\" }\n";
    assert!(load(local, &[]).is_ok());
    for (text, key) in [
        (format!("{base}, relay2 = \"x\" }}\n"), "relay2"),
        (
            "[notify]\nsmtp = { relay = \"mail.example\", from = \"a@b\", to = [\"c@d\"] }\n"
                .into(),
            "notify.smtp.relay",
        ),
        (
            "[notify]\nsmtp = { relay = \"mail.example:25\", from = \"nobody\", to = [\"c@d\"] }\n"
                .into(),
            "notify.smtp.from",
        ),
        (
            "[notify]\nsmtp = { relay = \"mail.example:25\", from = \"a@b\", to = [] }\n".into(),
            "notify.smtp.to",
        ),
        (
            "[notify]\nsmtp = { relay = \"mail.example:25\", from = \"a@b\", to = [\"x y@d\"] }\n"
                .into(),
            "notify.smtp.to",
        ),
        (
            format!("{base}, username = \"u\" }}\n"),
            "notify.smtp.username",
        ),
        (
            format!("{base}, password = \"p\", password_file = \"/f\", username = \"u\" }}\n"),
            "notify.smtp.password",
        ),
        (
            format!("{base}, starttls = false, username = \"u\", password = \"p\" }}\n"),
            "notify.smtp.starttls",
        ),
    ] {
        let e = err_text(load(&text, &[]));
        assert!(e.contains(key), "{text}: {e}");
        assert!(!e.contains("hunter2"));
    }
}

#[test]
fn archives_default_to_four_gib_without_a_required_checksum_and_are_checked_strictly() {
    let ok = load("", &[]).unwrap();
    assert_eq!(ok.archives.max_bytes, 4_294_967_296);
    assert!(!ok.archives.require_checksum);
    let set = load(
        "[archives]\nmax_bytes = 1048576\nrequire_checksum = true\n",
        &[],
    )
    .unwrap();
    assert_eq!(set.archives.max_bytes, 1_048_576);
    assert!(set.archives.require_checksum);
    let e = err_text(load("[archives]\nmax_bytes = 0\n", &[]));
    assert!(e.contains("archives.max_bytes"), "{e}");
    let e = err_text(load("[archives]\nmax_bytes = -1\n", &[]));
    assert!(e.contains("max_bytes"), "{e}");
    let e = err_text(load("[archives]\nmax_size = 5\n", &[]));
    assert!(e.contains("max_size"), "unknown key named: {e}");
    let env = load(
        "",
        &[
            ("ECR_DEPLOYD_ARCHIVES_MAX_BYTES", "2048"),
            ("ECR_DEPLOYD_ARCHIVES_REQUIRE_CHECKSUM", "true"),
        ],
    )
    .unwrap();
    assert_eq!(env.archives.max_bytes, 2048);
    assert!(env.archives.require_checksum);
    let e = err_text(load("", &[("ECR_DEPLOYD_ARCHIVES_MAX_BYTES", "lots")]));
    assert!(e.contains("ECR_DEPLOYD_ARCHIVES_MAX_BYTES"), "{e}");
}

/// SPEC §3 [verify]: roots come with identities, each bad entry is named by its key, and
/// `require = "signed"` is satisfied by any one trust source.
#[test]
fn verify_roots_and_identities_are_checked_and_name_the_key() {
    let root = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/signatures/notation-root.crt"
    );
    let notation = format!(
        "[verify]\nrequire = \"signed\"\nnotation_roots = [\"{root}\"]\n\
         notation_identities = [\"x509.subject: CN=release,O=Notary\", \
         \"arn:aws:signer:eu-west-1:123456789012:/signing-profiles/release\"]\n"
    );
    let gates = load(&notation, &[]).unwrap().gates().unwrap();
    assert!(gates.require_signed && gates.trust.notation());
    assert_eq!(gates.trust.notation_identities.len(), 2);
    let cosign = format!(
        "[verify]\nrequire = \"signed\"\ncosign_roots = [\"{root}\"]\n\
         cosign_identities = [{{ subject = \"release@example.com\", issuer = \"https://issuer.example\" }}]\n"
    );
    assert!(
        load(&cosign, &[])
            .unwrap()
            .gates()
            .unwrap()
            .trust
            .cosign_certificates()
    );
    for (text, expected) in [
        (
            format!("[verify]\ncosign_roots = [\"{root}\"]\n"),
            "verify.cosign_identities",
        ),
        (
            "[verify]\nnotation_identities = [\"x509.subject: CN=a\"]\n".to_owned(),
            "verify.notation_roots",
        ),
        (
            format!("[verify]\nnotation_roots = [\"{root}\"]\nnotation_identities = [\"CN=a\"]\n"),
            "verify.notation_identities[0]",
        ),
        (
            "[verify]\ncosign_roots = [\"/nonexistent/ca.pem\"]\n".to_owned(),
            "verify.cosign_roots[0]",
        ),
        (
            format!("[verify]\ncosign_roots = [\"{}\"]\n", file!()),
            "verify.cosign_roots[0]",
        ),
        (
            "[verify]\ncosign_identities = [{ subject = \"a\", isuer = \"b\" }]\n".to_owned(),
            "isuer",
        ),
        (
            "[verify]\nrequire = \"signed\"\n".to_owned(),
            "verify.require",
        ),
    ] {
        let e = err_text(load(&text, &[]));
        assert!(e.contains(expected), "{expected}: {e}");
    }
}

#[test]
fn settings_written_as_toml_read_back_the_same() {
    // The integration harness (tests/common/site.rs) writes its typed Settings as the config
    // file the binary reads: what it writes must be what the binary gets.
    let mut s = Settings::default();
    s.queue.url = QUEUE.to_owned();
    s.queue.wait_time_seconds = 1;
    s.aws.endpoint_url = "http://127.0.0.1:5000".to_owned();
    s.registry.mirror = "127.0.0.1:5001".to_owned();
    s.deploy.debounce_millis = 100;
    s.http.listen = String::new();
    s.state.path = PathBuf::from("/tmp/edt/state.db");
    let text = toml::to_string(&s).expect("Settings serialise as TOML");
    assert_eq!(load(&text, &[]).unwrap(), s, "{text}");
    let defaults = toml::to_string(&Settings::default()).unwrap();
    assert_eq!(
        load(&defaults, &[]).unwrap(),
        Settings::default(),
        "{defaults}"
    );
}
