//! Where a redirect goes: a `Location` header resolved against the URL that answered it
//! (RFC 3986 §5.2, as Go's `URL.Parse` does for the kubelet's prober). Pure.

use super::http::url;
use super::spec::Scheme;

/// Where one request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    pub scheme: Scheme,
    /// Without brackets.
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Target {
    pub fn url(&self) -> String {
        url(self.scheme, &self.host, self.port, &self.path)
    }
}

/// Resolves a `Location` against the URL it answered (RFC 3986 §5.2, as Go's `URL.Parse`);
/// also says whether it was relative (no scheme). Only `http` and `https` are followed.
pub(super) fn resolve(base: &Target, location: &str) -> Result<(Target, bool), String> {
    let location = location.split('#').next().unwrap_or_default();
    let has_scheme = location.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    let (scheme, rest) = if has_scheme {
        let (scheme, rest) = location.split_once(':').unwrap_or_default();
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(format!("unsupported protocol scheme {other:?}")),
        };
        (scheme, rest)
    } else {
        (base.scheme, location)
    };
    let target = if let Some(authority_and_path) = rest.strip_prefix("//") {
        let split = authority_and_path
            .find(['/', '?'])
            .unwrap_or(authority_and_path.len());
        let (authority, path) = authority_and_path.split_at(split);
        let (host, port) = split_authority(authority, scheme)?;
        Target {
            scheme,
            host,
            port,
            path: normalise_path(if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            }),
        }
    } else {
        let path = if rest.starts_with('/') {
            rest.to_string()
        } else if rest.is_empty() {
            base.path.clone()
        } else if let Some(query) = rest.strip_prefix('?') {
            let base_path = base.path.split('?').next().unwrap_or("/");
            format!("{base_path}?{query}")
        } else {
            let base_path = base.path.split('?').next().unwrap_or("/");
            let directory = &base_path[..=base_path.rfind('/').unwrap_or(0)];
            format!("{directory}{rest}")
        };
        Target {
            scheme,
            host: base.host.clone(),
            port: if scheme == base.scheme {
                base.port
            } else {
                default_port(scheme)
            },
            path: normalise_path(path),
        }
    };
    Ok((target, !has_scheme))
}

fn default_port(scheme: Scheme) -> u16 {
    match scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` (user information is dropped, as Go ignores it
/// for the host comparison).
fn split_authority(authority: &str, scheme: Scheme) -> Result<(String, u16), String> {
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("missing ']' in host {authority:?}"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("empty host".into());
    }
    let port = match port {
        None | Some("") => default_port(scheme),
        Some(p) => p.parse().map_err(|_| format!("invalid port {p:?}"))?,
    };
    Ok((host.to_string(), port))
}

/// Removes `.` and `..` segments from the path (RFC 3986 §5.2.4); the query is kept as is.
fn normalise_path(path_and_query: String) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query.as_str(), None),
    };
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *segment {
            "." => {
                if last {
                    segments.push("");
                }
            }
            ".." => {
                segments.pop();
                if last {
                    segments.push("");
                }
            }
            other => segments.push(other),
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}
