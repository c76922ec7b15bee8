//! What `boot init --upload-certs` leaves for joining nodes, checked against the real
//! kube-apiserver and kube-controller-manager (v1.36.2, `BOOT_K8S_BIN`) with Debian's etcd:
//! bootstrap-token discovery (right pin, wrong pin, unknown token, wrong secret), the encrypted
//! `kubeadm-certs` (the node's CA files come back identical; a wrong key fails), the token
//! authenticating and its CSR being auto-approved, the controller manager's bootstrapsigner
//! computing the same JWS as boot, and `boot token create|list|delete`. Discovery without a pin
//! (the JWS still checked) and file discovery (a kubeconfig file, a wrong CA in it, and an
//! https:// URL served by the test) against the same API server. Without the binaries the
//! test says it did not run (in CI it fails instead). The cluster is reset on drop.

use crate::cluster;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use boot::join::{
    discover, discover_file, download, BootstrapToken, CaCertHash, CertificateKey, ClusterInfo,
    DiscoveryError, DiscoveryFile, FileDiscoveryError, JoinCredentials, UploadCertsError, WebRoots,
};
use cluster::{kubectl, kubectl_until_ok, poll_until, text, Cluster};

const TOKEN: &str = "jdtest.0123456789abcdef";

#[test]
fn init_publishes_join_data_that_discovery_and_download_accept() {
    let Some((cluster, kubectl_exe)) = cluster::real_cluster() else {
        return;
    };
    let init = cluster.boot(&["init", "--upload-certs", "--token", TOKEN]);
    let output = text(&init);
    assert!(init.status.success(), "{output}");

    let api = cluster.ports[0];
    let endpoint = format!("127.0.0.1:{api}");
    let pki = cluster.root().join("etc/kubernetes/pki");
    let ca_pem = std::fs::read_to_string(pki.join("ca.crt")).unwrap();
    let hash = CaCertHash::of_pem(ca_pem.as_bytes()).unwrap();
    let key: CertificateKey = output
        .lines()
        .skip_while(|l| !l.contains("[upload-certs] Using certificate key:"))
        .nth(1)
        .expect("init prints the certificate key")
        .trim()
        .parse()
        .expect("64 hex digits");
    assert!(
        output.contains(&format!(
            "kubeadm join {endpoint} --token {TOKEN} \\\n\t--discovery-token-ca-cert-hash {hash}"
        )),
        "the worker join command: {output}"
    );
    let manifests = cluster.root().join("etc/kubernetes/manifests");
    let apiserver = std::fs::read_to_string(manifests.join("kube-apiserver.yaml")).unwrap();
    assert!(apiserver.contains("--enable-bootstrap-token-auth=true"));
    let kcm = std::fs::read_to_string(manifests.join("kube-controller-manager.yaml")).unwrap();
    assert!(kcm.contains("--controllers=*,bootstrapsigner,tokencleaner"));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let token: BootstrapToken = TOKEN.parse().unwrap();
    let timeout = Duration::from_secs(30);

    // Discovery with the right pin: the CA and server the node has.
    let info = runtime
        .block_on(discover(&endpoint, &token, &[hash], timeout))
        .unwrap_or_else(|e| panic!("{e} (hint: {})", e.hint()));
    assert_eq!(info.ca_pem, ca_pem);
    assert_eq!(info.server, format!("https://{endpoint}"));

    // A wrong pin fails at once, naming the endpoint and both hashes.
    let wrong: CaCertHash = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
    let started = Instant::now();
    let err = runtime
        .block_on(discover(&endpoint, &token, &[wrong], timeout))
        .unwrap_err();
    assert!(matches!(err, DiscoveryError::WrongCaHash { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let message = err.to_string();
    assert!(
        message.contains(&endpoint) && message.contains(&hash.to_string()),
        "{message}"
    );

    // An unknown token finds no signature until the (short) timeout.
    let unknown: BootstrapToken = "zzzzzz.0123456789abcdef".parse().unwrap();
    let err = runtime
        .block_on(discover(
            &endpoint,
            &unknown,
            &[hash],
            Duration::from_secs(3),
        ))
        .unwrap_err();
    assert!(matches!(err, DiscoveryError::NoSignature { .. }), "{err:?}");
    assert!(err.to_string().contains("zzzzzz"), "{err}");

    // The right ID with a wrong secret: the signature does not verify, no retrying.
    let forged: BootstrapToken = "jdtest.ffffffffffffffff".parse().unwrap();
    let err = runtime
        .block_on(discover(&endpoint, &forged, &[hash], timeout))
        .unwrap_err();
    assert!(
        matches!(err, DiscoveryError::BadSignature { .. }),
        "{err:?}"
    );

    unpinned_and_file_discovery(&runtime, &cluster, &endpoint, &info, &key);

    // The shared certificates come back identical to the node's files.
    let shared = runtime
        .block_on(download(&info, &(&token).into(), &key, timeout))
        .unwrap_or_else(|e| panic!("{e} (hint: {})", e.hint()));
    let joined = tempfile::tempdir().unwrap();
    let written = shared.write_into(&joined.path().join("pki")).unwrap();
    assert_eq!(written.len(), 8, "{written:?}");
    for name in [
        "ca.crt",
        "ca.key",
        "sa.key",
        "sa.pub",
        "front-proxy-ca.crt",
        "front-proxy-ca.key",
        "etcd/ca.crt",
        "etcd/ca.key",
    ] {
        assert_eq!(
            std::fs::read(joined.path().join("pki").join(name)).unwrap(),
            std::fs::read(pki.join(name)).unwrap(),
            "{name}"
        );
    }
    // boot's addition: the cluster's encryption configuration, so a joining API server can read
    // what this one encrypted.
    let encryption = pki.parent().unwrap().join("encryption/config.yaml");
    assert_eq!(
        shared.get(boot::join::upload_certs::ENCRYPTION_CONFIG_KEY),
        Some(&std::fs::read(&encryption).unwrap()[..]),
        "{}",
        encryption.display()
    );
    let err = runtime
        .block_on(download(
            &info,
            &(&token).into(),
            &CertificateKey::generate(),
            timeout,
        ))
        .unwrap_err();
    assert!(matches!(err, UploadCertsError::Decrypt { .. }), "{err}");
    assert!(err.hint().contains("--certificate-key"));
    let err = runtime
        .block_on(download(&info, &(&unknown).into(), &key, timeout))
        .unwrap_err();
    assert!(
        matches!(err, UploadCertsError::Refused { code: 401, .. }),
        "{err}"
    );

    // kubeadm-certs is owned by a two-hour bootstrap token (the tokencleaner deletes both).
    let owner = kubectl_until_ok(
        &kubectl_exe,
        &cluster,
        &[
            "-n",
            "kube-system",
            "get",
            "secret",
            "kubeadm-certs",
            "-o",
            "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
        ],
        Duration::from_secs(10),
    );
    assert!(owner.starts_with("Secret/bootstrap-token-"), "{owner}");

    csr_with_token_is_approved(&kubectl_exe, &cluster, &endpoint, &pki);
    controller_manager_signs_the_same(&kubectl_exe, &cluster);
    token_commands_round_trip(&kubectl_exe, &cluster, &runtime, &endpoint, hash);
}

/// `kubectl` as the bootstrap token, trusting the cluster CA (no kubeconfig).
fn kubectl_as_token(kubectl_exe: &Path, endpoint: &str, pki: &Path, args: &[&str]) -> Output {
    Command::new(kubectl_exe)
        .arg("--kubeconfig=/dev/null")
        .arg(format!("--server=https://{endpoint}"))
        .arg(format!(
            "--certificate-authority={}",
            pki.join("ca.crt").display()
        ))
        .arg(format!("--token={TOKEN}"))
        .args(["--request-timeout", "10s"])
        .args(args)
        .output()
        .unwrap()
}

/// The token authenticates as a bootstrapper; its node-client CSR is approved by the
/// controller manager (kubeadm:node-autoapprove-bootstrap) and it may get nodes.
fn csr_with_token_is_approved(kubectl_exe: &Path, cluster: &Cluster, endpoint: &str, pki: &Path) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "system:node:jd-worker");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, csr);
    let manifest = format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: jd-worker\nspec:\n  request: {b64}\n  signerName: kubernetes.io/kube-apiserver-client-kubelet\n  usages: [digital signature, client auth]\n"
    );
    let file = cluster.dir.path().join("csr.yaml");
    std::fs::write(&file, manifest).unwrap();
    let created = kubectl_as_token(
        kubectl_exe,
        endpoint,
        pki,
        &["create", "-f", file.to_str().unwrap()],
    );
    assert!(
        created.status.success(),
        "the token creates a CSR: {}",
        text(&created)
    );
    // kubeadm:get-nodes grants `get` (not `list`): what `kubeadm join` checks.
    let can = kubectl_as_token(
        kubectl_exe,
        endpoint,
        pki,
        &["auth", "can-i", "get", "nodes"],
    );
    assert_eq!(
        String::from_utf8_lossy(&can.stdout).trim(),
        "yes",
        "kubeadm:get-nodes: {}",
        text(&can)
    );
    let approval = [
        "get",
        "csr",
        "jd-worker",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Approved\")].status}",
    ];
    let read =
        || String::from_utf8_lossy(&kubectl(kubectl_exe, cluster, &approval).stdout).into_owned();
    let mut first = Some(kubectl_until_ok(
        kubectl_exe,
        cluster,
        &approval,
        Duration::from_secs(10),
    ));
    poll_until(
        Duration::from_secs(60),
        Duration::from_millis(500),
        || (first.take().unwrap_or_else(read).trim() == "True").then_some(()),
        || format!("the CSR was not auto-approved: {:?}", read()),
    );
}

