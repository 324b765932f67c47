//! What the gates say, as values: the update-control and fleet-wave gates' [`Gate`] and
//! [`Held`], the supply-chain gates' [`Checked`]. Pure: the sequence and the sweep's answers
//! read them without importing the gates that decide them (`tests/layering.rs`).

/// Why a deploy waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    /// `ecr-deployd pause`; the detail is its reason (empty without one), and names
    /// `pause --all` when that is the pause.
    Paused(String),
    /// Policy `window` outside its window, or `manual`; the detail says until when.
    Pending(String),
    /// Policy `monitor`: never deployed.
    Monitor,
    /// Fleet wave N > 1: not (yet) promoted by wave N − 1, or still baking (SPEC §14).
    Waiting(String),
    /// Fleet wave N > 1: an earlier wave rolled the digest back or rejected it.
    Halted(String),
}

impl Held {
    /// `paused`, `pending`, `monitor`, `waiting` or `halted`, as status and the store say it.
    pub fn state(&self) -> &'static str {
        match self {
            Held::Paused(_) => "paused",
            Held::Pending(_) => "pending",
            Held::Monitor => "monitor",
            Held::Waiting(_) => "waiting",
            Held::Halted(_) => "halted",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Held::Paused(d) | Held::Pending(d) | Held::Waiting(d) | Held::Halted(d) => d.clone(),
            Held::Monitor => "update available, never deployed".into(),
        }
    }
}

/// What the gate says about one deploy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    Go,
    Held(Held),
    /// The labels name no valid policy or window: refused, and why.
    Invalid(String),
}

/// What the gates say, with the gate that decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checked {
    /// No gate applies, or every one accepted (the details say why).
    Go(Vec<String>),
    Pending(String),
    Rejected {
        gate: &'static str,
        reason: String,
    },
    /// The facts could not be read (permission, a bad answer): nothing deployed, nothing
    /// recorded; the next look tries again.
    Unknown(String),
}
