//! Test support (unit tests only): in-memory stand-ins behind the ports and builders over
//! them, shared by every stage's tests. `runtime` is the in-memory Engine, `deploy` the
//! executor over it (fixed credentials, the tests' settings, a first deploy, a one-digest
//! registry), `pipeline` the queue, registry and deployer of the agent's tests. Integration tests never use these: they run against the real services.

mod deploy;
mod pipeline;
mod runtime;

pub use deploy::*;
pub use pipeline::*;
pub use runtime::*;
