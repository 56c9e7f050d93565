//! Tests of the configuration: defaults, TOML, environment overrides,
//! validation.

use super::*;

#[test]
fn default_round_trips_through_toml() {
    let text = Config::default_toml();
    let parsed: Config = toml::from_str(&text).unwrap();
    assert_eq!(parsed, Config::default());
    parsed.validate().unwrap();
}

#[test]
fn env_overrides_and_typed_errors() {
    let mut c = Config::default();
    c.apply_env(|k| match k {
        "TERN_SERVER_LISTEN" => Some("127.0.0.1:0".into()),
        "TERN_TIMERS_HEARTBEAT" => Some("5s".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(c.server.listen.port(), 0);
    assert_eq!(c.timers.heartbeat, Duration::from_secs(5));
    let err = c.apply_env(|k| (k == "TERN_LIMITS_MAX_SESSIONS").then(|| "many".into()));
    assert!(matches!(err, Err(ConfigError::Env { .. })));
}

#[test]
fn quic_section_env_and_validation() {
    let mut c = Config::default();
    assert_eq!(
        c.quic_listen(),
        Some("127.0.0.1:7401".parse().unwrap()),
        "QUIC is on by default, on the port after raw UDP's"
    );
    c.apply_env(|k| match k {
        "TERN_QUIC_LISTEN" => Some("127.0.0.1:9401".into()),
        "TERN_QUIC_CERT_FILE" => Some("/etc/tern/cert.pem".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(c.quic_listen(), Some("127.0.0.1:9401".parse().unwrap()));
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("key_file"), "{e}");
    c.quic.key_file = "/etc/tern/key.pem".into();
    c.validate().unwrap();
    assert_eq!(c.quic_cert_paths().1, PathBuf::from("/etc/tern/key.pem"));
    c.quic.listen = QuicListen::At(c.server.listen);
    assert!(c.validate().unwrap_err().to_string().contains("listen"));
    for off in ["", "off"] {
        c.apply_env(|k| (k == "TERN_QUIC_LISTEN").then(|| off.to_string()))
            .unwrap();
        assert_eq!(c.quic_listen(), None);
    }
    c.quic.listen = QuicListen::Next;
    c.server.listen = "127.0.0.1:65535".parse().unwrap();
    assert!(c.validate().unwrap_err().to_string().contains("next"));
    let parsed: Config =
        toml::from_str("[quic]\nlisten = \"[::1]:0\"\n").expect("quic section parses");
    assert_eq!(
        parsed.quic.listen,
        QuicListen::At("[::1]:0".parse().unwrap())
    );
    assert_eq!(
        parsed.quic_cert_paths().0,
        PathBuf::from("tern-data/quic-cert.pem")
    );
    let off: Config = toml::from_str("[quic]\nlisten = \"off\"\n").unwrap();
    assert_eq!(off.quic_listen(), None);
}

#[test]
fn generated_config_lists_every_limit() {
    let text = Config::default_toml();
    for key in [
        "stateless_reply_rate",
        "listen = \"next\"",
        "policy = \"required\"",
    ] {
        assert!(text.contains(key), "{key} missing from:\n{text}");
    }
    let mut c = Config::default();
    c.apply_env(|k| (k == "TERN_LIMITS_STATELESS_REPLY_RATE").then(|| "250".into()))
        .unwrap();
    assert_eq!(c.limits.stateless_reply_rate, 250.0);
    c.limits.stateless_reply_rate = 0.0;
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("stateless_reply_rate"));
}

#[test]
fn validation_names_the_key() {
    let mut c = Config::default();
    c.timers.idle_timeout = Duration::from_secs(1);
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("idle_timeout"), "{e}");
    let unknown = toml::from_str::<Config>("[server]\nlisten = \"127.0.0.1:1\"\nbogus = 1\n");
    assert!(unknown.is_err());
}

#[test]
fn checkpoint_and_receipt_delays_are_bounded_durations() {
    let mut c = Config::default();
    assert_eq!(c.server.checkpoint_delay, Duration::from_secs(1));
    c.apply_env(|k| (k == "TERN_SERVER_CHECKPOINT_DELAY").then(|| "0s".into()))
        .unwrap();
    assert_eq!(c.server.checkpoint_delay, Duration::ZERO);
    c.validate().unwrap();
    c.server.checkpoint_delay = Duration::from_secs(61);
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("checkpoint_delay"), "{e}");
    assert!(Config::default_toml().contains("checkpoint_delay = \"1s\""));
    c.server.checkpoint_delay = Duration::ZERO;
    c.apply_env(|k| (k == "TERN_SERVER_RECEIPT_DELAY").then(|| "2s".into()))
        .unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("receipt_delay"), "{e}");
}

#[test]
fn redundant_sends_can_be_tuned_or_turned_off() {
    let mut c = Config::default();
    assert_eq!(c.timers.redundant_sends_at, 0.02);
    c.apply_env(|k| (k == "TERN_TIMERS_REDUNDANT_SENDS_AT").then(|| "0".into()))
        .unwrap();
    assert_eq!(c.timers.redundant_sends_at, 0.0);
    c.validate().unwrap();
    assert_eq!(
        crate::server::broker_config(&c).downlink.redundant_sends_at,
        0.0,
        "the broker's downlink gets it"
    );
    c.timers.redundant_sends_at = 0.9;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("redundant_sends_at"), "{e}");
}

#[test]
fn the_wal_folder_is_optional_set_by_toml_or_env_and_never_empty() {
    assert_eq!(Config::default().server.wal_dir, None);
    assert!(Config::default_toml().contains("wal_dir"));
    let c: Config = toml::from_str("[server]\nwal_dir = \"/disk2/wal\"\n").unwrap();
    assert_eq!(c.server.wal_dir.as_deref(), Some(Path::new("/disk2/wal")));
    let mut c = Config::default();
    c.apply_env(|k| (k == "TERN_SERVER_WAL_DIR").then(|| "/disk3/wal".into()))
        .unwrap();
    assert_eq!(c.server.wal_dir.as_deref(), Some(Path::new("/disk3/wal")));
    c.server.wal_dir = Some(PathBuf::new());
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("wal_dir"), "{e}");
}
