//! The `kf` binary's contract, driven as a user drives it: arguments in,
//! exit code and text out.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kf")).args(args).output().expect("kf runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `../shared/corpus/<kind>` from the repository root.
fn corpus(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus").join(kind)
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("corpus folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write temp file");
    path.display().to_string()
}

fn assert_no_panic(out: &Output) {
    assert!(!stderr(out).contains("panicked"), "kf panicked: {}", stderr(out));
}

const PROFILE: &str = "apiVersion: kubeflow.org/v1\nkind: Profile\nmetadata:\n  name: team-a\nspec:\n  owner:\n    kind: User\n    name: alice@example.com\n";

#[test]
fn help_lists_every_command() {
    let out = kf(&["--help"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for command in
        ["pipeline", "train", "tune", "registry", "serve", "tenancy", "validate", "fmt", "quickstart", "server"]
    {
        assert!(text.contains(&format!("  {command} ")), "--help should list {command}:\n{text}");
    }
    assert!(text.contains("--log-level") && text.contains("--output"), "{text}");
}

#[test]
fn commands_not_built_yet_exit_2_and_name_the_missing_part() {
    let out = kf(&["registry", "frobnicate", "--some-flag", "x.yaml"]);
    assert_eq!(out.status.code(), Some(2), "kf registry frobnicate");
    let err = stderr(&out);
    assert!(err.contains("not implemented yet") && err.contains("models, versions"), "kf registry: {err}");
}

/// The corpora whose kinds kf models today, with their public file counts.
const OWNED_CORPORA: [(&str, usize); 5] =
    [("profiles", 7), ("katib", 20), ("trainer", 19), ("kserve", 59), ("kfp", 25)];

fn validate_files(files: &[PathBuf]) -> Output {
    let args: Vec<&str> = std::iter::once("validate").chain(files.iter().map(|f| f.to_str().expect("utf-8"))).collect();
    kf(&args)
}

#[test]
fn validate_accepts_every_corpus_file_of_every_kind_kf_models() {
    for (dir, count) in OWNED_CORPORA {
        let files = yaml_files(&corpus(dir));
        assert_eq!(files.len(), count, "{dir} corpus size");
        let out = validate_files(&files);
        let text = stdout(&out);
        assert!(out.status.success(), "{dir}:\n{text}{}", stderr(&out));
        for file in &files {
            assert!(text.lines().any(|l| l == format!("OK {}", file.display())), "{text}");
        }
    }
}

#[test]
fn validate_rejects_every_invalid_corpus_file_naming_the_field() {
    for dir in ["trainer", "kserve", "kfp"] {
        let files = yaml_files(&corpus(dir).join("invalid"));
        assert!(!files.is_empty(), "{dir}/invalid holds examples");
        let out = validate_files(&files);
        assert_eq!(out.status.code(), Some(1), "{dir}/invalid must be rejected");
        let text = stdout(&out);
        for file in &files {
            let line = text.lines().find(|l| l.contains(&*file.display().to_string())).expect("one line per file");
            let field = line.strip_prefix(&format!("ERROR {}: ", file.display())).expect("names the file");
            assert!(!field.starts_with("kind:") && field.contains(": "), "names a field: {line}");
        }
    }
}

#[test]
fn validate_names_a_missing_file() {
    let out = kf(&["validate", "/nonexistent/kf/profile.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out).trim(),
        "ERROR /nonexistent/kf/profile.yaml: cannot read file: No such file or directory (os error 2)"
    );
    assert_no_panic(&out);
}

#[test]
fn validate_gives_line_and_column_of_a_yaml_syntax_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(&dir, "broken.yaml", "apiVersion: kubeflow.org/v1\nkind: Profile\nspec: [unclosed\n");
    let out = kf(&["validate", &file]);
    assert_eq!(out.status.code(), Some(1));
    let line = stdout(&out);
    assert!(line.starts_with(&format!("ERROR {file}: line 3, column ")), "{line}");
    assert!(line.contains("invalid YAML"), "{line}");
    assert_no_panic(&out);
}

#[test]
fn validate_names_an_unknown_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(&dir, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n");
    let out = kf(&["validate", &file]);
    assert_eq!(out.status.code(), Some(1));
    let line = stdout(&out);
    assert!(line.starts_with(&format!("ERROR {file}: kind: unknown kind \"ConfigMap\"")), "{line}");
}

#[test]
fn validate_rejects_documents_that_are_neither_manifests_nor_pipelines() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text, path) in
        [("scalar.yaml", "42\n", ""), ("noversion.yaml", "kind: Profile\n", "apiVersion"), ("empty.yaml", "", "")]
    {
        let file = write(&dir, name, text);
        let out = kf(&["validate", &file]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(stdout(&out).starts_with(&format!("ERROR {file}: {path}")), "{name}: {}", stdout(&out));
        assert_no_panic(&out);
    }
}

#[test]
fn validate_reports_the_field_path_of_a_semantic_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(&dir, "p.yaml", &PROFILE.replace("kind: User", "kind: Robot"));
    let out = kf(&["validate", &file]);
    assert_eq!(out.status.code(), Some(1));
    let line = stdout(&out);
    assert!(
        line.starts_with(&format!("ERROR {file}: spec.owner.kind: expected User, Group or ServiceAccount")),
        "{line}"
    );
}

