//! `doctor`: every check on its own line, with a hint when it fails.

mod sites;

use super::{Context, EXIT_FAILED, EXIT_OK};
use crate::adapters::{aws, eventbridge, sqs};
use crate::control::lease::Lease;
use crate::control::socket::{self, Request};
use crate::event::ImageRef;
use crate::ports::{Registry, Target};
use std::time::Duration;

use crate::deploy::gates::verdicts::Checked;
use crate::image::Desired;

/// One line of `doctor`.
struct Check {
    level: &'static str,
    what: &'static str,
    detail: String,
}

impl Check {
    fn ok(what: &'static str, detail: impl Into<String>) -> Self {
        Self {
            level: "ok",
            what,
            detail: detail.into(),
        }
    }
    fn warn(what: &'static str, detail: impl Into<String>) -> Self {
        Self {
            level: "warn",
            what,
            detail: detail.into(),
        }
    }
    fn fail(what: &'static str, detail: impl Into<String>) -> Self {
        Self {
            level: "FAIL",
            what,
            detail: detail.into(),
        }
    }
}

/// `doctor`: every check on its own line, with a hint when it fails. Exit 1 on any FAIL.
pub async fn doctor(ctx: &Context, config_path: &str) -> u8 {
    let mut checks = vec![Check::ok("config valid", config_path.to_owned())];
    // An agent that follows only registries of the site's own needs no AWS (SPEC §18).
    let aws = !ctx.settings.queue.url.is_empty() || ctx.settings.registries.is_empty();
    let hint = "hint: set AWS_PROFILE, an instance role or IAM Roles Anywhere for this host";
    if aws {
        checks.push(match aws::credentials_found(&ctx.sdk).await {
            Ok(()) => Check::ok("AWS credentials", "found"),
            Err(e) => Check::fail("AWS credentials", format!("{e} — {hint}")),
        });
        checks.extend(queue_checks(ctx).await);
    }
    checks.extend(sites::checks(ctx).await);
    match ctx.executor.runtime().version().await {
        Ok((engine, api)) => {
            checks.push(Check::ok("Docker reachable", format!("{engine}, API {api}")));
            checks.push(match ctx.executor.managed().await {
                Ok(m) if m.is_empty() => Check::warn("managed containers", "none — hint: label containers with ecr-deployd.enable=true"),
                Ok(m) => Check::ok("managed containers", format!("{} ({})", m.len(), m.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "))),
                Err(e) => Check::fail("managed containers", e.to_string()),
            });
            // Swarm services: only on a manager; absent elsewhere, and then no line at all.
            match ctx.executor.services().await {
                Ok(services) if services.is_empty() => {}
                Ok(services) => {
                    let names = services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
                    checks.push(Check::ok("managed services", format!("{} ({names})", services.len())));
                    for s in services.iter().filter(|s| !s.rolls_back) {
                        checks.push(Check::warn(
                            "service rolls back failed updates",
                            format!("{}: update failure_action is not rollback — hint: docker service update --update-failure-action rollback {}", s.name, s.name),
                        ));
                    }
                }
                Err(e) => checks.push(Check::fail("managed services", e.to_string())),
            }
        }
        Err(e) => checks.push(Check::fail(
            "Docker reachable",
            format!("{e} — hint: is the Docker service running, and may this user use its socket (group docker)?"),
        )),
    }
    checks.extend(deploy_checks(ctx).await);
    checks.extend(archive_checks(ctx).await);
    checks.extend(gate_checks(ctx).await);
    checks.extend(control_checks(ctx).await);
    checks.extend(ledger_check(ctx));
    checks.extend(mail_check(ctx).await);
    checks.push(match ctx.executor.store().check_writable() {
        Ok(()) => Check::ok(
            "state store writable",
            ctx.settings.state.path.display().to_string(),
        ),
        Err(e) => Check::fail(
            "state store writable",
            format!(
                "{e} — hint: check ownership of {}",
                ctx.settings.state.path.display()
            ),
        ),
    });
    for c in &checks {
        println!("{:<4} {}: {}", c.level, c.what, c.detail);
    }
    if checks.iter().any(|c| c.level == "FAIL") {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

/// Deploys that would be refused, and interrupted deployments this agent cannot read.
async fn deploy_checks(ctx: &Context) -> Vec<Check> {
    let mut checks = Vec::new();
    match ctx.executor.unreadable() {
        Ok(rows) => checks.extend(
            rows.iter()
                .map(|u| Check::fail("interrupted deployments readable", u.explain())),
        ),
        Err(e) => checks.push(Check::fail(
            "interrupted deployments readable",
            e.to_string(),
        )),
    }
    let policies = &ctx.executor.config().policies;
    for c in ctx.executor.managed().await.unwrap_or_default() {
        let name = c.name.clone();
        if let Err(why) = policies.resolve(&c.policy) {
            checks.push(Check::warn(
                "update policy labels valid",
                format!("{name}: {why} — its updates are refused until the label is fixed"),
            ));
        }
        if let Ok(Some(why)) = ctx.executor.refusal(&Target::Container(c)).await {
            checks.push(Check::warn("deploys not refused", format!("{name}: {why}")));
        }
    }
    checks
}

/// Every S3 archive key a container follows can be asked of S3 (nothing is loaded).
async fn archive_checks(ctx: &Context) -> Vec<Check> {
    const WHAT: &str = "S3 archives readable";
    let mut keys: Vec<ImageRef> = ctx
        .executor
        .managed()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.follows)
        .filter(ImageRef::is_archive)
        .collect();
    keys.sort();
    keys.dedup();
    let resolved = ctx.registry.peek(&keys).await;
    let hint =
        "hint: the agent needs s3:GetObject on the key (infra: ArchiveBucketName, ArchivePrefix)";
    keys.iter()
        .map(|k| match &resolved[k] {
            Ok(Some(d)) => Check::ok(WHAT, format!("{k}: image {}", d.digest.short())),
            Ok(None) => Check::fail(WHAT, format!("{k}: no such key or bucket")),
            Err(e) if crate::archive::is_not_loaded(e) => Check::ok(WHAT, e.message.clone()),
            Err(e) if crate::archive::is_refusal(e) => {
                Check::warn(WHAT, format!("refused: {}", e.message))
            }
            Err(e) => Check::fail(WHAT, format!("{k}: {e} — {hint}")),
        })
        .collect()
}

/// The supply-chain gates: the trusted keys, and for every gated target what the gates say
/// about the digest it runs now (which proves the signature and the findings can be read).
async fn gate_checks(ctx: &Context) -> Vec<Check> {
    let ex = &ctx.executor;
    let gates = &ex.config().gates;
    let mut checks = Vec::new();
    let trust = &gates.trust;
    if !trust.keys.is_empty() {
        let names: Vec<&str> = trust.keys.iter().map(|k| k.name.as_str()).collect();
        checks.push(Check::ok(
            "signature keys",
            format!("{} trusted: {}", names.len(), names.join(", ")),
        ));
    }
    for (what, roots, ids) in [
        (
            "cosign roots",
            &trust.cosign_roots.names,
            trust
                .cosign_identities
                .iter()
                .map(|i| format!("{} ({})", i.subject, i.issuer))
                .collect::<Vec<_>>(),
        ),
        (
            "notation roots",
            &trust.notation_roots.names,
            trust
                .notation_identities
                .iter()
                .map(|i| i.shown().to_owned())
                .collect(),
        ),
    ] {
        if !roots.is_empty() {
            checks.push(Check::ok(
                what,
                format!("{}; identities: {}", roots.join(", "), ids.join(", ")),
            ));
        }
    }
    let containers = ex
        .managed()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(Target::Container);
    let services = ex
        .services()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(Target::Service);
    for t in containers.chain(services) {
        let name = t.name().to_owned();
        let applies = match gates.applying(t.gate_labels()) {
            Ok(a) if a.any() => a,
            Ok(_) => continue,
            Err(why) => {
                checks.push(Check::warn(
                    "gate labels valid",
                    format!("{name}: {why} — its updates are refused until the label is fixed"),
                ));
                continue;
            }
        };
        let Some(running) = t.digests().first().cloned() else {
            continue;
        };
        let what = if applies.signed {
            "gates readable (signature, scan)"
        } else {
            "gates readable (scan)"
        };
        checks.push(match ex.check_gates(&t, &Desired::single(running), Duration::ZERO).await {
            Ok(Checked::Go(why)) => Check::ok(what, format!("{name}: the running digest passes: {}", why.join("; "))),
            Ok(Checked::Pending(why)) => Check::ok(what, format!("{name}: the running digest would wait: {why}")),
            Ok(Checked::Rejected { gate, reason }) => Check::warn(
                what,
                format!("{name}: the running digest would be rejected by the {gate} gate: {reason} (it runs because it came before the gate)"),
            ),
            Ok(Checked::Unknown(why)) | Err(why) => Check::fail(
                what,
                format!("{name}: {why} — hint: the agent's policy needs ecr:DescribeImageScanFindings and ecr:DescribeRepositories (infra: ScanGate=true), and the registry must serve the signature tags"),
            ),
        });
    }
    checks
}

async fn queue_checks(ctx: &Context) -> Vec<Check> {
    let url = &ctx.settings.queue.url;
    if url.is_empty() {
        return vec![Check::fail(
            "queue reachable",
            "queue.url is not set — hint: take it from the infra/ stack outputs",
        )];
    }
    let facts = match sqs::queue_facts(&ctx.sdk, url).await {
        Ok(f) => f,
        Err(e) => {
            return vec![Check::fail(
                "queue reachable",
                format!(
                    "{url}: {e} — hint: check [queue] url, the region, and sqs:GetQueueAttributes in the agent's policy"
                ),
            )];
        }
    };
    let mut checks = vec![Check::ok("queue reachable", url.clone())];
    checks.push(match &facts.redrive_policy {
        Some(p) => Check::ok("queue has a redrive policy", p.clone()),
        None => Check::warn(
            "queue has a redrive policy",
            "none — hint: add a DLQ, or malformed messages are received again and again",
        ),
    });
    let Some(arn) = &facts.arn else {
        checks.push(Check::fail(
            "EventBridge rule targets the queue",
            "the queue's ARN is unknown",
        ));
        return checks;
    };
    let rule = "EventBridge rule targets the queue";
    if ctx.settings.fleet.wave > 1 {
        checks.push(results_rule_check(ctx, arn).await);
    }
    checks.push(match eventbridge::rules_targeting(&ctx.sdk, arn, None).await {
        Ok(rules) if !rules.is_empty() => Check::ok(rule, rules.join(", ")),
        Ok(_) => Check::fail(
            rule,
            format!("no rule targets {arn} — hint: deploy infra/; until then only the sweep notices pushes"),
        ),
        Err(e) => Check::fail(
            rule,
            format!("{e} — hint: the agent's policy needs events:ListRuleNamesByTarget"),
        ),
    });
    checks
}

/// A host of wave N > 1 is fed by a rule on the fleet's results bus (`[notify] event_bus`).
async fn results_rule_check(ctx: &Context, arn: &str) -> Check {
    let what = "results bus rule targets the queue";
    let wave = ctx.settings.fleet.wave;
    let bus = &ctx.settings.notify.event_bus;
    if bus.is_empty() {
        return Check::fail(
            what,
            format!(
                "fleet.wave = {wave} but notify.event_bus is not set — hint: name the fleet's results bus there"
            ),
        );
    }
    match eventbridge::rules_targeting(&ctx.sdk, arn, Some(bus)).await {
        Ok(rules) if !rules.is_empty() => Check::ok(what, format!("{bus}: {}", rules.join(", "))),
        Ok(_) => Check::fail(
            what,
            format!(
                "no rule on {bus} targets {arn} — hint: deploy infra/ with Wave = {wave}; until then wave {} results never reach this host",
                wave - 1
            ),
        ),
        Err(e) => Check::fail(
            what,
            format!("{bus}: {e} — hint: the agent's policy needs events:ListRuleNamesByTarget"),
        ),
    }
}

/// The control socket, and windows that never open.
async fn control_checks(ctx: &Context) -> Vec<Check> {
    let path = &ctx.settings.control.socket;
    let what = "control socket";
    let mut checks = vec![match socket::call(path, &Request::Ping).await {
        Ok(r) if r.code == EXIT_OK => {
            Check::ok(what, format!("the daemon answers on {}", path.display()))
        }
        Ok(r) => Check::fail(what, format!("{}: {}", path.display(), r.stderr.trim())),
        Err(socket::CallError::Unreachable { .. }) if Lease::is_free(&ctx.settings.state.path) => {
            Check::ok(
                what,
                format!(
                    "no daemon running (nothing on {}); commands run in their own process",
                    path.display()
                ),
            )
        }
        Err(e) => Check::fail(
            what,
            format!(
                "{e}, but the daemon holds the state store — hint: [control] socket must be the daemon's, and this user needs root or the group ecr-deployd"
            ),
        ),
    }];
    let policies = &ctx.executor.config().policies;
    for name in policies.never_opening(jiff::Timestamp::now()) {
        let schedule = &policies.windows[name].schedule;
        checks.push(Check::warn(
            "maintenance windows open",
            format!("window {name} ({schedule:?}) never opens within five years — hint: check its day-of-month and month fields"),
        ));
    }
    checks
}

/// The fleet ledger (SPEC §17): what the daemon's writes came to, from the state store.
fn ledger_check(ctx: &Context) -> Option<Check> {
    const WHAT: &str = "fleet ledger written";
    let url = ctx.settings.ledger()?;
    let name = ctx.settings.fleet().map(|f| f.name).unwrap_or_default();
    let object = format!("s3://{}/{}", url.bucket, url.key(&name));
    let at = |ms: i64| crate::ledger::rfc3339_ms(ms);
    Some(match ctx.executor.store().ledger_writes() {
        Err(e) => Check::fail(WHAT, format!("{object}: {e}")),
        Ok(None) => Check::warn(
            WHAT,
            format!(
                "{object}: not written yet — the running daemon writes it after its first sweep"
            ),
        ),
        Ok(Some(w)) if w.failures > 0 => Check::fail(
            WHAT,
            format!(
                "{}: {} failed write(s) in a row, the last at {}: {}{} — hint: does the bucket exist, and may this host s3:PutObject on its key? Deploys go on meanwhile",
                w.url,
                w.failures,
                w.failed_at_ms.map(at).unwrap_or_default(),
                w.error.unwrap_or_default(),
                w.ok_at_ms
                    .map(|t| format!(" (last written {})", at(t)))
                    .unwrap_or_default(),
            ),
        ),
        Ok(Some(w)) => Check::ok(
            WHAT,
            format!("{} at {}", w.url, w.ok_at_ms.map(at).unwrap_or_default()),
        ),
    })
}

/// `[notify] smtp`: the relay answers and takes the credentials.
async fn mail_check(ctx: &Context) -> Option<Check> {
    const WHAT: &str = "e-mail relay";
    let smtp = ctx.settings.notify.smtp.as_ref()?;
    let mailer = match crate::notify::smtp::Mailer::new(smtp, Duration::from_secs(10)) {
        Ok(m) => m,
        Err(e) => return Some(Check::fail(WHAT, e)),
    };
    Some(match mailer.check().await {
        Ok(()) => Check::ok(WHAT, format!("{} answers", mailer.label())),
        Err(e) => Check::fail(
            WHAT,
            format!(
                "{}: {e} — hint: relay host:port, starttls and the credentials in [notify] smtp",
                mailer.label()
            ),
        ),
    })
}
