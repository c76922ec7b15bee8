//! `boot images list|pull|import|ls|rm|prune`: kubeadm's `config images list/pull`, air-gapped
//! import and the local store (`/var/lib/boot/images`). The parallel pull with its live display is
//! shared with `boot init`'s `[preflight] Pulling images …` step.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Subcommand;

use super::load::{self, ConfigFlags};
use super::{CliError, ExitCode, GlobalArgs};
use crate::config::Config;
use crate::host::HostRoot;
use crate::image::{self, ImageError, ImageRef, PullPolicy, Registries, Store};
use crate::init::images::init_images;

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Print the images `boot init` uses (kubeadm's `config images list`).
    List {
        #[command(flatten)]
        flags: ConfigFlags,
    },
    /// Pull the images `boot init` uses, or the IMAGEs given, in parallel.
    Pull {
        /// Images to pull instead of the configuration's.
        images: Vec<String>,
        /// Resolve every image with its registry again, even when present (`imagePullPolicy:
        /// Always`); blobs already in the store are not downloaded again.
        #[arg(long)]
        always: bool,
        #[command(flatten)]
        flags: ConfigFlags,
    },
    /// Import an OCI image layout (directory or tar) or a `docker save` archive.
    Import {
        path: PathBuf,
        /// The name for images the input does not name (an OCI layout tagged only `latest`).
        #[arg(long, value_name = "IMAGE")]
        name: Option<String>,
    },
    /// List the images in the local store.
    Ls,
    /// Remove images from the local store.
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove every image that no static pod manifest uses.
    Prune {
        #[command(flatten)]
        flags: ConfigFlags,
    },
}

pub fn run(command: ImagesCommand, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let root = global.host_root()?;
    match command {
        ImagesCommand::List { flags } => {
            let cfg = load::load(global, &flags)?;
            for image in init_images(&cfg) {
                println!("{image}");
            }
            Ok(ExitCode::Ok)
        }
        ImagesCommand::Pull {
            images,
            always,
            flags,
        } => {
            let cfg = load::load(global, &flags)?;
            let images = if images.is_empty() {
                init_images(&cfg)
            } else {
                images
            };
            let refs = parse_refs(&images)?;
            let policy = if always {
                PullPolicy::Always
            } else {
                PullPolicy::IfNotPresent
            };
            pull_all(&root, &cfg, &refs, policy, "config/images")?;
            Ok(ExitCode::Ok)
        }
        ImagesCommand::Import { path, name } => {
            let store = open_store(&root)?;
            let name = name
                .map(|n| n.parse::<ImageRef>())
                .transpose()
                .map_err(|e| image_error(e.into()))?;
            let started = Instant::now();
            let names = image::import::import(&store, &path, name.as_ref()).map_err(image_error)?;
            for name in names {
                println!("[images] Imported {name} from {}", path.display());
            }
            println!("[images] Import took {:.1?}", started.elapsed());
            Ok(ExitCode::Ok)
        }
        ImagesCommand::Ls => {
            let store = open_store(&root)?;
            list(&store)
        }
        ImagesCommand::Rm { images } => {
            let store = open_store(&root)?;
            let refs = parse_refs(&images)?;
            let collected = image::gc::remove(&store, &refs).map_err(image_error)?;
            for name in &collected.images {
                println!("[images] Removed {name}");
            }
            report_collected(&collected);
            Ok(ExitCode::Ok)
        }
        ImagesCommand::Prune { flags } => {
            let cfg = load::load(global, &flags)?;
            let store = open_store(&root)?;
            let used = manifest_images(&root.path(&cfg.static_pod_path))?;
            let collected = image::gc::prune(&store, &used).map_err(image_error)?;
            for name in &collected.images {
                println!("[images] Removed {name} (no static pod uses it)");
            }
            report_collected(&collected);
            Ok(ExitCode::Ok)
        }
    }
}

fn parse_refs(images: &[String]) -> Result<Vec<ImageRef>, CliError> {
    images
        .iter()
        .map(|i| i.parse::<ImageRef>().map_err(|e| image_error(e.into())))
        .collect()
}

fn open_store(root: &HostRoot) -> Result<Store, CliError> {
    Store::open(root).map_err(image_error)
}

pub fn image_error(err: ImageError) -> CliError {
    let hint = err.hint();
    let mut headline = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !headline.contains(&text) {
            headline = format!("{headline}: {text}");
        }
        source = cause.source();
    }
    let cli = CliError::new(ExitCode::Image, headline);
    match hint {
        Some(hint) => cli.with_hint(hint),
        None => cli,
    }
}

