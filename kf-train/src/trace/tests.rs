//! Loaders against the shared traces (figures from shared/traces/README.md)
//! and against broken input.

use super::*;

fn shared(path: &str) -> String {
    let p = format!("{}/../../shared/traces/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

#[test]
fn philly_loads_every_row_with_the_documented_figures() {
    let trace = Format::Philly.load(&shared("pollux-philly/philly.csv")).unwrap();
    assert_eq!((trace.rows, trace.jobs.len()), (82_247, 82_247));
    assert!(trace.skipped.is_empty());
    assert_eq!(trace.jobs[0].submit_s, 0.0);
    assert_eq!(trace.jobs.last().unwrap().submit_s, 9_408_690.0);
    // The README's example job is data row 53.
    let j = trace.jobs.iter().find(|j| j.row == 53).unwrap();
    assert_eq!((j.job_id.as_str(), j.duration_s), ("philly-53", 193_256.0));
    let mut per_queue = [0usize; 4];
    for j in &trace.jobs {
        per_queue[(j.queue_key % 4) as usize] += 1;
    }
    assert_eq!(per_queue, [28_703, 44_969, 8_568, 7]);
    let first: Vec<&Job> = trace.jobs.iter().take(10_000).collect();
    assert_eq!(first.last().unwrap().submit_s, 2_641_037.0);
    let count = |g| first.iter().filter(|j| j.gpus == g).count();
    assert_eq!([count(1), count(2), count(4), count(8), count(16), count(32)], [9_268, 208, 215, 270, 25, 14]);
    assert!(trace.jobs.windows(2).all(|w| (w[0].submit_s, w[0].row) < (w[1].submit_s, w[1].row)));
}

#[test]
fn alibaba_drops_pending_and_cpu_only_pods() {
    let trace = Format::Alibaba.load(&shared("alibaba-gpu-v2023/openb_pod_list_default.csv")).unwrap();
    assert_eq!((trace.rows, trace.jobs.len()), (8_152, 6_203));
    assert_eq!(trace.skipped["never scheduled (no scheduled_time or deletion_time)"], 897);
    assert_eq!(trace.skipped["no GPU (CPU-only pod)"], 1_052);
    let count = |g| trace.jobs.iter().filter(|j| j.gpus == g).count();
    assert_eq!([count(1), count(2), count(4), count(8)], [6_129, 15, 15, 44]);
    assert_eq!(trace.jobs.iter().filter(|j| j.gpus_exact < 1.0).count(), 2_573);
    let mean = trace.jobs.iter().map(|j| j.duration_s).sum::<f64>() / trace.jobs.len() as f64;
    assert!((mean - 30_851.1).abs() < 0.05, "{mean}");
    let share = Format::Alibaba.load(&shared("alibaba-gpu-v2023/openb_pod_list_gpushare100.csv")).unwrap();
    assert_eq!(share.jobs.len(), 5_891);
    let spec = Format::Alibaba.load(&shared("alibaba-gpu-v2023/openb_pod_list_gpuspec33.csv")).unwrap();
    assert_eq!(spec.jobs.len(), 6_203);
}

#[test]
fn tiresias_sample_loads() {
    let trace = Format::Tiresias.load(&shared("tiresias/60_job.csv")).unwrap();
    assert_eq!(trace.jobs.len(), 60);
    assert_eq!(trace.jobs[1].job_id, "tiresias-1");
    assert_eq!((trace.jobs[1].gpus, trace.jobs[1].submit_s, trace.jobs[1].duration_s), (8, 30.0, 147.0));
}

#[test]
fn missing_columns_name_the_column_and_the_header() {
    let err = Format::Philly.load("timestamp,num_gpus,cluster\n2017-01-01 00:00:00,1,ab\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "trace line 1, column duration: missing column; the header has: timestamp,num_gpus,cluster"
    );
    assert!(Format::Alibaba.load("").is_err());
}

#[test]
fn bad_fields_name_the_line() {
    let csv = "timestamp,duration,num_gpus,gpu_time,cluster\n2017-01-01 00:00:00,1,1,1,ab\n\n2017-01-01 00:00:00,NaN,1,1,ab\n";
    assert_eq!(
        Format::Philly.load(csv).unwrap_err().to_string(),
        "trace line 4, column duration: expected a finite number, found \"NaN\""
    );
    let csv = "timestamp,duration,num_gpus,gpu_time,cluster\n2017-13-01 00:00:00,1,1,1,ab\n";
    assert_eq!(Format::Philly.load(csv).unwrap_err().path(), "timestamp");
    let csv = "timestamp,duration,num_gpus,gpu_time,cluster\n2017-01-01 00:00:00,1,1\n";
    assert!(Format::Philly.load(csv).unwrap_err().to_string().contains("expected 5 fields"));
    let csv = "timestamp,duration,num_gpus,gpu_time,cluster\n2017-01-01 00:00:00,1,1,1,zz\n";
    assert_eq!(Format::Philly.load(csv).unwrap_err().path(), "cluster");
}

#[test]
fn negative_durations_and_zero_gpus_are_dropped_and_counted() {
    let csv = "timestamp,duration,num_gpus,gpu_time,cluster\n\
               2017-01-01 00:00:00,-5,1,1,ab\n\
               2017-01-01 00:00:01,5,0,1,ab\n\
               2017-01-01 00:00:02,5,1,5,ab\n";
    let trace = Format::Philly.load(csv).unwrap();
    assert_eq!(trace.jobs.len(), 1);
    assert_eq!(trace.jobs[0].submit_s, 2.0);
    assert_eq!(trace.skipped["duration <= 0"], 1);
    assert_eq!(trace.skipped["num_gpus <= 0"], 1);
}

#[test]
fn timestamps_are_read_as_utc() {
    assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Some(0));
    assert_eq!(parse_timestamp("2017-09-04 10:30:41"), Some(1_504_521_041));
    assert_eq!(parse_timestamp("2000-02-29 23:59:59"), Some(951_868_799));
    assert_eq!(parse_timestamp("2017-09-04T10:30:41"), None);
}