#[test]
fn validate_checks_multi_document_files_document_by_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good_then_bad = format!("{PROFILE}---\n{}", PROFILE.replace("    name: alice@example.com\n", ""));
    let file = write(&dir, "two.yaml", &good_then_bad);
    let out = kf(&["validate", &file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with(&format!("ERROR {file}: document 2: spec.owner")), "{}", stdout(&out));

    let both_good = write(&dir, "both.yaml", &format!("{PROFILE}---\n{PROFILE}"));
    let out = kf(&["validate", &both_good]);
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn validate_prints_json_on_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(&dir, "good.yaml", PROFILE);
    let out = kf(&["--output", "json", "validate", &good, "/nonexistent.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report[0]["file"], good);
    assert_eq!(report[0]["ok"], true);
    assert_eq!(report[1]["ok"], false);
    assert!(report[1]["error"].as_str().expect("error text").contains("cannot read file"));
}

#[test]
fn fmt_round_trips_every_corpus_file_of_every_kind_kf_models() {
    let dirs = OWNED_CORPORA.iter().map(|(dir, _)| corpus(dir));
    let invalid = ["trainer", "kserve"].map(|dir| corpus(dir).join("invalid"));
    // (kfp/invalid holds files that fail to import, so they cannot be formatted)
    for file in dirs.chain(invalid).flat_map(|d| yaml_files(&d)) {
        let out = kf(&["fmt", file.to_str().expect("utf-8")]);
        assert!(out.status.success(), "{}: {}", file.display(), stderr(&out));
        let original: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&std::fs::read_to_string(&file).expect("read")).expect("corpus is YAML");
        let formatted: Vec<serde_json::Value> = serde_saphyr::from_multiple(&stdout(&out)).expect("fmt writes YAML");
        assert_eq!(formatted, original, "{} must round-trip", file.display());
    }
}

#[test]
fn fmt_keeps_every_document_and_unknown_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!("{PROFILE}  futureField: {{a: [1, \"2\", true]}}\nextraTop: x\n---\n{PROFILE}");
    let file = write(&dir, "two.yaml", &text);
    let out = kf(&["fmt", &file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let original: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("YAML");
    let formatted: Vec<serde_json::Value> = serde_saphyr::from_multiple(&stdout(&out)).expect("YAML");
    assert_eq!(formatted, original);
}

#[test]
fn fmt_errors_name_the_file_and_exit_non_zero() {
    let out = kf(&["fmt", "/nonexistent.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/nonexistent.yaml: cannot read file"), "{}", stderr(&out));

    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write(&dir, "bad.yaml", &PROFILE.replace("kind: User", "kind: Robot"));
    let out = kf(&["fmt", &bad]);
    assert!(out.status.success(), "fmt parses and writes back; it does not judge: {}", stderr(&out));
    let wrong_type = write(&dir, "wrong.yaml", "apiVersion: kubeflow.org/v1\nkind: Profile\nspec: {owner: [1]}\n");
    let out = kf(&["fmt", &wrong_type]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("spec.owner"), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "nothing is printed for a document kf cannot model");
}

#[test]
fn quickstart_runs_the_lifecycle_and_a_rerun_reuses_the_cached_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = kf(&["--output", "json", "quickstart", "--data-dir", dir.path().to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let steps = report["steps"].as_array().expect("steps");
    let step = |report: &serde_json::Value, prefix: &str| {
        let steps = report["steps"].as_array().expect("steps");
        let step = steps.iter().find(|s| s["name"].as_str().unwrap_or("").starts_with(prefix));
        step.map(|s| (s["status"].as_str().unwrap_or("").to_string(), s["detail"].as_str().unwrap_or("").to_string()))
    };
    for built in ["tenant", "pipeline", "training", "tuning", "registry", "serving"] {
        assert_eq!(step(&report, built).map(|s| s.0).as_deref(), Some("done"), "{built}: {report}");
    }
    assert_eq!(report["built"], steps.len(), "{report}");
    assert_eq!(report["profile"], "kf-quickstart", "{report}");
    assert!(dir.path().join("tenancy.db").exists(), "the tenant lives in the durable store");
    // The HTTP steps went through the TenancyLayer as the tenant, and each saw a tokenless call refused.
    for through_layer in ["registry", "serving"] {
        let (_, detail) = step(&report, through_layer).expect("step");
        assert!(detail.contains("TenancyLayer") && detail.contains("401"), "{through_layer}: {detail}");
    }
    assert!(dir.path().join("models/v1/model.onnx").exists(), "the model is trained in this run");

    // The pipeline ran all three tasks and left its artifacts in the store.
    let run = report["pipeline_run"].as_str().expect("pipeline_run").to_string();
    let (_, pipeline) = step(&report, "pipeline").expect("pipeline step");
    for task in ["prepare succeeded", "train succeeded", "evaluate succeeded"] {
        assert!(pipeline.contains(task), "{task}: {pipeline}");
    }
    let artifacts = dir.path().join("pipelines/kf-quickstart/artifacts").join(&run);
    let dataset = std::fs::read_to_string(artifacts.join("prepare/dataset")).expect("the Dataset artifact");
    assert_eq!(dataset.lines().filter(|l| l.starts_with("test,")).count(), 60, "60 test rows");
    let model = std::fs::read(artifacts.join("train/model")).expect("the Model artifact");
    assert_eq!(model, std::fs::read(dir.path().join("models/v1/model.onnx")).expect("model"), "the trained model");
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(artifacts.join("evaluate/metrics")).expect("the Metrics artifact"))
            .expect("Metrics JSON");
    assert!(metrics["accuracy"].as_f64().is_some_and(|a| a >= 0.8), "{metrics}");
    assert!(metrics["log_loss"].as_f64().is_some_and(|l| l.is_finite() && l > 0.0), "{metrics}");
    assert_eq!(report["train_job"], "quickstart-train-v1", "{report}");

    let (_, serving) = step(&report, "serving").expect("serving");
    let accuracy: f64 = serving
        .split("accuracy ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in {serving}"));
    assert!(accuracy >= 80.0, "the trained model should separate the classes: {serving}");
    assert!(serving.contains(&format!("stable, run {run}")), "serving serves the pipeline's model: {serving}");
    assert_eq!(report["accuracy"].as_f64().map(|a| (a * 1000.0).round()), Some((accuracy * 10.0).round()));
    assert_eq!(report["predictions"], 60);
    let experiment = &report["experiment"];
    assert_eq!(experiment["trials"], 20, "{report}");
    assert!(experiment["best_value"].as_f64().is_some_and(f64::is_finite), "{report}");
    assert!(experiment["best_params"]["lr"].as_str().is_some(), "{report}");
    let best_model = dir
        .path()
        .join("tuning/kf-quickstart/experiments/quickstart-lr-v1")
        .join(experiment["best_trial"].as_str().unwrap_or("?"));
    assert!(best_model.join("model.onnx").exists(), "the canary is the best trial's model: {}", best_model.display());
    assert_eq!(report["model"]["version"], "v1", "{report}");
    let uri = format!("file://{}", best_model.join("model.onnx").display());
    assert_eq!(report["model"]["uri"].as_str(), Some(uri.as_str()), "the registry records the best model's file");
    let lineage = registered_lineage(&dir.path().join("registry.db"), "v1");
    assert_eq!(lineage["pipeline_run"], run, "{lineage}");
    assert_eq!(lineage["experiment"], "quickstart-lr-v1", "{lineage}");
    assert_eq!(lineage["trial"], experiment["best_trial"], "{lineage}");

    // A second run finds the same tenant, takes the unchanged data from the
    // step cache, trains a new version and succeeds again.
    // `--dir` is the old name of `--data-dir`.
    let again = kf(&["--output", "json", "quickstart", "--dir", dir.path().to_str().expect("utf-8")]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(dir.path().join("models/v2/model.onnx").exists(), "a re-run makes a new model version");
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).expect("JSON");
    assert_eq!(again["model"]["version"], "v2", "a re-run registers a new version: {again}");
    let second_run = again["pipeline_run"].as_str().expect("pipeline_run");
    assert_ne!(second_run, run, "a re-run is a new pipeline run");
    let (status, pipeline) = step(&again, "pipeline").expect("pipeline step");
    assert_eq!(status, "done", "{pipeline}");
    assert!(pipeline.contains("prepare cached") && pipeline.contains("train succeeded"), "{pipeline}");
    assert!(
        dir.path().join("pipelines/kf-quickstart/artifacts").join(second_run).join("train/model").exists(),
        "the re-run's train task wrote its own Model artifact"
    );
    assert_eq!(again["train_job"], "quickstart-train-v2", "{again}");
    let lineage = registered_lineage(&dir.path().join("registry.db"), "v2");
    assert_eq!(lineage["pipeline_run"], second_run, "{lineage}");
}

/// The string customProperties of version `version` of the quickstart's
/// model, read from the registry database.
fn registered_lineage(db: &Path, version: &str) -> serde_json::Value {
    use kf_registry::registry::FindParams;
    use kf_registry::sqlite::SqliteStore;
    use kf_registry::{ModelVersion, RegisteredModel, Registry};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let registry = Registry::new(SqliteStore::open(db.to_str().expect("utf-8")).await.expect("registry.db"));
        let find = FindParams { name: Some("quickstart-logreg".into()), ..FindParams::default() };
        let model: RegisteredModel = registry.find(&find).await.expect("the registered model");
        let find = FindParams { name: Some(version.into()), parent_resource_id: model.id, ..FindParams::default() };
        let version: ModelVersion = registry.find(&find).await.expect("the model version");
        let properties = serde_json::to_value(&version).expect("JSON")["customProperties"].clone();
        let strings = properties.as_object().expect("customProperties").iter();
        strings.filter_map(|(k, v)| Some((k.clone(), serde_json::Value::from(v["string_value"].as_str()?)))).collect()
    })
}

