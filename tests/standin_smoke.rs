//! Smoke tests of the `boot-standin` test helper: run through symlinks named like the real
//! components, with certificates made by rcgen in a temporary directory and, for the etcd
//! check, a real etcd (`/usr/bin/etcd`, skipped with a message when absent). Every process
//! started is killed by a Drop guard; waits poll a condition with a deadline.

#[path = "common/require.rs"]
mod require;
#[path = "standin/testkit/mod.rs"]
mod testkit;

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use testkit::https::{client, get, insecure_client, request};
use testkit::pki::{write_kubeconfig, write_test_pki};
use testkit::{free_port, standin, wait_for, Proc, DEADLINE};

fn apiserver_args(dir: &Path, port: u16, etcd: &str) -> Vec<String> {
    let p = |name: &str| dir.join(name).display().to_string();
    vec![
        "--advertise-address=127.0.0.1".into(),
        "--allow-privileged=true".into(),
        "--authorization-mode=Node,RBAC".into(),
        format!("--client-ca-file={}", p("ca.crt")),
        format!("--etcd-cafile={}", p("etcd-ca.crt")),
        format!("--etcd-certfile={}", p("apiserver-etcd-client.crt")),
        format!("--etcd-keyfile={}", p("apiserver-etcd-client.key")),
        format!("--etcd-servers={etcd}"),
        "--secure-port".into(),
        port.to_string(),
        format!("--tls-cert-file={}", p("apiserver.crt")),
        format!("--tls-private-key-file={}", p("apiserver.key")),
        "--bind-address=127.0.0.1".into(),
    ]
}

#[test]
fn flags_are_checked_like_the_real_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let out = standin(dir.path(), "kube-apiserver")
        .arg("--foo=bar")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Error: unknown flag: --foo"));
    let out = standin(dir.path(), "kube-scheduler")
        .arg("--etcd-servers=https://x:1")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the scheduler has no --etcd-servers"
    );

    let out = standin(dir.path(), "kube-apiserver")
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim()
        ),
        (Some(0), "Kubernetes v1.36.2")
    );
    let out = standin(dir.path(), "kube-controller-manager")
        .arg("--version=true")
        .env("BOOT_STANDIN_VERSION", "v1.31.0")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Kubernetes v1.31.0"
    );
}

#[test]
fn apiserver_serves_health_api_and_faults_without_etcd() {
    let dir = tempfile::tempdir().unwrap();
    write_test_pki(dir.path());
    let (port, dead_etcd) = (free_port(), free_port());
    let control = dir.path().join("control");
    let record = dir.path().join("record.jsonl");
    let mut command = standin(dir.path(), "kube-apiserver");
    command
        .args(apiserver_args(
            dir.path(),
            port,
            &format!("https://127.0.0.1:{dead_etcd}"),
        ))
        .env("BOOT_STANDIN_CONTROL", &control)
        .env("BOOT_STANDIN_RECORD", &record);
    let mut apiserver = Proc::start(command, dir.path(), "apiserver");
    let admin = client(dir.path(), true);
    wait_for("apiserver /livez", DEADLINE, || {
        request(port, Some(&admin), "GET", "/livez", "").is_ok_and(|r| r == (200, "ok".into()))
    });

    let (code, body) = get(port, &admin, "/readyz");
    assert_eq!(code, 500);
    assert!(body.contains("[-]etcd failed: dial tcp"), "{body}");
    assert!(get(port, &admin, "/livez?verbose").1.contains("[+]ping ok"));
    assert!(get(port, &admin, "/version")
        .1
        .contains("\"gitVersion\":\"v1.36.2\""));

    let path = "/api/v1/namespaces/kube-system/configmaps";
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kubeadm-config"},"data":{"k":"v"}}"#;
    assert_eq!(
        request(port, Some(&admin), "POST", path, cm).unwrap().0,
        201
    );
    let (code, body) = request(port, Some(&admin), "POST", path, cm).unwrap();
    assert_eq!(code, 409);
    assert!(body.contains("\"reason\":\"AlreadyExists\""), "{body}");
    assert_eq!(get(port, &admin, &format!("{path}/kubeadm-config")).0, 200);
    let (code, body) = get(
        port,
        &client(dir.path(), false),
        &format!("{path}/kubeadm-config"),
    );
    assert_eq!(code, 401, "{body}");
    let recorded = fs::read_to_string(&record).unwrap();
    let lines: Vec<serde_json::Value> = recorded
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{recorded}");
    assert_eq!(lines[0]["method"], "POST");
    assert_eq!(lines[0]["user"], "kubernetes-admin");
    assert_eq!(
        lines[0]["groups"],
        serde_json::json!(["kubeadm:cluster-admins"])
    );
    assert_eq!(lines[0]["body"]["metadata"]["name"], "kubeadm-config");
    assert_eq!(lines[3]["user"], serde_json::Value::Null);

    fs::write(&control, "fail-livez").unwrap();
    let (code, body) = get(port, &admin, "/livez");
    assert_eq!(code, 500);
    assert!(body.contains("[-]boot-standin-fault failed"), "{body}");
    fs::write(&control, "").unwrap();
    assert_eq!(get(port, &admin, "/livez").0, 200);

    apiserver.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(apiserver.wait_exit().code(), Some(0));
    assert!(apiserver
        .stderr()
        .contains("Serving securely on 127.0.0.1:"));
    assert!(fs::read_to_string(&apiserver.stdout)
        .unwrap()
        .contains("kube-apiserver (boot-standin)"));
}

