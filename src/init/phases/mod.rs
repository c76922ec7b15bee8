//! init's phases, one file each, in kubeadm's order (reference §1). `agent` is the old name of
//! `kubelet-start`; `post-boot` of `upload-config` and `mark-control-plane` together.

mod bootstrap_token;
mod certs;
mod control_plane;
mod etcd;
mod kubeconfig;
mod kubelet_start;
mod mark_control_plane;
mod preflight;
mod upload_certs;
mod upload_config;
mod wait_control_plane;

use super::context::InitContext;
use crate::phases::Phase;

pub use control_plane::StaticPod;

/// `boot init`, phase by phase.
pub const PHASES: [&dyn Phase<InitContext>; 13] = [
    &preflight::Preflight,
    &certs::Certs,
    &kubeconfig::Kubeconfig,
    &etcd::ETCD,
    &control_plane::APISERVER,
    &control_plane::CONTROLLER_MANAGER,
    &control_plane::SCHEDULER,
    &kubelet_start::KubeletStart,
    &wait_control_plane::WaitControlPlane,
    &upload_config::UploadConfig,
    &upload_certs::UploadCerts,
    &mark_control_plane::MarkControlPlane,
    &bootstrap_token::BootstrapToken,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Config, HostFacts, Overrides};
    use crate::host::HostRoot;
    use crate::init::context::{InitRequest, JoinData};
    use crate::phases::{names, run, Selection};
    use std::cell::RefCell;
    use std::io::Write;
    use std::rc::Rc;

    /// Lines written to a buffer the test reads afterwards.
    #[derive(Clone, Default)]
    struct Captured(Rc<RefCell<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn cfg() -> Config {
        let docs = config::parse(
            "test.yaml",
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n\
             kubernetesVersion: v1.34.2\nencryptionAlgorithm: ECDSA-P256\n",
        )
        .unwrap();
        let facts = HostFacts {
            hostname: "node".into(),
            default_address: Some([10, 0, 0, 1].into()),
            ..HostFacts::default()
        };
        Config::build(docs, &Overrides::default(), &facts).unwrap()
    }

    fn request(root: &HostRoot) -> InitRequest {
        let cfg = cfg();
        InitRequest {
            templates: crate::render::Templates::built_in().unwrap(),
            cfg,
            root: root.clone(),
            dry_run: true,
            ignore_preflight: vec!["all".into()],
            agent_mode: crate::config::AgentMode::Detach,
            exe: "/usr/local/bin/boot".into(),
            live: false,
            pull_images: false,
            join: JoinData::default(),
            start_foreground: None,
        }
    }

    #[test]
    fn init_is_kubeadms_phases_in_kubeadms_order() {
        assert_eq!(
            names(&PHASES),
            [
                "preflight",
                "certs",
                "kubeconfig",
                "etcd",
                "control-plane",
                "control-plane/apiserver",
                "control-plane/controller-manager",
                "control-plane/scheduler",
                "kubelet-start",
                "wait-control-plane",
                "upload-config",
                "upload-certs",
                "mark-control-plane",
                "bootstrap-token",
            ]
        );
    }

    #[test]
    fn the_old_names_still_select_their_phases() {
        let agent = Selection::only("agent", &PHASES).unwrap();
        assert!(agent.selects("kubelet-start") && !agent.selects("preflight"));
        let post_boot = Selection::skip(&["post-boot".into()], &[], &PHASES).unwrap();
        assert!(!post_boot.selects("upload-config") && !post_boot.selects("mark-control-plane"));
        assert!(post_boot.selects("upload-certs") && post_boot.selects("bootstrap-token"));
        let control_plane = Selection::only("control-plane", &PHASES).unwrap();
        assert!(control_plane.selects("control-plane/scheduler") && !control_plane.selects("etcd"));
    }

    /// A dry run renders everything, describes the selected phases, writes nothing.
    #[test]
    fn a_dry_run_describes_every_file_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::under(dir.path().join("root")).unwrap();
        let out = Captured::default();
        let selection = Selection::skip(&["preflight".into()], &[], &PHASES).unwrap();
        let mut ctx = InitContext::new(request(&root), &selection, Box::new(out.clone())).unwrap();
        let report = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(run(&PHASES, &mut ctx, &selection, true))
            .unwrap();
        assert!(report.ran.is_empty());
        assert_eq!(report.skipped, ["preflight"]);
        let printed = String::from_utf8(out.0.borrow().clone()).unwrap();
        let prefix = root.prefix().display().to_string();
        for line in [
            format!("[dry-run] [certs] Would write 600 {prefix}/etc/kubernetes/pki/ca.key"),
            format!("[dry-run] [kubeconfig] Would write 600 {prefix}/etc/kubernetes/admin.conf"),
            format!("[dry-run] [etcd] Would write 600 {prefix}/etc/kubernetes/manifests/etcd.yaml"),
            format!(
                "[dry-run] [control-plane/scheduler] Would write 600 \
                 {prefix}/etc/kubernetes/manifests/kube-scheduler.yaml"
            ),
            format!(
                "[dry-run] [kubelet-start] Would write 600 {prefix}/var/lib/kubelet/config.yaml"
            ),
            "[dry-run] [kubelet-start] Would start the agent (Detach)".to_string(),
            "[dry-run] [upload-certs] Nothing to upload without --upload-certs".to_string(),
        ] {
            assert!(printed.contains(&line), "{line} not in:\n{printed}");
        }
        let order: Vec<&str> = printed
            .lines()
            .filter_map(|l| l.strip_prefix("[dry-run] [")?.split(']').next())
            .collect::<Vec<_>>()
            .into_iter()
            .fold(Vec::new(), |mut seen, name| {
                if seen.last() != Some(&name) {
                    seen.push(name);
                }
                seen
            });
        assert_eq!(
            order,
            &names(&PHASES)[1..]
                .iter()
                .filter(|n| *n != "control-plane")
                .map(String::as_str)
                .collect::<Vec<_>>()[..]
        );
        assert!(
            !dir.path().join("root").exists(),
            "a dry run wrote something"
        );
    }

    /// `phase kubeconfig` alone renders no certificates and needs the CA on disk.
    #[test]
    fn one_phase_renders_only_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::under(dir.path()).unwrap();
        let certs = Selection::only("certs", &PHASES).unwrap();
        let ctx = InitContext::new(request(&root), &certs, Box::new(std::io::sink())).unwrap();
        assert!(!ctx.rendered.certs.files.is_empty());
        assert!(ctx.rendered.kubeconfigs.files.is_empty() && ctx.rendered.manifests.is_empty());
        assert!(ctx.rendered.kubelet_file.is_none());
        let kubeconfig = Selection::only("kubeconfig", &PHASES).unwrap();
        let err = InitContext::new(request(&root), &kubeconfig, Box::new(std::io::sink()))
            .err()
            .unwrap();
        assert!(err.to_string().contains("ca.crt does not exist"), "{err}");
    }
}
