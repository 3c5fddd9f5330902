//! The client secrets, kept by one execution environment.
//!
//! `/authorize` and `/callback` are public: anyone can call them. Reading the client
//! secrets from Parameter Store on every request would let anyone spend the account's
//! shared read quota (40 a second by default) and starve the scheduled run. So one
//! execution environment reads them once and reuses them for [`TTL`]; a cookie that the
//! cached secret cannot open makes it read them again, at most once every [`RECHECK`], so a
//! rotated secret is picked up at the first callback that needs it while a stream of forged
//! cookies costs at most one read per interval.

use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

use gmail_oauth::client_secrets::ClientSecrets;

/// How long cached client secrets are used before they are read again.
pub const TTL: Duration = Duration::from_secs(300);
/// The shortest time between two reads forced by cookies the cached secret cannot open.
pub const RECHECK: Duration = Duration::from_secs(30);

/// The secrets one execution environment read, and when.
pub struct SecretsCache {
    ttl: Duration,
    recheck: Duration,
    slot: Mutex<Option<(ClientSecrets, Instant)>>,
}

impl Default for SecretsCache {
    fn default() -> Self {
        SecretsCache::new(TTL, RECHECK)
    }
}

impl SecretsCache {
    pub fn new(ttl: Duration, recheck: Duration) -> Self {
        SecretsCache {
            ttl,
            recheck,
            slot: Mutex::new(None),
        }
    }

    /// The cached secrets if they were read less than `TTL` ago, or the ones `read` returns
    /// (kept when it succeeds; a failure is not cached and the next request reads again).
    /// `read` is only awaited, so only runs, when the cache cannot answer.
    pub async fn get<E>(
        &self,
        read: impl Future<Output = Result<ClientSecrets, E>>,
    ) -> Result<ClientSecrets, E> {
        // Held across the read: requests of one environment come one at a time, and a second
        // one waiting here takes what the first read instead of reading again.
        let mut slot = self.slot.lock().await;
        if let Some((secrets, read_at)) = slot.as_ref()
            && read_at.elapsed() < self.ttl
        {
            return Ok(secrets.clone());
        }
        fill(&mut slot, read).await
    }

    /// Secrets read again because the cached ones could not open a cookie: `None` when the
    /// cached ones were read less than `RECHECK` ago (they are as fresh as this gets).
    pub async fn reread<E>(
        &self,
        read: impl Future<Output = Result<ClientSecrets, E>>,
    ) -> Option<Result<ClientSecrets, E>> {
        let mut slot = self.slot.lock().await;
        if slot
            .as_ref()
            .is_some_and(|(_, read_at)| read_at.elapsed() < self.recheck)
        {
            return None;
        }
        Some(fill(&mut slot, read).await)
    }
}

/// Reads the secrets into the slot (a failure leaves it as it was).
async fn fill<E>(
    slot: &mut Option<(ClientSecrets, Instant)>,
    read: impl Future<Output = Result<ClientSecrets, E>>,
) -> Result<ClientSecrets, E> {
    let secrets = read.await?;
    *slot = Some((secrets.clone(), Instant::now()));
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gmail_oauth::client_secrets::ClientSecrets;
    use std::cell::Cell;

    fn secrets(secret: &str) -> ClientSecrets {
        let json = format!(
            r#"{{"web":{{"client_id":"id","client_secret":"{secret}","auth_uri":"https://accounts.google.com/o/oauth2/auth","token_uri":"https://oauth2.googleapis.com/token"}}}}"#
        );
        ClientSecrets::from_json(&json).expect("client secrets")
    }

    #[tokio::test(start_paused = true)]
    async fn reads_once_per_ttl_and_rereads_at_most_once_per_recheck() {
        let cache = SecretsCache::default();
        let reads = Cell::new(0);
        let read = || async {
            reads.set(reads.get() + 1);
            Ok::<_, ()>(secrets(&format!("secret-{}", reads.get())))
        };
        for _ in 0..20 {
            cache.get(read()).await.unwrap();
        }
        assert_eq!(reads.get(), 1);
        // A cookie the secret cannot open, right after the read: no second read.
        assert!(cache.reread(read()).await.is_none());
        tokio::time::advance(RECHECK).await;
        let fresh = cache.reread(read()).await.unwrap().unwrap();
        assert_eq!(fresh.client_secret.secret(), "secret-2");
        for _ in 0..20 {
            assert!(cache.reread(read()).await.is_none());
        }
        assert_eq!(reads.get(), 2);
        tokio::time::advance(TTL).await;
        cache.get(read()).await.unwrap();
        assert_eq!(reads.get(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_is_not_cached() {
        let cache = SecretsCache::default();
        assert!(
            cache
                .get(async { Err::<ClientSecrets, _>("down") })
                .await
                .is_err()
        );
        let got = cache
            .get(async { Ok::<_, ()>(secrets("s")) })
            .await
            .unwrap();
        assert_eq!(got.client_secret.secret(), "s");
    }
}
