//! Deploy stage: [`executor::Executor`] applies desired digests to managed containers.

pub mod executor;
