//! Smoke tests of the `boot-standin` test helper: run through symlinks named like the real
//! components, with certificates made by rcgen in a temporary directory and, for the etcd
//! check, a real etcd (`/usr/bin/etcd`, skipped with a message when absent). Every process
//! started is killed by a Drop guard; waits poll a condition with a deadline.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

const DEADLINE: Duration = Duration::from_secs(20);

/// A started process, killed (and reaped) when dropped.
struct Proc {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Proc {
    fn start(mut command: Command, dir: &Path, tag: &str) -> Proc {
        let (stdout, stderr) = (
            dir.join(format!("{tag}.stdout")),
            dir.join(format!("{tag}.stderr")),
        );
        command
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr).unwrap());
        Proc {
            child: command.spawn().unwrap(),
            stdout,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let mut status = None;
        wait_for("process exit", || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap()
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` every 20 ms until it holds; panics after `DEADLINE`.
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bin directory with `name` linked to the stand-in, as the agent's tests set it up.
fn standin(dir: &Path, name: &str) -> Command {
    let link = dir.join("bin").join(name);
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_boot-standin"), &link).unwrap();
    }
    let mut command = Command::new(link);
    command
        .env_remove("BOOT_STANDIN_FAULTS")
        .env_remove("BOOT_STANDIN_CONTROL");
    command
}

/// What a leaf certificate says; `name` is the file name without `.crt`/`.key`.
struct Leaf<'a> {
    name: &'a str,
    cn: &'a str,
    orgs: &'a [&'a str],
    sans: &'a [&'a str],
    usages: &'a [ExtendedKeyUsagePurpose],
}

/// A CA and the leaf certificates it signs, written as PEM files into a directory.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl Ca {
    fn new(cn: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert_pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            cert_pem,
        }
    }

    /// Issues `leaf` for `key` (the key pair and the PEM that lands in the `.key` file).
    fn issue(&self, dir: &Path, leaf: Leaf, key: (KeyPair, String)) {
        let Leaf {
            name,
            cn,
            orgs,
            sans,
            usages,
        } = leaf;
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        for org in orgs {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *org);
        }
        params.extended_key_usages = usages.to_vec();
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = params.signed_by(&key.0, &self.issuer).unwrap();
        fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        fs::write(dir.join(format!("{name}.key")), key.1).unwrap();
    }
}

/// An RSA key whose file is PKCS#1 (`RSA PRIVATE KEY`), as kubeadm writes them.
fn rsa_key() -> (KeyPair, String) {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pkcs8 = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    let pkcs1 = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    (KeyPair::from_pem(&pkcs8).unwrap(), pkcs1.to_string())
}

/// A P-256 key whose file is SEC1 (`EC PRIVATE KEY`) with the curve named, as Go and
/// OpenSSL write and require it (p256's `to_sec1_der` leaves the optional curve out, which
/// Go's `tls.X509KeyPair` rejects with "failed to parse private key").
fn ec_key() -> (KeyPair, String) {
    use p256::pkcs8::DecodePrivateKey;
    const NAMED_CURVE_P256: [u8; 12] = [
        0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ];
    let key = KeyPair::generate().unwrap();
    let bare = p256::SecretKey::from_pkcs8_der(key.serialized_der())
        .unwrap()
        .to_sec1_der()
        .unwrap();
    // SEQUENCE { INTEGER 1, OCTET STRING (32 bytes), [1] public key }: the curve goes before [1].
    assert_eq!((bare[0], bare[1], bare[5]), (0x30, 107, 0x04));
    let mut der = vec![0x30, bare[1] + NAMED_CURVE_P256.len() as u8];
    der.extend_from_slice(&bare[2..39]);
    der.extend_from_slice(&NAMED_CURVE_P256);
    der.extend_from_slice(&bare[39..]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    (
        key,
        format!(
            "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
            lines.join("\n")
        ),
    )
}

const SERVER: &[ExtendedKeyUsagePurpose] = &[ExtendedKeyUsagePurpose::ServerAuth];
const CLIENT: &[ExtendedKeyUsagePurpose] = &[ExtendedKeyUsagePurpose::ClientAuth];
const BOTH: &[ExtendedKeyUsagePurpose] = &[
    ExtendedKeyUsagePurpose::ServerAuth,
    ExtendedKeyUsagePurpose::ClientAuth,
];

/// The cluster CA, an RSA serving cert for 127.0.0.1, an EC admin client cert, and the etcd
/// CA with etcd's (RSA) server cert and the apiserver's (EC) etcd client cert, so the
/// stand-in loads both PKCS#1 and SEC1 keys.
fn pki(dir: &Path) {
    let ca = Ca::new("kubernetes");
    fs::write(dir.join("ca.crt"), &ca.cert_pem).unwrap();
    let leaf = |name, cn, orgs, sans, usages| Leaf {
        name,
        cn,
        orgs,
        sans,
        usages,
    };
    let local: &[&str] = &["127.0.0.1", "localhost"];
    ca.issue(
        dir,
        leaf("apiserver", "kube-apiserver", &[], local, SERVER),
        rsa_key(),
    );
    let admin = leaf(
        "admin",
        "kubernetes-admin",
        &["kubeadm:cluster-admins"],
        &[],
        CLIENT,
    );
    ca.issue(dir, admin, ec_key());
    let etcd_ca = Ca::new("etcd-ca");
    fs::write(dir.join("etcd-ca.crt"), &etcd_ca.cert_pem).unwrap();
    etcd_ca.issue(
        dir,
        leaf("etcd-server", "standin-test", &[], local, BOTH),
        rsa_key(),
    );
    let etcd_client = leaf(
        "apiserver-etcd-client",
        "kube-apiserver-etcd-client",
        &[],
        &[],
        CLIENT,
    );
    etcd_ca.issue(dir, etcd_client, ec_key());
}

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

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client trusting `ca.crt` and presenting the admin cert (or no cert).
fn client(dir: &Path, with_cert: bool) -> Arc<ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.crt")).unwrap())
        .unwrap();
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(if with_cert {
        let cert = CertificateDer::from_pem_file(dir.join("admin.crt")).unwrap();
        builder
            .with_client_auth_cert(
                vec![cert],
                PrivateKeyDer::from_pem_file(dir.join("admin.key")).unwrap(),
            )
            .unwrap()
    } else {
        builder.with_no_client_auth()
    })
}

/// Accepts any server certificate, as the kubelet's HTTPS probes do.
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn insecure_client() -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    Arc::new(
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider())))
            .with_no_client_auth(),
    )
}

/// One HTTP/1.1 request to 127.0.0.1:`port` (TLS when `tls` is given): (status, body).
fn request(
    port: u16,
    tls: Option<&Arc<ClientConfig>>,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let mut raw = Vec::new();
    let result = match tls {
        Some(config) => {
            let conn = rustls::ClientConnection::new(
                config.clone(),
                ServerName::try_from("127.0.0.1").unwrap(),
            )
            .unwrap();
            let mut stream = rustls::StreamOwned::new(conn, tcp);
            stream
                .write_all(head.as_bytes())
                .and_then(|_| stream.read_to_end(&mut raw))
        }
        None => {
            let mut tcp = tcp;
            tcp.write_all(head.as_bytes())
                .and_then(|_| tcp.read_to_end(&mut raw))
        }
    };
    result.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP response: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    Ok((status, body.to_string()))
}

/// A kubeconfig for the admin cert, embedded as kubeadm writes them.
fn write_kubeconfig(dir: &Path, name: &str, port: u16) -> PathBuf {
    let b64 = |file: &str| {
        base64::engine::general_purpose::STANDARD.encode(fs::read(dir.join(file)).unwrap())
    };
    let path = dir.join(name);
    fs::write(&path, format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    certificate-authority-data: {}\n    server: https://127.0.0.1:{port}\n\
         contexts:\n- name: c\n  context: {{cluster: k, user: u}}\nusers:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64("ca.crt"), b64("admin.crt"), b64("admin.key"))).unwrap();
    path
}

fn get(port: u16, tls: &Arc<ClientConfig>, path: &str) -> (u16, String) {
    request(port, Some(tls), "GET", path, "").unwrap()
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
        (Some(0), "Kubernetes v1.34.2")
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
    pki(dir.path());
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
    wait_for("apiserver /livez", || {
        request(port, Some(&admin), "GET", "/livez", "").is_ok_and(|r| r == (200, "ok".into()))
    });

    let (code, body) = get(port, &admin, "/readyz");
    assert_eq!(code, 500);
    assert!(body.contains("[-]etcd failed: dial tcp"), "{body}");
    assert!(get(port, &admin, "/livez?verbose").1.contains("[+]ping ok"));
    assert!(get(port, &admin, "/version")
        .1
        .contains("\"gitVersion\":\"v1.34.2\""));

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
    assert_eq!(recorded.lines().count(), 3, "{recorded}");
    assert!(
        recorded.contains("\"user\":\"kubernetes-admin\"")
            && recorded.contains("kubeadm:cluster-admins")
    );

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
    pki(dir.path());
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
    wait_for("scheduler /healthz", || {
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
    wait_for("generic /healthz", || {
        request(port, None, "GET", "/healthz", "").is_ok_and(|(code, _)| code == 200)
    });
    generic.signal(nix::sys::signal::Signal::SIGTERM);
    wait_for("SIGTERM to be ignored", || {
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
    wait_for("the hang log line", || {
        hung.stderr().contains("never listening")
    });
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    fs::write(&control, "exit=4").unwrap();
    assert_eq!(hung.wait_exit().code(), Some(4));
}

#[test]
fn apiserver_talks_to_a_real_etcd() {
    if !Path::new("/usr/bin/etcd").exists() {
        eprintln!("skipping: /usr/bin/etcd is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
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
