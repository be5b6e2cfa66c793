//! A reload can change routing, users and thresholds live, but not the sockets bound at
//! start-up.

use super::{minimal_with, parse, MINIMAL};

#[test]
fn changing_only_routing_requires_no_restart() {
    let old = parse(MINIMAL).unwrap();
    let new = parse(&MINIMAL.replace(
        "primary = \"blue\"",
        "primary = \"green\"\ncanary_percent = 30",
    ))
    .unwrap();
    assert_ne!(old.routing, new.routing);
    assert!(old.restart_required(&new).is_empty());
}

#[test]
fn changing_the_listen_address_requires_a_restart() {
    let old = parse(MINIMAL).unwrap();
    let new = parse(&minimal_with("[listen]", "address = \"0.0.0.0:6432\"")).unwrap();
    assert_eq!(old.restart_required(&new), ["listen.address"]);
}

#[test]
fn a_different_spelling_of_the_same_address_is_no_change() {
    let old = parse(MINIMAL).unwrap();
    let new = parse(&minimal_with("[listen]", "address = \"127.0.0.1:06432\"")).unwrap();
    assert!(old.restart_required(&new).is_empty());
}

#[test]
fn every_socket_bound_key_is_reported_in_a_fixed_order() {
    let old = parse(MINIMAL).unwrap();
    let text = format!(
        "{MINIMAL}\n[listen]\naddress = \"127.0.0.1:7432\"\ntls = \"require\"\ntls_cert = \"a.crt\"\n\
         tls_key = \"a.key\"\nthreads = 3\n[admin]\naddress = \"127.0.0.1:9999\"\n"
    );
    let new = parse(&text).unwrap();
    assert_eq!(
        old.restart_required(&new),
        [
            "listen.address",
            "listen.tls",
            "listen.tls_cert",
            "listen.tls_key",
            "listen.threads",
            "admin.address"
        ]
    );
    assert!(new.restart_required(&new).is_empty());
}
