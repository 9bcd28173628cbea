//! A log line that may repeat on every request (a failed authentication, a
//! write error) is written at most once per interval, with the number of
//! repeats it stands for: an attacker or a full disk must not flood stderr.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Lets one event through per interval and counts the ones held back.
#[derive(Debug)]
pub struct RateLimit {
    interval_ms: u64,
    /// Milliseconds since `epoch()` at which the next line may be written.
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimit {
    /// At most one line per `interval`.
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval_ms: interval.as_millis() as u64,
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be written now, `n` being the events held
    /// back since the last one; `None` (and counted) otherwise.
    pub fn check(&self) -> Option<u64> {
        let now = epoch().elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + self.interval_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counting_the_rest() {
        let limit = RateLimit::new(Duration::from_secs(3600));
        assert_eq!(limit.check(), Some(0));
        assert_eq!(limit.check(), None);
        assert_eq!(limit.check(), None);
        let now = RateLimit::new(Duration::ZERO);
        assert_eq!(now.check(), Some(0));
        assert_eq!(now.check(), Some(0));
    }
}