/// Removing boot's signature from cluster-info: the bootstrapsigner puts back the same value.
fn controller_manager_signs_the_same(kubectl_exe: &Path, cluster: &Cluster) {
    let path = "jsonpath={.data.jws-kubeconfig-jdtest}";
    let ours = kubectl_until_ok(
        kubectl_exe,
        cluster,
        &["-n", "kube-public", "get", "cm", "cluster-info", "-o", path],
        Duration::from_secs(10),
    );
    assert!(ours.contains(".."), "a detached JWS: {ours:?}");
    let removed = kubectl(
        kubectl_exe,
        cluster,
        &[
            "-n",
            "kube-public",
            "patch",
            "cm",
            "cluster-info",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/data/jws-kubeconfig-jdtest"}]"#,
        ],
    );
    assert!(removed.status.success(), "{}", text(&removed));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let theirs = kubectl(
            kubectl_exe,
            cluster,
            &["-n", "kube-public", "get", "cm", "cluster-info", "-o", path],
        );
        let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
        if !theirs.is_empty() {
            assert_eq!(
                theirs, ours,
                "the controller manager's signature equals boot's"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the bootstrapsigner did not re-sign cluster-info"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn token_commands_round_trip(
    kubectl_exe: &Path,
    cluster: &Cluster,
    runtime: &tokio::runtime::Runtime,
    endpoint: &str,
    hash: CaCertHash,
) {
    let created = cluster.boot(&["token", "create", "--print-join-command", "--ttl", "2h"]);
    let line = String::from_utf8_lossy(&created.stdout).into_owned();
    assert!(created.status.success(), "{}", text(&created));
    let prefix = format!("kubeadm join {endpoint} --token ");
    assert!(line.starts_with(&prefix), "{line}");
    let token: BootstrapToken = line[prefix.len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        line.ends_with(&format!("--discovery-token-ca-cert-hash {hash} \n")),
        "{line:?}"
    );
    // Signed by boot at once: discovery works without waiting for the controller manager.
    runtime
        .block_on(discover(endpoint, &token, &[hash], Duration::from_secs(5)))
        .unwrap_or_else(|e| panic!("{e}"));

    let again = cluster.boot(&["token", "create", &token.to_string()]);
    assert!(!again.status.success(), "a token ID is never reused");
    assert!(text(&again).contains("already exists"), "{}", text(&again));

    let list = cluster.boot(&["token", "list"]);
    let table = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.status.success(), "{}", text(&list));
    assert!(table.starts_with("TOKEN "), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with(&token.to_string()))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("authentication,signing")
            && row.contains("system:bootstrappers:kubeadm:default-node-token"),
        "{row}"
    );
    assert!(table.lines().any(|l| l.starts_with(TOKEN)), "{table}");

    let deleted = cluster.boot(&["token", "delete", token.id()]);
    assert!(deleted.status.success(), "{}", text(&deleted));
    let list = cluster.boot(&["token", "list"]);
    assert!(!String::from_utf8_lossy(&list.stdout).contains(token.id()));
    let signature = kubectl(
        kubectl_exe,
        cluster,
        &[
            "-n",
            "kube-public",
            "get",
            "cm",
            "cluster-info",
            "-o",
            &format!("jsonpath={{.data.jws-kubeconfig-{}}}", token.id()),
        ],
    );
    assert!(
        signature.stdout.is_empty(),
        "the deleted token's signature is gone"
    );
    let missing = cluster.boot(&["token", "delete", token.id()]);
    assert!(!missing.status.success());
    assert!(text(&missing).contains("not found"), "{}", text(&missing));
}

