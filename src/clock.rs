//! The only place that reads the wall clock, so that everything else takes time as input.

use jiff::Timestamp;

#[expect(clippy::disallowed_methods, reason = "this is the one clock")]
pub fn now() -> Timestamp {
    Timestamp::now()
}