#[test]
fn a_second_quickstart_on_the_same_data_dir_stops_at_once_naming_the_lock_and_its_holder() {
    let home = tempfile::tempdir().expect("tempdir");
    // No --data-dir: the default is under $XDG_DATA_HOME.
    let dir = home.path().join("kf/quickstart");
    std::fs::create_dir_all(&dir).expect("data dir");
    let lock_path = dir.join("quickstart.lock");
    let lock = std::fs::File::create(&lock_path).expect("lock file");
    lock.try_lock().expect("the test holds the lock");
    std::fs::write(&lock_path, format!("{}\n", std::process::id())).expect("holder pid");
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kf"))
        .args(["quickstart"])
        .env("XDG_DATA_HOME", home.path())
        .output()
        .expect("kf runs");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&lock_path.display().to_string()), "names the lock file: {err}");
    assert!(err.contains(&format!("pid {}", std::process::id())), "names the holder: {err}");
    assert!(stdout(&out).is_empty(), "no report: {}", stdout(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "it does not wait for the lock");
    assert_no_panic(&out);
    let left: Vec<_> = std::fs::read_dir(&dir).expect("dir").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(left, ["quickstart.lock"], "nothing else is written");
    drop(lock);
}

#[test]
fn quickstart_names_a_data_dir_it_cannot_create() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(&dir, "not-a-dir", "");
    let out = kf(&["quickstart", "--data-dir", &format!("{file}/data")]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("cannot create the data directory {file}/data")), "{err}");
    assert_no_panic(&out);
}

