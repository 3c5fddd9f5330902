//! What users deploy: the SAM template's least-privilege IAM, routes, schedule and outputs
//! (what cfn-lint and `sam validate --lint`, both run by `make test`, do not check), and the
//! arm64 `bootstrap` binaries that `cargo lambda build --release --arm64` (`make lambda`) made.

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_template_grants_least_privilege_and_exposes_the_routes_schedule_and_urls() {
    let template = root().join("template.yaml");
    let report = integration_tests::python("template_check.py", &[template.to_str().unwrap()]);
    assert!(report.contains("template ok"), "{report}");
}

#[test]
fn cargo_lambda_built_aarch64_bootstraps_for_both_functions() {
    for function in ["oauth-callback", "gmail-refresh"] {
        let bootstrap = root()
            .join("target/lambda")
            .join(function)
            .join("bootstrap");
        let bytes = std::fs::read(&bootstrap).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `make lambda` (cargo lambda build --release --arm64)",
                bootstrap.display()
            )
        });
        assert_eq!(&bytes[..4], b"\x7fELF", "{function} is not an ELF file");
        assert_eq!(bytes[4], 2, "{function} is not 64-bit");
        assert_eq!(
            u16::from_le_bytes([bytes[18], bytes[19]]),
            183,
            "{function} is not built for aarch64 (EM_AARCH64)"
        );
        println!("{function}: {} bytes", bytes.len());
    }
}

#[derive(serde::Deserialize)]
struct NameCase {
    parameter: String,
    env: String,
    value: String,
    valid: bool,
    why: String,
}

/// One list (`tests/data/parameter-names.json`) for both sides: every name the template's
/// patterns let through, the functions take at start, and every one the functions refuse
/// (`InvalidConfiguration` naming the variable) the template refuses first.
#[test]
fn the_templates_patterns_and_the_codes_checks_agree_on_every_parameter_name() {
    let cases_path = root().join("tests/data/parameter-names.json");
    let cases: Vec<NameCase> =
        serde_json::from_str(&std::fs::read_to_string(&cases_path).expect("the cases"))
            .expect("cases as JSON");
    let template = root().join("template.yaml");
    let accepted: Vec<bool> = serde_json::from_str(&integration_tests::python(
        "template_check.py",
        &[
            "--patterns",
            template.to_str().expect("path"),
            cases_path.to_str().expect("path"),
        ],
    ))
    .expect("a list of booleans");
    assert_eq!(accepted.len(), cases.len());
    for (case, template_accepts) in cases.iter().zip(accepted) {
        // The template hands MailboxesPath to the code with its final slash.
        let value = match case.env.as_str() {
            "MAILBOXES_PATH" => format!("{}/", case.value),
            _ => case.value.clone(),
        };
        let env = [(case.env.as_str(), value.as_str())];
        let code =
            gmail_oauth::config::CommonConfig::from_lookup(&gmail_oauth::config::fixed_env(&env));
        let label = format!("{} = {:?} ({})", case.parameter, case.value, case.why);
        assert_eq!(template_accepts, case.valid, "the template, {label}");
        match code {
            Ok(_) => assert!(case.valid, "the code takes {label}"),
            Err(error) => {
                assert!(!case.valid, "the code refuses {label}: {error}");
                assert_eq!(error.name, case.env, "{label}");
            }
        }
    }
}

/// The template's `AuthorizeUrl` (also `AUTHORIZE_URL` and the alarm's text) is the
/// callback function's: the last `/callback` of `RedirectUri` becomes `/authorize`, whatever
/// else in the URI reads "/callback".
#[test]
fn the_templates_authorize_url_is_the_functions_for_every_redirect_uri() {
    let template = root().join("template.yaml");
    for redirect in [
        "https://mail.example.com/callback",
        "https://callback.example.com/callback",
        "https://x.example.com/callbacks/callback",
        "https://x.example.com/callback/callback",
        "https://x.example.com:8443/a/b/callback",
    ] {
        let from_template = integration_tests::python(
            "template_check.py",
            &[
                "--authorize-url",
                template.to_str().expect("path"),
                redirect,
            ],
        );
        let url = url::Url::parse(redirect).expect("a URL");
        let from_code = gmail_oauth::config::authorize_url_for(&url);
        assert_eq!(from_template.trim(), from_code.as_str(), "{redirect}");
    }
}
