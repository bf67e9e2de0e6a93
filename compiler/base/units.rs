//! Units of the input language: memory sizes in binary units (`512MiB`,
//! `4GiB`), CPU counts, percentages. Sizes must say their unit exactly:
//! `512MB` and `4gb` are refused, because whether they mean 10^6 or 2^20 is
//! the kind of doubt that makes a 4 GiB box run out of memory.

use serde::Serialize;

/// A number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct Bytes(pub u64);

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;
pub const TIB: u64 = 1024 * GIB;

impl Bytes {
    pub fn mib(n: u64) -> Bytes {
        Bytes(n * MIB)
    }

    /// Whole MiB, rounded down.
    pub fn as_mib(self) -> u64 {
        self.0 / MIB
    }

    /// The value in the largest of `units` that divides it exactly.
    fn exact(self, units: &[(&str, u64)]) -> Option<String> {
        units
            .iter()
            .find(|(_, size)| self.0 >= *size && self.0.is_multiple_of(*size))
            .map(|(unit, size)| format!("{}{unit}", self.0 / size))
    }

    /// Shortest exact binary form: `512MiB`, `4GiB`, `1536KiB`, `100B`.
    pub fn human(self) -> String {
        self.exact(&[("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)])
            .unwrap_or_else(|| format!("{}B", self.0))
    }

    /// Kubernetes form: `512Mi`.
    pub fn kubernetes(self) -> String {
        self.exact(&[("Ti", TIB), ("Gi", GIB), ("Mi", MIB), ("Ki", KIB)])
            .unwrap_or_else(|| self.0.to_string())
    }

    /// Docker compose form, lower-case units of 1024: `512m`, `4g`.
    pub fn compose(self) -> String {
        self.exact(&[("g", GIB), ("m", MIB), ("k", KIB)])
            .unwrap_or_else(|| format!("{}b", self.0))
    }

    /// PostgreSQL form: `128MB` means MiB there.
    pub fn server(self) -> String {
        self.exact(&[("GB", GIB), ("MB", MIB), ("kB", KIB)])
            .unwrap_or_else(|| format!("{}kB", self.0.div_ceil(KIB)))
    }

    /// Redis `maxmemory` form: `256mb` (Redis units are 1024-based with `b`).
    pub fn redis(self) -> String {
        self.exact(&[("gb", GIB), ("mb", MIB), ("kb", KIB)])
            .unwrap_or_else(|| self.0.to_string())
    }
}

impl Bytes {
    /// For messages: exact binary units when exact, else MiB with decimals.
    pub fn human_approx(self) -> String {
        if self.0.is_multiple_of(MIB) || self.0 < MIB {
            self.human()
        } else {
            format!("{:.1}MiB", self.0 as f64 / MIB as f64)
        }
    }
}

impl std::fmt::Display for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.human())
    }
}

/// Thousandths of a CPU core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct Millicores(pub u32);

impl Millicores {
    /// Compose `cpus:` form: `0.5`, `2`.
    pub fn cores(self) -> String {
        if self.0.is_multiple_of(1000) {
            (self.0 / 1000).to_string()
        } else {
            let s = format!("{}.{:03}", self.0 / 1000, self.0 % 1000);
            s.trim_end_matches('0').to_string()
        }
    }

    /// Kubernetes form: `500m`, `2`.
    pub fn kubernetes(self) -> String {
        if self.0.is_multiple_of(1000) {
            (self.0 / 1000).to_string()
        } else {
            format!("{}m", self.0)
        }
    }
}

impl std::fmt::Display for Millicores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.cores())
    }
}

/// Why a size did not parse; the text becomes the diagnostic's help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError {
    pub message: String,
    pub help: String,
}

