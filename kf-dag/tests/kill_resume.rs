//! Kill a real pipeline process with SIGKILL mid-run and resume it: completed
//! tasks are not re-run, the task in flight is, and artifacts stay intact.
//! The child is the `crash_resume` example (built by `cargo test`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kf_dag::journal::FileRunStore;
use kf_dag::run::TaskState;
use kf_dag::store::RunStoreExt;

fn example() -> PathBuf {
    // target/debug/deps/kill_resume-… → target/debug/examples/crash_resume
    let exe = std::env::current_exe().expect("the test binary has a path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps").join("examples");
    let path = dir.join(format!("crash_resume{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} is built by `cargo test -p kf-dag`", path.display());
    path
}

fn wait_for(path: &Path, limit: Duration) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < limit, "{} did not appear within {limit:?}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ran(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_to_string(dir.join("ran.log")).unwrap_or_default().lines().map(str::to_owned).collect();
    names.sort();
    names
}

#[test]
fn kill_9_mid_run_then_resume_finishes_without_redoing_completed_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = dir.to_str().unwrap();

    let mut child =
        Command::new(example()).args([d, "demo", "run"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for(&dir.join("b-started"), Duration::from_secs(60));
    // Let the independent task finish too, so the journal holds completed work.
    let start = Instant::now();
    while !ran(dir).contains(&"d".to_owned()) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap(); // SIGKILL on Unix: no destructor, no clean-up runs.
    child.wait().unwrap();

    let store = FileRunStore::open(dir.join("runs")).unwrap();
    let crashed = store.snapshot("demo").unwrap();
    assert_eq!(crashed.tasks["a"].state, TaskState::Succeeded);
    assert_eq!(crashed.tasks["b"].state, TaskState::Running, "b was in flight when killed");
    assert!(!crashed.tasks.contains_key("c"));
    assert_eq!(ran(dir), ["a", "b", "d"]);

    std::fs::write(dir.join("release"), "").unwrap();
    let resumed = Command::new(example()).args([d, "demo", "resume"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(resumed.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&resumed.stderr));
    assert!(stdout.contains("a: succeeded (from the journal)"), "{stdout}");
    assert!(stdout.contains("text = \"AB\""), "a's artifact survived the crash and fed b: {stdout}");

    // a and d ran once; b twice (the killed attempt and the resumed one); c once.
    let names = ran(dir);
    let count = |t: &str| names.iter().filter(|n| *n == t).count();
    // The orphaned first attempt of b may also finish after `release` appears; it never re-logs.
    assert_eq!((count("a"), count("b"), count("c"), count("d")), (1, 2, 1, 1), "{names:?}");
    let done = store.snapshot("demo").unwrap();
    assert_eq!(done.tasks["b"].attempt, 2, "the resumed attempt has the next number");
    assert_eq!(done.tasks["c"].state, TaskState::Succeeded);
}
