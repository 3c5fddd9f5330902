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
