//! `kf tune …` driven as a user (or a driver program) drives it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn kf_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kf"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kf runs");
    // A process that exits before reading closes the pipe; that is what some tests expect.
    let _ = child.stdin.take().expect("stdin").write_all(stdin.as_bytes());
    child.wait_with_output().expect("kf finishes")
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write temp file");
    path.display().to_string()
}

const SPACE: &str = r#"{"objective": {"type": "minimize"}, "parameters": [
    {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "5"}},
    {"name": "n", "parameterType": "discrete", "feasibleSpace": {"list": ["16", "32"]}}]}"#;

#[test]
fn ask_tell_serves_a_session_on_stdin_and_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let space = write(&dir, "space.json", SPACE);
    let input = concat!(
        "{\"op\":\"hello\"}\n",
        "{\"op\":\"ask\",\"n\":2}\n",
        "\n",
        "{\"op\":\"tell\",\"id\":\"1\",\"value\":0.25}\n",
        "nonsense\n",
        "{\"op\":\"best\"}\n",
        "{\"op\":\"quit\"}\n",
    );
    let args = [
        "tune",
        "ask-tell",
        "--space",
        &space,
        "--algorithm",
        "tpe",
        "--settings",
        "n_startup_trials=3",
        "--seed",
        "4",
    ];
    let out = kf_with_stdin(&args, input);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert_eq!(lines[0]["protocol"], "kf-tune-ask-tell");
    assert_eq!(lines[0]["algorithm"], "tpe");
    let trials = lines[1]["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2);
    assert!(trials.iter().all(|t| t["params"]["n"] == 16 || t["params"]["n"] == 32), "{trials:?}");
    assert_eq!(lines[2], serde_json::json!({"ok": true}));
    assert_eq!(lines[3]["error"]["code"], "parse_error");
    assert_eq!((lines[4]["id"].as_str(), lines[4]["value"].as_f64()), (Some("1"), Some(0.25)));
    assert_eq!(lines[4]["params"], trials[1]["params"]);
}

#[test]
fn ask_tell_start_up_failures_exit_2_with_nothing_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let space = write(&dir, "space.json", SPACE);
    let bad = write(
        &dir,
        "bad.json",
        r#"{"parameters": [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": 2, "max": 1}}]}"#,
    );
    let cases: [(&[&str], &str); 5] = [
        (&["--space", &space, "--algorithm", "annealing"], "unknown algorithm \"annealing\""),
        (&["--space", &bad, "--algorithm", "random"], "bad.json: parameters[0].feasibleSpace"),
        (&["--space", "/no/such/space.json", "--algorithm", "random"], "cannot read file"),
        (&["--space", &space, "--algorithm", "tpe", "--settings", "gamma=2"], "\"gamma\""),
        (&["--space", &space, "--algorithm", "grid"], "step"),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = ["tune", "ask-tell"].iter().chain(args).copied().collect();
        let out = kf_with_stdin(&args, "{\"op\":\"hello\"}\n");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn ask_tell_end_of_input_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let space = write(&dir, "space.json", SPACE);
    let out = kf_with_stdin(
        &["tune", "ask-tell", "--space", &space, "--algorithm", "sobol", "--seed", "1"],
        "{\"op\":\"ask\"}\n",
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);
}
