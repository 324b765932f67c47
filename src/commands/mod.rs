//! The operator commands (SPEC §2): `status` and `history` here; the acting ones in
//! [`act`] (carried out by the daemon when one runs: [`dispatch`]); [`doctor`]; [`fleet`]
//! (the fleet ledger, read from S3).
//! Each returns the process exit status; tables go to stdout, `--json` is one document.

pub mod act;
pub mod dispatch;
mod doctor;
pub mod fleet;

pub use doctor::doctor;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use crate::adapters::aws;
use crate::adapters::docker::DockerRuntime;
use crate::config::Settings;
use crate::deploy::gates::waves::WaveStatus;
use crate::event::{Digest, ImageRef};
use crate::model::sweep::Row;
use crate::reconcile::sweep::sweep_once;
use crate::store::{Deployment, Outcome, Store};
use crate::wiring::{RealExecutor, RealSources, real_stages};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_CANNOT_RUN: u8 = 2;

/// What the commands that talk to ECR and Docker need.
pub struct Context {
    pub settings: Settings,
    pub registry: RealSources,
    pub executor: RealExecutor,
    pub sdk: aws_config::SdkConfig,
}

impl Context {
    pub async fn new(settings: Settings, docker_host: Option<&str>) -> Result<Self, String> {
        let runtime = Arc::new(DockerRuntime::new(docker_host)?);
        let store = Arc::new(Store::open(&settings.state.path).map_err(|e| e.to_string())?);
        let sdk = aws::sdk_config(&settings).await;
        let (registry, executor) = real_stages(&settings, &sdk, runtime, store)?;
        Ok(Self {
            registry,
            executor,
            sdk,
            settings,
        })
    }
}

pub(crate) fn short(d: Option<&str>) -> String {
    d.and_then(|d| Digest::parse(d).ok())
        .map(|d| d.short().to_owned())
        .unwrap_or_else(|| "-".into())
}

/// The DESIRED cell: the digest the tag names and, for an index, the manifest for this host.
pub(crate) fn desired_cell(r: &Row) -> String {
    let desired = short(r.desired_digest.as_deref());
    match &r.platform_digest {
        Some(p) => format!("{desired} (platform {})", short(Some(p))),
        None => desired,
    }
}

/// Renders rows as a table aligned for a terminal.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
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
    /// `pending` for a window: when it opens.
    pending_until: Option<&'a str>,
    last_deployment: Option<&'a Deployment>,
    /// On a host of fleet wave N > 1: wave, promoted digest, results seen, bake time left.
    #[serde(skip_serializing_if = "Option::is_none")]
    fleet: Option<WaveStatus>,
}

fn state_of(row: &Row) -> &'static str {
    row.action.state()
}

/// The fleet columns of a row, on a host of wave N > 1.
fn wave_status(ctx: &Context, r: &Row) -> Option<WaveStatus> {
    let follows = ImageRef::parse_repo_tag(&r.image).ok()?;
    ctx.executor
        .wave_status(&follows, r.desired_digest.as_deref())
        .unwrap_or_else(|e| {
            eprintln!("ecr-deployd: fleet results of {}: {e}", r.name);
            None
        })
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
                pending_until: r.pending_until.as_deref(),
                last_deployment: last.get(&r.name),
                fleet: wave_status(ctx, r),
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
                last,
                match (&r.detail, state_of(r)) {
                    (
                        Some(d),
                        st @ ("pending" | "paused" | "monitor" | "refused" | "waiting" | "halted"),
                    ) => {
                        format!("{st}: {d}")
                    }
                    (_, st) => st.to_owned(),
                },
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
                "LAST DEPLOYMENT",
                "STATE"
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
                crate::event::source_text(&d.repository, &d.tag),
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
