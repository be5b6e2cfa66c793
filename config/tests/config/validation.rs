//! Every validation rule rejects the config with an error that names the key, shows the
//! value and says what was expected.

use switchyard_config::ConfigError;

use super::{assert_names, minimal_replacing, minimal_with, parse, rejected, MINIMAL};

#[test]
fn a_primary_that_is_not_an_upstream_is_rejected_with_the_names_of_both() {
    let err = rejected(&minimal_replacing("primary =", "primary = \"purple\""));
    assert_eq!(
        err.to_string(),
        "routing.primary = \"purple\": expected the name of an upstream (blue or green)"
    );
    assert_eq!(err.key(), Some("routing.primary"));
}

#[test]
fn a_missing_primary_is_rejected_even_without_a_routing_table() {
    let err = rejected(&minimal_replacing("[routing]", "").replace("primary = \"blue\"", ""));
    assert_eq!(
        err,
        ConfigError::Missing {
            key: "routing.primary".into(),
            expected: "the name of an upstream (blue or green)".into(),
        }
    );
    assert_eq!(
        err.to_string(),
        "routing.primary is missing: expected the name of an upstream (blue or green)"
    );
}

#[test]
fn out_of_range_numbers_are_rejected_with_key_value_and_range() {
    // (table, line, key, shown value, words of the expectation)
    let cases = [
        (
            "[routing]",
            "canary_percent = 101",
            "routing.canary_percent",
            "101",
            "from 0 to 100",
        ),
        (
            "[routing]",
            "canary_percent = -1",
            "routing.canary_percent",
            "-1",
            "from 0 to 100",
        ),
        (
            "[routing]",
            "cutover_timeout_ms = 0",
            "routing.cutover_timeout_ms",
            "0",
            "positive integer (milliseconds)",
        ),
        (
            "[upstreams.green]",
            "connect_timeout_ms = 0",
            "upstreams.green.connect_timeout_ms",
            "0",
            "positive",
        ),
        (
            "[mirror]",
            "queue_capacity = 0",
            "mirror.queue_capacity",
            "0",
            "positive",
        ),
        (
            "[shadow_reads]",
            "percent = 150",
            "shadow_reads.percent",
            "150",
            "from 0 to 100",
        ),
        (
            "[shadow_reads]",
            "recheck_after_ms = -5",
            "shadow_reads.recheck_after_ms",
            "-5",
            "non-negative",
        ),
        (
            "[shadow_reads]",
            "statement_timeout_ms = 0",
            "shadow_reads.statement_timeout_ms",
            "0",
            "positive",
        ),
        (
            "[shadow_reads]",
            "max_rows = 0",
            "shadow_reads.max_rows",
            "0",
            "positive",
        ),
        (
            "[shadow_reads]",
            "seed = -1",
            "shadow_reads.seed",
            "-1",
            "non-negative",
        ),
        (
            "[shadow_reads]",
            "float_tolerance = -0.5",
            "shadow_reads.float_tolerance",
            "-0.5",
            "non-negative",
        ),
        (
            "[shadow_reads]",
            "float_tolerance = nan",
            "shadow_reads.float_tolerance",
            "NaN",
            "finite",
        ),
        (
            "[shadow_reads]",
            "float_tolerance = inf",
            "shadow_reads.float_tolerance",
            "inf",
            "finite",
        ),
        (
            "[guard]",
            "max_error_rate = 1.5",
            "guard.max_error_rate",
            "1.5",
            "between 0 and 1",
        ),
        (
            "[guard]",
            "max_error_rate = -0.1",
            "guard.max_error_rate",
            "-0.1",
            "between 0 and 1",
        ),
        (
            "[guard]",
            "min_statements = -1",
            "guard.min_statements",
            "-1",
            "non-negative",
        ),
        (
            "[guard]",
            "window_s = 0",
            "guard.window_s",
            "0",
            "positive integer (seconds)",
        ),
        (
            "[listen]",
            "threads = 1025",
            "listen.threads",
            "1025",
            "from 1 to 1024, or 0 for one per CPU core",
        ),
        (
            "[listen]",
            "threads = -1",
            "listen.threads",
            "-1",
            "from 1 to 1024",
        ),
        (
            "[limits]",
            "max_clients = 0",
            "limits.max_clients",
            "0",
            "positive",
        ),
        (
            "[limits]",
            "max_message_bytes = 1023",
            "limits.max_message_bytes",
            "1023",
            "from 1024 to 1073741824",
        ),
        (
            "[limits]",
            "max_message_bytes = 1073741825",
            "limits.max_message_bytes",
            "1073741825",
            "1 GiB",
        ),
        (
            "[limits]",
            "startup_timeout_ms = 0",
            "limits.startup_timeout_ms",
            "0",
            "positive",
        ),
    ];
    for (header, line, key, value, expected) in cases {
        let err = rejected(&minimal_with(header, line));
        assert_names(&err, key, &format!("= {value}"), expected);
    }
}

