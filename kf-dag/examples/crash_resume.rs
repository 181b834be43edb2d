//! A pipeline of real processes, journalled to files, that can be killed and
//! resumed: what `kf pipeline resume` does, in one page.
//!
//! ```text
//! cargo run -p kf-dag --example crash_resume -- /tmp/kf-demo demo run
//! # kill -9 it while task "b" waits, then:
//! touch /tmp/kf-demo/release
//! cargo run -p kf-dag --example crash_resume -- /tmp/kf-demo demo resume
//! ```
//!
//! Tasks: `a` writes an artifact, `b` waits for `<dir>/release` and then
//! transforms it, `c` reads `b`'s artifact into an output parameter; `d` is
//! independent. Every task appends its name to `<dir>/ran.log`, so a test can
//! count who ran how often. The integration test `tests/kill_resume.rs`
//! kills this process with SIGKILL while `b` runs and checks the resume.

use std::sync::Arc;

use kf_dag::artifact::ArtifactStore;
use kf_dag::builder::{Dataset, PipelineBuilder};
use kf_dag::exec::{Executor, RunRequest};
use kf_dag::ir::ContainerSpec;
use kf_dag::journal::FileRunStore;
use kf_dag::run::RunState;
use kf_dag::runner::ProcessRunner;

fn plan(dir: &str) -> Result<kf_dag::Plan, kf_dag::Error> {
    let log = format!("{dir}/ran.log");
    let mut p = PipelineBuilder::new("crash-resume");

    let mut a = p.container_component("a", ContainerSpec::new("local"));
    let a_out = a.output_artifact::<Dataset>("data");
    a.command(["sh", "-c", &format!("echo a >> {log}; printf A > \"$0\""), &a_out.path()]);
    let a = p.add_component(a);

    let mut b = p.container_component("b", ContainerSpec::new("local"));
    let b_in = b.input_artifact::<Dataset>("data");
    let b_out = b.output_artifact::<Dataset>("data");
    let wait = format!(
        "echo b >> {log}; touch {dir}/b-started; while [ ! -e {dir}/release ]; do sleep 0.05; done; \
         {{ cat \"$0\"; printf B; }} > \"$1\""
    );
    b.command(["sh", "-c", &wait, &b_in.path(), &b_out.path()]);
    let b = p.add_component(b);

    let mut c = p.container_component("c", ContainerSpec::new("local"));
    let c_in = c.input_artifact::<Dataset>("data");
    let c_out = c.output::<String>("text");
    c.command(["sh", "-c", &format!("echo c >> {log}; cat \"$0\" > \"$1\""), &c_in.path(), &c_out.file()]);
    let c = p.add_component(c);

    let mut d = p.container_component("d", ContainerSpec::new("local"));
    d.command(["sh", "-c", &format!("echo d >> {log}")]);
    let d = p.add_component(d);

    let ta = p.task("a", &a).done();
    let tb = p.task("b", &b).set_artifact(&b_in, &ta.output_artifact(&a_out)).done();
    let tc = p.task("c", &c).set_artifact(&c_in, &tb.output_artifact(&b_out)).done();
    p.task("d", &d).done();
    let _ = p.output("text", &tc.output(&c_out));
    p.build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, run, mode] = args.as_slice() else {
        return Err("usage: crash_resume <dir> <run-id> run|resume".into());
    };
    let plan = Arc::new(plan(dir)?);
    let executor = Executor::new(ProcessRunner::new(format!("{dir}/work")))
        .store(Arc::new(FileRunStore::open(format!("{dir}/runs"))?))
        .artifacts(ArtifactStore::from_url(&format!("file://{dir}/artifacts"))?)
        .parallelism(2);
    let outcome = match mode.as_str() {
        "run" => executor.run(plan, RunRequest { id: Some(run.clone()), ..RunRequest::default() }).await?,
        "resume" => executor.resume(plan, run).await?,
        other => return Err(format!("unknown mode {other:?}: expected run or resume").into()),
    };
    for (task, summary) in &outcome.tasks {
        println!("{task}: {}{}", summary.state, if summary.resumed { " (from the journal)" } else { "" });
    }
    println!("text = {}", outcome.outputs.parameters.get("text").cloned().unwrap_or_default());
    if outcome.state == RunState::Succeeded { Ok(()) } else { Err(format!("run {}", outcome.run).into()) }
}
