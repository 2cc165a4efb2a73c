//! The value types of the command line: durations, rate limits, per-caller
//! rates, signing algorithms.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration written like `500ms`, `30s`, `15m`, `2h`, `7d` (a bare number is seconds).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            format!("invalid duration {s:?}: expected e.g. 500ms, 30s, 15m, 2h, 7d")
        })?;
        let ms = match unit.trim() {
            "ms" => Some(n),
            "" | "s" => n.checked_mul(1_000),
            "m" => n.checked_mul(60_000),
            "h" => n.checked_mul(3_600_000),
            "d" => n.checked_mul(86_400_000),
            other => return Err(format!("invalid duration unit {other:?} in {s:?}")),
        };
        ms.map(|ms| Dur(Duration::from_millis(ms)))
            .ok_or_else(|| format!("duration {s:?} is too large"))
    }
}

impl fmt::Debug for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms >= size && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

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
