//! Durations as the command lines write them: the server's flags, the
//! client subcommands' TTLs and the load generator's `--duration` all read
//! (and print) them the same way, so the one parser lives here.

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

/// As written on a command line, so a configuration printed with `{:?}`
/// shows `15m`, not a struct of seconds and nanoseconds.
impl fmt::Debug for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The largest whole unit, so a printed value reads back to the same one.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        for (text, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("15m", 900_000),
            ("10m", 600_000),
            ("2h", 7_200_000),
            ("7d", 604_800_000),
            ("12", 12_000),
            ("8", 8_000),
        ] {
            let d: Dur = text.parse().unwrap();
            assert_eq!(d.0, Duration::from_millis(ms), "{text}");
        }
        assert_eq!(Dur(Duration::from_secs(900)).to_string(), "15m");
        assert!("5x".parse::<Dur>().is_err());
        assert!("10x".parse::<Dur>().is_err());
        assert!("s".parse::<Dur>().is_err());
        assert!("".parse::<Dur>().is_err());
        assert!("99999999999999999999d".parse::<Dur>().is_err());
    }
}
