//! Policies and maintenance windows: whether a container may be deployed now. Pure: every
//! question takes the time it is asked at, so tests run on a virtual clock.
//!
//! Cron expressions are parsed and searched by `croner` (5 fields, OCPS / Vixie-cron rules,
//! searches in real time across daylight-saving changes) over `jiff`'s zoned times (IANA time
//! zones from the host's tz database).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

pub use crate::model::labels::{LABEL_POLICY, LABEL_WINDOW, PolicyLabels};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};

/// A window's opening is searched for this far ahead; one that does not open within it
/// "never opens" (e.g. `0 0 30 2 *`).
const HORIZON_DAYS: i64 = 366 * 5;

/// When a container may be deployed (SPEC §10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// As soon as ECR moves the tag.
    Auto,
    /// Only inside the container's maintenance window.
    Window,
    /// Only on `approve`.
    Manual,
    /// Never: one "update available" notice per new digest.
    Monitor,
}

impl Policy {
    pub const ALL: [Policy; 4] = [
        Policy::Auto,
        Policy::Window,
        Policy::Manual,
        Policy::Monitor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Auto => "auto",
            Policy::Window => "window",
            Policy::Manual => "manual",
            Policy::Monitor => "monitor",
        }
    }
}

impl FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Policy::ALL
            .into_iter()
            .find(|p| p.as_str() == s.trim())
            .ok_or_else(|| format!("{s:?} is not one of auto, window, manual, monitor"))
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One maintenance window: a cron expression for its opening and how long it stays open.
#[derive(Clone, Debug)]
pub struct Window {
    pub schedule: String,
    cron: Cron,
    pub duration: SignedDuration,
}

impl Window {
    /// Parses a 5-field cron `schedule` (minute hour day-of-month month day-of-week).
    pub fn new(schedule: &str, duration_minutes: u64) -> Result<Self, String> {
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(schedule)
            .map_err(|e| format!("{schedule:?} is not a 5-field cron expression: {e}"))?;
        if duration_minutes == 0 || duration_minutes > 7 * 24 * 60 {
            return Err(format!(
                "duration_minutes {duration_minutes} is out of range 1..=10080"
            ));
        }
        Ok(Self {
            schedule: schedule.to_owned(),
            cron,
            duration: SignedDuration::from_mins(duration_minutes as i64),
        })
    }

    /// The first opening strictly after `after`, within the search horizon.
    fn next_opening(&self, after: &Zoned) -> Option<Zoned> {
        let found = self.cron.find_next_occurrence(after, false).ok()?;
        let limit = after.timestamp() + SignedDuration::from_hours(24 * HORIZON_DAYS);
        (found.timestamp() <= limit).then_some(found)
    }

    /// The latest opening at or before `at`, if one is recent enough to matter.
    fn last_opening(&self, at: &Zoned) -> Option<Zoned> {
        let found = self.cron.find_previous_occurrence(at, true).ok()?;
        (found.timestamp() + self.duration > at.timestamp()).then_some(found)
    }

    /// Open (and until when) or closed (and when it opens next) at `now` in `tz`.
    pub fn state(&self, now: Timestamp, tz: &TimeZone) -> WindowState {
        let at = now.to_zoned(tz.clone());
        let Some(mut opened) = self.last_opening(&at) else {
            return WindowState::Closed {
                opens: self.next_opening(&at).map(|z| z.timestamp()),
            };
        };
        // Openings while open extend the window (e.g. every hour, open for 90 minutes).
        let mut closes = opened.timestamp() + self.duration;
        for _ in 0..1000 {
            match self.next_opening(&opened) {
                Some(n) if n.timestamp() < closes => {
                    closes = closes.max(n.timestamp() + self.duration);
                    opened = n;
                }
                _ => break,
            }
        }
        WindowState::Open { closes }
    }
}

/// Where a window stands at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowState {
    Open {
        closes: Timestamp,
    },
    /// `opens` is `None` when it never opens within the search horizon.
    Closed {
        opens: Option<Timestamp>,
    },
}

/// `[policy]`, compiled: what every container's verdict is computed from.
#[derive(Clone, Debug)]
pub struct Policies {
    pub default: Policy,
    pub tz: TimeZone,
    /// The window a `window` container without `ecr-deployd.window` uses.
    pub default_window: Option<String>,
    pub windows: BTreeMap<String, Window>,
}

