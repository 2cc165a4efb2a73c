//! The value types of the command line: durations, rate limits, per-caller
//! rates, signing algorithms.

use std::str::FromStr;

/// Durations are the token core's, so the load generator reads its flags
/// as the server does.
pub use tessera_core::duration::Dur;

/// A rate limit written `RATE:BURST` (events per second, burst size), or `off`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RateSpec {
    pub per_second: u32,
    pub burst: u32,
}

impl FromStr for RateSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "off" || s == "0" {
            return Ok(RateSpec {
                per_second: 0,
                burst: 0,
            });
        }
        let (rate, burst) = s.split_once(':').unwrap_or((s, s));
        let parse = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("invalid rate {s:?}: expected RATE:BURST, e.g. 10:20, or off"))
        };
        Ok(RateSpec {
            per_second: parse(rate)?,
            burst: parse(burst)?,
        })
    }
}

impl RateSpec {
    pub fn limit(&self) -> Option<crate::store::RateLimit> {
        crate::store::RateLimit::new(self.per_second, self.burst)
    }
}

/// Per-caller limit of one RPC: `RPC=RATE:BURST` (`*` for every RPC).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CallerRate {
    pub rpc: String,
    pub rate: RateSpec,
}

impl FromStr for CallerRate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (rpc, rate) = s
            .split_once('=')
            .ok_or_else(|| format!("invalid caller rate {s:?}: expected RPC=RATE:BURST"))?;
        let rpc = rpc.trim().to_owned();
        if rpc != "*" && rpc.parse::<tessera_core::wire::Rpc>().is_err() {
            return Err(format!("unknown RPC {rpc:?} in caller rate"));
        }
        Ok(CallerRate {
            rpc,
            rate: rate.parse()?,
        })
    }
}

pub use tessera_core::keys::KeyAlg;

/// clap's parser of a [`KeyAlg`] (the token core knows no clap): the names
/// are listed in `--help` as a value enum would be.
pub fn key_alg_parser() -> impl clap::builder::TypedValueParser<Value = KeyAlg> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(KeyAlg::NAMES.map(|(name, _)| name))
        .try_map(|s| s.parse::<KeyAlg>())
}
