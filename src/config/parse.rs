//! Reading the configuration: flags and environment with the `--config`
//! TOML file merged in below them, the deprecated variables, and the
//! checks of settings against each other.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::ServeArgs;

impl ServeArgs {
    /// Parse `tessera serve` arguments, merging the `--config` TOML file in
    /// below flags and environment variables.
    pub fn parse_with_file(args: Vec<String>) -> Result<ServeArgs, String> {
        #[derive(Parser)]
        #[command(name = "tessera-serve", no_binary_name = true)]
        struct Wrapper {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let first = Wrapper::try_parse_from(&args).map_err(|e| e.to_string())?;
        let Some(path) = first.serve.config.clone() else {
            return Ok(first.serve.with_deprecated_env());
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| format!("config file {} is not valid TOML: {e}", path.display()))?;
        let mut merged = Vec::new();
        for (key, value) in table {
            let flag = key.replace('_', "-");
            if flag == "config" {
                continue;
            }
            let env = format!("TESSERA_{}", flag.replace('-', "_").to_uppercase());
            if std::env::var_os(&env).is_some() {
                continue; // the environment wins over the file
            }
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                other => {
                    return Err(format!("config key {key:?}: unsupported value {other}"));
                }
            };
            merged.push(format!("--{flag}={value}"));
        }
        // Later occurrences win (`args_override_self`), so flags follow the file.
        merged.extend(args);
        Wrapper::try_parse_from(&merged)
            .map(|w| w.serve.with_deprecated_env())
            .map_err(|e| format!("in {}: {e}", path.display()))
    }

    /// Checks that do not fit clap: relations between settings.
    /// `TESSERA_VERIFY_KEYS`, the old env name of `--verify-key`, when no
    /// flag, `TESSERA_VERIFY_KEY` or config file gave one; the standard
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` likewise for `--otlp-endpoint`.
    pub fn with_deprecated_env(mut self) -> Self {
        if self.verify_key.is_empty() && std::env::var_os("TESSERA_VERIFY_KEY").is_none() {
            if let Some(old) = std::env::var_os("TESSERA_VERIFY_KEYS") {
                let old = old.to_string_lossy().into_owned();
                self.verify_key = old
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .collect();
                eprintln!("warning: TESSERA_VERIFY_KEYS is deprecated; use TESSERA_VERIFY_KEY");
            }
        }
        if self.otlp_endpoint.is_none() {
            self.otlp_endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
                .ok()
                .filter(|e| !e.is_empty());
        }
        self
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.trace_sample_ratio) {
            return Err("--trace-sample-ratio must be between 0 and 1".into());
        }
        if self.renewal_critical.0 > self.renewal_warning.0 {
            return Err("--renewal-critical must not exceed --renewal-warning".into());
        }
        if self.access_ttl.0 < Duration::from_secs(1) {
            return Err("--access-ttl must be at least 1s".into());
        }
        if self.refresh_ttl.0 < Duration::from_secs(1) {
            return Err("--refresh-ttl must be at least 1s".into());
        }
        if self.issuer.is_empty() {
            return Err("--issuer must not be empty".into());
        }
        if self.idle_timeout.0 <= self.http2_keepalive_interval.0 + self.http2_keepalive_timeout.0 {
            return Err("--idle-timeout must exceed --http2-keepalive-interval plus --http2-keepalive-timeout, or quiet but live connections are cut".into());
        }
        if self.max_connections == 0
            || self.admin_max_connections == 0
            || self.max_concurrent_streams == 0
        {
            return Err("--max-connections, --admin-max-connections and --max-concurrent-streams must be at least 1".into());
        }
        if self.http_request_timeout.0 < Duration::from_millis(100) {
            return Err("--http-request-timeout must be at least 100ms".into());
        }
        let redis_tls = self.redis_tls_ca.is_some() || self.redis_tls_cert.is_some();
        let rediss = self
            .redis_url
            .as_deref()
            .is_some_and(crate::store::redis::url_uses_tls);
        if redis_tls && !rediss {
            return Err("--redis-tls-ca, --redis-tls-cert and --redis-tls-key need a TLS Redis URL (rediss://, rediss-sentinel://, rediss-cluster://)".into());
        }
        Ok(())
    }
}
