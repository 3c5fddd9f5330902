//! Pacing calls to a quota: at most `n` calls a second, shared by every task of a run.
//!
//! Parameter Store's default quotas are per account and region: `PutParameter` 3 calls a
//! second (the functions use 2, `SSM_WRITE_TPS`), reads 40 a second shared with everything
//! else in the account (`SSM_READ_TPS`, 20). A run with many mailboxes would otherwise
//! spend its time in `ThrottlingException`s and backoff; paced, it never asks faster than
//! the quota and the throttles that remain are absorbed by the SDK's retries.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Hands out one call slot every `interval`, first come first served.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// At most `per_second` calls a second; 0 (or less) means no pacing.
    pub fn per_second(per_second: f64) -> Pacer {
        let interval = if per_second > 0.0 && per_second.is_finite() {
            Duration::from_secs_f64(1.0 / per_second)
        } else {
            Duration::ZERO
        };
        Pacer {
            interval,
            next: Mutex::new(None),
        }
    }

    /// The time between two calls.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits for this call's slot.
    pub async fn ready(&self) {
        if self.interval.is_zero() {
            return;
        }
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn calls_are_spaced_by_the_interval_whoever_asks() {
        let pacer = std::sync::Arc::new(Pacer::per_second(4.0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..8)
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
        let expected: Vec<Duration> = (0..8).map(|i| Duration::from_millis(250 * i)).collect();
        assert_eq!(times, expected);
        assert_eq!(Pacer::per_second(0.0).interval(), Duration::ZERO);
    }
}
