//! The operator commands: `sweep`, `status`, `history`, `rollback`, `doctor` (SPEC §2).
//! Each returns the process exit status; tables go to stdout, `--json` is one document.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use crate::adapters::docker::DockerRuntime;
use crate::adapters::ecr::{EcrCredentials, EcrRegistry};
use crate::adapters::{aws, events};
use crate::app::deploy_config;
use crate::config::Settings;
use crate::deploy::Executor;
use crate::deploy::target::Target;
use crate::event::Digest;
use crate::reconcile::sweep::{Action, Row, sweep_once};
use crate::store::{Deployment, Outcome, Store};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_CANNOT_RUN: u8 = 2;

type RealExecutor = Executor<DockerRuntime, EcrCredentials>;

/// What the commands that talk to ECR and Docker need.
pub struct Context {
    pub settings: Settings,
    pub registry: EcrRegistry,
    pub executor: RealExecutor,
    pub sdk: aws_config::SdkConfig,
}

impl Context {
    pub async fn new(settings: Settings, docker_host: Option<&str>) -> Result<Self, String> {
        let runtime = DockerRuntime::new(docker_host)?;
        let store = Store::open(&settings.state.path).map_err(|e| e.to_string())?;
        let sdk = aws::sdk_config(&settings).await;
        let executor = Executor::new(
            Arc::new(runtime),
            Arc::new(EcrCredentials::new(&sdk)),
            Arc::new(store),
            deploy_config(&settings),
        );
        Ok(Self {
            registry: EcrRegistry::new(&sdk),
            executor,
            sdk,
            settings,
        })
    }
}

fn short(d: Option<&str>) -> String {
    d.and_then(|d| Digest::parse(d).ok())
        .map(|d| d.short().to_owned())
        .unwrap_or_else(|| "-".into())
}

/// The DESIRED cell: the digest the tag names and, for an index, the manifest for this host.
fn desired_cell(r: &Row) -> String {
    let desired = short(r.desired_digest.as_deref());
    match &r.platform_digest {
        Some(p) => format!("{desired} (platform {})", short(Some(p))),
        None => desired,
    }
}

/// Renders rows as a table aligned for a terminal.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut out, header.to_vec());
    for row in rows {
        line(&mut out, row.iter().map(String::as_str).collect());
    }
    out
}

fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("ecr-deployd: cannot render JSON: {e}"),
    }
}

/// `sweep [--dry-run]`.
pub async fn sweep(ctx: &Context, dry_run: bool) -> u8 {
    let rows = match sweep_once(&ctx.registry, &ctx.executor, dry_run).await {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("ecr-deployd: sweep could not run: {e}");
            return EXIT_CANNOT_RUN;
        }
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut action = r.action.as_str().to_owned();
            if let Some(d) = &r.detail {
                let _ = write!(action, ": {d}");
            }
            vec![
                r.name.clone(),
                r.image.clone(),
                short(r.running_digest.as_deref()),
                desired_cell(r),
                action,
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["NAME", "IMAGE", "RUNNING", "DESIRED", "ACTION/RESULT"],
            &cells
        )
    );
    if rows.is_empty() {
        eprintln!("no managed containers or services (label ecr-deployd.enable=true)");
    }
    if rows.iter().any(|r| r.action.is_failure()) {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

/// One container in `status --json`.
#[derive(Serialize)]
struct StatusEntry<'a> {
    name: &'a str,
    image: &'a str,
    running_digest: Option<&'a str>,
    desired_digest: Option<&'a str>,
    /// When the tag names an image index: its manifest for this host's platform.
    platform_digest: Option<&'a str>,
    state: &'static str,
    detail: Option<&'a str>,
    last_deployment: Option<&'a Deployment>,
}

fn state_of(row: &Row) -> &'static str {
    match row.action {
        Action::UpToDate => "up_to_date",
        Action::WouldDeploy => "behind",
        Action::Blocked => "blocked",
        Action::NotInEcr => "not_in_ecr",
        Action::Stopped => "stopped",
        Action::Refused => "refused",
        _ => "unknown",
    }
}

