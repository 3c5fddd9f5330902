//! The state cookie that binds a consent flow to the browser that started it.
//!
//! `/authorize` seals the OAuth `state`, the PKCE verifier and the issue time into one cookie
//! with XChaCha20-Poly1305 (a random 192-bit nonce per cookie); `/callback` opens it, checks
//! the lifetime, and compares the state in constant time. The key is derived with HKDF-SHA256
//! from the client secret, so it needs no storage of its own and changes when the secret is
//! rotated. This is the CSRF protection of RFC 6749 §10.12 and RFC 9700 §2.1.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use chrono::{DateTime, TimeDelta, Utc};
use hkdf::Hkdf;
use oauth2::{ClientSecret, CsrfToken, PkceCodeVerifier};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The cookie's name. `__Host-` makes browsers insist on `Secure`, `Path=/` and no `Domain`.
pub const COOKIE_NAME: &str = "__Host-gmail-oauth-flow";
/// How long a consent may take, from `/authorize` to `/callback`.
pub const LIFETIME: TimeDelta = TimeDelta::minutes(10);
/// Clock skew tolerated for an issue time in the future (several Lambda instances).
const SKEW: TimeDelta = TimeDelta::seconds(30);
const VERSION: &[u8] = b"gmail-oauth flow cookie v1";

/// The key that seals flow cookies.
pub struct FlowKey(Key);

impl FlowKey {
    /// Derives the key from the client secret (HKDF-SHA256, RFC 5869).
    pub fn derive(client_secret: &ClientSecret) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(VERSION), client_secret.secret().as_bytes());
        let mut key = Key::default();
        // 32 bytes is far below HKDF-SHA256's limit of 8160; expand cannot fail.
        let _ = hkdf.expand(b"flow-cookie-key", &mut key);
        FlowKey(key)
    }
}

/// What the cookie holds.
pub struct FlowState {
    pub state: CsrfToken,
    pub pkce_verifier: PkceCodeVerifier,
    pub issued_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    s: String,
    v: String,
    t: i64,
}

/// Why a callback's state was not accepted. All are the client's mistake (400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlowError {
    #[error("the sign-in cookie is missing; start again at /authorize in the same browser")]
    MissingCookie,
    #[error("the sign-in cookie is not valid; start again at /authorize")]
    InvalidCookie,
    #[error("the sign-in attempt expired; start again at /authorize")]
    Expired,
    #[error("the state does not match this browser's sign-in attempt; start again at /authorize")]
    StateMismatch,
}

/// Seals a flow into a cookie value (URL-safe base64 of nonce ‖ ciphertext).
pub fn seal(key: &FlowKey, flow: &FlowState) -> String {
    let plain = Sealed {
        s: flow.state.secret().clone(),
        v: flow.pkce_verifier.secret().clone(),
        t: flow.issued_at.timestamp(),
    };
    let plaintext = serde_json::to_vec(&plain).unwrap_or_default();
    let cipher = XChaCha20Poly1305::new(&key.0);
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    // Encryption fails only for plaintexts of gigabytes.
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: &plaintext,
                aad: VERSION,
            },
        )
        .unwrap_or_default();
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&ciphertext);
    URL_SAFE_NO_PAD.encode(sealed)
}

/// The checks that need no key: a cookie is present, and is the URL-safe base64 of at
/// least a nonce and a tag. A callback runs them before reading the client secrets, so a
/// request that cannot succeed costs no AWS call.
pub fn check_form(cookie: Option<&str>) -> Result<(), FlowError> {
    let cookie = cookie
        .filter(|c| !c.is_empty())
        .ok_or(FlowError::MissingCookie)?;
    sealed_bytes(cookie).map(|_| ())
}

fn sealed_bytes(cookie: &str) -> Result<Vec<u8>, FlowError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cookie)
        .map_err(|_| FlowError::InvalidCookie)?;
    if bytes.len() < 24 + 16 {
        return Err(FlowError::InvalidCookie);
    }
    Ok(bytes)
}

