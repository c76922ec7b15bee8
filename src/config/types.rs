//! Scalar types of the configuration that validate themselves while they are parsed, so that a bad
//! value is reported with its document, field path and line (serde knows where it is).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Implements `Deserialize`/`Serialize` through `FromStr`/`Display`, so parse errors carry the
/// value's position.
macro_rules! string_serde {
    ($ty:ty, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse()
                    .map_err(|e| de::Error::custom(format!("{text:?} {e}")))
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl $ty {
            #[allow(dead_code)]
            const EXPECTING: &'static str = $expecting;
        }
    };
}

/// A comma-separated list of CIDRs, as kubeadm's `serviceSubnet`/`podSubnet` (dual-stack allows two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidrs(pub Vec<IpNet>);

impl Cidrs {
    pub fn first(&self) -> &IpNet {
        &self.0[0]
    }
}

impl FromStr for Cidrs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let nets: Result<Vec<IpNet>, _> = s
            .split(',')
            .map(|part| part.trim().parse::<IpNet>())
            .collect();
        match nets {
            Ok(nets) if !nets.is_empty() && nets.len() <= 2 => Ok(Cidrs(nets)),
            Ok(_) => Err("is not a valid CIDR list (one CIDR, or two for dual-stack)".into()),
            Err(_) => Err("is not a valid CIDR".into()),
        }
    }
}

impl fmt::Display for Cidrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|n| n.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}
string_serde!(Cidrs, "a CIDR");

/// An IP address field (`advertiseAddress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip(pub IpAddr);

impl FromStr for Ip {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse()
            .map(Ip)
            .map_err(|_| "is not a valid IP address".into())
    }
}

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
string_serde!(Ip, "an IP address");

/// A Go `time.Duration` string such as `4m0s`, `8760h` or `500ms`, as kubeadm writes durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoDuration(pub Duration);

impl FromStr for GoDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || "is not a duration (e.g. 4m0s, 8760h, 500ms)".to_string();
        if s == "0" {
            return Ok(GoDuration(Duration::ZERO));
        }
        let mut rest = s;
        let mut total = 0f64;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
            rest = &rest[num_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let seconds = match &rest[..unit_len] {
                "ns" => 1e-9,
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return Err(bad()),
            };
            total += value * seconds;
            rest = &rest[unit_len..];
        }
        // Go's time.Duration is an int64 of nanoseconds: about 292 years at most.
        if !total.is_finite() || total > MAX_GO_DURATION_SECS {
            return Err(format!(
                "is out of range: at most {} (Go's time.Duration)",
                GoDuration(Duration::from_secs(MAX_GO_DURATION_SECS as u64))
            ));
        }
        Ok(GoDuration(Duration::from_secs_f64(total)))
    }
}

/// `math.MaxInt64` nanoseconds, in whole seconds (2562047h47m16s).
const MAX_GO_DURATION_SECS: f64 = (i64::MAX / 1_000_000_000) as f64;

impl fmt::Display for GoDuration {
    /// Formats as Go does for whole seconds: `4m0s`, `8760h0m0s`, `500ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.as_secs() == 0 && d.subsec_nanos() != 0 {
            return write!(f, "{}ms", d.as_millis());
        }
        let secs = d.as_secs();
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h{m}m{s}s")
        } else if m > 0 {
            write!(f, "{m}m{s}s")
        } else {
            write!(f, "{s}s")
        }
    }
}
string_serde!(GoDuration, "a duration");

/// `controlPlaneEndpoint`: an IP or DNS name with an optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: Option<u16>,
}

impl Endpoint {
    /// `https://host:port`, bracketing IPv6 hosts; `default_port` is the API server's bindPort.
    pub fn url(&self, default_port: u16) -> String {
        format!(
            "https://{}:{}",
            bracket_host(&self.host),
            self.port.unwrap_or(default_port)
        )
    }
}

