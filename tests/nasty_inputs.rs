//! The corpus of hostile inputs in `tests/fixtures/nasty/`: configuration files (`config/`) and
//! pod manifests (`manifests/`), each starting with `# expect: …`, plus a few generated ones too
//! big to keep as files. None may panic or take long; a configuration error names the file, the
//! line and the field (the `expect` text), `ok` means accepted.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use boot::agent::source::StaticPod;
use boot::config::{self, Config, HostFacts, Overrides};

/// Time any single input may take (each takes milliseconds; 100 000 nested `[` took a minute).
const BOUND: Duration = Duration::from_secs(10);

fn corpus(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nasty")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "the corpus in {} is there",
        dir.display()
    );
    files
}

/// The `# expect: …` of the first line.
fn expectation(text: &str, file: &Path) -> String {
    text.trim_start_matches('\u{feff}')
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{} starts with `# expect: `", file.display()))
        .to_string()
}

/// Runs `f` on its own thread; panics if it panics or outlasts `BOUND` (naming `what`).
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(BOUND) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} took longer than {BOUND:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

fn load(name: String, text: String) -> Result<Config, String> {
    let facts = HostFacts {
        hostname: "nasty".into(),
        default_address: Some([192, 0, 2, 1].into()),
        ..HostFacts::default()
    };
    config::parse(&name, &text)
        .and_then(|docs| Config::build(docs, &Overrides::default(), &facts))
        .map_err(|e| e.to_string())
}

#[test]
fn every_nasty_configuration_is_an_error_naming_its_field() {
    let mut failures = Vec::new();
    for file in corpus("config") {
        let text = std::fs::read_to_string(&file).unwrap();
        let expect = expectation(&text, &file);
        let name = format!("config/{}", file.file_name().unwrap().to_string_lossy());
        let result = bounded(&name, {
            let name = name.clone();
            move || load(name, text)
        });
        match (expect.as_str(), result) {
            ("ok", Ok(_)) => {}
            ("ok", Err(e)) => failures.push(format!("{name}: expected it to load, got: {e}")),
            (_, Ok(_)) => failures.push(format!("{name}: loaded, expected: {expect}")),
            (_, Err(e)) if e.starts_with(&name) && e.contains(&expect) => {}
            (_, Err(e)) => failures.push(format!("{name}:\n  got      {e}\n  expected {expect}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_nasty_manifest_is_parsed_or_refused_without_panicking() {
    let mut failures = Vec::new();
    for file in corpus("manifests") {
        let text = std::fs::read_to_string(&file).unwrap();
        let expect = expectation(&text, &file);
        let name = file.display().to_string();
        let result = bounded(&name, {
            let file = file.clone();
            move || StaticPod::parse(&file, text.as_bytes(), "node").map(|_| ())
        });
        match (expect.as_str(), result) {
            ("error", Ok(())) => failures.push(format!("{name}: accepted, expected an error")),
            ("error", Err(e)) if !e.to_string().contains("nasty/manifests/") => {
                failures.push(format!("{name}: the error does not name the file: {e}"))
            }
            ("error" | "any", _) => {}
            (other, _) => failures.push(format!("{name}: unknown expectation {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Inputs too big for the corpus, generated here.
#[test]
fn huge_generated_inputs_are_handled_quickly() {
    let cluster = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n";
    let deep = format!(
        "{cluster}clusterName: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let error = bounded("100 000 nested [", move || load("deep.yaml".into(), deep)).unwrap_err();
    assert!(
        error.starts_with("deep.yaml:3: malformed YAML: brackets nested deeper than 64"),
        "{error}"
    );

    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: deep}}\nspec: {{containers: {}{}}}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let error = bounded("a manifest with 100 000 nested [", move || {
        StaticPod::parse(Path::new("/m/deep.yaml"), pod.as_bytes(), "node").map(|_| ())
    })
    .unwrap_err();
    assert!(
        error.to_string().contains("nested deeper than 64"),
        "{error}"
    );

    let long = format!("{cluster}clusterName: {}\n", "a".repeat(5_000_000));
    bounded("a 5 MB line", move || load("long.yaml".into(), long)).unwrap();

    let separators = "---\n".repeat(200_000);
    bounded("200 000 empty documents", move || {
        load("separators.yaml".into(), separators)
    })
    .unwrap();
}