/// Pulls `images` in parallel with a live display on a terminal and plain lines otherwise;
/// `phase` prefixes the lines (`preflight` in init, `config/images` here, as kubeadm).
pub fn pull_all(
    root: &HostRoot,
    cfg: &Config,
    images: &[ImageRef],
    policy: PullPolicy,
    phase: &str,
) -> Result<(), CliError> {
    let store = open_store(root)?;
    let registries = Registries::load(&cfg.boot.registries, root).map_err(image_error)?;
    for warning in registries.warnings() {
        eprintln!("[{phase}] WARNING: {warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| {
            CliError::new(
                ExitCode::Image,
                format!("cannot start the pull runtime: {e}"),
            )
        })?;
    let display = Arc::new(Display::new(phase, std::io::stdout().is_terminal()));
    let results = runtime.block_on(async {
        let ticker = tokio::spawn(display.clone().tick());
        let pulls = images.iter().map(|image| {
            let (store, registries, display) = (&store, &registries, display.clone());
            async move {
                let started = Instant::now();
                let result = store
                    .ensure(image, policy, registries, display.clone())
                    .await;
                display.finished(image, &result, started.elapsed());
                result
            }
        });
        let results = futures::future::join_all(pulls).await;
        ticker.abort();
        results
    });
    display.clear();
    let mut errors = results.into_iter().filter_map(Result::err);
    match errors.next() {
        None => Ok(()),
        Some(first) => {
            let others = errors.count();
            let mut cli = image_error(first);
            if others > 0 {
                cli.headline = format!("{} (and {others} more image(s) failed)", cli.headline);
            }
            Err(cli)
        }
    }
}

/// The live progress: one line per image being pulled, redrawn on a terminal.
struct Display {
    phase: String,
    live: bool,
    state: Mutex<DisplayState>,
}

#[derive(Default)]
struct DisplayState {
    /// image → (total, missing, fetched, started)
    pulling: BTreeMap<String, (u64, u64, u64, Option<Instant>)>,
    drawn_lines: usize,
}

impl Display {
    fn new(phase: &str, live: bool) -> Self {
        Display {
            phase: phase.into(),
            live,
            state: Mutex::new(DisplayState::default()),
        }
    }

    async fn tick(self: Arc<Self>) {
        if !self.live {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.redraw();
        }
    }

    fn redraw(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        if state.drawn_lines > 0 {
            out.push_str(&format!("\x1b[{}A", state.drawn_lines));
        }
        for (image, (total, missing, fetched, started)) in &state.pulling {
            let rate = started
                .map(|s| *fetched as f64 / s.elapsed().as_secs_f64().max(0.001))
                .unwrap_or(0.0);
            out.push_str(&format!(
                "\x1b[2K[{}] Pulling {image}: {} / {} ({}/s, {} of {} present)\n",
                self.phase,
                human(*fetched),
                human(*missing),
                human(rate as u64),
                human(total.saturating_sub(*missing)),
                human(*total),
            ));
        }
        state.drawn_lines = state.pulling.len();
        print!("{out}");
        let _ = std::io::stdout().flush();
    }

    fn clear(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if self.live && state.drawn_lines > 0 {
            print!("\x1b[{}A\x1b[J", state.drawn_lines);
            let _ = std::io::stdout().flush();
        }
        state.drawn_lines = 0;
    }

    fn finished(
        &self,
        image: &ImageRef,
        result: &Result<image::LocalImage, ImageError>,
        took: Duration,
    ) {
        self.clear();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let entry = state.pulling.remove(&image.to_string());
        match result {
            Ok(local) => {
                let fetched = entry.map(|e| e.2).unwrap_or(0);
                if fetched == 0 && entry.is_none() {
                    println!(
                        "[{}] {image} is present ({})",
                        self.phase, local.manifest_digest
                    );
                } else {
                    println!(
                        "[{}] Pulled {image} ({}, {} downloaded in {took:.1?})",
                        self.phase,
                        local.manifest_digest,
                        human(fetched)
                    );
                }
            }
            Err(e) => println!("[{}] Failed to pull {image}: {e}", self.phase),
        }
    }
}

impl image::Progress for Display {
    fn resolved(&self, image: &str, total: u64, missing: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state
            .pulling
            .insert(image.to_string(), (total, missing, 0, Some(Instant::now())));
    }

    fn bytes(&self, image: &str, n: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = state.pulling.get_mut(image) {
            entry.2 += n;
        }
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn list(store: &Store) -> Result<ExitCode, CliError> {
    let index = store.read_index().map_err(image_error)?;
    println!("{:<70} {:<15} {:>10}", "IMAGE", "IMAGE ID", "SIZE");
    for (name, record) in &index.images {
        let Ok(image) = name.parse::<ImageRef>() else {
            continue;
        };
        match store.load(&image, record).map_err(image_error)? {
            Some(local) => println!(
                "{name:<70} {:<15} {:>10}",
                &local.id.hex()[..12],
                human(local.size)
            ),
            None => println!("{name:<70} {:<15} {:>10}", "(incomplete)", "-"),
        }
    }
    Ok(ExitCode::Ok)
}

fn report_collected(collected: &image::gc::Collected) {
    println!(
        "[images] Deleted {} blob(s) ({}) and {} unpacked layer(s)",
        collected.blobs,
        human(collected.bytes),
        collected.layers
    );
}

/// The images every static pod manifest in `dir` uses (files that do not parse are skipped: they
/// run nothing).
fn manifest_images(dir: &Path) -> Result<Vec<ImageRef>, CliError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(CliError::new(
                ExitCode::Image,
                format!("cannot read the manifest directory {}: {e}", dir.display()),
            ))
        }
    };
    let mut images = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Ok(pod) = crate::agent::source::StaticPod::parse(&path, &bytes, "node") else {
            continue;
        };
        for container in pod.init_containers().iter().chain(pod.containers()) {
            if let Some(image) = container.image.as_deref().and_then(|i| i.parse().ok()) {
                images.push(image);
            }
        }
    }
    Ok(images)
}