/// Opens a cookie and checks it against the callback's `state` at time `now`.
pub fn open(
    key: &FlowKey,
    cookie: Option<&str>,
    state: &str,
    now: DateTime<Utc>,
) -> Result<FlowState, FlowError> {
    let cookie = cookie.ok_or(FlowError::MissingCookie)?;
    let bytes = sealed_bytes(cookie)?;
    let (nonce, ciphertext) = bytes.split_at(24);
    let plaintext = XChaCha20Poly1305::new(&key.0)
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: VERSION,
            },
        )
        .map_err(|_| FlowError::InvalidCookie)?;
    let sealed: Sealed =
        serde_json::from_slice(&plaintext).map_err(|_| FlowError::InvalidCookie)?;
    let issued_at = DateTime::from_timestamp(sealed.t, 0).ok_or(FlowError::InvalidCookie)?;
    if now - issued_at > LIFETIME || issued_at - now > SKEW {
        return Err(FlowError::Expired);
    }
    if !bool::from(sealed.s.as_bytes().ct_eq(state.as_bytes())) {
        return Err(FlowError::StateMismatch);
    }
    Ok(FlowState {
        state: CsrfToken::new(sealed.s),
        pkce_verifier: PkceCodeVerifier::new(sealed.v),
        issued_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> FlowKey {
        FlowKey::derive(&ClientSecret::new(secret.into()))
    }

    fn flow(at: DateTime<Utc>) -> FlowState {
        FlowState {
            state: CsrfToken::new("state-123".into()),
            pkce_verifier: PkceCodeVerifier::new("v".repeat(64)),
            issued_at: at,
        }
    }

    #[test]
    fn opens_what_it_sealed() {
        let now = Utc::now();
        let cookie = seal(&key("k"), &flow(now));
        let opened = open(
            &key("k"),
            Some(&cookie),
            "state-123",
            now + TimeDelta::minutes(9),
        )
        .unwrap();
        assert_eq!(opened.pkce_verifier.secret(), &"v".repeat(64));
        assert_eq!(opened.issued_at.timestamp(), now.timestamp());
    }

    #[test]
    fn the_cookie_does_not_reveal_state_or_verifier() {
        let cookie = seal(&key("k"), &flow(Utc::now()));
        let raw = URL_SAFE_NO_PAD.decode(&cookie).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("state-123"));
        assert!(!cookie.contains("state-123") && !cookie.contains("vvvv"));
        assert_ne!(
            cookie,
            seal(&key("k"), &flow(Utc::now())),
            "nonce must differ"
        );
    }

    #[test]
    fn refuses_an_expired_or_future_cookie() {
        let now = Utc::now();
        let cookie = seal(&key("k"), &flow(now));
        let late = now + LIFETIME + TimeDelta::seconds(1);
        assert_eq!(
            open(&key("k"), Some(&cookie), "state-123", late).err(),
            Some(FlowError::Expired)
        );
        let early = now - TimeDelta::minutes(5);
        assert_eq!(
            open(&key("k"), Some(&cookie), "state-123", early).err(),
            Some(FlowError::Expired)
        );
    }

    #[test]
    fn refuses_a_tampered_cookie_at_every_byte() {
        let now = Utc::now();
        let cookie = seal(&key("k"), &flow(now));
        let raw = URL_SAFE_NO_PAD.decode(&cookie).unwrap();
        for i in 0..raw.len() {
            let mut flipped = raw.clone();
            flipped[i] ^= 0x01;
            let tampered = URL_SAFE_NO_PAD.encode(flipped);
            assert_eq!(
                open(&key("k"), Some(&tampered), "state-123", now).err(),
                Some(FlowError::InvalidCookie),
                "byte {i}"
            );
        }
        let truncated = &cookie[..cookie.len() - 4];
        assert_eq!(
            open(&key("k"), Some(truncated), "state-123", now).err(),
            Some(FlowError::InvalidCookie)
        );
        assert_eq!(
            open(&key("k"), Some("%%%"), "state-123", now).err(),
            Some(FlowError::InvalidCookie)
        );
        assert_eq!(
            open(&key("k"), Some(""), "state-123", now).err(),
            Some(FlowError::InvalidCookie)
        );
    }

    #[test]
    fn the_form_check_passes_every_sealed_cookie_and_refuses_what_cannot_open() {
        let cookie = seal(&key("k"), &flow(Utc::now()));
        assert_eq!(check_form(Some(&cookie)), Ok(()));
        assert_eq!(check_form(None), Err(FlowError::MissingCookie));
        assert_eq!(check_form(Some("")), Err(FlowError::MissingCookie));
        for bad in ["%%%", "short", &cookie[..40], "a b"] {
            assert_eq!(
                check_form(Some(bad)),
                Err(FlowError::InvalidCookie),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_a_cookie_sealed_with_another_key() {
        let now = Utc::now();
        let cookie = seal(&key("old secret"), &flow(now));
        assert_eq!(
            open(&key("new secret"), Some(&cookie), "state-123", now).err(),
            Some(FlowError::InvalidCookie)
        );
    }

    #[test]
    fn refuses_a_state_that_does_not_match_or_a_missing_cookie() {
        let now = Utc::now();
        let cookie = seal(&key("k"), &flow(now));
        assert_eq!(
            open(&key("k"), Some(&cookie), "state-124", now).err(),
            Some(FlowError::StateMismatch)
        );
        assert_eq!(
            open(&key("k"), Some(&cookie), "", now).err(),
            Some(FlowError::StateMismatch)
        );
        assert_eq!(
            open(&key("k"), None, "state-123", now).err(),
            Some(FlowError::MissingCookie)
        );
    }
}
