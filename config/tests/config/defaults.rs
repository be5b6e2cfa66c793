use std::path::Path;

use switchyard_config::{
    AuthMethod, Guard, Limits, ListenTls, LogFormat, Logging, ShadowReads, Sticky, UpstreamTls,
};

use super::{parse, BASE_DIR, MINIMAL};

#[test]
fn the_minimal_config_gets_the_documented_defaults() {
    let config = parse(MINIMAL).unwrap();
    let base = Path::new(BASE_DIR);

    assert_eq!(config.listen.address, "127.0.0.1:6432");
    assert_eq!(config.listen.tls, ListenTls::Disable);
    assert_eq!(config.listen.threads, None, "one session thread per core");
    assert_eq!(
        (
            config.listen.tls_cert.as_ref(),
            config.listen.tls_key.as_ref()
        ),
        (None, None)
    );
    assert_eq!(config.admin.address, "127.0.0.1:9187");
    assert_eq!(
        (config.admin.token_env.as_ref(), config.admin.token.as_ref()),
        (None, None)
    );

    assert_eq!(config.users[0].auth, AuthMethod::ScramSha256);

    for upstream in &config.upstreams {
        assert_eq!(upstream.user, None);
        assert_eq!(upstream.password, None);
        assert_eq!(upstream.database, None);
        assert_eq!(upstream.tls, UpstreamTls::Disable);
        assert_eq!(upstream.ca_file, None);
        assert_eq!(upstream.connect_timeout_ms, 5000);
    }

    assert_eq!(config.routing.canary_percent, 0);
    assert_eq!(config.routing.sticky, Sticky::Session);
    assert_eq!(config.routing.cutover_timeout_ms, 5000);

    assert!(config.mirror.enabled);
    assert_eq!(config.mirror.queue_capacity, 1000);
    assert_eq!(config.mirror.journal_dir, base.join("journal"));
    assert!(config.mirror.read_only_functions.is_empty());

    let expected_shadow = ShadowReads {
        percent: 0,
        seed: None,
        recheck_after_ms: 500,
        statement_timeout_ms: 5000,
        max_rows: 10_000,
        ignore_columns: vec![],
        float_tolerance: 0.0,
        mismatch_log: base.join("mismatches.jsonl"),
        log_parameters: false,
    };
    assert_eq!(config.shadow_reads, expected_shadow);
    assert_eq!(
        config.guard,
        Guard {
            enabled: false,
            max_error_rate: 0.05,
            min_statements: 100,
            window_s: 60
        }
    );
    assert_eq!(
        config.limits,
        Limits {
            max_clients: 1000,
            max_message_bytes: 64 * 1024 * 1024,
            startup_timeout_ms: 10_000
        }
    );
    assert_eq!(
        config.logging,
        Logging {
            format: LogFormat::Human,
            level: "info".into(),
            log_parameters: false
        }
    );
    assert_eq!(config.source, None);
}

#[test]
fn the_default_impls_agree_with_what_an_empty_section_gives() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.guard, Guard::default());
    assert_eq!(config.limits, Limits::default());
    assert_eq!(config.logging, Logging::default());
    assert_eq!(config.listen, switchyard_config::Listen::default());
    assert_eq!(config.admin, switchyard_config::Admin::default());
}

#[test]
fn an_upstream_without_a_port_uses_5432_like_libpq() {
    let text = super::minimal_replacing("port = 5432", "database = \"app_v2\"");
    let config = parse(&text).unwrap();
    assert_eq!(config.upstream("blue").unwrap().port, 5432);
}

#[test]
fn a_trust_user_needs_no_password() {
    let text = super::minimal_replacing("password =", "auth = \"trust\"");
    let config = parse(&text).unwrap();
    assert_eq!(config.users[0].auth, AuthMethod::Trust);
    assert_eq!(config.users[0].secret, None);
}

#[test]
fn float_keys_accept_integers() {
    let text = super::minimal_with("[guard]", "max_error_rate = 1");
    assert_eq!(parse(&text).unwrap().guard.max_error_rate, 1.0);
}

#[test]
fn every_documented_enum_spelling_is_accepted() {
    let cases = [
        ("[routing]", "sticky = \"client_addr\""),
        ("[routing]", "sticky = \"user\""),
        ("[routing]", "sticky = \"application_name\""),
        ("[logging]", "format = \"json\""),
        ("[upstreams.green]", "tls = \"prefer\""),
        ("[upstreams.green]", "tls = \"require\""),
        ("[[users]]", "auth = \"md5\""),
    ];
    for (header, line) in cases {
        let text = super::minimal_with(header, line);
        parse(&text).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    let config = parse(&super::minimal_with(
        "[upstreams.green]",
        "tls = \"verify-full\"\nca_file = \"ca.crt\"",
    ))
    .unwrap();
    assert_eq!(
        config.upstream("green").unwrap().tls,
        UpstreamTls::VerifyFull
    );
    assert_eq!(
        config.upstream("green").unwrap().ca_file.as_deref(),
        Some(Path::new("/etc/switchyard/ca.crt"))
    );
}

#[test]
fn listen_addresses_accept_ipv6_and_port_zero() {
    let text = super::minimal_with("[listen]", "address = \"[::1]:0\"");
    assert_eq!(parse(&text).unwrap().listen.address, "[::1]:0");
}
