//! Test support (unit tests only): in-memory stand-ins behind the ports and builders over
//! them, shared by every stage's tests. `runtime` is the in-memory Engine, `deploy` the
//! executor over it (fixed credentials, the tests' settings, a first deploy, a one-digest
//! registry), `pipeline` the queue, registry and deployer of the agent's tests. Integration tests never use these: they run against the real services.

/// The bytes of `tests/fixtures/signatures/NAME`: what the real cosign and notation made
/// (`make.sh` there), for the verifiers' and the supply gate's tests.
macro_rules! signature_fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/signatures/",
            $name
        ))
    };
}
pub(crate) use signature_fixture;

mod deploy;
mod pipeline;
mod runtime;

pub use deploy::*;
pub use pipeline::*;
pub use runtime::*;