#[test]
fn range_bounds_themselves_are_accepted() {
    let cases = [
        ("[routing]", "canary_percent = 100"),
        ("[routing]", "canary_percent = 0"),
        ("[shadow_reads]", "percent = 100"),
        ("[shadow_reads]", "recheck_after_ms = 0"),
        ("[guard]", "max_error_rate = 0.0"),
        ("[guard]", "max_error_rate = 1.0"),
        ("[guard]", "min_statements = 0"),
        ("[limits]", "max_message_bytes = 1024"),
        ("[limits]", "max_message_bytes = 1073741824"),
    ];
    for (header, line) in cases {
        parse(&minimal_with(header, line)).unwrap_or_else(|e| panic!("{line} was rejected: {e}"));
    }
    for port in ["1", "65535"] {
        parse(&MINIMAL.replace("port = 5433", &format!("port = {port}"))).unwrap();
    }
}

#[test]
fn ports_outside_1_to_65535_are_rejected() {
    for port in ["0", "65536", "70000", "-1"] {
        let text = MINIMAL.replace("port = 5433", &format!("port = {port}"));
        let err = rejected(&text);
        assert_names(
            &err,
            "upstreams.green.port",
            &format!("= {port}"),
            "a TCP port, an integer from 1 to 65535",
        );
    }
}

#[test]
fn addresses_that_are_not_ip_and_port_are_rejected() {
    for (header, key) in [("[listen]", "listen.address"), ("[admin]", "admin.address")] {
        for bad in ["localhost:6432", "127.0.0.1", "127.0.0.1:99999", ""] {
            let err = rejected(&minimal_with(header, &format!("address = \"{bad}\"")));
            assert_names(&err, key, &format!("\"{bad}\""), "an IP address and port");
        }
    }
}

#[test]
fn admin_and_listen_on_the_same_port_are_rejected() {
    for (listen, admin) in [
        ("127.0.0.1:7000", "127.0.0.1:7000"),
        ("0.0.0.0:7000", "127.0.0.1:7000"),
        ("127.0.0.1:7000", "[::]:7000"),
    ] {
        let text = format!(
            "{MINIMAL}\n[listen]\naddress = \"{listen}\"\n[admin]\naddress = \"{admin}\"\n"
        );
        let err = rejected(&text);
        assert_names(
            &err,
            "admin.address",
            admin,
            "an address other than listen.address",
        );
    }
    // Different interfaces may share a port number, and port 0 is always unique.
    for (listen, admin) in [
        ("127.0.0.1:7000", "127.0.0.2:7000"),
        ("127.0.0.1:0", "127.0.0.1:0"),
        ("0.0.0.0:7000", "[::1]:7000"),
    ] {
        let text = format!(
            "{MINIMAL}\n[listen]\naddress = \"{listen}\"\n[admin]\naddress = \"{admin}\"\n"
        );
        parse(&text).unwrap_or_else(|e| panic!("{listen} / {admin}: {e}"));
    }
}

#[test]
fn listen_tls_allow_or_require_without_certificate_and_key_is_rejected() {
    for mode in ["allow", "require"] {
        let err = rejected(&minimal_with("[listen]", &format!("tls = \"{mode}\"")));
        assert_names(
            &err,
            "listen.tls_cert",
            "is missing",
            &format!("listen.tls = \"{mode}\""),
        );
    }
    let err = rejected(&minimal_with(
        "[listen]",
        "tls = \"require\"\ntls_cert = \"server.crt\"",
    ));
    assert_names(&err, "listen.tls_key", "is missing", "private key");
    let err = rejected(&minimal_with("[listen]", "tls_key = \"server.key\""));
    assert_names(&err, "listen.tls_cert", "is missing", "certificate");
}

#[test]
fn a_config_without_users_is_rejected() {
    let text = MINIMAL.replace("[[users]]\nname = \"app\"\npassword = \"app-secret\"\n", "");
    let err = rejected(&text);
    assert_names(&err, "users", "is missing", "at least one [[users]] entry");
}

#[test]
fn duplicate_user_names_are_rejected_naming_both_entries() {
    let text = format!("{MINIMAL}\n[[users]]\nname = \"report\"\npassword = \"r\"\n[[users]]\nname = \"app\"\npassword = \"x\"\n");
    let err = rejected(&text);
    assert_names(
        &err,
        "users[2].name",
        "\"app\"",
        "a name not already used by users[0]",
    );
}

