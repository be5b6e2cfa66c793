//! Passwords, tokens and verifiers never appear in `Debug` output, which ends up in logs.

use super::{parse_with_env, secrets::VERIFIER};

#[test]
fn debug_output_of_a_config_contains_no_secret() {
    let text = format!(
        r#"
[admin]
token_env = "TOKEN"

[[users]]
name = "app"
password = "app-secret-pw"

[[users]]
name = "report"
scram = "{VERIFIER}"

[[users]]
name = "batch"
password_env = "BATCH_PW"

[upstreams.blue]
host = "10.0.0.1"
password = "blue-secret-pw"

[upstreams.green]
host = "10.0.0.2"
password_env = "GREEN_PW"

[routing]
primary = "blue"
"#
    );
    let secrets = [
        "admin-token-value",
        "app-secret-pw",
        "batch-env-pw",
        "blue-secret-pw",
        "green-env-pw",
    ];
    let config = parse_with_env(
        &text,
        &[
            ("TOKEN", secrets[0]),
            ("BATCH_PW", secrets[2]),
            ("GREEN_PW", secrets[4]),
        ],
    )
    .unwrap();
    // The secrets were resolved, so their absence below is redaction, not emptiness.
    assert_eq!(config.admin.token.as_deref(), Some(secrets[0]));
    assert_eq!(
        config.upstream("green").unwrap().password.as_deref(),
        Some(secrets[4])
    );

    for debug in [format!("{config:?}"), format!("{config:#?}")] {
        for secret in secrets {
            assert!(!debug.contains(secret), "{secret} leaked into: {debug}");
        }
        assert!(
            !debug.contains("UeRKcq"),
            "the SCRAM verifier leaked into: {debug}"
        );
        assert!(debug.contains("<redacted>"), "{debug}");
        assert!(
            debug.contains("\"app\"") && debug.contains("10.0.0.2"),
            "non-secrets stay visible: {debug}"
        );
    }
}