/// Parse `512MiB`, `4GiB`, `1.5GiB`, `64KiB`, `100B`.
pub fn parse_bytes(text: &str) -> Result<Bytes, UnitError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let size = match unit {
        "B" => 1,
        "KiB" => KIB,
        "MiB" => MIB,
        "GiB" => GIB,
        "TiB" => TIB,
        _ => {
            let hint = match unit.to_ascii_lowercase().as_str() {
                "k" | "kb" | "kib" => "KiB",
                "m" | "mb" | "mib" => "MiB",
                "g" | "gb" | "gib" => "GiB",
                "t" | "tb" | "tib" => "TiB",
                _ => "MiB or GiB",
            };
            let message = if unit.is_empty() {
                format!("`{text}` has no unit")
            } else {
                format!("`{unit}` is not a unit of memory dify-cfg accepts")
            };
            return Err(UnitError {
                message,
                help: format!(
                    "write sizes in binary units, e.g. `{}{hint}` (B, KiB, MiB, GiB, TiB)",
                    if num.is_empty() { "512" } else { num }
                ),
            });
        }
    };
    let bad = || UnitError {
        message: format!("`{text}` is not a size"),
        help: "write a number followed by a unit, e.g. `512MiB` or `1.5GiB`".into(),
    };
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return Err(bad());
    }
    let value = if let Some((int, frac)) = num.split_once('.') {
        let int: u64 = int.parse().map_err(|_| bad())?;
        if frac.len() > 3 {
            return Err(bad());
        }
        let scale = 10u64.pow(frac.len() as u32);
        let frac: u64 = frac.parse().map_err(|_| bad())?;
        int.checked_mul(size)
            .and_then(|v| v.checked_add(frac * size / scale))
            .ok_or_else(bad)?
    } else {
        num.parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(size))
            .ok_or_else(bad)?
    };
    Ok(Bytes(value))
}

/// Parse `20%` (0 to 100, whole numbers).
pub fn parse_percent(text: &str) -> Result<u8, UnitError> {
    let bad = |message: String| UnitError {
        message,
        help: "write a whole percentage from 0 to 100, e.g. `20%`".into(),
    };
    let Some(num) = text.trim().strip_suffix('%') else {
        return Err(bad(format!("`{text}` is not a percentage")));
    };
    match num.trim().parse::<u8>() {
        Ok(n) if n <= 100 => Ok(n),
        _ => Err(bad(format!("`{text}` is not a percentage from 0% to 100%"))),
    }
}

/// CPU cores as written in TOML (`2`, `0.5`) to millicores.
pub fn cores_to_millicores(cores: f64) -> Result<Millicores, UnitError> {
    if !cores.is_finite() || cores <= 0.0 || cores > 1024.0 {
        return Err(UnitError {
            message: format!("`{cores}` is not a CPU count"),
            help: "write a number of cores above 0, e.g. `0.5` or `2`".into(),
        });
    }
    let m = (cores * 1000.0).round();
    if (m - cores * 1000.0).abs() > 1e-6 {
        return Err(UnitError {
            message: format!("`{cores}` is finer than a millicore"),
            help: "use at most three decimals, e.g. `0.125`".into(),
        });
    }
    Ok(Millicores(m as u32))
}

/// A span of time as systemd writes it: a whole number of seconds, minutes
/// or hours (`30s`, `5min`, `2h`). Only these three units are accepted: `m`
/// means minutes to systemd but months to many readers, and a day or more is
/// never a sensible pull interval or confirmation window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TimeSpan {
    pub amount: u32,
    pub unit: TimeUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeUnit {
    Seconds,
    Minutes,
    Hours,
}

impl TimeUnit {
    /// The unit as systemd (and the input language) writes it.
    pub fn suffix(self) -> &'static str {
        match self {
            TimeUnit::Seconds => "s",
            TimeUnit::Minutes => "min",
            TimeUnit::Hours => "h",
        }
    }

    fn seconds(self) -> u64 {
        match self {
            TimeUnit::Seconds => 1,
            TimeUnit::Minutes => 60,
            TimeUnit::Hours => 3600,
        }
    }
}

impl TimeSpan {
    pub const fn new(amount: u32, unit: TimeUnit) -> TimeSpan {
        TimeSpan { amount, unit }
    }

    /// The span in seconds.
    pub fn seconds(self) -> u64 {
        u64::from(self.amount) * self.unit.seconds()
    }

    /// systemd form, as written: `5min`.
    pub fn systemd(self) -> String {
        format!("{}{}", self.amount, self.unit.suffix())
    }
}

impl std::fmt::Display for TimeSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.systemd())
    }
}

