use std::path::{Path, PathBuf};

use switchyard_config::{AuthMethod, Config, ListenTls, Sticky, UpstreamTls, UserSecret};

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/switchyard.toml")
}

#[test]
fn the_documented_example_config_loads_with_the_values_it_shows() {
    let config = Config::load(&example_path()).expect("the DESIGN.md example must load");
    let dir = example_path().parent().unwrap().to_path_buf();

    assert_eq!(config.listen.address, "127.0.0.1:6432");
    assert_eq!(config.listen.tls, ListenTls::Disable);
    assert_eq!(config.admin.address, "127.0.0.1:9187");
    assert_eq!(config.admin.token, None);

    assert_eq!(config.users.len(), 1);
    assert_eq!(config.users[0].name, "app");
    assert_eq!(config.users[0].auth, AuthMethod::ScramSha256);
    assert_eq!(
        config.users[0].secret,
        Some(UserSecret::Password("app-secret".into()))
    );

    assert_eq!(config.upstreams.names(), ["blue", "green"]);
    let green = config.upstream("green").unwrap();
    assert_eq!((green.host.as_str(), green.port), ("127.0.0.1", 5433));
    assert_eq!(green.tls, UpstreamTls::Disable);

    assert_eq!(config.routing.primary, "blue");
    assert_eq!(config.routing.canary_percent, 0);
    assert_eq!(config.routing.sticky, Sticky::Session);
    assert_eq!(config.routing.cutover_timeout_ms, 5000);

    assert!(config.mirror.enabled);
    assert_eq!(config.mirror.queue_capacity, 1000);
    assert_eq!(config.mirror.journal_dir, dir.join("journal"));

    assert_eq!(config.shadow_reads.percent, 10);
    assert_eq!(config.shadow_reads.recheck_after_ms, 500);
    assert!(config.shadow_reads.ignore_columns.is_empty());
    assert_eq!(config.shadow_reads.float_tolerance, 0.0);
    assert_eq!(
        config.shadow_reads.mismatch_log,
        dir.join("mismatches.jsonl")
    );

    assert!(!config.guard.enabled);
    assert_eq!(config.guard.max_error_rate, 0.05);
    assert_eq!(config.guard.min_statements, 100);
    assert_eq!(config.guard.window_s, 60);

    assert_eq!(config.limits.max_clients, 1000);
    assert_eq!(config.limits.max_message_bytes, 67_108_864);
    assert_eq!(config.limits.startup_timeout_ms, 10_000);

    assert!(config.source.as_deref().is_some_and(Path::is_absolute));
    assert_eq!(config.source.as_deref(), Some(example_path().as_path()));
}

#[test]
fn relative_paths_are_resolved_against_the_config_files_directory_not_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.pw"), "from-file\n").unwrap();
    let text = format!(
        "{}\n[listen]\ntls = \"require\"\ntls_cert = \"tls/server.crt\"\ntls_key = \"tls/server.key\"\n",
        super::minimal_replacing("password =", "password_file = \"app.pw\"")
    );
    let path = dir.path().join("switchyard.toml");
    std::fs::write(&path, text).unwrap();

    let config = Config::load(&path).unwrap();
    assert_eq!(
        config.listen.tls_cert,
        Some(dir.path().join("tls/server.crt"))
    );
    assert_eq!(
        config.listen.tls_key,
        Some(dir.path().join("tls/server.key"))
    );
    assert_eq!(config.mirror.journal_dir, dir.path().join("journal"));
    assert_eq!(
        config.users[0].secret,
        Some(UserSecret::Password("from-file".into()))
    );
}

#[test]
fn absolute_paths_are_kept_as_written() {
    let text = super::minimal_with("[mirror]", "journal_dir = \"/var/lib/switchyard/journal\"");
    let config = super::parse(&text).unwrap();
    assert_eq!(
        config.mirror.journal_dir,
        Path::new("/var/lib/switchyard/journal")
    );
}

#[test]
fn a_missing_config_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let err = Config::load(&path).unwrap_err();
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("No such file"), "{message}");
}

#[test]
fn upstreams_keep_the_order_of_the_file_not_alphabetical_order() {
    let text = super::MINIMAL
        .replace("[upstreams.blue]", "[upstreams.TMP]")
        .replace("[upstreams.green]", "[upstreams.blue]")
        .replace("[upstreams.TMP]", "[upstreams.green]");
    let config = super::parse(&text).unwrap();
    assert_eq!(config.upstreams.names(), ["green", "blue"]);
    assert_eq!(config.upstream("green").unwrap().port, 5432);
    let names: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["green", "blue"]);
}

#[test]
fn lookups_find_users_and_upstreams_by_exact_name_and_the_other_upstream() {
    let config = super::parse(super::MINIMAL).unwrap();
    assert_eq!(config.user("app").map(|u| u.name.as_str()), Some("app"));
    assert!(
        config.user("App").is_none(),
        "role names are case-sensitive"
    );
    assert!(config.user("nobody").is_none());
    assert_eq!(config.upstream("green").map(|u| u.port), Some(5433));
    assert!(config.upstream("purple").is_none());
    assert_eq!(config.other_upstream("blue"), "green");
    assert_eq!(config.other_upstream("green"), "blue");
    assert_eq!(config.upstreams.position("green"), Some(1));
}
