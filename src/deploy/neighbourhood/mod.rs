//! A container's neighbourhood: what else a swap touches or must respect.
//!
//! - [`dependents`]: the neighbourhood's say before a swap: dependents that did not opt in,
//!   `depends-on` cycles and unusable hook labels refuse it.
//! - [`group`]: a container and its opted-in dependents swapped and rolled back as one.
//! - [`order`]: `depends-on` restart order after a swap (pure) and the restarts.

pub mod dependents;
pub mod group;
pub mod order;