impl Default for Policies {
    fn default() -> Self {
        Self {
            default: Policy::Auto,
            tz: TimeZone::UTC,
            default_window: None,
            windows: BTreeMap::new(),
        }
    }
}

/// What a container's policy says about deploying a new digest now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyVerdict {
    Deploy,
    /// Held until a window opens or an operator approves; `until` is the opening.
    Pending {
        reason: String,
        until: Option<Timestamp>,
    },
    /// Never deployed; the operator is told an update is available.
    Monitor,
    /// The labels name no valid policy or window: nothing is deployed, and why.
    Invalid(String),
}

impl Policies {
    /// Looks a time zone up by its IANA name (the host's tz database).
    pub fn zone(name: &str) -> Result<TimeZone, String> {
        TimeZone::get(name).map_err(|e| {
            format!("{name:?} is not a time zone this host knows (an IANA name such as Europe/London): {e}")
        })
    }

    /// The policy and window a container's labels choose, checked.
    pub fn resolve<'a>(
        &'a self,
        labels: &'a PolicyLabels,
    ) -> Result<(Policy, Option<&'a str>), String> {
        let policy = match &labels.policy {
            Some(p) => p
                .parse()
                .map_err(|e| format!("label {LABEL_POLICY}: {e}"))?,
            None => self.default,
        };
        let window = labels
            .window
            .as_deref()
            .filter(|w| !w.is_empty())
            .or(self.default_window.as_deref());
        if let Some(w) = window
            && policy == Policy::Window
            && !self.windows.contains_key(w)
        {
            return Err(format!(
                "window {w:?} is not configured (known: {})",
                self.names()
            ));
        }
        if policy == Policy::Window && window.is_none() {
            return Err(format!(
                "policy window needs label {LABEL_WINDOW}=NAME or [policy] window"
            ));
        }
        Ok((policy, window))
    }

    fn names(&self) -> String {
        if self.windows.is_empty() {
            return "none".into();
        }
        self.windows.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// The verdict for a container with `labels` at `now`.
    pub fn verdict(&self, labels: &PolicyLabels, now: Timestamp) -> PolicyVerdict {
        let (policy, window) = match self.resolve(labels) {
            Ok(r) => r,
            Err(e) => return PolicyVerdict::Invalid(e),
        };
        match policy {
            Policy::Auto => PolicyVerdict::Deploy,
            Policy::Monitor => PolicyVerdict::Monitor,
            Policy::Manual => PolicyVerdict::Pending {
                reason: "manual: waits for `ecr-deployd approve`".into(),
                until: None,
            },
            Policy::Window => {
                let name = window.unwrap_or_default();
                match self.windows[name].state(now, &self.tz) {
                    WindowState::Open { .. } => PolicyVerdict::Deploy,
                    WindowState::Closed { opens } => PolicyVerdict::Pending {
                        reason: match opens {
                            Some(t) => format!("window {name} opens at {}", self.show(t)),
                            None => format!("window {name} never opens"),
                        },
                        until: opens,
                    },
                }
            }
        }
    }

    /// The window a container waits for, if its policy is `window` (for the opening sweep).
    pub fn window_of<'a>(&'a self, labels: &'a PolicyLabels) -> Option<&'a str> {
        match self.resolve(labels) {
            Ok((Policy::Window, w)) => w,
            _ => None,
        }
    }

    /// The next opening of any window after `now`, and the windows opening then.
    pub fn next_openings(&self, now: Timestamp) -> Option<(Timestamp, Vec<String>)> {
        let at = now.to_zoned(self.tz.clone());
        let mut best: Option<(Timestamp, Vec<String>)> = None;
        for (name, w) in &self.windows {
            let Some(t) = w.next_opening(&at).map(|z| z.timestamp()) else {
                continue;
            };
            match &mut best {
                Some((bt, names)) if *bt == t => names.push(name.clone()),
                Some((bt, _)) if *bt < t => {}
                _ => best = Some((t, vec![name.clone()])),
            }
        }
        best
    }

    /// Windows that do not open within the search horizon from `now`.
    pub fn never_opening(&self, now: Timestamp) -> Vec<&str> {
        let at = now.to_zoned(self.tz.clone());
        self.windows
            .iter()
            .filter(|(_, w)| w.next_opening(&at).is_none())
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// A time as operators read it: in the policy time zone, with its offset.
    pub fn show(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    }
}

#[cfg(test)]
mod tests;
