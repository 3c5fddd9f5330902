//! The time one invocation has, and how it is shared between its calls.
//!
//! Lambda gives each invocation a deadline (milliseconds since the epoch, in the context);
//! a function that is still running then is killed, and behind API Gateway the browser gets
//! a 5xx. So every use case here works until [`Deadline::work_until`] and keeps the rest,
//! the save reserve, for storing what it must store, then answers before [`Deadline::at`].

use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio::time::Instant;

/// Lambda's longest timeout. A deadline further away than this is not believed.
pub const LAMBDA_MAX_TIMEOUT: Duration = Duration::from_secs(900);

/// When a use case must be over, and how much of that time is kept for storing its result.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    pub save_reserve: Duration,
}

impl Deadline {
    /// From the Lambda context's deadline (`deadline_ms`, milliseconds since the epoch) read
    /// at wall-clock `now`: answer `margin` before it, and keep `save_reserve` (at most half of
    /// the time left) for the write. The deadline comes from outside: a value in the past
    /// leaves no time, and one beyond Lambda's 15 minutes is cut to them, never overflowing.
    pub fn from_lambda(
        deadline_ms: u64,
        now: DateTime<Utc>,
        margin: Duration,
        save_reserve: Duration,
    ) -> Deadline {
        let now_ms = u64::try_from(now.timestamp_millis()).unwrap_or_default();
        let remaining = Duration::from_millis(deadline_ms.saturating_sub(now_ms))
            .min(LAMBDA_MAX_TIMEOUT)
            .saturating_sub(margin);
        Deadline::after(remaining, save_reserve)
    }

    /// `remaining` from now (at most Lambda's 15 minutes), keeping at most half for the save.
    pub fn after(remaining: Duration, save_reserve: Duration) -> Deadline {
        let remaining = remaining.min(LAMBDA_MAX_TIMEOUT);
        Deadline {
            at: Instant::now() + remaining,
            save_reserve: save_reserve.min(remaining / 2),
        }
    }

    /// Until when the calls before the save may run.
    pub fn work_until(&self) -> Instant {
        self.at.checked_sub(self.save_reserve).unwrap_or(self.at)
    }

    /// The latest a save's write may start: with its reserve (the write, its check and one
    /// repair) still ahead. The work stops at the reserve's start and noticing that takes
    /// a moment, so nine tenths of the reserve still ahead is enough.
    pub fn write_by(&self) -> Instant {
        self.at
            .checked_sub(self.save_reserve.mul_f32(0.9))
            .unwrap_or(self.at)
    }

    /// The latest a repair (a second write) may start: with half the reserve still ahead.
    pub fn heal_by(&self) -> Instant {
        self.at
            .checked_sub(self.save_reserve / 2)
            .unwrap_or(self.at)
    }
}

/// Runs `work` until `until` (no limit with `None`); `None` when time ran out first.
pub async fn within<T>(until: Option<Instant>, work: impl Future<Output = T>) -> Option<T> {
    match until {
        Some(until) => tokio::time::timeout_at(until, work).await.ok(),
        None => Some(work.await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_deadline_from_outside_never_overflows_and_keeps_half_for_the_save_at_most() {
        let now = Utc::now();
        let now_ms = u64::try_from(now.timestamp_millis()).unwrap();
        let margin = Duration::from_millis(500);
        let reserve = Duration::from_secs(5);

        let normal = Deadline::from_lambda(now_ms + 29_000, now, margin, reserve);
        assert_eq!(normal.at - Instant::now(), Duration::from_millis(28_500));
        assert_eq!(
            normal.work_until() - Instant::now(),
            Duration::from_millis(23_500)
        );

        for absurd in [u64::MAX, now_ms * 1000] {
            let deadline = Deadline::from_lambda(absurd, now, margin, reserve);
            assert_eq!(
                deadline.at - Instant::now(),
                LAMBDA_MAX_TIMEOUT - margin,
                "{absurd}"
            );
        }
        for past in [0, now_ms - 1, now_ms + 100] {
            let deadline = Deadline::from_lambda(past, now, margin, reserve);
            assert_eq!(deadline.at, Instant::now(), "{past}");
            assert_eq!(deadline.save_reserve, Duration::ZERO);
        }
        let short = Deadline::from_lambda(now_ms + 2_500, now, margin, reserve);
        assert_eq!(short.save_reserve, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn within_gives_up_when_the_time_is_over() {
        let slow = tokio::time::sleep(Duration::from_secs(2));
        let until = Instant::now() + Duration::from_secs(1);
        assert_eq!(within(Some(until), slow).await, None);
        assert_eq!(within(None, async { 7 }).await, Some(7));
    }
}
