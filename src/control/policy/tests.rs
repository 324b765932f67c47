//! Windows and verdicts on a virtual clock: every case names the instant it is asked at.

use super::*;

fn utc(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn policies(tz: &str, windows: &[(&str, &str, u64)]) -> Policies {
    Policies {
        default: Policy::Window,
        tz: Policies::zone(tz).unwrap(),
        default_window: windows.first().map(|w| w.0.to_owned()),
        windows: windows
            .iter()
            .map(|(n, s, d)| (n.to_string(), Window::new(s, *d).unwrap()))
            .collect(),
    }
}

fn state(p: &Policies, name: &str, at: &str) -> WindowState {
    p.windows[name].state(utc(at), &p.tz)
}

#[test]
fn a_window_is_open_from_its_opening_for_its_duration_and_then_names_the_next_opening() {
    let p = policies("UTC", &[("nightly", "0 2 * * *", 120)]);
    let open = WindowState::Open {
        closes: utc("2026-12-03T04:00:00Z"),
    };
    assert_eq!(
        state(&p, "nightly", "2026-12-03T02:00:00Z"),
        open,
        "opening instant"
    );
    assert_eq!(state(&p, "nightly", "2026-12-03T03:59:59Z"), open);
    let closed = WindowState::Closed {
        opens: Some(utc("2026-12-04T02:00:00Z")),
    };
    assert_eq!(
        state(&p, "nightly", "2026-12-03T04:00:00Z"),
        closed,
        "closing instant"
    );
    assert_eq!(
        state(&p, "nightly", "2026-12-03T01:59:59Z"),
        WindowState::Closed {
            opens: Some(utc("2026-12-03T02:00:00Z"))
        }
    );
}

#[test]
fn a_window_that_spans_midnight_is_open_on_both_sides_of_it() {
    let p = policies("UTC", &[("late", "0 23 * * *", 120)]);
    let open = WindowState::Open {
        closes: utc("2026-12-04T01:00:00Z"),
    };
    assert_eq!(state(&p, "late", "2026-12-03T23:30:00Z"), open);
    assert_eq!(
        state(&p, "late", "2026-12-04T00:30:00Z"),
        open,
        "after midnight"
    );
    assert!(matches!(
        state(&p, "late", "2026-12-04T01:00:00Z"),
        WindowState::Closed { .. }
    ));
}

#[test]
fn weekday_windows_spanning_midnight_stay_open_into_the_next_day() {
    // Fridays 22:00 for 4 hours: open on Saturday 01:00, closed on Saturday 22:00.
    let p = policies("UTC", &[("fri", "0 22 * * 5", 240)]);
    // 2026-12-04 is a Friday.
    assert!(matches!(
        state(&p, "fri", "2026-12-05T01:00:00Z"),
        WindowState::Open { .. }
    ));
    assert_eq!(
        state(&p, "fri", "2026-12-05T22:00:00Z"),
        WindowState::Closed {
            opens: Some(utc("2026-12-11T22:00:00Z"))
        }
    );
}

#[test]
fn london_windows_follow_the_wall_clock_across_both_daylight_saving_changes() {
    let p = policies("Europe/London", &[("nightly", "0 2 * * *", 60)]);
    // Winter: 02:00 GMT = 02:00 UTC.
    assert!(matches!(
        state(&p, "nightly", "2027-01-10T02:30:00Z"),
        WindowState::Open { .. }
    ));
    // Summer: 02:00 BST = 01:00 UTC.
    assert_eq!(
        state(&p, "nightly", "2027-06-10T01:30:00Z"),
        WindowState::Open {
            closes: utc("2027-06-10T02:00:00Z")
        }
    );
    assert!(matches!(
        state(&p, "nightly", "2027-06-10T02:30:00Z"),
        WindowState::Closed { .. }
    ));
}

#[test]
fn a_london_opening_in_the_spring_forward_gap_opens_right_after_the_gap() {
    // 2027-03-28: 01:00 GMT jumps to 02:00 BST; 01:30 does not exist that day.
    let p = policies("Europe/London", &[("gap", "30 1 * * *", 60)]);
    let opens = match state(&p, "gap", "2027-03-27T12:00:00Z") {
        WindowState::Closed { opens } => opens,
        s => panic!("{s:?}"),
    };
    // The first minute after the gap: 02:00 BST = 01:00 UTC.
    assert_eq!(opens, Some(utc("2027-03-28T01:00:00Z")));
    assert!(matches!(
        state(&p, "gap", "2027-03-28T01:30:00Z"),
        WindowState::Open { .. }
    ));
    // The day after, 01:30 BST = 00:30 UTC again.
    assert_eq!(
        state(&p, "gap", "2027-03-28T12:00:00Z"),
        WindowState::Closed {
            opens: Some(utc("2027-03-29T00:30:00Z"))
        }
    );
}

#[test]
fn a_london_opening_in_the_repeated_fall_back_hour_opens_once() {
    // 2027-10-31: 02:00 BST falls back to 01:00 GMT; 01:30 happens twice.
    let p = policies("Europe/London", &[("twice", "30 1 * * *", 30)]);
    // First pass: 01:30 BST = 00:30 UTC.
    assert_eq!(
        state(&p, "twice", "2027-10-31T00:40:00Z"),
        WindowState::Open {
            closes: utc("2027-10-31T01:00:00Z")
        }
    );
    // Second pass of 01:30 (GMT = 01:30 UTC): not a second opening.
    assert_eq!(
        state(&p, "twice", "2027-10-31T01:40:00Z"),
        WindowState::Closed {
            opens: Some(utc("2027-11-01T01:30:00Z"))
        }
    );
}

#[test]
fn an_opening_while_open_extends_the_window() {
    let p = policies("UTC", &[("two", "0 10,11 * * *", 90)]);
    assert_eq!(
        state(&p, "two", "2026-12-03T10:15:00Z"),
        WindowState::Open {
            closes: utc("2026-12-03T12:30:00Z")
        }
    );
}

#[test]
fn a_window_that_never_opens_is_found_and_said() {
    let p = policies(
        "UTC",
        &[("never", "0 0 30 2 *", 60), ("ok", "0 2 * * *", 60)],
    );
    let now = utc("2026-12-03T00:00:00Z");
    assert_eq!(p.never_opening(now), vec!["never"]);
    let labels = PolicyLabels {
        policy: None,
        window: Some("never".into()),
    };
    match p.verdict(&labels, now) {
        PolicyVerdict::Pending { reason, until } => {
            assert_eq!(until, None);
            assert!(reason.contains("never opens"), "{reason}");
        }
        v => panic!("{v:?}"),
    }
}

#[test]
fn the_next_opening_of_all_windows_names_every_window_opening_then() {
    let p = policies(
        "UTC",
        &[
            ("a", "0 2 * * *", 60),
            ("b", "0 2 * * *", 30),
            ("c", "0 3 * * *", 60),
        ],
    );
    let (at, names) = p.next_openings(utc("2026-12-03T01:00:00Z")).unwrap();
    assert_eq!(at, utc("2026-12-03T02:00:00Z"));
    assert_eq!(names, vec!["a", "b"]);
    let (at, names) = p.next_openings(utc("2026-12-03T02:00:00Z")).unwrap();
    assert_eq!(
        (at, names),
        (utc("2026-12-03T03:00:00Z"), vec!["c".to_owned()])
    );
}

#[test]
fn verdicts_per_policy_and_the_errors_of_bad_labels() {
    let mut p = policies("UTC", &[("nightly", "0 2 * * *", 60)]);
    p.default = Policy::Auto;
    let at = utc("2026-12-03T12:00:00Z");
    let labels = |policy: Option<&str>, window: Option<&str>| PolicyLabels {
        policy: policy.map(str::to_owned),
        window: window.map(str::to_owned),
    };
    assert_eq!(
        p.verdict(&labels(None, None), at),
        PolicyVerdict::Deploy,
        "default auto"
    );
    assert_eq!(
        p.verdict(&labels(Some("monitor"), None), at),
        PolicyVerdict::Monitor
    );
    assert!(matches!(
        p.verdict(&labels(Some("manual"), None), at),
        PolicyVerdict::Pending { until: None, .. }
    ));
    match p.verdict(&labels(Some("window"), None), at) {
        PolicyVerdict::Pending { reason, until } => {
            assert_eq!(until, Some(utc("2026-12-04T02:00:00Z")));
            assert_eq!(reason, "window nightly opens at 2026-12-04T02:00:00+00:00");
        }
        v => panic!("{v:?}"),
    }
    assert_eq!(
        p.verdict(&labels(Some("window"), None), utc("2026-12-04T02:10:00Z")),
        PolicyVerdict::Deploy
    );
    match p.verdict(&labels(Some("sometimes"), None), at) {
        PolicyVerdict::Invalid(e) => assert!(
            e.contains("ecr-deployd.policy") && e.contains("sometimes"),
            "{e}"
        ),
        v => panic!("{v:?}"),
    }
    match p.verdict(&labels(Some("window"), Some("weekly")), at) {
        PolicyVerdict::Invalid(e) => assert!(
            e.contains("\"weekly\" is not configured (known: nightly)"),
            "{e}"
        ),
        v => panic!("{v:?}"),
    }
    p.default_window = None;
    assert!(matches!(
        p.verdict(&labels(Some("window"), None), at),
        PolicyVerdict::Invalid(_)
    ));
}

#[test]
fn bad_schedules_durations_and_zones_are_refused_with_the_reason() {
    let e = Window::new("0 2 * *", 60).unwrap_err();
    assert!(e.contains("5-field"), "{e}");
    assert!(
        Window::new("0 0 2 * * *", 60).is_err(),
        "6 fields (seconds) refused"
    );
    assert!(Window::new("61 2 * * *", 60).is_err());
    assert!(
        Window::new("0 2 * * *", 0)
            .unwrap_err()
            .contains("duration_minutes")
    );
    let e = Policies::zone("Mars/Olympus").unwrap_err();
    assert!(e.contains("Mars/Olympus"), "{e}");
    assert_eq!(
        policies("Europe/London", &[]).show(utc("2027-06-10T01:00:00Z")),
        "2027-06-10T02:00:00+01:00"
    );
}
