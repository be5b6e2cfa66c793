//! Secrets come from the file, an environment variable or a file of their own, are resolved
//! at load, and a source that does not deliver is a precise error.

use std::io::Write as _;

use switchyard_config::{Config, ConfigError, UserSecret};

use super::{minimal_replacing, minimal_with, parse, parse_with_env, BASE_DIR};

/// The verifier PostgreSQL derives for password "app-secret" with salt "saltsaltsaltsalt"
/// and 4096 iterations.
pub const VERIFIER: &str = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$UeRKcq/ORPFIr8B85dUmQsXVXPvTGxhi3RO5tBVvefo=:xCaIcANNs27ViTfrmSNrDxnYWGphKLNOAIsIBMYBuXw=";

fn password_of(config: &Config) -> Option<&UserSecret> {
    config.users[0].secret.as_ref()
}

#[test]
fn password_env_reads_the_password_from_the_named_variable() {
    let text = minimal_replacing("password =", "password_env = \"APP_PASSWORD\"");
    let config = parse_with_env(&text, &[("APP_PASSWORD", "from-env")]).unwrap();
    assert_eq!(
        password_of(&config),
        Some(&UserSecret::Password("from-env".into()))
    );
}

#[test]
fn password_env_reads_the_real_process_environment_by_default() {
    // A name no other test (or CI) uses, so setting it races with nothing.
    let var = "SWITCHYARD_CONFIG_TEST_PASSWORD_ENV_READS_REAL_ENV";
    std::env::set_var(var, "from-process-env");
    let text = minimal_replacing("password =", &format!("password_env = \"{var}\""));
    let config = Config::from_toml_str(&text, std::path::Path::new(BASE_DIR)).unwrap();
    std::env::remove_var(var);
    assert_eq!(
        password_of(&config),
        Some(&UserSecret::Password("from-process-env".into()))
    );
}

#[test]
fn an_unset_password_env_variable_is_an_error_naming_the_variable() {
    let text = minimal_replacing("password =", "password_env = \"APP_PASSWORD\"");
    let err = parse(&text).unwrap_err();
    assert_eq!(
        err,
        ConfigError::Secret {
            key: "users[0].password_env".into(),
            value: "\"APP_PASSWORD\"".into(),
            problem:
                "environment variable APP_PASSWORD is not set (expected it to hold the password)"
                    .into(),
        }
    );
    assert_eq!(
        err.to_string(),
        "users[0].password_env = \"APP_PASSWORD\": environment variable APP_PASSWORD is not set \
         (expected it to hold the password)"
    );
}

#[test]
fn an_empty_password_env_variable_is_an_error() {
    let text = minimal_replacing("password =", "password_env = \"APP_PASSWORD\"");
    let err = parse_with_env(&text, &[("APP_PASSWORD", "")]).unwrap_err();
    assert!(
        err.to_string()
            .contains("environment variable APP_PASSWORD is empty"),
        "{err}"
    );
    assert_eq!(err.key(), Some("users[0].password_env"));
}

#[test]
fn upstream_password_env_is_resolved_too() {
    let text = minimal_with(
        "[upstreams.green]",
        "user = \"migrator\"\npassword_env = \"GREEN_PW\"",
    );
    let config = parse_with_env(&text, &[("GREEN_PW", "green-secret")]).unwrap();
    let green = config.upstream("green").unwrap();
    assert_eq!(green.user.as_deref(), Some("migrator"));
    assert_eq!(green.password.as_deref(), Some("green-secret"));
    let err = parse(&text).unwrap_err();
    assert_eq!(err.key(), Some("upstreams.green.password_env"));
}

#[test]
fn password_file_reads_the_password_without_its_trailing_newline() {
    for content in ["from-file\n", "from-file\r\n", "from-file"] {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content.as_bytes()).unwrap();
        let line = format!("password_file = \"{}\"", file.path().display());
        let config = parse(&minimal_replacing("password =", &line)).unwrap();
        assert_eq!(
            password_of(&config),
            Some(&UserSecret::Password("from-file".into())),
            "{content:?}"
        );
    }
}