/// Brackets an IPv6 address for use in a URL or `host:port`.
pub fn bracket_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || "is not a valid endpoint (HOST or HOST:PORT, IPv6 as [ADDR]:PORT)".to_string();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
            }
        } else if s.matches(':').count() > 1 {
            (s, None)
        } else {
            match s.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        let port = port
            .map(|p| p.parse::<u16>().map_err(|_| bad()))
            .transpose()?;
        let valid_host = host.parse::<IpAddr>().is_ok() || is_dns_name(host);
        if !valid_host || port == Some(0) {
            return Err(bad());
        }
        Ok(Endpoint {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", bracket_host(&self.host)),
            None => f.write_str(&self.host),
        }
    }
}
string_serde!(Endpoint, "an endpoint");

/// RFC 1123 DNS subdomain, as Kubernetes validates host names.
pub fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// One `extraArgs` entry (v1beta4 makes them a list of `{name, value}`; duplicates allowed).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Arg {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// The value `extraArgs` sets for the flag `name`, if any (the last entry wins for single values).
pub fn extra_value<'a>(extra: &'a [Arg], name: &str) -> Option<&'a str> {
    extra
        .iter()
        .rev()
        .find(|a| a.name == name)
        .map(|a| a.value.as_str())
}

/// One `extraVolumes` entry: a hostPath volume and its mount.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostPathMount {
    pub name: String,
    pub host_path: String,
    pub mount_path: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_type: Option<HostPathType>,
}

/// The hostPath volume types the kubelet knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum HostPathType {
    #[serde(rename = "")]
    Unset,
    DirectoryOrCreate,
    Directory,
    FileOrCreate,
    File,
    Socket,
    CharDevice,
    BlockDevice,
}

impl HostPathType {
    pub fn as_str(self) -> &'static str {
        match self {
            HostPathType::Unset => "",
            HostPathType::DirectoryOrCreate => "DirectoryOrCreate",
            HostPathType::Directory => "Directory",
            HostPathType::FileOrCreate => "FileOrCreate",
            HostPathType::File => "File",
            HostPathType::Socket => "Socket",
            HostPathType::CharDevice => "CharDevice",
            HostPathType::BlockDevice => "BlockDevice",
        }
    }
}

/// One `extraEnvs` entry. Only literal values: a static pod may not reference API objects, so
/// `valueFrom` is refused when the configuration is read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_round_trip() {
        for (text, secs, shown) in [
            ("4m0s", 240, "4m0s"),
            ("8760h", 31_536_000, "8760h0m0s"),
            ("1h30m", 5400, "1h30m0s"),
        ] {
            let d: GoDuration = text.parse().unwrap();
            assert_eq!(d.0.as_secs(), secs);
            assert_eq!(d.to_string(), shown);
        }
        assert_eq!("500ms".parse::<GoDuration>().unwrap().0.as_millis(), 500);
        for bad in ["", "4", "4x", "m", "1.2.3s"] {
            assert!(bad.parse::<GoDuration>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs_accept_single_and_dual_stack() {
        assert_eq!("10.96.0.0/12".parse::<Cidrs>().unwrap().0.len(), 1);
        assert_eq!(
            "10.96.0.0/12,fd00::/108".parse::<Cidrs>().unwrap().0.len(),
            2
        );
        assert!("10.244.0.0/33".parse::<Cidrs>().is_err());
        assert!("a,b,c".parse::<Cidrs>().is_err());
    }

    #[test]
    fn endpoints_parse_hosts_ports_and_ipv6() {
        let e: Endpoint = "cp.example.com:443".parse().unwrap();
        assert_eq!((e.host.as_str(), e.port), ("cp.example.com", Some(443)));
        assert_eq!(
            "[fd00::1]:6443".parse::<Endpoint>().unwrap().url(1),
            "https://[fd00::1]:6443"
        );
        assert_eq!(
            "fd00::1".parse::<Endpoint>().unwrap().url(6443),
            "https://[fd00::1]:6443"
        );
        assert_eq!(
            "10.0.0.1".parse::<Endpoint>().unwrap().url(6443),
            "https://10.0.0.1:6443"
        );
        for bad in ["", "Bad_Host", "h:0", "h:x", "[::1"] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }
}
