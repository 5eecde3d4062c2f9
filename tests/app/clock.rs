//! A wall clock that goes backwards: the log keeps its time order, records the jump once
//! per occurrence, and `audit verify` warns about it.

use jiff::SignedDuration;
use keeptrack::{
    clock::Clock,
    domain::{audit::Action, record::RecordKind},
    ledger::{Command, Context, Ledger},
};
use serde_json::json;

use crate::both;
use crate::helpers::{TestApp, fields, run_cli};

fn create(name: &str) -> Command {
    Command::Create {
        kind: RecordKind::Client,
        fields: fields(json!({ "last_name": name })),
    }
}

async fn clock_entries(app: &TestApp) -> Vec<keeptrack::domain::audit::Entry> {
    let mut all = app.latest(1000).await;
    all.reverse();
    all.into_iter()
        .filter(|e| e.act == Action::ClockBackwards)
        .collect()
}

both!(a_clock_set_back_is_recorded_once_per_jump, |app| {
    let clock = Clock::default();
    let ledger = Ledger::start_with_clock(app.db.clone(), None, clock.clone())
        .await
        .unwrap();
    let ctx = || Context::user(app.staff);
    ledger.submit(ctx(), create("Before")).await.unwrap();
    let before = app.latest(1).await[0].ts;

    // Someone sets the clock back an hour: one entry says so, however many writes follow.
    clock.shift(SignedDuration::from_hours(-1));
    for n in 0..3 {
        ledger
            .submit(ctx(), create(&format!("Behind{n}")))
            .await
            .unwrap();
    }
    let clocks = clock_entries(&app).await;
    assert_eq!(clocks.len(), 1, "{clocks:?}");
    let c = &clocks[0];
    assert_eq!(c.actor.initials, "SPSA");
    assert_eq!(c.diff[0].field, "clock");
    let said = |v: &serde_json::Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let behind_by = said(&c.diff[0].old).duration_since(said(&c.diff[0].new));
    assert!((3540..=3600).contains(&behind_by.as_secs()), "{c:?}");
    // Entries keep the log's time: none is timed before the one before it.
    let mut log = app.latest(1000).await;
    log.reverse();
    assert!(log.windows(2).all(|w| w[0].ts <= w[1].ts), "{log:?}");
    assert!(log.last().unwrap().ts >= before);

    // The clock is put right, then set back again: that is a second occurrence.
    clock.shift(SignedDuration::from_hours(1));
    ledger.submit(ctx(), create("Right")).await.unwrap();
    assert_eq!(clock_entries(&app).await.len(), 1);
    clock.shift(SignedDuration::from_hours(-2));
    ledger.submit(ctx(), create("Behind again")).await.unwrap();
    assert_eq!(clock_entries(&app).await.len(), 2);

    // A writer that starts on this log with its clock behind says so at once.
    let slow = Clock::default();
    slow.shift(SignedDuration::from_hours(-3));
    let _other = Ledger::start_with_clock(app.db.clone(), None, slow)
        .await
        .unwrap();
    assert_eq!(clock_entries(&app).await.len(), 3);

    // verify finds the log intact but warns (exit 3), naming each jump.
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(dir.path(), &app.url, &["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("OK: every entry"), "{text}");
    assert_eq!(
        text.matches("warning: CLOCK: at entry").count(),
        3,
        "{text}"
    );
});

both!(
    small_differences_between_clocks_are_not_occurrences,
    |app| {
        // Two servers on one database have clocks a little apart: the log's time stays in
        // order, but that is not worth an entry.
        let clock = Clock::default();
        clock.shift(SignedDuration::from_millis(-300));
        let ledger = Ledger::start_with_clock(app.db.clone(), None, clock)
            .await
            .unwrap();
        for n in 0..3 {
            app.client(&format!("Fast{n}")).await;
            ledger
                .submit(Context::user(app.staff), create(&format!("Slow{n}")))
                .await
                .unwrap();
        }
        assert!(clock_entries(&app).await.is_empty());
        let mut log = app.latest(1000).await;
        log.reverse();
        assert!(log.windows(2).all(|w| w[0].ts <= w[1].ts));
    }
);