#[test]
fn a_password_keeps_its_other_whitespace() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b" spaced out \n").unwrap();
    let line = format!("password_file = \"{}\"", file.path().display());
    let config = parse(&minimal_replacing("password =", &line)).unwrap();
    assert_eq!(
        password_of(&config),
        Some(&UserSecret::Password(" spaced out ".into()))
    );
}

#[test]
fn a_missing_password_file_is_an_error_naming_the_resolved_path() {
    let text = minimal_replacing("password =", "password_file = \"secrets/app.pw\"");
    let err = parse(&text).unwrap_err();
    let message = err.to_string();
    assert_eq!(err.key(), Some("users[0].password_file"));
    assert!(message.starts_with("users[0].password_file = \"/etc/switchyard/secrets/app.pw\": cannot read the password file:"), "{message}");
    assert!(message.contains("No such file or directory"), "{message}");
}

#[test]
fn an_empty_or_multi_line_password_file_is_an_error() {
    for (content, problem) in [
        ("", "the file is empty"),
        ("\n", "the file is empty"),
        ("one\ntwo\n", "more than one line"),
    ] {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content.as_bytes()).unwrap();
        let line = format!("password_file = \"{}\"", file.path().display());
        let err = parse(&minimal_replacing("password =", &line)).unwrap_err();
        assert_eq!(err.key(), Some("users[0].password_file"));
        assert!(err.to_string().contains(problem), "{content:?}: {err}");
        assert!(
            !err.to_string().contains("two"),
            "never shows the content: {err}"
        );
    }
}

#[test]
fn a_well_formed_scram_verifier_is_kept_as_the_users_secret() {
    let text = minimal_replacing("password =", &format!("scram = \"{VERIFIER}\""));
    let config = parse(&text).unwrap();
    assert_eq!(
        password_of(&config),
        Some(&UserSecret::ScramVerifier(VERIFIER.into()))
    );
}

#[test]
fn scram_verifier_shapes_that_postgres_would_not_produce_are_rejected() {
    let bad = [
        VERIFIER.replacen("SCRAM-SHA-256$", "md5", 1),
        VERIFIER.replacen("4096", "many", 1),
        VERIFIER.replacen(
            "UeRKcq/ORPFIr8B85dUmQsXVXPvTGxhi3RO5tBVvefo=",
            "c2hvcnQ=",
            1,
        ),
        VERIFIER.split(':').take(2).collect::<Vec<_>>().join(":"),
    ];
    for verifier in bad {
        let err = parse(&minimal_replacing(
            "password =",
            &format!("scram = \"{verifier}\""),
        ))
        .unwrap_err();
        assert_eq!(err.key(), Some("users[0].scram"), "{verifier}: {err}");
        assert!(
            err.to_string()
                .contains("SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>"),
            "{err}"
        );
    }
}

#[test]
fn admin_token_env_is_resolved_and_an_unset_variable_is_an_error() {
    let text = minimal_with("[admin]", "token_env = \"SWITCHYARD_ADMIN_TOKEN\"");
    let config = parse_with_env(&text, &[("SWITCHYARD_ADMIN_TOKEN", "t0ken")]).unwrap();
    assert_eq!(config.admin.token.as_deref(), Some("t0ken"));
    assert_eq!(
        config.admin.token_env.as_deref(),
        Some("SWITCHYARD_ADMIN_TOKEN")
    );

    let err = parse(&text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "admin.token_env = \"SWITCHYARD_ADMIN_TOKEN\": environment variable SWITCHYARD_ADMIN_TOKEN \
         is not set (expected it to hold the admin bearer token)"
    );
    let err = parse_with_env(&text, &[("SWITCHYARD_ADMIN_TOKEN", "")]).unwrap_err();
    assert!(err.to_string().contains("is empty"), "{err}");
}