#[test]
fn empty_or_overlong_user_names_are_rejected() {
    let too_long = "a".repeat(64);
    for name in ["", too_long.as_str()] {
        let err = rejected(&minimal_replacing(
            "name = \"app\"",
            &format!("name = \"{name}\""),
        ));
        assert_names(
            &err,
            "users[0].name",
            &format!("\"{name}\""),
            "a role name of 1 to 63 bytes",
        );
    }
    parse(&minimal_replacing(
        "name = \"app\"",
        &format!("name = \"{}\"", "a".repeat(63)),
    ))
    .unwrap();
}

#[test]
fn a_user_without_a_name_is_rejected() {
    let err = rejected(&minimal_replacing("name = \"app\"", ""));
    assert_names(&err, "users[0].name", "is missing", "role name");
}

#[test]
fn a_password_user_without_any_secret_is_rejected_naming_the_auth_method() {
    for (auth, line) in [("scram-sha-256", ""), ("md5", "auth = \"md5\"")] {
        let err = rejected(&minimal_replacing("password =", line));
        assert_names(
            &err,
            "users[0].password",
            "is missing",
            &format!("a secret for auth = \"{auth}\""),
        );
    }
}

#[test]
fn two_secret_sources_for_one_user_are_rejected() {
    let err = rejected(&minimal_with(
        "[[users]]",
        "password_env = \"APP_PASSWORD\"",
    ));
    assert_eq!(err.key(), Some("users[0].password"));
    assert_eq!(
        err.to_string(),
        "users[0].password and users[0].password_env are both set: expected exactly one of \
         password, password_env, password_file or scram per user"
    );
}

#[test]
fn two_password_sources_for_one_upstream_are_rejected() {
    let err = rejected(&minimal_with(
        "[upstreams.green]",
        "password = \"a\"\npassword_file = \"pw\"",
    ));
    assert_names(
        &err,
        "upstreams.green.password",
        "upstreams.green.password_file are both set",
        "at most one",
    );
}

#[test]
fn an_empty_password_is_rejected() {
    let err = rejected(&minimal_replacing("password =", "password = \"\""));
    assert_names(&err, "users[0].password", "\"\"", "a non-empty password");
}

#[test]
fn a_scram_verifier_with_md5_auth_is_rejected_because_md5_needs_the_password() {
    let text = minimal_replacing(
        "password =",
        &format!("scram = \"{}\"\nauth = \"md5\"", super::secrets::VERIFIER),
    );
    let err = rejected(&text);
    assert_names(
        &err,
        "users[0].auth",
        "\"md5\"",
        "md5 needs the plain password",
    );
}

#[test]
fn a_malformed_scram_verifier_is_rejected_without_showing_it() {
    let bad = "SCRAM-SHA-256$4096:c2FsdA==$notakey:notakey";
    let err = rejected(&minimal_replacing(
        "password =",
        &format!("scram = \"{bad}\""),
    ));
    assert_names(
        &err,
        "users[0].scram",
        "<redacted>",
        "StoredKey is not base64 of 32 bytes",
    );
    assert!(!err.to_string().contains("notakey"), "{err}");
}

#[test]
fn a_config_with_one_or_three_upstreams_is_rejected_naming_them() {
    let one = MINIMAL.replace("[upstreams.green]\nhost = \"127.0.0.1\"\nport = 5433\n", "");
    assert_names(
        &rejected(&one),
        "upstreams",
        "upstreams = 1 upstream (blue)",
        "exactly two upstreams",
    );
    let three = format!("{MINIMAL}\n[upstreams.red]\nhost = \"10.0.0.3\"\n");
    assert_names(
        &rejected(&three),
        "upstreams",
        "upstreams = 3 upstreams (blue, green, red)",
        "exactly two upstreams",
    );
}

#[test]
fn an_upstream_without_a_host_is_rejected() {
    let err = rejected(&MINIMAL.replacen("host = \"127.0.0.1\"\nport = 5433", "port = 5433", 1));
    assert_names(
        &err,
        "upstreams.green.host",
        "is missing",
        "host name or IP address",
    );
}

#[test]
fn an_upstream_name_unfit_for_metrics_and_urls_is_rejected() {
    let text = MINIMAL.replace("[upstreams.green]", "[upstreams.\"green db\"]");
    let err = rejected(&text);
    assert_names(
        &err,
        "upstreams.\"green db\"",
        "\"green db\"",
        "letters, digits, '_' or '-'",
    );
}

#[test]
fn verify_full_without_a_ca_file_is_rejected_saying_a_ca_file_is_required() {
    let err = rejected(&minimal_with("[upstreams.green]", "tls = \"verify-full\""));
    assert_names(
        &err,
        "upstreams.green.ca_file",
        "is missing",
        "because upstreams.green.tls = \"verify-full\"",
    );
}

