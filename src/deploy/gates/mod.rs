//! The gates in front of the sequence, asked in this order for an automatic deploy:
//!
//! - [`hold`]: the update-control gate: pauses and policies (SPEC §10).
//! - [`waves`]: the fleet-wave gate: promoted by the previous wave? baking? halted?
//!   (SPEC §14).
//! - [`supply`]: the supply-chain gates: signature and scan (SPEC §11), before the pull.
//!
//! [`verdicts`] holds what they say, as values the sequence reads.

pub mod hold;
pub mod supply;
pub mod verdicts;
pub mod waves;