/// Parse `30s`, `5min`, `2h`: a positive whole number and one of the units
/// `s`, `min`, `h`, nothing else (no spaces, no sums such as `1h 30min`).
pub fn parse_time_span(text: &str) -> Result<TimeSpan, UnitError> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let example = if num.is_empty() || num.len() > 6 {
        "5"
    } else {
        num
    };
    let unit = match unit {
        "s" => TimeUnit::Seconds,
        "min" => TimeUnit::Minutes,
        "h" => TimeUnit::Hours,
        _ => {
            let (message, hint) = match unit {
                "" => (format!("`{text}` has no unit"), "s"),
                "m" => ("`m` is an ambiguous unit of time".to_string(), "min"),
                "sec" | "secs" | "second" | "seconds" => {
                    (format!("`{unit}` is not a unit dify-cfg accepts"), "s")
                }
                "mins" | "minute" | "minutes" => {
                    (format!("`{unit}` is not a unit dify-cfg accepts"), "min")
                }
                "hr" | "hrs" | "hour" | "hours" => {
                    (format!("`{unit}` is not a unit dify-cfg accepts"), "h")
                }
                _ => (
                    format!("`{text}` is not a span of time dify-cfg accepts"),
                    "min",
                ),
            };
            return Err(UnitError {
                message,
                help: format!(
                    "write a whole number of seconds, minutes or hours, e.g. `{example}{hint}` (units: s, min, h)"
                ),
            });
        }
    };
    let amount = match num.parse::<u32>() {
        Ok(n) if n > 0 && !num.starts_with('0') => n,
        Ok(0) => {
            return Err(UnitError {
                message: format!("`{text}` is not more than zero"),
                help: "write a positive whole number, e.g. `5min`".into(),
            });
        }
        _ => {
            return Err(UnitError {
                message: format!("`{text}` is not a span of time"),
                help: "write a positive whole number without leading zeros or signs, then s, min or h, e.g. `5min`".into(),
            });
        }
    };
    Ok(TimeSpan { amount, unit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_sizes_parse() {
        assert_eq!(parse_bytes("512MiB"), Ok(Bytes(512 * MIB)));
        assert_eq!(parse_bytes("4GiB"), Ok(Bytes(4 * GIB)));
        assert_eq!(parse_bytes("1.5GiB"), Ok(Bytes(1536 * MIB)));
        assert_eq!(parse_bytes("64KiB"), Ok(Bytes(64 * KIB)));
        assert_eq!(parse_bytes("100B"), Ok(Bytes(100)));
    }

    #[test]
    fn ambiguous_or_broken_sizes_are_refused() {
        for bad in [
            "512MB",
            "4gb",
            "4G",
            "512",
            "MiB",
            "1..5GiB",
            ".5GiB",
            "-1MiB",
            "99999999999999TiB",
            "1.2345GiB",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad} should be refused");
        }
        assert!(parse_bytes("512MB").unwrap_err().help.contains("512MiB"));
    }

    #[test]
    fn sizes_format_for_each_tool() {
        let b = Bytes(512 * MIB);
        assert_eq!(b.human(), "512MiB");
        assert_eq!(b.compose(), "512m");
        assert_eq!(b.kubernetes(), "512Mi");
        assert_eq!(b.server(), "512MB");
        assert_eq!(b.redis(), "512mb");
        assert_eq!(Bytes(4 * GIB).human(), "4GiB");
    }

    #[test]
    fn percentages_and_cores() {
        assert_eq!(parse_percent("20%"), Ok(20));
        assert!(parse_percent("120%").is_err());
        assert!(parse_percent("20").is_err());
        assert_eq!(cores_to_millicores(0.5), Ok(Millicores(500)));
        assert_eq!(Millicores(500).cores(), "0.5");
        assert_eq!(Millicores(2000).kubernetes(), "2");
        assert_eq!(Millicores(250).kubernetes(), "250m");
        assert!(cores_to_millicores(0.0).is_err());
        assert!(cores_to_millicores(0.0001).is_err());
    }

    #[test]
    fn time_spans_parse_in_three_units() {
        assert_eq!(
            parse_time_span("30s"),
            Ok(TimeSpan::new(30, TimeUnit::Seconds))
        );
        assert_eq!(
            parse_time_span("5min"),
            Ok(TimeSpan::new(5, TimeUnit::Minutes))
        );
        assert_eq!(
            parse_time_span("24h"),
            Ok(TimeSpan::new(24, TimeUnit::Hours))
        );
        assert_eq!(parse_time_span("5min").unwrap().seconds(), 300);
        assert_eq!(parse_time_span("2h").unwrap().seconds(), 7200);
        assert_eq!(parse_time_span("120s").unwrap().systemd(), "120s");
    }

    #[test]
    fn broken_or_ambiguous_time_spans_are_refused() {
        for bad in [
            "5m",
            "0s",
            "2d",
            "5",
            "min",
            "",
            " 5min",
            "5min ",
            "5 min",
            "1h30min",
            "-5s",
            "+5s",
            "05s",
            "1.5h",
            "5MIN",
            "99999999999s",
        ] {
            assert!(parse_time_span(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse_time_span("5m").unwrap_err().help.contains("`5min`"));
        assert!(
            parse_time_span("0s")
                .unwrap_err()
                .message
                .contains("more than zero")
        );
        assert!(
            parse_time_span("2d")
                .unwrap_err()
                .help
                .contains("s, min, h")
        );
    }
}
