//! The routing function: stable buckets, a canary that only ever grows or shrinks, and a
//! share of sessions on the canary that matches the percentage.

use proptest::prelude::*;
use switchyard_config::{bucket, Config, Routing};

use super::{parse, MINIMAL};

fn config_with_canary(percent: u8) -> Config {
    let mut config = parse(MINIMAL).unwrap();
    config.routing.canary_percent = percent;
    config
}

fn on_canary(routing: &Routing, config: &Config, key: &str) -> bool {
    routing.primary_for_key(key, &config.upstreams) != routing.primary
}

#[test]
fn bucket_values_are_pinned_so_a_change_of_algorithm_breaks_this_test() {
    // Computed independently: int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % 100
    assert_eq!(bucket(""), 52);
    assert_eq!(bucket("a"), 50);
    assert_eq!(bucket("app"), 47);
    assert_eq!(bucket("10.0.0.1"), 58);
    assert_eq!(bucket("session-1"), 20);
    assert_eq!(bucket("billing-service"), 80);
}

#[test]
fn primary_for_sends_buckets_below_the_canary_percent_to_the_other_upstream() {
    let config = config_with_canary(30);
    let routing = &config.routing;
    assert_eq!(routing.primary_for(0, &config.upstreams), "green");
    assert_eq!(routing.primary_for(29, &config.upstreams), "green");
    assert_eq!(routing.primary_for(30, &config.upstreams), "blue");
    assert_eq!(routing.primary_for(99, &config.upstreams), "blue");
}

#[test]
fn canary_zero_keeps_everyone_on_primary_and_canary_hundred_moves_everyone() {
    let none = config_with_canary(0);
    let all = config_with_canary(100);
    for b in 0..100 {
        assert_eq!(none.routing.primary_for(b, &none.upstreams), "blue");
        assert_eq!(all.routing.primary_for(b, &all.upstreams), "green");
    }
}

#[test]
fn after_a_cutover_the_canary_points_back_at_the_old_primary() {
    let mut config = config_with_canary(100);
    config.routing.primary = "green".into();
    assert_eq!(config.routing.primary_for(0, &config.upstreams), "blue");
}

#[test]
fn a_ten_percent_canary_moves_about_a_tenth_of_client_addresses() {
    // 65_536 structured keys (10.0.x.y): a weak hash would cluster them. With p = 0.1 the
    // standard deviation of the share is sqrt(0.09 / 65536) ≈ 0.12 points; 1 point is > 8σ.
    let config = config_with_canary(10);
    let moved = (0..=255u32)
        .flat_map(|x| (0..=255u32).map(move |y| format!("10.0.{x}.{y}")))
        .filter(|key| on_canary(&config.routing, &config, key))
        .count();
    let share = moved as f64 * 100.0 / 65_536.0;
    assert!(
        (9.0..=11.0).contains(&share),
        "{share}% of client addresses on the canary"
    );
}

/// A small, fixed pseudo-random generator (splitmix64), so the keys of a proptest case are
/// a function of its seed alone.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn random_key(state: &mut u64) -> String {
    let len = 1 + (splitmix64(state) % 24) as usize;
    (0..len)
        .map(|_| char::from(b' ' + (splitmix64(state) % 95) as u8))
        .collect()
}

proptest! {
    #[test]
    fn bucket_is_always_below_100(key in ".*") {
        prop_assert!(bucket(&key) < 100);
    }

    #[test]
    fn raising_the_canary_never_moves_a_session_back_to_primary(key in ".*", p in 0u8..=100, q in 0u8..=100) {
        let (p, q) = (p.min(q), p.max(q));
        let low = config_with_canary(p);
        let high = config_with_canary(q);
        if on_canary(&low.routing, &low, &key) {
            prop_assert!(on_canary(&high.routing, &high, &key), "{key:?} on the canary at {p}% but not at {q}%");
        }
    }

    #[test]
    fn the_share_of_random_keys_on_the_canary_is_within_3_points_of_the_percentage(seed in any::<u64>(), p in 0u8..=100) {
        // 10_000 keys, each on the canary with probability p/100 if buckets are uniform:
        // the share's standard deviation is at most sqrt(0.25 / 10_000) = 0.5 points, so
        // 3 points is 6σ (a false failure about once in 5·10^8 cases). The modulo bias of
        // a 64-bit hash mod 100 is ~10^-18 and irrelevant.
        let config = config_with_canary(p);
        let mut state = seed;
        let moved = (0..10_000)
            .filter(|_| on_canary(&config.routing, &config, &random_key(&mut state)))
            .count();
        let share = moved as f64 / 100.0;
        prop_assert!((share - f64::from(p)).abs() <= 3.0, "{share}% on the canary at {p}%");
    }
}
