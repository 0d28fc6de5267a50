//! Settings, layered: built-in defaults → config file → `SHUXIANG_*`
//! environment variables → command-line flags. Every key is documented in
//! docs/configuration.md and shown in shuxiang.example.toml; a test keeps
//! the three in step.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory for the embedded SQLite database and other local state.
    pub data_dir: PathBuf,
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// `postgres://...` to run on PostgreSQL; empty for SQLite in `data_dir`.
    pub database: String,
    /// Hours a sign-in lasts.
    pub session_ttl_hours: i64,
    /// Mark cookies Secure (serve behind HTTPS).
    pub secure_cookies: bool,
    /// Take client addresses from X-Forwarded-For (only behind your own proxy).
    pub trust_forwarded_for: bool,
    /// Longest a node reuses a token's or region's lookup (0: no cache);
    /// changes anywhere are noticed within a second regardless.
    pub cache_ttl_seconds: u64,
    /// Origin line of the trace log's checkpoints; also the name of a
    /// signing key generated on first start.
    pub trace_log_origin: String,
    /// Seconds between attempts to sign a checkpoint of the trace log (one
    /// is only stored when the log grew); 0 disables publishing on this node.
    pub trace_checkpoint_interval_seconds: u64,
    /// Address of the embedded MQTT endpoint for devices (v3.1.1 and v5).
    pub mqtt_listen: SocketAddr,
    /// `mqtt://host:port` of an external broker cluster: the node then
    /// consumes devices' telemetry with a shared subscription instead of
    /// listening itself. Empty: the embedded endpoint.
    pub mqtt_broker: String,
    /// Shared-subscription group of the nodes consuming one broker.
    pub mqtt_share_group: String,
    /// Days raw telemetry points are kept (0: for ever).
    pub telemetry_raw_days: u32,
    /// Days 1-minute roll-ups are kept (0: for ever).
    pub telemetry_minute_days: u32,
    /// Days hourly roll-ups are kept (0: for ever).
    pub telemetry_hour_days: u32,
    /// Days daily roll-ups are kept (0: for ever).
    pub telemetry_day_days: u32,
    /// Seconds between compaction, roll-up and retention runs; 0 disables
    /// them on this node.
    pub telemetry_maintenance_interval_seconds: u64,
    /// Log filter, e.g. `info` or `shuxiang_web=debug,info`.
    pub log: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./shuxiang-data"),
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            database: String::new(),
            session_ttl_hours: 12,
            secure_cookies: false,
            trust_forwarded_for: false,
            cache_ttl_seconds: 60,
            trace_log_origin: "shuxiang.local/trace".into(),
            trace_checkpoint_interval_seconds: 10,
            mqtt_listen: "127.0.0.1:1883".parse().expect("valid default address"),
            mqtt_broker: String::new(),
            mqtt_share_group: "shuxiang".into(),
            telemetry_raw_days: 365,
            telemetry_minute_days: 365,
            telemetry_hour_days: 5 * 365,
            telemetry_day_days: 0,
            telemetry_maintenance_interval_seconds: 60,
            log: "info".into(),
        }
    }
}

/// The setting names, read off the defaults so the list cannot fall behind.
fn setting_keys() -> Vec<String> {
    toml::Table::try_from(Config::default())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt_listen: Option<SocketAddr>,
}

pub fn load(file: Option<&std::path::Path>, flags: &Overrides) -> Result<Config, figment::Error> {
    let mut fig = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = file {
        fig = fig.merge(Toml::file_exact(path));
    }
    // Only variables naming a setting: SHUXIANG_ADMIN_PASSWORD,
    // SHUXIANG_TRACE_SIGNING_KEY and the test variables share the prefix but
    // are not settings.
    let keys = setting_keys();
    let settings_env =
        Env::prefixed("SHUXIANG_").filter(move |k| keys.iter().any(|s| k.as_str().eq_ignore_ascii_case(s)));
    fig.merge(settings_env).merge(Serialized::defaults(flags)).extract()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "s.toml",
                "listen = \"127.0.0.1:9000\"\nsession_ttl_hours = 4\nlog = \"debug\"\n",
            )?;
            jail.set_env("SHUXIANG_SESSION_TTL_HOURS", "6");
            jail.set_env("SHUXIANG_ADMIN_PASSWORD", "never a setting");
            jail.set_env("SHUXIANG_TEST_MQTT", "mqtt://127.0.0.1:1883");
            let flags = Overrides {
                data_dir: Some("/tmp/x".into()),
                ..Default::default()
            };
            let c = load(Some(std::path::Path::new("s.toml")), &flags).expect("loads");
            assert_eq!(c.listen.to_string(), "127.0.0.1:9000", "file beats default");
            assert_eq!(c.session_ttl_hours, 6, "env beats file");
            assert_eq!(c.data_dir, PathBuf::from("/tmp/x"), "flag beats all");
            assert_eq!(c.log, "debug");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("s.toml", "listne = \"127.0.0.1:9000\"\n")?;
            let err = load(Some(std::path::Path::new("s.toml")), &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("listne"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn example_file_documents_every_key_with_its_default() {
        let example: toml::Table = include_str!("../../../shuxiang.example.toml")
            .parse()
            .expect("example parses");
        let defaults = toml::Table::try_from(Config::default()).expect("serialises");
        let keys = |t: &toml::Table| t.keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            keys(&example),
            keys(&defaults),
            "shuxiang.example.toml must list every setting"
        );
        let docs = include_str!("../../../docs/configuration.md");
        for k in defaults.keys() {
            assert!(docs.contains(&format!("`{k}`")), "docs/configuration.md lacks {k}");
        }
    }
}