#[test]
fn scheduler_self_signed_and_kubeconfig_check() {
    let dir = tempfile::tempdir().unwrap();
    write_test_pki(dir.path());
    let kubeconfig = write_kubeconfig(dir.path(), "scheduler.conf", 6443);

    let missing = dir.path().join("missing.conf");
    let out = standin(dir.path(), "kube-scheduler")
        .arg(format!("--kubeconfig={}", missing.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&missing.display().to_string()));

    let port = free_port();
    let mut command = standin(dir.path(), "kube-scheduler");
    let conf = kubeconfig.display();
    command.args([
        format!("--authentication-kubeconfig={conf}"),
        format!("--authorization-kubeconfig={conf}"),
        "--bind-address=127.0.0.1".into(),
        format!("--kubeconfig={conf}"),
        "--leader-elect=true".into(),
        format!("--secure-port={port}"),
    ]);
    let _scheduler = Proc::start(command, dir.path(), "scheduler");
    let any = insecure_client();
    wait_for("scheduler /healthz", DEADLINE, || {
        request(port, Some(&any), "GET", "/healthz", "").is_ok_and(|(code, _)| code == 200)
    });
    assert!(get(port, &any, "/readyz?verbose")
        .1
        .contains("[+]leaderElection ok"));
}

#[test]
fn faults_crash_ignore_sigterm_and_generic_http() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = standin(dir.path(), "boot-standin");
    command
        .args([format!("--listen=127.0.0.1:{port}"), "--http".into()])
        .env("BOOT_STANDIN_FAULTS", "ignore-sigterm");
    let mut generic = Proc::start(command, dir.path(), "generic");
    wait_for("generic /healthz", DEADLINE, || {
        request(port, None, "GET", "/healthz", "").is_ok_and(|(code, _)| code == 200)
    });
    generic.signal(nix::sys::signal::Signal::SIGTERM);
    wait_for("SIGTERM to be ignored", DEADLINE, || {
        generic.stderr().contains("ignoring it")
    });
    assert!(generic.child.try_wait().unwrap().is_none());
    assert_eq!(request(port, None, "GET", "/livez", "").unwrap().0, 200);

    let mut command = standin(dir.path(), "boot-standin");
    command
        .arg(format!("--listen=127.0.0.1:{}", free_port()))
        .env("BOOT_STANDIN_FAULTS", "crash-after=200");
    let mut crashing = Proc::start(command, dir.path(), "crashing");
    assert_eq!(crashing.wait_exit().code(), Some(1));
    assert!(
        crashing.stderr().contains("crashing after"),
        "{}",
        crashing.stderr()
    );

    // `hang` at start: never listens; `exit=` written to the control file later: exits.
    let (port, control) = (free_port(), dir.path().join("control"));
    let mut command = standin(dir.path(), "boot-standin");
    command
        .args([format!("--listen=127.0.0.1:{port}"), "--http".into()])
        .env("BOOT_STANDIN_FAULTS", "hang")
        .env("BOOT_STANDIN_CONTROL", &control);
    let mut hung = Proc::start(command, dir.path(), "hung");
    wait_for("the hang log line", DEADLINE, || {
        hung.stderr().contains("never listening")
    });
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    fs::write(&control, "exit=4").unwrap();
    assert_eq!(hung.wait_exit().code(), Some(4));
}