/// kubeadm's `unsafeSkipCAVerification` (no pin, the signature still checked) and file discovery:
/// admin.conf as the file (cluster-info refreshed over its CA; its user's client certificate reads
/// kubeadm-certs, as a join with that file and no token does), a file with another CA (refused,
/// naming the file), and the cluster-info kubeconfig with a token user at an https:// URL.
fn unpinned_and_file_discovery(
    runtime: &tokio::runtime::Runtime,
    cluster: &Cluster,
    endpoint: &str,
    info: &ClusterInfo,
    key: &CertificateKey,
) {
    let timeout = Duration::from_secs(20);
    let token: BootstrapToken = TOKEN.parse().unwrap();
    let unpinned = runtime
        .block_on(discover(endpoint, &token, &[], timeout))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&unpinned, info);
    let forged: BootstrapToken = "jdtest.ffffffffffffffff".parse().unwrap();
    let err = runtime
        .block_on(discover(endpoint, &forged, &[], timeout))
        .unwrap_err();
    assert!(
        matches!(err, DiscoveryError::BadSignature { .. }),
        "{err:?}"
    );

    let no_web = || -> Result<WebRoots, FileDiscoveryError> { panic!("a file needs no web roots") };
    let kubernetes = cluster.root().join("etc/kubernetes");
    let admin = DiscoveryFile::Path(kubernetes.join("admin.conf"));
    let found = runtime
        .block_on(discover_file(&admin, no_web, timeout))
        .unwrap_or_else(|e| panic!("{e} (hint: {})", e.hint()));
    assert!(found.refreshed, "cluster-info is readable anonymously");
    assert_eq!(&found.info, info);
    let admin_user = found
        .credentials
        .expect("admin.conf's user has credentials");
    assert_eq!(admin_user.describe(), "a client certificate");
    let shared = runtime
        .block_on(download(&found.info, &admin_user, key, timeout))
        .unwrap_or_else(|e| panic!("as admin.conf's user: {e} (hint: {})", e.hint()));
    assert!(shared.get("ca.key").is_some_and(|k| !k.is_empty()));

    // The same server with another CA: the TLS check fails at once, naming the file.
    let other_ca = std::fs::read(kubernetes.join("pki/front-proxy-ca.crt")).unwrap();
    let wrong = cluster.dir.path().join("wrong-ca.conf");
    std::fs::write(
        &wrong,
        cluster_info_kubeconfig(&info.server, &other_ca, None),
    )
    .unwrap();
    let started = Instant::now();
    let err = runtime
        .block_on(discover_file(
            &DiscoveryFile::Path(wrong.clone()),
            no_web,
            timeout,
        ))
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&wrong.display().to_string()) && message.contains("TLS"),
        "{message}"
    );
    assert!(
        err.hint().contains("not signed by the discovery file's CA"),
        "{}",
        err.hint()
    );

    // An https:// URL, served with the API server's certificate (the test trusts the cluster CA
    // for it): its kubeconfig's token user is the credentials.
    let served = cluster_info_kubeconfig(&info.server, info.ca_pem.as_bytes(), Some(TOKEN));
    let pki = kubernetes.join("pki");
    let url = runtime.block_on(serve_once(
        &std::fs::read(pki.join("apiserver.crt")).unwrap(),
        &std::fs::read(pki.join("apiserver.key")).unwrap(),
        served.into_bytes(),
    ));
    let roots = || WebRoots::from_pem(info.ca_pem.as_bytes());
    let found = runtime
        .block_on(discover_file(
            &DiscoveryFile::Url(url.clone()),
            roots,
            timeout,
        ))
        .unwrap_or_else(|e| panic!("{url}: {e} (hint: {})", e.hint()));
    assert!(found.refreshed);
    assert_eq!(&found.info, info);
    match found.credentials {
        Some(JoinCredentials::Token(token)) => {
            assert_eq!(secrecy::ExposeSecret::expose_secret(&token), TOKEN)
        }
        other => panic!("the served kubeconfig's token user gave {other:?}"),
    }

    // The same URL, but the roots do not include its CA: nothing is read from it.
    let url = runtime.block_on(serve_once(
        &std::fs::read(pki.join("apiserver.crt")).unwrap(),
        &std::fs::read(pki.join("apiserver.key")).unwrap(),
        b"never read".to_vec(),
    ));
    let untrusted = || WebRoots::from_pem(&other_ca);
    let err = runtime
        .block_on(discover_file(
            &DiscoveryFile::Url(url.clone()),
            untrusted,
            timeout,
        ))
        .unwrap_err();
    assert!(matches!(err, FileDiscoveryError::Read { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&url) && message.contains("not trusted by the system CA bundle"),
        "{message}"
    );
}

