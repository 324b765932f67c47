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
