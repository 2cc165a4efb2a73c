//! Unit tests of the `serve` flags.
use std::time::Duration;

use clap::Parser;

use super::*;

/// Every flag's environment variable is `TESSERA_<FLAG>` (the config
/// file's merge relies on it; `--verify-key` once read `…_KEYS`).
#[test]
fn every_env_name_is_tessera_and_the_flag() {
    use clap::CommandFactory;
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        serve: ServeArgs,
    }
    let mut checked = 0;
    for arg in Wrapper::command().get_arguments() {
        let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
            continue;
        };
        let want = format!("TESSERA_{}", long.replace('-', "_").to_uppercase());
        assert_eq!(env.to_str(), Some(want.as_str()), "--{long}");
        checked += 1;
    }
    assert!(checked > 50, "{checked}");
}

#[test]
fn defaults_match_the_design() {
    let a = ServeArgs::parse_with_file(vec![]).unwrap();
    assert_eq!(a.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(a.leeway.0, Duration::from_secs(30));
    assert_eq!(a.refresh_grace.0, Duration::from_secs(5));
    assert!(a.renewal);
    assert!(!a.allow_anonymous);
    assert!(
        a.session_idle.is_none(),
        "idle = each session's refresh TTL"
    );
    assert!(a.redis_url.is_none());
}

#[test]
fn file_is_below_flags() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(
        &path,
        "issuer = \"from-file\"\naccess_ttl = \"2m\"\nrenewal = false\n",
    )
    .unwrap();
    let a = ServeArgs::parse_with_file(vec![
        "--config".into(),
        path.display().to_string(),
        "--issuer".into(),
        "from-flag".into(),
    ])
    .unwrap();
    assert_eq!(a.issuer, "from-flag");
    assert_eq!(a.access_ttl.0, Duration::from_secs(120));
    assert!(!a.renewal);
}

#[test]
fn the_trace_sample_ratio_is_a_share() {
    let args = |ratio: &str| {
        ServeArgs::parse_with_file(vec![format!("--trace-sample-ratio={ratio}")]).unwrap()
    };
    assert!(args("0").validate().is_ok());
    assert!(args("1").validate().is_ok());
    assert!(args("1.5").validate().is_err());
    assert!(args("-0.1").validate().is_err());
    let default = ServeArgs::parse_with_file(vec![]).unwrap();
    assert_eq!(
        default.trace_sample_ratio.to_string(),
        crate::trace::DEFAULT_SAMPLE_RATIO
    );
}