#[test]
fn a_closed_stdout_ends_kf_quietly() {
    use std::process::Stdio;
    let files = yaml_files(&corpus("kserve"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_kf"))
        .arg("validate")
        .args(&files)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kf starts");
    drop(child.stdout.take()); // the reader goes away, like `kf validate … | head -0`
    let out = child.wait_with_output().expect("kf ends");
    assert_no_panic(&out);
    assert!(matches!(out.status.code(), Some(0) | Some(141)), "{:?}", out.status);
}

#[test]
fn quickstart_keep_running_leaves_kf_server_up_over_its_data_until_ctrl_c() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kf"))
        .args(["quickstart", "--keep-running", "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("kf runs");
    // The report ends with where to look: the dashboard's URL and the token.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    // Read stdout to its end on a thread, so kf never writes to a closed pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let dashboard = rx.iter().find(|line| line.trim_start().starts_with("dashboard")).expect("the dashboard is listed");
    let url = dashboard.split_whitespace().find(|w| w.starts_with("http://")).expect("a URL").to_owned();
    let token = dashboard.rsplit("token ").next().expect("a token").trim_end_matches(')').to_owned();
    let host = url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let get = |path: &str, auth: Option<&str>| {
        let mut stream = std::net::TcpStream::connect(&host).expect("the server is still up");
        let auth = auth.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n").expect("send");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).expect("reply");
        reply
    };
    // Every step of the run is visible through kf server's APIs, as the tenant.
    let ns = "/api/pipelines/v1/namespaces/kf-quickstart/runs";
    for (path, expected) in [
        ("/api/model_registry/v1alpha3/registered_models", "quickstart-logreg"),
        (ns, "quickstart-v1-"),
        ("/api/tuning/v1/namespaces/kf-quickstart/experiments", "quickstart-lr-v1"),
        ("/api/training/v1/namespaces/kf-quickstart/trainjobs/quickstart-train-v1", "\"Succeeded\""),
        ("/api/serving/v1/models", "\"canary\":\"1-tuned\""),
        ("/api/tenancy/v1/profiles", "kf-quickstart"),
    ] {
        let reply = get(path, Some(&token));
        assert!(reply.starts_with("HTTP/1.1 200") && reply.contains(expected), "{path}: {reply}");
        assert!(get(path, None).starts_with("HTTP/1.1 401"), "{path}: no token, no access");
    }
    let run = get(ns, Some(&token));
    let id = run.split("\"run\":\"").nth(1).and_then(|r| r.split('"').next()).expect("a run id").to_owned();
    let detail = get(&format!("{ns}/{id}"), Some(&token));
    assert!(detail.contains("\"state\":\"succeeded\"") && detail.contains("evaluate"), "{detail}");
    // Ctrl-C stops it cleanly.
    let interrupted = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(interrupted.success());
    let status = child.wait().expect("kf exits");
    assert!(status.success(), "{status:?}");
    assert!(std::net::TcpStream::connect(&host).is_err(), "the server stopped with kf");
    let config = std::fs::read_to_string(dir.path().join("kf.toml")).expect("kf.toml");
    assert!(config.contains(&token), "kf.toml holds the tenant's token: {config}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("kf.toml")).expect("meta").permissions().mode();
    assert_eq!(mode & 0o077, 0, "kf.toml is readable by its owner only");
}

#[test]
fn a_corrupt_store_stops_the_quickstart_before_any_step_naming_the_file() {
    for file in ["registry.db", "tenancy.db"] {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(file), b"this is not a SQLite database, it is a text file").expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_kf"))
            .args(["quickstart", "--data-dir"])
            .arg(dir.path())
            .output()
            .expect("kf runs");
        assert!(!out.status.success(), "{file}: a corrupt store must fail the run");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(text.contains(file), "{file} is named: {text}");
        assert!(!dir.path().join("pipeline").exists(), "{file}: no pipeline ran");
        assert!(!dir.path().join("models").exists(), "{file}: nothing was trained");
    }
}
