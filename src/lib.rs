//! ecr-deployd: keeps Docker containers on custodial hosts running what was last pushed to
//! Amazon ECR, fed by an SQS queue of ECR push events, with no inbound path to the host.
//!
//! # Layout
//!
//! The tree follows the pipeline (see ARCHITECTURE.md):
//!
//! - [`config`]: TOML + `ECR_DEPLOYD_*` overrides → validated [`config::Settings`].
//! - [`event`]: queue bodies (EventBridge, SNS-wrapped) → [`event::Classified`] (pushes,
//!   and re-check hints from signature pushes and scan events); domain
//!   newtypes [`event::Digest`], [`event::ImageRef`]; registry hosts (which account and
//!   region a reference names, the credentials' [`event::Home`], [`event::Mirrors`]). Pure.
//! - [`archive`]: S3 archives as an image source (SPEC §13): the object facts and the
//!   checks of a load (pure), the bytes' way to the Engine ([`archive::body`]: counted,
//!   hashed, decompressed) and the tar rewritten without the archive's names
//!   ([`archive::strip`]), the resolver that loads a new object into the Engine
//!   ([`archive::resolve`]), and [`archive::sources`], which sends tags to ECR and `s3://`
//!   keys to S3 behind one [`ports::Registry`].
//! - [`image`]: when a container runs the desired image — any of its digests, or an
//!   index's manifest for this host's platform. Pure.
//! - [`ports`]: the seams — [`ports::Queue`], [`ports::Registry`], [`ports::Archives`],
//!   [`ports::Deployer`].
//! - [`request`]: the reconcile request and the in-flight messages, shared by intake and
//!   reconcile (neither imports the other).
//! - [`intake`]: long-poll receive loop, visibility heartbeat, in-flight bookkeeping.
//! - [`reconcile`]: debounce/dedup per tag ([`reconcile::coalesce`]: a new digest or object
//!   version skips the window), resolve against ECR,
//!   hand off to the deployer, delete messages only after the work is recorded; the sweep and
//!   the sweeps at window openings.
//! - [`deploy`]: the deploy stage: one sequence for a container swap (create before stop)
//!   or a Swarm service update; update-control and supply-chain gates, health gate, rollback, recovery,
//!   the neighbourhood (dependents swapped as a group, `depends-on` order, lifecycle hooks),
//!   reports, `rollback`/`approve` — one file each (see its module doc).
//! - [`gate`]: the supply-chain gates' verdicts over fetched facts: signatures (cosign's
//!   `.sig` tag and its docker-reference, cosign 3's Sigstore bundles, Notary Project
//!   signatures and AWS Signer's revocation answers; X.509 paths and names; the trust of
//!   `[verify]`) and ECR scan findings. Pure.
//! - [`fleet`]: fleet waves: promotions and halts from earlier waves' results (SPEC §14).
//!   Pure.
//! - [`control`]: update control: policies and maintenance windows (pure), the state-store
//!   lease, the daemon's control socket.
//! - [`model`]: a deployment's domain values: outcome, journal step, phases.
//! - [`store`]: SQLite state: history, deploy journal, blocked digests, archive loads, ledger
//!   writes; schema versions; retention (`[state] keep_days`, a container's last 20 kept).
//! - [`adapters`]: SQS, ECR, S3 (AWS SDK; archives and the fleet ledger), the gates' facts
//!   (`adapters::supply`; `adapters::referrers`: a digest's OCI referrers through the API or
//!   the tag schema; `adapters::signer`: AWS Signer's revocation status), Docker (`adapters::docker`: one Engine client, bollard
//!   + raw JSON, every call timed) — the only code that sees SDK types.
//! - [`ledger`]: the fleet ledger (SPEC §17): one S3 object per host with what it runs and
//!   what ran before; the agent's background writer, and the fleet read back (`fleet`,
//!   `fleet in-use`, the HTML page).
//! - [`notify`]: webhooks, e-mail (SMTP) and EventBridge deployment results, off the deploy
//!   path.
//! - [`systemd`]: READY / WATCHDOG / STOPPING for `Type=notify`.
//! - [`metrics`], [`http`]: Prometheus metrics, `/metrics`, `/healthz`, `/readyz`.
//! - [`app`]: wires the stages, signals and shutdown.
//! - [`commands`]: the operator commands; the acting ones (`sweep`, `rollback`, `approve`,
//!   `pause`, `resume`) run in the daemon through its socket, or in-process under the lease.

pub mod adapters;
pub mod app;
pub mod archive;
pub mod commands;
pub mod config;
pub mod control;
pub mod deploy;
pub mod event;
pub mod fleet;
pub mod gate;
pub mod http;
pub mod image;
pub mod intake;
pub mod ledger;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod ports;
pub mod reconcile;
pub mod request;
pub mod retry;
pub mod stats;
pub mod store;
pub mod systemd;
