//! Update control (SPEC §10): what may be deployed when, and operator commands carried out by
//! the running daemon.
//!
//! - [`policy`]: policies (`auto`, `window`, `manual`, `monitor`), maintenance windows (cron
//!   opening + duration, in a time zone) and the verdict for one container now. Pure.
//! - [`lease`]: the exclusive lease on the state store (a lock file beside it): the daemon
//!   holds it for its life; a command without a daemon takes it for its own run.
//! - [`socket`]: the daemon's local control socket (newline-delimited JSON, callers checked by
//!   SO_PEERCRED and SO_PEERGROUPS, a read timeout per request) and its client.

pub mod lease;
pub mod policy;
pub mod socket;
