//! Pacing calls to a quota: at most `n` calls a second on average, a second's worth at
//! once, shared by every task of a run.
//!
//! Parameter Store's default quotas are per account and region: `PutParameter` 3 calls a
//! second (the functions use 2, `SSM_WRITE_TPS`), reads 40 a second shared with everything
//! else in the account (`SSM_READ_TPS`, 20). A run with many mailboxes would otherwise
//! spend its time in `ThrottlingException`s and backoff; paced, it never asks faster than
//! the quota and the throttles that remain are absorbed by the SDK's retries. A run of one
//! mailbox (two reads and a write) fits in the burst and never waits.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A token bucket (the generic cell rate algorithm): a slot every `interval` on average,
/// up to `burst` slots at once after a quiet time, first come first served.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    burst: u32,
    /// The theoretical arrival time of the next call at the average rate.
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// At most `per_second` calls a second, and that many at once (at least one); 0 (or
    /// less, or not a number) means no pacing.
    pub fn per_second(per_second: f64) -> Pacer {
        let paced = per_second > 0.0 && per_second.is_finite();
        let interval = if paced {
            Duration::try_from_secs_f64(1.0 / per_second).unwrap_or(Duration::MAX)
        } else {
            Duration::ZERO
        };
        Pacer {
            interval,
            // A second's worth, as the quotas' own buckets allow.
            burst: if paced {
                per_second.floor().max(1.0) as u32
            } else {
                1
            },
            next: Mutex::new(None),
        }
    }

    /// The time between two calls at the average rate.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits for this call's slot.
    pub async fn ready(&self) {
        self.ready_by(None).await;
    }

    /// Waits for this call's slot if it comes no later than `by`; `false`, at once and with
    /// nothing reserved, when the next slot is later (the call must not start).
    pub async fn ready_by(&self, by: Option<Instant>) -> bool {
        let now = Instant::now();
        if self.interval.is_zero() {
            return by.is_none_or(|by| now <= by);
        }
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let tat = next.map_or(now, |n| n.max(now));
            // Up to `burst - 1` intervals ahead of the average rate may be taken now.
            let allowance = self.interval.saturating_mul(self.burst - 1);
            let slot = tat.checked_sub(allowance).map_or(now, |s| s.max(now));
            if by.is_some_and(|by| slot > by) {
                return false;
            }
            *next = Some(tat.checked_add(self.interval).unwrap_or(tat));
            slot
        };
        tokio::time::sleep_until(slot).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn times(pacer: std::sync::Arc<Pacer>, calls: usize) -> Vec<Duration> {
        let start = Instant::now();
        let tasks: Vec<_> = (0..calls)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move {
                    pacer.ready().await;
                    Instant::now()
                })
            })
            .collect();
        let mut times = Vec::new();
        for task in tasks {
            times.push(task.await.unwrap() - start);
        }
        times.sort();
        times
    }

    #[tokio::test(start_paused = true)]
    async fn a_seconds_worth_goes_at_once_then_calls_are_spaced_by_the_interval() {
        let pacer = std::sync::Arc::new(Pacer::per_second(4.0));
        let expected: Vec<Duration> = [0, 0, 0, 0, 250, 500, 750, 1000]
            .map(Duration::from_millis)
            .to_vec();
        assert_eq!(times(pacer.clone(), 8).await, expected);
        // After a quiet second the burst is back.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            times(pacer, 5).await,
            [0, 0, 0, 0, 250].map(Duration::from_millis).to_vec()
        );
        assert_eq!(Pacer::per_second(0.0).interval(), Duration::ZERO);
        assert_eq!(Pacer::per_second(1e-300).interval(), Duration::MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_after_the_limit_is_refused_without_being_taken() {
        let pacer = Pacer::per_second(2.0);
        let soon = Some(Instant::now() + Duration::from_millis(100));
        assert!(pacer.ready_by(soon).await);
        assert!(pacer.ready_by(soon).await);
        // The third slot is 500 ms away: past the limit, refused at once.
        let before = Instant::now();
        assert!(!pacer.ready_by(soon).await);
        assert_eq!(Instant::now(), before);
        // Nothing was taken: the next call gets that same slot.
        assert!(pacer.ready_by(None).await);
        assert_eq!(Instant::now() - before, Duration::from_millis(500));
    }
}
