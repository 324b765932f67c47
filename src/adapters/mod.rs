//! The real implementations of the ports. SDK types stay in here.

pub mod aws;
pub mod docker;
pub mod ecr;
pub mod eventbridge;
pub mod ledger;
pub mod referrers;
pub mod registry;
pub mod s3;
pub mod signer;
pub mod sqs;
pub mod supply;
