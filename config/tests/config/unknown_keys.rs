//! A misspelt key silently ignored would leave a default in force that the operator believes
//! they changed (`canary_procent = 50` routing nobody), so unknown keys are errors at every
//! level, and the error says which key, where, and what was expected instead.

use switchyard_config::ConfigError;

use super::{minimal_with, rejected, MINIMAL};

/// Asserts that `err` is a parse error about `key`, naming the unknown key and the line.
#[track_caller]
fn assert_unknown(err: &ConfigError, key: &str, unknown: &str, line: usize) {
    let message = err.to_string();
    assert_eq!(err.key(), Some(key), "{message}");
    assert!(
        message.contains(&format!("unknown key `{unknown}`")),
        "{message}"
    );
    assert!(message.contains("expected"), "{message}");
    match err {
        ConfigError::Parse {
            location: Some(at), ..
        } => assert_eq!(at.line, line, "{message}"),
        other => panic!("expected a parse error with a location, got {other:?}"),
    }
    assert!(message.contains(&format!("line {line}")), "{message}");
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(needle))
        .expect("needle in text")
        + 1
}

#[test]
fn an_unknown_top_level_key_is_rejected_with_its_name_and_line() {
    let text = format!("canary_percent = 10\n{MINIMAL}");
    let err = rejected(&text);
    assert_unknown(&err, "canary_percent", "canary_percent", 1);
    assert!(
        err.to_string().contains("`routing`"),
        "lists the known sections: {err}"
    );
}

#[test]
fn an_unknown_top_level_table_is_rejected() {
    let text = format!("{MINIMAL}\n[mirrors]\nenabled = false\n");
    let err = rejected(&text);
    assert_unknown(&err, "mirrors", "mirrors", line_of(&text, "[mirrors]"));
}

#[test]
fn an_unknown_key_inside_listen_is_rejected() {
    let text = minimal_with("[listen]", "adress = \"0.0.0.0:6432\"");
    let err = rejected(&text);
    assert_unknown(&err, "listen.adress", "adress", line_of(&text, "adress"));
    assert!(
        err.to_string().contains("`address`"),
        "suggests the known keys: {err}"
    );
}

#[test]
fn an_unknown_key_inside_a_users_entry_is_rejected_with_the_entry_index() {
    let text = format!("{MINIMAL}\n[[users]]\nname = \"report\"\npasword = \"x\"\n");
    let err = rejected(&text);
    assert_unknown(
        &err,
        "users[1].pasword",
        "pasword",
        line_of(&text, "pasword"),
    );
}

#[test]
fn an_unknown_key_inside_an_upstream_table_is_rejected_with_the_upstream_name() {
    let text = minimal_with("[upstreams.blue]", "hostname = \"db1\"");
    let err = rejected(&text);
    assert_unknown(
        &err,
        "upstreams.blue.hostname",
        "hostname",
        line_of(&text, "hostname"),
    );
}

#[test]
fn an_unknown_key_inside_routing_is_rejected() {
    let text = minimal_with("[routing]", "canary_procent = 50");
    let err = rejected(&text);
    assert_unknown(
        &err,
        "routing.canary_procent",
        "canary_procent",
        line_of(&text, "canary_procent"),
    );
}

#[test]
fn an_unknown_key_inside_every_other_section_is_rejected() {
    for section in [
        "admin",
        "mirror",
        "shadow_reads",
        "guard",
        "limits",
        "logging",
    ] {
        let text = minimal_with(&format!("[{section}]"), "bogus_key = 1");
        let err = rejected(&text);
        assert_unknown(
            &err,
            &format!("{section}.bogus_key"),
            "bogus_key",
            line_of(&text, "bogus_key"),
        );
    }
}

#[test]
fn an_unknown_key_in_an_inline_upstream_table_is_rejected() {
    let text = MINIMAL.replace(
        "[upstreams.green]\nhost = \"127.0.0.1\"\nport = 5433",
        "[upstreams]\ngreen = { host = \"127.0.0.1\", port = 5433, sslmode = \"require\" }",
    );
    let err = rejected(&text);
    assert_unknown(
        &err,
        "upstreams.green.sslmode",
        "sslmode",
        line_of(&text, "green ="),
    );
}
