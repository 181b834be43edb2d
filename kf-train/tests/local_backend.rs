//! The local backend with real processes. The workers are this test binary
//! itself, started again with `KF_TEST_WORKER=<mode>`: the `worker` test
//! below is their entry point and does nothing in a normal run.
#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns, may unwrap

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use kf_train::local::{LocalBackend, LocalEvent, LocalOptions, Reason};
use kf_train::{TrainJob, TrainingRuntime};
use serde_json::{Value, json};

const WORKER_ENV: &str = "KF_TEST_WORKER";

/// The worker processes' entry point.
#[test]
fn worker() {
    let Ok(mode) = std::env::var(WORKER_ENV) else { return };
    let result = match mode.as_str() {
        "rendezvous" => rendezvous(),
        "fail-rank-1" => fail_rank_1(),
        "sleep" => sleep_with_grandchild(),
        "needs-dataset" => needs_dataset(),
        other => Err(format!("unknown worker mode {other:?}")),
    };
    if let Err(message) = result {
        eprintln!("worker failed: {message}");
        std::process::exit(1);
    }
}

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

fn num(name: &str) -> Result<u32, String> {
    var(name)?.parse().map_err(|e| format!("{name}: {e}"))
}

/// Checks torchrun's worker contract, then performs a TCP rendezvous: rank
/// 0 listens on MASTER_ADDR:MASTER_PORT and collects every other rank.
fn rendezvous() -> Result<(), String> {
    let (rank, local_rank, world) = (num("RANK")?, num("LOCAL_RANK")?, num("WORLD_SIZE")?);
    let (local_world, group_rank) = (num("LOCAL_WORLD_SIZE")?, num("GROUP_RANK")?);
    if rank != group_rank * local_world + local_rank {
        return Err(format!("RANK {rank} != GROUP_RANK {group_rank} * {local_world} + LOCAL_RANK {local_rank}"));
    }
    if world != num("PET_NNODES")? * num("PET_NPROC_PER_NODE")? || num("PET_NODE_RANK")? != group_rank {
        return Err("PET_* disagree with the worker env".into());
    }
    if var("MASTER_ADDR")? != var("PET_MASTER_ADDR")? || var("MASTER_PORT")? != var("PET_MASTER_PORT")? {
        return Err("MASTER_* disagree with PET_MASTER_*".into());
    }
    let master = format!("{}:{}", var("MASTER_ADDR")?, var("MASTER_PORT")?);
    println!("env ok rank={rank} local_rank={local_rank} world={world}");
    if rank == 0 {
        let listener = TcpListener::bind(&master).map_err(|e| format!("bind {master}: {e}"))?;
        let mut seen = BTreeSet::new();
        let mut peers = Vec::new();
        while seen.len() + 1 < world as usize {
            let (stream, _) = listener.accept().map_err(|e| e.to_string())?;
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).map_err(|e| e.to_string())?;
            let peer: u32 = line.trim().parse().map_err(|e| format!("bad hello {line:?}: {e}"))?;
            if peer == 0 || peer >= world || !seen.insert(peer) {
                return Err(format!("rank {peer} is out of range or came twice"));
            }
            peers.push(stream);
        }
        for mut peer in peers {
            writeln!(peer, "ok {world}").map_err(|e| e.to_string())?;
        }
        println!("rendezvous ok world={world} progress=100 loss=0.125");
    } else {
        let started = Instant::now();
        let stream = loop {
            match TcpStream::connect(&master) {
                Ok(s) => break s,
                Err(_) if started.elapsed() < Duration::from_secs(20) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(format!("master {master} unreachable: {e}")),
            }
        };
        writeln!(&stream, "{rank}").map_err(|e| e.to_string())?;
        let mut reply = String::new();
        BufReader::new(&stream).read_line(&mut reply).map_err(|e| e.to_string())?;
        if reply.trim() != format!("ok {world}") {
            return Err(format!("master replied {reply:?}"));
        }
        println!("rendezvous ok world={world}");
    }
    Ok(())
}

