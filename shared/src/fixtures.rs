//! The real payloads in `fixtures/` (where each came from: `fixtures/README.md`), for unit
//! tests. Read relative to the crate's own directory, so a clone or a published crate has them.

macro_rules! fixture {
    ($file:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/", $file))
    };
}

pub const CLIENT_SECRETS_WEB: &str = fixture!("client-secrets-web.json");
pub const CLIENT_SECRETS_INSTALLED: &str = fixture!("client-secrets-installed.json");
pub const TOKEN_AFTER_CONSENT: &str = fixture!("google-auth-token-after-consent.json");
pub const TOKEN_AFTER_REFRESH: &str = fixture!("google-auth-token-after-refresh.json");
