//! Subject alternative names, built exactly as kubeadm builds them (pki_helpers.go:
//! GetAPIServerAltNames, getAltNames, appendSANsToAltNames, RemoveDuplicateAltNames). Pure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::profiles::SanRule;
use super::PkiRequest;

/// The DNS names and IP addresses of one certificate, in kubeadm's order, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AltNames {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl AltNames {
    fn push_dns(&mut self, name: impl Into<String>) {
        let name = name.into();
        if !self.dns.contains(&name) {
            self.dns.push(name);
        }
    }

    fn push_ip(&mut self, ip: IpAddr) {
        if !self.ips.contains(&ip) {
            self.ips.push(ip);
        }
    }

    /// Adds user-supplied SANs the way appendSANsToAltNames does: an IP, an RFC-1123 DNS name or
    /// a wildcard DNS name; anything else becomes a warning and is skipped.
    fn push_user(&mut self, sans: &[String], cert_name: &str, warnings: &mut Vec<String>) {
        for san in sans {
            if let Ok(ip) = san.parse::<IpAddr>() {
                self.push_ip(ip);
            } else if is_dns1123_subdomain(san) || is_wildcard_dns1123_subdomain(san) {
                self.push_dns(san.as_str());
            } else {
                warnings.push(format!(
                    "{san:?} was not added to the {cert_name} certificate's SANs because it is \
                     not a valid IP or RFC-1123 compliant DNS entry"
                ));
            }
        }
    }
}

/// The SANs of certificate `cert_name` with CN `cn` under `rules`. Invalid user SANs are skipped
/// with a message appended to `warnings`.
pub fn alt_names(
    rules: &[SanRule],
    cn: &str,
    cert_name: &str,
    req: &PkiRequest,
    warnings: &mut Vec<String>,
) -> AltNames {
    let mut names = AltNames::default();
    for rule in rules {
        match rule {
            SanRule::Ca => names.push_dns(cn),
            SanRule::Apiserver => {
                names.push_dns(req.node_name.as_str());
                names.push_dns("kubernetes");
                names.push_dns("kubernetes.default");
                names.push_dns("kubernetes.default.svc");
                names.push_dns(format!("kubernetes.default.svc.{}", req.dns_domain));
                names.push_ip(req.first_service_ip);
                names.push_ip(req.advertise_address);
                if let Some(host) = req.control_plane_endpoint_host.as_deref() {
                    let unbracketed = host.trim_start_matches('[').trim_end_matches(']');
                    match unbracketed.parse::<IpAddr>() {
                        Ok(ip) => names.push_ip(ip),
                        // kubeadm adds a non-IP host as a DNS name without further checks.
                        Err(_) if !host.is_empty() => names.push_dns(host),
                        Err(_) => {}
                    }
                }
                names.push_user(&req.apiserver_cert_sans, cert_name, warnings);
            }
            SanRule::EtcdServer | SanRule::EtcdPeer => {
                names.push_dns(req.node_name.as_str());
                names.push_dns("localhost");
                names.push_ip(req.advertise_address);
                names.push_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
                names.push_ip(IpAddr::V6(Ipv6Addr::LOCALHOST));
                let extra = if *rule == SanRule::EtcdServer {
                    &req.etcd_server_cert_sans
                } else {
                    &req.etcd_peer_cert_sans
                };
                names.push_user(extra, cert_name, warnings);
            }
        }
    }
    names
}

/// k8s.io/apimachinery validation.IsDNS1123Subdomain: at most 253 characters of dot-separated
/// labels of lower-case alphanumerics and '-', each starting and ending alphanumeric.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label_chars)
}

/// validation.IsWildcardDNS1123Subdomain: `*.` followed by a DNS-1123 subdomain, 253 at most.
pub fn is_wildcard_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.strip_prefix("*.").is_some_and(is_dns1123_subdomain)
}