#[test]
fn apiserver_talks_to_a_real_etcd() {
    if require::file("/usr/bin/etcd").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_test_pki(dir.path());
    let p = |name: &str| dir.path().join(name).display().to_string();
    let (client_port, peer_port, api_port) = (free_port(), free_port(), free_port());
    let client_url = format!("https://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let mut etcd = Command::new("/usr/bin/etcd");
    etcd.args([
        "--name=standin-test".to_string(),
        format!("--data-dir={}", p("etcd-data")),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=standin-test={peer_url}"),
        format!("--cert-file={}", p("etcd-server.crt")),
        format!("--key-file={}", p("etcd-server.key")),
        "--client-cert-auth=true".into(),
        format!("--trusted-ca-file={}", p("etcd-ca.crt")),
    ]);
    let etcd_proc = Proc::start(etcd, dir.path(), "etcd");
    let mut command = standin(dir.path(), "kube-apiserver");
    command.args(apiserver_args(dir.path(), api_port, &client_url));
    let apiserver = Proc::start(command, dir.path(), "apiserver");
    let admin = client(dir.path(), true);
    let mut last = Err(String::new());
    let ready = Instant::now();
    while !matches!(last, Ok((200, _))) {
        assert!(
            ready.elapsed() < DEADLINE,
            "apiserver never ready: {last:?}\netcd: {}\napiserver: {}",
            etcd_proc.stderr(),
            apiserver.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
        last = request(api_port, Some(&admin), "GET", "/readyz", "");
    }
    assert!(get(api_port, &admin, "/readyz?verbose")
        .1
        .contains("[+]etcd ok"));

    let out = Command::new("etcdctl")
        .args([
            format!("--endpoints={client_url}"),
            format!("--cacert={}", p("etcd-ca.crt")),
            format!("--cert={}", p("apiserver-etcd-client.crt")),
            format!("--key={}", p("apiserver-etcd-client.key")),
            "get".into(),
            "/registry/boot-standin/kube-apiserver".into(),
            "--print-value-only".into(),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"securePort\""),
        "etcdctl: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let kubeconfig = write_kubeconfig(dir.path(), "admin.conf", api_port);
    let kubectl = |args: &[&str]| {
        let out = Command::new("kubectl")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--cache-dir={}", p("kube-cache")))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok()
    {
        assert_eq!(
            kubectl(&["get", "--raw", "/readyz"]),
            (Some(0), "ok".to_string())
        );
        let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kubeadm-config"},"data":{"k":"v"}}"#;
        assert_eq!(
            request(
                api_port,
                Some(&admin),
                "POST",
                "/api/v1/namespaces/kube-system/configmaps",
                cm
            )
            .unwrap()
            .0,
            201
        );
        let listed = kubectl(&["get", "configmaps", "-n", "kube-system"]);
        assert!(listed.1.contains("kubeadm-config"), "{listed:?}");
    }
}
