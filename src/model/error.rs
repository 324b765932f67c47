//! The shared shape of a failed call to a remote service: the operation, the message, and
//! whether it is worth retrying (with its metric label).

/// A failed call to a remote service, with the operation named for the operator.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct RemoteError {
    pub operation: &'static str,
    pub message: String,
    /// Worth retrying (network, throttling, 5xx) rather than a refusal that will not change.
    pub transient: bool,
}

impl RemoteError {
    /// A short label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        if self.transient {
            "transient"
        } else {
            "permanent"
        }
    }
}

/// The state store did not record something the agent was told (a gate hint, a fleet
/// result) or could not read what falls due: the message that carried it stays queued, the
/// look is tried again. Never transient in itself: the store either writes or it does not.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} not recorded: {reason}")]
pub struct RecordError {
    /// What was to be recorded or read, for the operator ("fleet result", "gate hint").
    pub what: &'static str,
    pub reason: String,
}

impl RecordError {
    pub fn new(what: &'static str, reason: impl std::fmt::Display) -> Self {
        Self {
            what,
            reason: reason.to_string(),
        }
    }
}
