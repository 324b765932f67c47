//! The bus deployment results are put on (EventBridge; later fleet waves are fed by it, SPEC
//! §14). Object-safe: the notifier holds one behind `dyn`.

use super::RemoteError;

/// An event bus that events are put on, one at a time.
pub trait EventBus: Send + Sync + 'static {
    /// The bus's name, for logs.
    fn name(&self) -> &str;

    /// Puts one event; a rejected entry is an error naming why.
    fn put<'a>(
        &'a self,
        source: &'a str,
        detail_type: &'a str,
        detail: String,
    ) -> futures::future::BoxFuture<'a, Result<(), RemoteError>>;
}