fn is_dns1123_label_chars(label: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            alnum(first) && alnum(last) && bytes.iter().all(|&c| alnum(c) || c == b'-')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::tests_support::request;

    #[test]
    fn apiserver_sans_match_kubeadm() {
        let mut req = request();
        req.control_plane_endpoint_host = Some("cp.example.com".into());
        req.apiserver_cert_sans = vec![
            "10.0.0.9".into(),
            "*.apps.example.com".into(),
            "Bad_Name".into(),
            "node1".into(),
        ];
        let mut warnings = Vec::new();
        let names = alt_names(
            &[SanRule::Apiserver],
            "kube-apiserver",
            "apiserver",
            &req,
            &mut warnings,
        );
        assert_eq!(
            names.dns,
            [
                "node1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "cp.example.com",
                "*.apps.example.com"
            ]
        );
        let ips: Vec<IpAddr> = vec![
            "10.96.0.1".parse().unwrap(),
            "192.0.2.10".parse().unwrap(),
            "10.0.0.9".parse().unwrap(),
        ];
        assert_eq!(names.ips, ips);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("\"Bad_Name\"") && warnings[0].contains("apiserver"),
            "{warnings:?}"
        );
    }

    #[test]
    fn control_plane_endpoint_ip_is_an_ip_san_and_duplicates_go() {
        let mut req = request();
        req.control_plane_endpoint_host = Some("192.0.2.10".into());
        req.apiserver_cert_sans = vec!["kubernetes".into(), "[::1]".into()];
        let mut warnings = Vec::new();
        let names = alt_names(
            &[SanRule::Apiserver],
            "kube-apiserver",
            "apiserver",
            &req,
            &mut warnings,
        );
        assert_eq!(names.ips.len(), 2, "{:?}", names.ips);
        assert_eq!(names.dns.len(), 5);
        assert_eq!(warnings.len(), 1, "brackets are not an IP: {warnings:?}");
    }

    #[test]
    fn etcd_sans_have_localhost_and_their_own_extras() {
        let mut req = request();
        req.etcd_server_cert_sans = vec!["etcd.example.com".into()];
        req.etcd_peer_cert_sans = vec!["10.1.1.1".into()];
        let mut w = Vec::new();
        let server = alt_names(&[SanRule::EtcdServer], "node1", "etcd-server", &req, &mut w);
        assert_eq!(server.dns, ["node1", "localhost", "etcd.example.com"]);
        let ips: Vec<String> = server.ips.iter().map(|i| i.to_string()).collect();
        assert_eq!(ips, ["192.0.2.10", "127.0.0.1", "::1"]);
        let peer = alt_names(&[SanRule::EtcdPeer], "node1", "etcd-peer", &req, &mut w);
        assert_eq!(peer.dns, ["node1", "localhost"]);
        assert_eq!(peer.ips.last().unwrap().to_string(), "10.1.1.1");
        assert!(w.is_empty());
    }

    #[test]
    fn ca_rule_is_the_cn() {
        let names = alt_names(
            &[SanRule::Ca],
            "etcd-ca",
            "etcd-ca",
            &request(),
            &mut Vec::new(),
        );
        assert_eq!(
            names,
            AltNames {
                dns: vec!["etcd-ca".into()],
                ips: vec![]
            }
        );
    }

    #[test]
    fn dns1123_validation() {
        for ok in [
            "a",
            "node-1",
            "a.b.c",
            "0.example.com",
            "x".repeat(253).as_str(),
        ] {
            assert!(is_dns1123_subdomain(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A.example",
            "a..b",
            "a_b",
            ".a",
            "a.",
            "x".repeat(254).as_str(),
        ] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
        assert!(is_wildcard_dns1123_subdomain("*.example.com"));
        assert!(!is_wildcard_dns1123_subdomain("*example.com"));
        assert!(!is_wildcard_dns1123_subdomain("a.*.example.com"));
        assert!(!is_wildcard_dns1123_subdomain("*"));
    }
}
