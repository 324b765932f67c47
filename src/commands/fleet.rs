//! `fleet [--ledger S3URL] [--json | --html FILE]` and `fleet in-use [REPOSITORY]` (SPEC §17):
//! the fleet from its ledger objects, on any machine with read access. No Docker, no queue,
//! no config file needed (`--ledger` names the ledger; AWS credentials and region come from
//! the usual chain).

use std::path::Path;

use super::{EXIT_CANNOT_RUN, EXIT_OK, print_json, short, table};
use crate::adapters::aws;
use crate::adapters::ledger::S3Ledger;
use crate::config::Settings;
use crate::ledger::view::{self, FleetRow, FleetView};
use crate::ledger::{HostLedger, LedgerUrl, SCHEMA, html};
use crate::ports::LedgerObjects;

/// Which ledger to read: `--ledger`, else `[fleet] ledger`.
fn ledger_url(settings: &Settings, flag: Option<&str>) -> Result<LedgerUrl, String> {
    match flag {
        Some(s) => LedgerUrl::parse(s).map_err(|e| format!("--ledger: {e}")),
        None => settings.ledger().ok_or_else(|| {
            "no ledger: pass --ledger s3://BUCKET/PREFIX/ or set [fleet] ledger".to_owned()
        }),
    }
}

/// Every host's object under the ledger's prefix (not below it). Objects that cannot be read
/// or parsed are named on stderr and left out; a listing that fails is an error.
pub async fn read<L: LedgerObjects>(
    objects: &L,
    url: &LedgerUrl,
) -> Result<Vec<HostLedger>, String> {
    let keys = objects
        .list(&url.bucket, &url.prefix)
        .await
        .map_err(|e| format!("cannot list {url}: {e}"))?;
    let hosts = keys.iter().filter(|k| {
        k.strip_prefix(&url.prefix)
            .is_some_and(|rest| rest.ends_with(".json") && !rest.contains('/'))
    });
    let mut found = Vec::new();
    for key in hosts {
        let where_ = format!("s3://{}/{key}", url.bucket);
        let body = match objects.get(&url.bucket, key).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("ecr-deployd: {where_} left out: {e}");
                continue;
            }
        };
        match serde_json::from_slice::<HostLedger>(&body) {
            Ok(h) if h.schema > SCHEMA => eprintln!(
                "ecr-deployd: {where_} left out: written by a newer agent (schema {})",
                h.schema
            ),
            Ok(h) => found.push(h),
            Err(e) => eprintln!("ecr-deployd: {where_} left out: not a ledger object: {e}"),
        }
    }
    Ok(found)
}

/// The fleet view of the ledger, read now.
async fn load(settings: &Settings, flag: Option<&str>) -> Result<FleetView, String> {
    let url = ledger_url(settings, flag)?;
    let sdk = aws::sdk_config(settings).await;
    let objects = read(&S3Ledger::new(&sdk), &url).await?;
    Ok(view::fleet(
        &url.to_string(),
        &objects,
        jiff::Timestamp::now(),
    ))
}

/// The RUNNING cell: the digest and, for an index, this host's platform manifest.
fn running_cell(r: &FleetRow) -> String {
    let running = short(r.running_digest.as_deref());
    match &r.platform_digest {
        Some(p) if r.running_digest == r.desired_digest => {
            format!("{running} (platform {})", short(Some(p)))
        }
        _ => running,
    }
}

/// The table `fleet` prints.
pub fn fleet_table(v: &FleetView) -> String {
    let cells: Vec<Vec<String>> = v
        .rows
        .iter()
        .map(|r| {
            let host = match r.stale {
                true => format!("{} (stale)", r.host),
                false => r.host.clone(),
            };
            vec![
                host,
                r.wave.to_string(),
                r.container.clone(),
                r.image.clone(),
                running_cell(r),
                r.since.clone().unwrap_or_else(|| "-".into()),
                short(r.previous_digest.as_deref()),
                r.state.clone(),
                r.last_outcome.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "HOST",
            "WAVE",
            "CONTAINER",
            "IMAGE",
            "RUNNING",
            "SINCE",
            "PREVIOUS",
            "STATE",
            "LAST OUTCOME",
        ],
        &cells,
    )
}

/// `fleet [--ledger S3URL] [--json | --html FILE]`.
pub async fn fleet(
    settings: &Settings,
    ledger: Option<&str>,
    json: bool,
    html: Option<&Path>,
) -> u8 {
    let v = match load(settings, ledger).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("ecr-deployd: fleet: {e}");
            return EXIT_CANNOT_RUN;
        }
    };
    if let Some(file) = html {
        if let Err(e) = std::fs::write(file, html::page(&v)) {
            eprintln!("ecr-deployd: fleet: cannot write {}: {e}", file.display());
            return EXIT_CANNOT_RUN;
        }
        eprintln!(
            "ecr-deployd: fleet: {} hosts, {} rows written to {}",
            v.hosts.len(),
            v.rows.len(),
            file.display()
        );
        return EXIT_OK;
    }
    if json {
        print_json(&v);
    } else {
        print!("{}", fleet_table(&v));
    }
    EXIT_OK
}

/// `fleet in-use [REPOSITORY] [--ledger S3URL] [--json]`.
pub async fn in_use(
    settings: &Settings,
    ledger: Option<&str>,
    repository: Option<&str>,
    json: bool,
) -> u8 {
    let v = match load(settings, ledger).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("ecr-deployd: fleet in-use: {e}");
            return EXIT_CANNOT_RUN;
        }
    };
    let used = view::in_use(&v, repository);
    if json {
        print_json(
            &serde_json::json!({ "ledger": v.ledger, "read_at": v.read_at, "digests": used }),
        );
        return EXIT_OK;
    }
    let cells: Vec<Vec<String>> = used
        .iter()
        .map(|u| {
            vec![
                u.repository.clone(),
                u.digest.clone(),
                u.kept_as.join(","),
                u.used_by.join(", "),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["REPOSITORY", "DIGEST", "KEPT AS", "USED BY"], &cells)
    );
    EXIT_OK
}
