//! etcd membership through boot's gateway client against real Debian etcd processes on loopback
//! ports in a temporary directory: add a learner, start it, promote it once caught up (two voters),
//! remove it; an unreachable endpoint is skipped for the next, and named when none answers.

#[path = "common/ports.rs"]
mod ports;
#[path = "common/require.rs"]
mod require;
#[path = "common/wait.rs"]
mod wait;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use boot::etcd::{members, promote, ClientFiles, EtcdClient, EtcdError};
use boot::join::etcd_journal::{remove_member, Removal};

/// An etcd process, killed (and waited for) when dropped.
struct Etcd {
    child: Child,
    client_url: String,
    peer_url: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Certificates from `boot manifests --pki` (advertise address 127.0.0.1: every etcd cert is
/// valid for it).
fn pki(dir: &Path) -> PathBuf {
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 127.0.0.1\nnodeRegistration:\n  name: etcd-test\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: ECDSA-P256\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_boot"))
        .args(["manifests", "--pki", "--config"])
        .arg(&config)
        .arg("--root")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("etc/kubernetes/pki")
}

/// The first member of a new cluster.
fn start(dir: &Path, pki: &Path, name: &str) -> Etcd {
    let [client, peer] = ports::free_ports(2)[..] else {
        unreachable!()
    };
    let cluster = format!("{name}=https://127.0.0.1:{peer}");
    start_on(dir, pki, name, (client, peer), &cluster, "new")
}

fn client(pki: &Path, endpoints: &[&str]) -> EtcdClient {
    let endpoints: Vec<String> = endpoints.iter().map(|e| e.to_string()).collect();
    EtcdClient::new(
        &endpoints,
        &ClientFiles::apiserver_etcd_client(pki),
        Duration::from_secs(5),
    )
    .unwrap()
}

/// The member list once `ready` holds, within `timeout`.
async fn wait_members(
    client: &EtcdClient,
    timeout: Duration,
    ready: impl Fn(&[members::Member]) -> bool,
) -> Vec<members::Member> {
    let last = std::cell::RefCell::new(None);
    let (ready, seen) = (&ready, &last);
    wait::poll_until_async(
        timeout,
        Duration::from_millis(200),
        || async move {
            let list = members::list(client).await;
            let found = list.as_ref().ok().filter(|l| ready(l)).cloned();
            *seen.borrow_mut() = Some(list);
            found
        },
        || format!("members not as expected: {:?}", last.borrow()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learner_is_added_promoted_once_caught_up_and_removed() {
    if require::file("/usr/bin/etcd").is_none() {
        return;
    }
    let OneMember {
        first,
        cluster,
        members: one,
        pki,
        dir,
    } = one_member().await;
    assert_eq!(one[0].name, "m1");
    assert_eq!(one[0].client_urls, std::slice::from_ref(&first.client_url));

    // Add as a learner: not a voter, not started.
    let (added, after_add) = add_and_start(&cluster, dir.path(), &pki, &first).await;
    let learner = &added.0;
    assert!(after_add.iter().any(|m| m.id == learner.id && m.is_learner));
    assert_eq!(after_add.len(), 2);

    let learner_client = client(&pki, &[&added.1.client_url]);
    let mut lines = Vec::new();
    let promoted = promote::promote_when_ready(
        &cluster,
        learner.id,
        Some(&learner_client),
        Duration::from_secs(60),
        &mut |line| lines.push(line),
    )
    .await;
    let took = promoted.unwrap_or_else(|e| panic!("promotion failed: {e}; progress: {lines:?}"));
    let voters = wait_members(&cluster, Duration::from_secs(30), |m| {
        m.len() == 2 && m.iter().all(|m| m.started() && !m.is_learner)
    })
    .await;
    assert!(voters.iter().any(|m| m.name == "m2"), "{voters:?}");
    eprintln!("promoted after {took:?}; progress lines: {lines:?}");

    // Promoting again is a no-op (a rerun of join), not an error.
    promote::promote_when_ready(
        &cluster,
        learner.id,
        None,
        Duration::from_secs(5),
        &mut |_| {},
    )
    .await
    .unwrap();

    // The new member answers for the cluster too; an unreachable first endpoint is skipped.
    let dead = format!("https://127.0.0.1:{}", ports::free_port());
    let through_second = client(&pki, &[&dead, &added.1.client_url]);
    assert_eq!(members::list(&through_second).await.unwrap().len(), 2);

    // A node removing its own member (reset) may know only itself: the request goes through the
    // other member, so the answer is not lost with the member that leaves.
    let removed = remove_member(&through_second, &added.1.peer_url, None)
        .await
        .unwrap();
    assert_eq!(removed, Removal::Removed(learner.id));
    let left = wait_members(&cluster, Duration::from_secs(30), |m| m.len() == 1).await;
    assert_eq!(left[0].name, "m1");
    let again = members::remove(&cluster, learner.id).await.unwrap_err();
    assert!(again.is_member_not_found(), "{again}");
}

/// A cluster of one member, `m1`, in a temporary directory, once it answers. The etcd is
/// declared first so that it is killed before its directory is removed.
struct OneMember {
    first: Etcd,
    cluster: EtcdClient,
    members: Vec<members::Member>,
    pki: PathBuf,
    dir: tempfile::TempDir,
}

async fn one_member() -> OneMember {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let first = start(dir.path(), &pki, "m1");
    let cluster = client(&pki, &[&first.client_url]);
    let members = wait_members(&cluster, Duration::from_secs(30), |m| m.len() == 1).await;
    OneMember {
        first,
        cluster,
        members,
        pki,
        dir,
    }
}

/// Adds a learner for a new etcd and starts that etcd with the membership the add returned.
async fn add_and_start(
    cluster: &EtcdClient,
    dir: &Path,
    pki: &Path,
    first: &Etcd,
) -> ((members::Member, Etcd), Vec<members::Member>) {
    // Reserve the ports, add with the peer URL, then start etcd on exactly those ports.
    let [client_port, peer_port] = ports::free_ports(2)[..] else {
        unreachable!()
    };
    let peer_url = format!("https://127.0.0.1:{peer_port}");
    let (member, list) = members::add_learner(cluster, std::slice::from_ref(&peer_url))
        .await
        .unwrap();
    assert!(member.is_learner && !member.started(), "{member:?}");
    let cluster_flag = members::initial_cluster(&list, "m2", &peer_url);
    assert!(cluster_flag.contains(&format!("m1={}", first.peer_url)));
    let etcd = start_on(
        dir,
        pki,
        "m2",
        (client_port, peer_port),
        &cluster_flag,
        "existing",
    );
    ((member, etcd), list)
}

fn start_on(
    dir: &Path,
    pki: &Path,
    name: &str,
    (client, peer): (u16, u16),
    cluster: &str,
    state: &str,
) -> Etcd {
    let client_url = format!("https://127.0.0.1:{client}");
    let peer_url = format!("https://127.0.0.1:{peer}");
    let etcd_pki = |f: &str| pki.join("etcd").join(f).display().to_string();
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new("/usr/bin/etcd")
        .arg(format!("--name={name}"))
        .arg(format!("--data-dir={}", dir.join(name).display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster={cluster}"))
        .arg(format!("--initial-cluster-state={state}"))
        .arg("--client-cert-auth=true")
        .arg("--peer-client-cert-auth=true")
        .arg(format!("--cert-file={}", etcd_pki("server.crt")))
        .arg(format!("--key-file={}", etcd_pki("server.key")))
        .arg(format!("--trusted-ca-file={}", etcd_pki("ca.crt")))
        .arg(format!("--peer-cert-file={}", etcd_pki("peer.crt")))
        .arg(format!("--peer-key-file={}", etcd_pki("peer.key")))
        .arg(format!("--peer-trusted-ca-file={}", etcd_pki("ca.crt")))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Etcd {
        child,
        client_url,
        peer_url,
    }
}

/// etcd names a new member after its peer URLs and the current second and refuses a name it has
/// removed: a join re-run right after its rollback adds the same peer URL in the same second.
#[tokio::test]
async fn a_peer_url_removed_and_added_again_at_once_gets_a_new_member() {
    if require::file("/usr/bin/etcd").is_none() {
        return;
    }
    // Bound whole: a pattern with `..` would drop (kill) the etcd at once.
    let one = one_member().await;
    let cluster = &one.cluster;
    let peer_url = vec![format!("https://127.0.0.1:{}", ports::free_port())];
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (member, _) = members::add_learner(cluster, &peer_url)
            .await
            .unwrap_or_else(|e| panic!("add after {} removals: {e}", ids.len()));
        members::remove(cluster, member.id).await.unwrap();
        ids.push(member.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "{ids:?}");
}

#[tokio::test]
async fn no_answering_endpoint_names_every_one_tried() {
    if require::file("/usr/bin/etcd").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let [a, b] = ports::free_ports(2)[..] else {
        unreachable!()
    };
    let (a, b) = (
        format!("https://127.0.0.1:{a}"),
        format!("https://127.0.0.1:{b}"),
    );
    let err = members::list(&client(&pki, &[&a, &b])).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, EtcdError::Unreachable { .. }), "{text}");
    assert!(text.contains(&a) && text.contains(&b), "{text}");
    assert!(text.to_lowercase().contains("connection refused"), "{text}");
}