#[test]
fn two_upstreams_that_are_the_same_database_are_rejected() {
    let text = MINIMAL.replace("port = 5433", "port = 5432");
    let err = rejected(&text);
    assert_names(
        &err,
        "upstreams.green",
        "\"127.0.0.1:5432\"",
        "a different server or database than upstreams.blue",
    );
    // The same server with different databases is a legitimate migration.
    parse(
        &minimal_with("[upstreams.green]", "database = \"app_v2\"")
            .replace("port = 5433", "port = 5432"),
    )
    .unwrap();
}

#[test]
fn empty_upstream_user_or_database_is_rejected() {
    for key in ["user", "database"] {
        let err = rejected(&minimal_with("[upstreams.blue]", &format!("{key} = \"\"")));
        assert_names(
            &err,
            &format!("upstreams.blue.{key}"),
            "\"\"",
            "remove the key to use the client's",
        );
    }
}

#[test]
fn malformed_list_entries_are_rejected_with_their_index() {
    let err = rejected(&minimal_with(
        "[mirror]",
        "read_only_functions = [\"pricing.quote\", \"now()\"]",
    ));
    assert_names(
        &err,
        "mirror.read_only_functions[1]",
        "\"now()\"",
        "a function name",
    );
    let err = rejected(&minimal_with(
        "[shadow_reads]",
        "ignore_columns = [\"*.updated_at\", \"a..b\"]",
    ));
    assert_names(
        &err,
        "shadow_reads.ignore_columns[1]",
        "\"a..b\"",
        "\"table.column\"",
    );
    parse(&minimal_with(
        "[shadow_reads]",
        "ignore_columns = [\"updated_at\", \"*.updated_at\", \"public.orders.*\"]",
    ))
    .unwrap();
}

#[test]
fn an_empty_log_level_is_rejected() {
    let err = rejected(&minimal_with("[logging]", "level = \"\""));
    assert_names(&err, "logging.level", "\"\"", "a tracing filter");
}

#[test]
fn an_unknown_enum_value_is_rejected_with_the_accepted_values_and_line() {
    let text = minimal_with("[listen]", "tls = \"prefer\"");
    let err = rejected(&text);
    assert_eq!(err.key(), Some("listen.tls"));
    let message = err.to_string();
    let line = text.lines().position(|l| l.starts_with("tls =")).unwrap() + 1;
    assert!(
        message.starts_with(&format!("listen.tls (line {line}, column 7)")),
        "{message}"
    );
    assert!(
        message.contains("unknown value `prefer`, expected one of `disable`, `allow`, `require`"),
        "{message}"
    );

    let err = rejected(&minimal_with("[[users]]", "auth = \"password\""));
    assert_names(
        &err,
        "users[0].auth",
        "`password`",
        "`scram-sha-256`, `md5`, `trust`",
    );
}

#[test]
fn a_value_of_the_wrong_type_is_rejected_with_key_and_types() {
    let err = rejected(&MINIMAL.replace("port = 5433", "port = \"5433\""));
    assert_names(
        &err,
        "upstreams.green.port",
        "string \"5433\"",
        "expected an integer",
    );
    let err = rejected(&minimal_with("[mirror]", "enabled = \"yes\""));
    assert_names(&err, "mirror.enabled", "\"yes\"", "a boolean");
}

#[test]
fn a_config_without_upstreams_is_rejected() {
    let text = super::MINIMAL
        .split("[upstreams.blue]")
        .next()
        .unwrap()
        .to_owned()
        + "[routing]\nprimary = \"blue\"\n";
    let err = rejected(&text);
    assert_names(&err, "upstreams", "is missing", "exactly two upstreams");
}

#[test]
fn a_section_that_is_not_a_table_is_rejected_in_toml_terms() {
    let err = rejected(&format!("listen = 3\n{MINIMAL}"));
    assert_names(&err, "listen", "integer `3`", "expected a table");
    assert!(
        !err.to_string().contains("Raw"),
        "no Rust type names: {err}"
    );
}

#[test]
fn a_toml_syntax_error_keeps_its_line_and_column() {
    let err = rejected(&format!("{MINIMAL}\n[limits\n"));
    let message = err.to_string();
    let ConfigError::Parse {
        location: Some(at), ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(at.line, MINIMAL.lines().count() + 2, "{message}");
    assert!(
        message.starts_with(&format!("invalid TOML at line {}, column 8", at.line)),
        "{message}"
    );
}

#[test]
fn a_duplicate_key_is_a_syntax_error() {
    let err = rejected(&minimal_with("[routing]", "primary = \"green\""));
    assert!(err.to_string().contains("duplicate key"), "{err}");
}
