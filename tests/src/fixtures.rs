//! The real payloads in `shared/fixtures/` (where each came from: its `README.md`), for
//! integration tests, read relative to this crate's directory inside the repository.

macro_rules! fixture {
    ($file:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/",
            $file
        ))
    };
}

pub const CLIENT_SECRETS_WEB: &str = fixture!("client-secrets-web.json");
pub const CLIENT_SECRETS_INSTALLED: &str = fixture!("client-secrets-installed.json");
pub const TOKEN_AFTER_CONSENT: &str = fixture!("google-auth-token-after-consent.json");
pub const TOKEN_AFTER_REFRESH: &str = fixture!("google-auth-token-after-refresh.json");
