//! Reading probes from containers as kubeadm writes them.

use super::*;

/// A container as kubeadm 1.34 writes kube-apiserver's, with `probe` as its liveness probe.
fn container(probe: &str) -> (Container, Probe) {
    let yaml = format!(
        "name: kube-apiserver\nports:\n- name: probe-port\n  containerPort: 6443\n  protocol: TCP\nlivenessProbe:\n{}",
        probe.lines().map(|l| format!("  {l}\n")).collect::<String>()
    );
    let c: Container = serde_yaml::from_str(&yaml).unwrap();
    let p = c.liveness_probe.clone().unwrap();
    (c, p)
}

fn action(probe: &str) -> Result<ProbeAction, ProbeSpecError> {
    let (c, p) = container(probe);
    ProbeAction::from_probe(&p, &c, "10.0.0.5")
}

#[test]
fn kubeadm_apiserver_probe() {
    let probe =
        "httpGet:\n  host: 192.168.1.10\n  path: /livez\n  port: probe-port\n  scheme: HTTPS";
    assert_eq!(
        action(probe),
        Ok(ProbeAction::HttpGet {
            scheme: Scheme::Https,
            host: "192.168.1.10".into(),
            port: 6443,
            path: "/livez".into(),
            headers: vec![],
        })
    );
}

#[test]
fn http_defaults_host_scheme_and_path() {
    let probe = "httpGet:\n  port: 2381\n  httpHeaders:\n  - name: X-A\n    value: b";
    assert_eq!(
        action(probe),
        Ok(ProbeAction::HttpGet {
            scheme: Scheme::Http,
            host: "10.0.0.5".into(),
            port: 2381,
            path: "/".into(),
            headers: vec![("X-A".into(), "b".into())],
        })
    );
    let relative = action("httpGet:\n  port: 1\n  path: healthz").unwrap();
    assert!(matches!(relative, ProbeAction::HttpGet { path, .. } if path == "/healthz"));
}

#[test]
fn missing_port_name_is_named_in_the_error() {
    let err = action("tcpSocket:\n  port: metrics").unwrap_err();
    assert_eq!(
        err,
        ProbeSpecError::PortNotFound {
            container: "kube-apiserver".into(),
            field: "tcpSocket.port",
            port: "metrics".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "container kube-apiserver: tcpSocket.port: port metrics not found in the container's ports"
    );
}

#[test]
fn numeric_string_port_is_the_last_resort() {
    assert_eq!(
        action("tcpSocket:\n  port: \"8080\""),
        Ok(ProbeAction::TcpSocket {
            host: "10.0.0.5".into(),
            port: 8080
        })
    );
}

#[test]
fn out_of_range_ports_are_refused() {
    for port in ["0", "70000", "-1"] {
        let err = action(&format!("tcpSocket:\n  port: {port}")).unwrap_err();
        assert!(
            matches!(err, ProbeSpecError::InvalidPort { .. }),
            "{port}: {err}"
        );
    }
    assert!(matches!(
        action("grpc:\n  port: 0"),
        Err(ProbeSpecError::InvalidPort {
            field: "grpc.port",
            ..
        })
    ));
}

#[test]
fn exec_tcp_and_grpc() {
    assert_eq!(
        action("exec:\n  command: [etcdctl, endpoint, health]"),
        Ok(ProbeAction::Exec {
            command: vec!["etcdctl".into(), "endpoint".into(), "health".into()]
        })
    );
    assert!(matches!(
        action("exec:\n  command: []"),
        Err(ProbeSpecError::EmptyCommand { .. })
    ));
    assert_eq!(
        action("tcpSocket:\n  host: 127.0.0.1\n  port: probe-port"),
        Ok(ProbeAction::TcpSocket {
            host: "127.0.0.1".into(),
            port: 6443
        })
    );
    assert_eq!(
        action("grpc:\n  port: 2379\n  service: etcd"),
        Ok(ProbeAction::Grpc {
            host: "10.0.0.5".into(),
            port: 2379,
            service: Some("etcd".into())
        })
    );
}

#[test]
fn handler_count_and_scheme_are_checked() {
    assert!(matches!(
        action("periodSeconds: 3"),
        Err(ProbeSpecError::NoHandler { .. })
    ));
    let two = action("tcpSocket:\n  port: 1\ngrpc:\n  port: 2").unwrap_err();
    assert_eq!(
        two.to_string(),
        "container kube-apiserver: probe may specify only one handler, found tcpSocket, grpc"
    );
    assert!(matches!(
        action("httpGet:\n  port: 1\n  scheme: FTP"),
        Err(ProbeSpecError::UnknownScheme { .. })
    ));
}

#[test]
fn settings_defaults() {
    let (_, probe) = container("tcpSocket:\n  port: 1");
    assert_eq!(
        ProbeSettings::from_probe(&probe),
        ProbeSettings {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
            termination_grace_period: None,
        }
    );
    // Zero and negative values read as unset, so period and timeout are at least 1s.
    let (_, zeros) = container(
        "tcpSocket:\n  port: 1\nperiodSeconds: 0\ntimeoutSeconds: -2\nfailureThreshold: 0",
    );
    assert_eq!(ProbeSettings::from_probe(&zeros), ProbeSettings::default());
}

#[test]
fn settings_of_kubeadms_liveness_probe() {
    let (_, probe) = container(
        "tcpSocket:\n  port: 1\ninitialDelaySeconds: 10\ntimeoutSeconds: 15\nfailureThreshold: 8\n\
         periodSeconds: 10\nterminationGracePeriodSeconds: 5",
    );
    assert_eq!(
        ProbeSettings::from_probe(&probe),
        ProbeSettings {
            initial_delay: Duration::from_secs(10),
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(15),
            success_threshold: 1,
            failure_threshold: 8,
            termination_grace_period: Some(Duration::from_secs(5)),
        }
    );
}