fn fail_rank_1() -> Result<(), String> {
    if num("RANK")? == 1 {
        // Fail once the other ranks have started their grandchildren, so the
        // kill that follows has something to reach (on a busy machine they
        // might not have got that far otherwise).
        let dir = Path::new(&var("KF_WORKSPACE")?).join("pids");
        let others = usize::try_from(num("WORLD_SIZE")?).map_err(|e| e.to_string())? - 1;
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::read_dir(&dir).map_or(0, |d| d.count()) < others && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        return Err("rank 1 fails on purpose".into());
    }
    sleep_with_grandchild()
}

/// Starts a grandchild that would outlive us, records its pid, sleeps.
fn sleep_with_grandchild() -> Result<(), String> {
    let child = std::process::Command::new("sleep").arg("60").spawn().map_err(|e| e.to_string())?;
    let dir = Path::new(&var("KF_WORKSPACE")?).join("pids");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // Written aside and renamed in, so a reader never sees a half-written file.
    let me = std::process::id();
    let aside = dir.with_file_name(format!("pid-{me}.tmp"));
    std::fs::write(&aside, child.id().to_string()).map_err(|e| e.to_string())?;
    std::fs::rename(&aside, dir.join(me.to_string())).map_err(|e| e.to_string())?;
    println!("sleeping");
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

fn needs_dataset() -> Result<(), String> {
    let path = Path::new(&var("KF_WORKSPACE")?).join("dataset/sub/train.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("rows={}", text.lines().count());
    Ok(())
}

fn runtime() -> TrainingRuntime {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/trainer/manifests__base__runtimes__torch_distributed.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    TrainingRuntime::from_value(serde_saphyr::from_str::<Value>(&text).unwrap()).unwrap()
}

fn job(mode: &str, nodes: i32, procs: i32, extra: Value) -> TrainJob {
    let exe = std::env::current_exe().unwrap().display().to_string();
    let mut doc = json!({
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": format!("t-{mode}")},
        "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": {
            "numNodes": nodes, "numProcPerNode": procs,
            "command": [exe, "--exact", "worker", "--nocapture", "--test-threads=1"],
            "env": [{"name": WORKER_ENV, "value": mode}],
        }},
    });
    if let (Some(spec), Some(extra)) = (doc["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let job = TrainJob::from_value(doc).unwrap();
    job.validate().unwrap();
    job
}

struct Ran {
    run: kf_train::local::LocalRun,
    events: Vec<LocalEvent>,
    elapsed: Duration,
}

async fn run_with(job: &TrainJob, runtime: &TrainingRuntime, dir: &Path, cancel_after: Option<Duration>) -> Ran {
    let mut options = LocalOptions::new(dir.join("ws"));
    options.kill_grace = Duration::from_secs(2);
    let mut events = Vec::new();
    let started = Instant::now();
    let cancel = async move {
        match cancel_after {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    };
    let run = LocalBackend::new(options).run(job, runtime, |e| events.push(e), cancel).await.unwrap();
    Ran { run, events, elapsed: started.elapsed() }
}

fn lines_of(events: &[LocalEvent], needle: &str) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            LocalEvent::Line { process, line, .. } if line.contains(needle) => Some((process.clone(), line.clone())),
            _ => None,
        })
        .collect()
}

/// Every pid the sleeping workers recorded (worker → grandchild) is gone.
fn assert_no_survivors(workspace: &Path) {
    let dir = workspace.join("pids");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        pids.push(entry.file_name().to_string_lossy().to_string());
        // A worker killed between creating its file and writing its child's
        // pid leaves it empty (and then had no child to leak).
        pids.push(std::fs::read_to_string(entry.path()).unwrap().trim().to_owned());
    }
    // An empty string would name /proc//stat, which is /proc/stat: always "alive".
    pids.retain(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    assert!(!pids.is_empty());
    let alive = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let survivors: Vec<_> = pids.iter().filter(|p| alive(p)).collect();
    assert!(survivors.is_empty(), "processes outlived the job: {survivors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_of_two_processes_rendezvous_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let ran = run_with(&job("rendezvous", 2, 2, json!({})), &runtime(), dir.path(), None).await;
    let outcome = &ran.run.outcome;
    assert!(outcome.succeeded(), "{outcome:?}\n{:#?}", ran.events);
    let env_ok = lines_of(&ran.events, "env ok");
    let ranks: BTreeSet<String> = env_ok.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(ranks, BTreeSet::from(["rank 0", "rank 1", "rank 2", "rank 3"].map(String::from)));
    assert_eq!(lines_of(&ran.events, "rendezvous ok world=4").len(), 4);

    let status = ran.run.job.status.clone().unwrap();
    let conditions: Vec<_> =
        status.conditions.unwrap().into_iter().map(|c| (c.type_.unwrap(), c.reason.unwrap())).collect();
    assert_eq!(
        conditions,
        [("Created".into(), "JobsCreationSucceeded".into()), ("Complete".into(), "AllJobsCompleted".into())]
    );
    let jobs = status.jobs_status.unwrap();
    assert_eq!((jobs[0].name.as_deref(), jobs[0].succeeded, jobs[0].failed), (Some("node"), Some(1), Some(0)));
    let trainer = status.trainer_status.unwrap();
    assert_eq!(trainer.progress_percentage, Some(100));
    let metrics: Vec<_> = trainer.metrics.unwrap().into_iter().map(|m| (m.name.unwrap(), m.value.unwrap())).collect();
    assert!(metrics.contains(&("loss".into(), "0.125".into())), "{metrics:?}");

    // The status on disk is the same valid TrainJob, and every rank has a log.
    let on_disk: Value = serde_json::from_slice(&std::fs::read(ran.run.workspace.status()).unwrap()).unwrap();
    let reread = TrainJob::from_value(on_disk).unwrap();
    reread.validate().unwrap();
    assert_eq!(reread.status, ran.run.job.status);
    for name in ["node-0-0-0", "node-0-0-1", "node-0-1-0", "node-0-1-1"] {
        let log = std::fs::read_to_string(ran.run.workspace.log(name)).unwrap();
        assert!(log.contains("rendezvous ok"), "{name}: {log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_rank_fails_the_job_and_kills_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let ran = run_with(&job("fail-rank-1", 2, 2, json!({})), &runtime(), dir.path(), None).await;
    let outcome = &ran.run.outcome;
    assert_eq!(outcome.reason, Reason::FailedJobs, "{outcome:?}");
    assert!(outcome.message.contains("rank 1") && outcome.message.contains("exited with code 1"), "{outcome:?}");
    assert!(ran.elapsed < Duration::from_secs(30), "the others were not stopped: {:?}", ran.elapsed);
    let killed = ran.events.iter().filter(|e| matches!(e, LocalEvent::Exited { code: None, .. })).count();
    assert_eq!(killed, 3, "{:#?}", ran.events);
    let status = ran.run.job.status.clone().unwrap();
    let failed = status.conditions.unwrap().into_iter().find(|c| c.type_.as_deref() == Some("Failed")).unwrap();
    assert_eq!(failed.reason.as_deref(), Some("FailedJobs"));
    assert_eq!(status.jobs_status.unwrap()[0].failed, Some(1));
    assert_no_survivors(ran.run.workspace.root());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_stops_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let job = job("sleep", 1, 2, json!({"activeDeadlineSeconds": 2}));
    let ran = run_with(&job, &runtime(), dir.path(), None).await;
    assert_eq!(ran.run.outcome.reason, Reason::DeadlineExceeded, "{:?}", ran.run.outcome);
    assert!(ran.elapsed < Duration::from_secs(20), "{:?}", ran.elapsed);
    assert_no_survivors(ran.run.workspace.root());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_every_process() {
    let dir = tempfile::tempdir().unwrap();
    let ran = run_with(&job("sleep", 2, 1, json!({})), &runtime(), dir.path(), Some(Duration::from_secs(2))).await;
    assert_eq!(ran.run.outcome.reason, Reason::Cancelled, "{:?}", ran.run.outcome);
    assert_no_survivors(ran.run.workspace.root());
}

#[tokio::test]
async fn a_suspended_job_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ran = run_with(&job("rendezvous", 2, 2, json!({"suspend": true})), &runtime(), dir.path(), None).await;
    assert_eq!(ran.run.outcome.reason, Reason::Suspended);
    assert!(!ran.events.iter().any(|e| matches!(e, LocalEvent::Started { .. })));
    let conditions = ran.run.job.status.unwrap().conditions.unwrap();
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0].type_.as_deref(), Some("Suspended"));
}

fn runtime_with_initializer() -> TrainingRuntime {
    let mut doc = serde_json::to_value(runtime().to_value()).unwrap();
    let jobs = doc.pointer_mut("/spec/template/spec/replicatedJobs").and_then(Value::as_array_mut).unwrap();
    jobs.insert(
        0,
        json!({"name": "dataset-initializer",
               "template": {"metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "dataset-initializer"}},
                            "spec": {"template": {"spec": {"containers": [{"name": "dataset-initializer", "image": "init"}]}}}}}),
    );
    TrainingRuntime::from_value(doc).unwrap()
}

#[tokio::test]
async fn the_dataset_initializer_runs_first() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("data");
    std::fs::create_dir_all(source.join("sub")).unwrap();
    std::fs::write(source.join("sub/train.csv"), "a\nb\nc\n").unwrap();
    let uri = format!("file://{}", source.display());
    let job = job("needs-dataset", 1, 1, json!({"initializer": {"dataset": {"storageUri": uri}}}));
    let ran = run_with(&job, &runtime_with_initializer(), dir.path(), None).await;
    assert!(ran.run.outcome.succeeded(), "{:?}\n{:#?}", ran.run.outcome, ran.events);
    assert!(ran.events.iter().any(|e| matches!(e, LocalEvent::Fetched { files: 1, bytes: 6, .. })));
    assert_eq!(lines_of(&ran.events, "rows=3").len(), 1);
    let jobs = ran.run.job.status.unwrap().jobs_status.unwrap();
    let names: Vec<_> = jobs.iter().map(|j| (j.name.clone().unwrap(), j.succeeded.unwrap())).collect();
    assert_eq!(names, [("dataset-initializer".to_string(), 1), ("node".to_string(), 1)]);
}

#[tokio::test]
async fn an_offline_scheme_fails_the_initializer_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(
        "needs-dataset",
        1,
        1,
        json!({"initializer": {"dataset": {"storageUri": "hf://datasets/tatsu-lab/alpaca"}}}),
    );
    let ran = run_with(&job, &runtime_with_initializer(), dir.path(), None).await;
    assert_eq!(ran.run.outcome.reason, Reason::FailedJobs);
    assert!(ran.run.outcome.message.contains("hf://datasets/tatsu-lab/alpaca"), "{}", ran.run.outcome.message);
    assert!(ran.run.outcome.message.contains("Hugging Face"), "{}", ran.run.outcome.message);
    assert!(!ran.events.iter().any(|e| matches!(e, LocalEvent::Started { .. })), "no node may start");
}

#[tokio::test]
async fn a_missing_program_fails_the_job_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = job("rendezvous", 1, 1, json!({}));
    job.spec.as_mut().unwrap().trainer.as_mut().unwrap().command = Some(vec!["/nonexistent/train".into()]);
    let ran = run_with(&job, &runtime(), dir.path(), None).await;
    assert_eq!(ran.run.outcome.reason, Reason::FailedJobs);
    assert!(ran.run.outcome.message.contains("/nonexistent/train"), "{}", ran.run.outcome.message);
}
