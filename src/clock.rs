//! The only place that reads the wall clock, so that everything else takes time as input.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use jiff::{SignedDuration, Timestamp};

#[expect(clippy::disallowed_methods, reason = "this is the one clock")]
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// The ledger writer's clock: the wall clock, shifted by an offset that is zero unless a
/// test moves it. The offset is the hook for testing a clock that jumps (set back an hour
/// by a person, a bad NTP server or a restored VM snapshot) without touching the host's.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_micros: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> Timestamp {
        let wall = now();
        let offset = SignedDuration::from_micros(self.offset_micros.load(Ordering::Relaxed));
        wall.checked_add(offset).unwrap_or(wall)
    }

    /// Moves this clock (and every clone of it) by `by` from where it reads now.
    pub fn shift(&self, by: SignedDuration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(0);
        self.offset_micros.fetch_add(micros, Ordering::Relaxed);
    }
}