/// A kubeconfig with one cluster and context, and a token user if given.
fn cluster_info_kubeconfig(server: &str, ca_pem: &[u8], token: Option<&str>) -> String {
    let ca = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ca_pem);
    let user = token
        .map(|t| format!("\n    token: {t}"))
        .unwrap_or_else(|| " {}".into());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\nusers:\n- name: u\n  user:{user}\n"
    )
}

/// An HTTPS server on a free loopback port answering its first request with `body`, with
/// certificate `cert_pem` and key `key_pem`; the URL to ask. It runs on `runtime` until the
/// runtime is dropped; a client that rejects the certificate ends it.
async fn serve_once(cert_pem: &[u8], key_pem: &[u8], body: Vec<u8>) -> String {
    use rustls::pki_types::{
        CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs: Vec<CertificateDer<'static>> = pem::parse_many(cert_pem)
        .unwrap()
        .into_iter()
        .map(|b| CertificateDer::from(b.into_contents()))
        .collect();
    let key = pem::parse(key_pem).unwrap();
    let key: PrivateKeyDer<'static> = match key.tag() {
        "RSA PRIVATE KEY" => PrivatePkcs1KeyDer::from(key.into_contents()).into(),
        "EC PRIVATE KEY" => PrivateSec1KeyDer::from(key.into_contents()).into(),
        _ => PrivatePkcs8KeyDer::from(key.into_contents()).into(),
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let Ok(mut tls) = acceptor.accept(tcp).await else {
            return;
        };
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tls.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            request.extend_from_slice(&buf[..n]);
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(&body).await.unwrap();
        tls.shutdown().await.unwrap();
    });
    format!("https://127.0.0.1:{port}/discovery/kubeconfig")
}