/// `status [--json]`: what runs, what ECR says, the last deployment; changes nothing.
pub async fn status(ctx: &Context, json: bool) -> u8 {
    let rows = match sweep_once(&ctx.registry, &ctx.executor, true).await {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("ecr-deployd: status could not run: {e}");
            return EXIT_CANNOT_RUN;
        }
    };
    let mut last: HashMap<String, Deployment> = HashMap::new();
    for row in &rows {
        if let Ok(mut h) = ctx.executor.store().history(Some(&row.name), 1)
            && let Some(d) = h.pop()
        {
            last.insert(row.name.clone(), d);
        }
    }
    if json {
        let containers: Vec<StatusEntry<'_>> = rows
            .iter()
            .map(|r| StatusEntry {
                name: &r.name,
                image: &r.image,
                running_digest: r.running_digest.as_deref(),
                desired_digest: r.desired_digest.as_deref(),
                platform_digest: r.platform_digest.as_deref(),
                state: state_of(r),
                detail: r.detail.as_deref(),
                last_deployment: last.get(&r.name),
            })
            .collect();
        print_json(&serde_json::json!({ "containers": containers }));
        return EXIT_OK;
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let last = last
                .get(&r.name)
                .map(|d| {
                    format!(
                        "{} {} ({})",
                        d.outcome.map(Outcome::as_str).unwrap_or("in progress"),
                        short(Some(&d.to_digest)),
                        d.trigger
                    )
                })
                .unwrap_or_else(|| "-".into());
            vec![
                r.name.clone(),
                r.image.clone(),
                short(r.running_digest.as_deref()),
                desired_cell(r),
                state_of(r).to_owned(),
                last,
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "NAME",
                "IMAGE",
                "RUNNING",
                "DESIRED",
                "STATE",
                "LAST DEPLOYMENT"
            ],
            &cells
        )
    );
    EXIT_OK
}

/// `history [CONTAINER] [--limit N] [--json]`: from the state store only.
pub fn history(settings: &Settings, container: Option<&str>, limit: usize, json: bool) -> u8 {
    let store = match Store::open(&settings.state.path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ecr-deployd: {e}");
            return EXIT_CANNOT_RUN;
        }
    };
    let deployments = match store.history(container, limit) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ecr-deployd: {e}");
            return EXIT_CANNOT_RUN;
        }
    };
    if json {
        print_json(&serde_json::json!({ "deployments": deployments }));
        return EXIT_OK;
    }
    let cells: Vec<Vec<String>> = deployments
        .iter()
        .map(|d| {
            let started = std::time::UNIX_EPOCH
                + std::time::Duration::from_millis(d.started_at_ms.max(0) as u64);
            let took = d
                .ended_at_ms
                .map(|e| format!("{:.1}s", (e - d.started_at_ms) as f64 / 1000.0))
                .unwrap_or_else(|| "-".into());
            vec![
                humantime::format_rfc3339_seconds(started).to_string(),
                d.container.clone(),
                format!("{}:{}", d.repository, d.tag),
                short(d.from_digest.as_deref()),
                match &d.platform_digest {
                    Some(p) => format!(
                        "{} (platform {})",
                        short(Some(&d.to_digest)),
                        short(Some(p))
                    ),
                    None => short(Some(&d.to_digest)),
                },
                d.trigger.clone(),
                d.outcome
                    .map(Outcome::as_str)
                    .unwrap_or("in progress")
                    .to_owned(),
                took,
                d.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "STARTED",
                "CONTAINER",
                "IMAGE",
                "FROM",
                "TO",
                "TRIGGER",
                "OUTCOME",
                "TOOK",
                "ERROR"
            ],
            &cells
        )
    );
    EXIT_OK
}

/// `rollback CONTAINER [--to DIGEST]`.
pub async fn rollback(ctx: &Context, container: &str, to: Option<&str>) -> u8 {
    let to = match to.map(Digest::parse).transpose() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ecr-deployd: --to: {e}");
            return EXIT_CANNOT_RUN;
        }
    };
    match ctx.executor.rollback(container, to).await {
        Ok(r) if r.outcome == Outcome::Succeeded => {
            println!(
                "{container}: {} -> {} rolled back; {} is blocked until a different digest is pushed",
                r.from.short(),
                r.to.short(),
                r.from.short()
            );
            EXIT_OK
        }
        Ok(r) => {
            println!(
                "{container}: rollback to {} {}; still running {}",
                r.to.short(),
                r.outcome.as_str(),
                r.from.short()
            );
            EXIT_FAILED
        }
        Err(e) => {
            eprintln!("ecr-deployd: rollback of {container}: {e}");
            EXIT_FAILED
        }
    }
}

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
    let hint = "hint: set AWS_PROFILE, an instance role or IAM Roles Anywhere for this host";
    checks.push(match events::credentials_found(&ctx.sdk).await {
        Ok(()) => Check::ok("AWS credentials", "found"),
        Err(e) => Check::fail("AWS credentials", format!("{e} — {hint}")),
    });
    checks.extend(queue_checks(ctx).await);
    match ctx.executor.runtime().version().await {
        Ok((engine, api)) => {
            checks.push(Check::ok("Docker reachable", format!("Engine {engine}, API {api}")));
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
    for c in ctx.executor.managed().await.unwrap_or_default() {
        let name = c.name.clone();
        if let Ok(Some(why)) = ctx.executor.refusal(&Target::Container(c)).await {
            checks.push(Check::warn("deploys not refused", format!("{name}: {why}")));
        }
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
    let facts = match events::queue_facts(&ctx.sdk, url).await {
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
    checks.push(match events::rules_targeting(&ctx.sdk, arn).await {
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
