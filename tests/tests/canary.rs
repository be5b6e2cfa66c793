//! The canary share: `routing.canary_percent` of new sessions are answered by the other
//! upstream, chosen by a stable hash of the sticky key (`config::bucket`).

use switchyard_tests::{client, Switchyard, TwoDbs};

/// Which cluster answers a new session of `user` (trust auth keeps 1,000 logins quick).
fn served_by(sy: &Switchyard, user: &str, app: &str) -> String {
    client::psql(
        &format!("{} application_name={app}", sy.connstr(user, "", "app")),
        "select inet_server_port()",
    )
    .expect("a session through switchyard")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ten_percent_canary_answers_about_a_tenth_of_1000_sessions() {
    let dbs = TwoDbs::start();
    let mut doc = dbs.config();
    doc["routing"]["canary_percent"] = toml_edit::value(10);
    let sy = Switchyard::start(&doc.to_string());
    let green = dbs.green.port() as i32;
    let mut on_canary = 0;
    for _ in 0..1000 {
        let c = client::connect(&sy.connstr("trustuser", "", "app")).await;
        let port: i32 = c
            .query_one("select inet_server_port()", &[])
            .await
            .unwrap()
            .get(0);
        if port == green {
            on_canary += 1;
        }
    }
    // Binomial(1000, 0.1): sd ≈ 9.5; 55..=145 is beyond 4.5 sd either way.
    assert!(
        (55..=145).contains(&on_canary),
        "{on_canary} of 1000 sessions on the canary"
    );
}

#[test]
fn sticky_user_and_application_name_keep_a_reconnecting_client_on_its_side() {
    let dbs = TwoDbs::start();
    let (blue, green) = (dbs.blue.port().to_string(), dbs.green.port().to_string());
    for sticky in ["user", "application_name"] {
        let mut doc = dbs.config();
        doc["routing"]["canary_percent"] = toml_edit::value(50);
        doc["routing"]["sticky"] = toml_edit::value(sticky);
        let sy = Switchyard::start(&doc.to_string());
        let mut sides = std::collections::HashSet::new();
        for app in [
            "billing", "search", "checkout", "reports", "mailer", "audit",
        ] {
            let first = served_by(&sy, "trustuser", app);
            for _ in 0..4 {
                assert_eq!(
                    served_by(&sy, "trustuser", app),
                    first,
                    "{sticky}: {app} moved between reconnects"
                );
            }
            sides.insert(first);
        }
        if sticky == "user" {
            assert_eq!(sides.len(), 1, "one user, one side");
        } else {
            // Six keys at 50%: both sides are used unless the hash is badly skewed.
            assert!(sides.contains(&blue) && sides.contains(&green), "{sides:?}");
        }
    }
}
