//! ecr-deployd: keeps Docker containers on custodial hosts running what was last pushed to
//! Amazon ECR, fed by an SQS queue of ECR push events, with no inbound path to the host.
//!
//! # Layout
//!
//! The tree follows the pipeline (the README's Layout section), and imports only run down it:
//! `tests/layering.rs` gives each module below a layer and fails on an import that runs back
//! up (`model` < `stats`, `retry` < `gate`, `fleet`, `image` < `event` < `ports` < `store` <
//! `metrics`, `control` < `ledger`, `http`, `systemd` < `config` < `notify` < `deploy`,
//! `archive` < `request` < `intake`, `reconcile` < `adapters` < `wiring` < `commands` < `app`;
//! the unit tests' `fakes` above all).
//!
//! - [`model`]: the leaf, importing nothing of the crate: a deployment's domain values
//!   (outcome, journal step, phases, the result events' source and detail-type); the
//!   references [`model::reference`] ([`event::Digest`], [`event::ImageRef`], `Repository`,
//!   `Tag`, re-exported by `event`); every `ecr-deployd.*` label type and its parsing
//!   ([`model::labels`]: scope, provenance, opt-in, image, source, health timeout,
//!   `depends-on`, policy, gate and hook labels); the shared
//!   [`model::error::RemoteError`]; what S3 says an object is ([`model::object`]); the host
//!   name ([`model::host`]); a sweep's rows and the deploy stage's answer for one target
//!   ([`model::sweep`]).
//! - [`config`]: TOML + `ECR_DEPLOYD_*` overrides → validated [`config::Settings`].
//! - [`event`]: queue bodies (EventBridge, SNS-wrapped) → [`event::Classified`] (pushes,
//!   and re-check hints from signature pushes and scan events); the domain
//!   newtypes re-exported from [`model::reference`]; registry hosts (which account and
//!   region a reference names, the credentials' [`event::Home`], [`event::Mirrors`]); the
//!   push notifications of registries of the site's own ([`event::registry`]: Docker
//!   Distribution envelopes, Harbor webhooks). Pure.
//! - [`archive`]: S3 archives as an image source (SPEC §13): the checks of a load over
//!   [`model::object::ObjectFacts`] (pure), the bytes' way to the Engine ([`archive::body`]: counted,
//!   hashed, decompressed) and the tar rewritten without the archive's names
//!   ([`archive::strip`]), the resolver that loads a new object into the Engine
//!   ([`archive::resolve`]), and [`archive::sources`], which sends tags to ECR and `s3://`
//!   keys to S3 and tags of registries of the site's own to them, behind one
//!   [`ports::Registry`].
//! - [`image`]: when a container runs the desired image — any of its digests, or an
//!   index's manifest for this host's platform. Pure.
//! - [`ports`]: the seams, over model values and the facts of the pure layers below
//!   (`event`, `image`, `gate`, `fleet`) — [`ports::Queue`], [`ports::Registry`],
//!   [`ports::Deployer`] (`ports/mod.rs`); [`ports::Sweeper`], the deploy stage as the sweep
//!   asks it (`sweeper.rs`), over [`ports::Target`] (`target.rs`); [`ports::Archives`],
//!   [`ports::LedgerObjects`] (`objects.rs`); [`ports::Credentials`], [`ports::Supply`] (`supply.rs`);
//!   [`ports::Runtime`] (`runtime.rs`); [`ports::EventBus`], where deployment results are
//!   put (`bus.rs`).
//! - [`request`]: the reconcile request and the in-flight messages, shared by intake and
//!   reconcile (neither imports the other).
//! - [`intake`]: long-poll receive loop, visibility heartbeat, in-flight bookkeeping; the
//!   push listener of registries of the site's own ([`intake::listen`]: `POST /events`,
//!   bearer token, size and rate limits, TLS) and the local queue its pushes wait in
//!   ([`intake::local`], SPEC §18).
//! - [`reconcile`]: debounce/dedup per tag ([`reconcile::coalesce`]: a new digest or object
//!   version skips the window), resolve against ECR,
//!   hand off to the deployer, delete messages only after the work is recorded; the sweep and
//!   the sweeps at window openings, over [`ports::Sweeper`].
//! - [`deploy`]: the deploy stage, a folder per job: `sequence/` (one sequence for a
//!   container swap, create before stop, or a Swarm service update; health gate, rollback,
//!   recovery, lifecycle hooks, reports), `gates/` (update-control, fleet waves, supply
//!   chain; their verdicts as values), `neighbourhood/` (dependents swapped as a group,
//!   `depends-on` order) and `operator/` (`rollback`, `approve`) — one file each (see its
//!   module doc); the folders import only downwards (`sequence` < `gates`, `neighbourhood`
//!   < `operator`; `tests/layering.rs`), while their `impl Executor` blocks, one type split
//!   by file, still call each other's methods.
//! - [`gate`]: the supply-chain gates' verdicts over fetched facts: signatures (cosign's
//!   `.sig` tag and its docker-reference, cosign 3's Sigstore bundles, Notary Project
//!   signatures and AWS Signer's revocation answers; X.509 paths and names; the trust of
//!   `[verify]`) and ECR scan findings. Pure.
//! - [`fleet`]: fleet waves: promotions and halts from earlier waves' results (SPEC §14).
//!   Pure.
//! - [`control`]: update control: policies and maintenance windows (pure), the state-store
//!   lease, the daemon's control socket.
//! - [`store`]: SQLite state: history, deploy journal, blocked digests, archive loads, ledger
//!   writes; schema versions; retention (`[state] keep_days`, a container's last 20 kept).
//! - [`adapters`]: SQS, ECR, S3 (AWS SDK; archives and the fleet ledger), the gates' facts
//!   (`adapters::supply`; `adapters::referrers`: a digest's OCI referrers through the API or
//!   the tag schema; `adapters::signer`: AWS Signer's revocation status; `adapters::registry`:
//!   the registry HTTP client, bearer tokens, and tags of `[[registries]]`), Docker (`adapters::docker`: one Engine client, bollard
//!   + raw JSON, every call timed) — the only code that sees SDK types.
//! - [`ledger`]: the fleet ledger (SPEC §17): one S3 object per host with what it runs and
//!   what ran before; the agent's background writer, and the fleet read back (`fleet`,
//!   `fleet in-use`, the HTML page).
//! - [`notify`]: webhooks, e-mail (SMTP) and deployment results on the bus (behind
//!   [`ports::EventBus`]; `adapters::eventbridge` is EventBridge), off the deploy path.
//! - [`systemd`]: READY / WATCHDOG / STOPPING for `Type=notify`.
//! - [`metrics`], [`http`]: Prometheus metrics, `/metrics`, `/healthz`, `/readyz`; the
//!   accept loop and connection bounds of both HTTP servers ([`http::bounded`]).
//! - [`wiring`]: the stages on the real adapters (the deploy stage's settings, the real sources
//!   and executor, the results bus), built the same way for the daemon and the commands.
//! - [`app`]: the agent's stages over the ports; `app/daemon.rs` is `run` on the real
//!   adapters: start-up, recovery first, listeners, signals and shutdown.
//! - [`commands`]: the operator commands; the acting ones (`sweep`, `rollback`, `approve`,
//!   `pause`, `resume`) run in the daemon through its socket, or in-process under the lease.
//!
//! `fakes` (unit tests only) is the test support every stage's tests share: the in-memory
//! Engine, fixed credentials, executor builders, a one-digest registry.

// The daemon's future nests every stage's (and each deploy step's span): deeper than the
// default limit of 128 when its layout is computed.
#![recursion_limit = "256"]

pub mod adapters;
pub mod app;
pub mod archive;
pub mod commands;
pub mod config;
pub mod control;
pub mod deploy;
pub mod event;
#[cfg(test)]
pub(crate) mod fakes;
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
pub mod wiring;
