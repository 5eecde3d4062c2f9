//! The sign-in lockout: 5 failures in 15 minutes for an account or from an address make
//! it wait until the oldest of those 5 is 15 minutes old.

/// Failures that lock an account or an address.
pub const MAX_FAILURES: i64 = 5;
/// The window they are counted in, and how long the lock lasts.
pub const WINDOW_MICROS: i64 = 15 * 60 * 1_000_000;

/// Seconds to wait, given the newest failures (newest first, at most `MAX_FAILURES`)
/// within the window, or `None` when not locked.
pub fn retry_after(now: i64, newest_first: &[i64]) -> Option<i64> {
    if (newest_first.len() as i64) < MAX_FAILURES {
        return None;
    }
    let oldest = newest_first[MAX_FAILURES as usize - 1];
    let until = oldest + WINDOW_MICROS;
    (until > now).then(|| ((until - now + 999_999) / 1_000_000).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60 * 1_000_000;

    #[test]
    fn five_failures_lock_until_the_oldest_ages_out() {
        let now = 100 * MIN;
        let four = [now - MIN, now - 2 * MIN, now - 3 * MIN, now - 4 * MIN];
        assert_eq!(retry_after(now, &four), None);
        let five = [
            now - MIN,
            now - 2 * MIN,
            now - 3 * MIN,
            now - 4 * MIN,
            now - 5 * MIN,
        ];
        assert_eq!(retry_after(now, &five), Some(10 * 60));
        assert_eq!(retry_after(now + 10 * MIN, &five), None);
        assert_eq!(retry_after(now + 10 * MIN - 1, &five), Some(1));
    }
}
