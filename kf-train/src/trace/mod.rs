//! Job traces of real GPU clusters, loaded into one common shape ([`Job`])
//! by the rules of `shared/traces/README.md` ("Common format"), so that every
//! simulator — this crate's and the reference one — replays the same jobs.
//! Loaders take the file's text (the caller reads the file) and never
//! panic: a missing column or an unparsable field is an [`Error::Trace`]
//! naming the line and column; rows the format says to drop (non-positive
//! durations, pods that never ran, CPU-only pods) are counted in
//! [`Trace::skipped`].
//!
//! - [`Format::Philly`]: the Philly trace as derived by Pollux
//!   (`timestamp,duration,num_gpus,gpu_time,cluster`).
//! - [`Format::Alibaba`]: Alibaba cluster-trace-gpu-v2023 pod lists.
//! - [`Format::Tiresias`]: the 60-job Tiresias sample.
//!
//! Loading is O(R log R) for R rows (the final sort by submission).

mod csv;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use csv::Table;

use crate::{Error, Result};

/// One job of a trace, in the common format.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// 0-based data row in the file (header and blank lines not counted).
    pub row: usize,
    /// `philly-<row>`, the pod name, or `tiresias-<id>`.
    pub job_id: String,
    /// Submission, seconds after the trace's first submission.
    pub submit_s: f64,
    /// Run time once started, seconds (> 0).
    pub duration_s: f64,
    /// Whole GPUs for gang placement (≥ 1).
    pub gpus: u64,
    /// The fractional GPU request where the trace has one, else `gpus`.
    pub gpus_exact: f64,
    /// CPU cores requested, where the trace has them.
    pub cpu_cores: Option<f64>,
    /// Memory requested in MiB, where the trace has it.
    pub mem_mib: Option<u64>,
    /// Queue of the job with `K` queues: `queue_key % K`.
    pub queue_key: u64,
}

/// A loaded trace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    /// Kept jobs sorted by (`submit_s`, `row`).
    pub jobs: Vec<Job>,
    /// Data rows read (kept or not).
    pub rows: usize,
    /// Rows dropped by the format's rules: reason → count.
    pub skipped: BTreeMap<String, usize>,
}

impl Trace {
    /// Keeps only the first `n` jobs (`--limit N`).
    pub fn limit(&mut self, n: usize) {
        self.jobs.truncate(n);
    }
}

/// A trace format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `pollux-philly/philly.csv`.
    Philly,
    /// `alibaba-gpu-v2023/openb_pod_list_*.csv`.
    Alibaba,
    /// `tiresias/60_job.csv`.
    Tiresias,
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Format> {
        match s {
            "philly" => Ok(Format::Philly),
            "alibaba" => Ok(Format::Alibaba),
            "tiresias" => Ok(Format::Tiresias),
            other => Err(Error::Invalid {
                path: "format".into(),
                message: format!("expected philly, alibaba or tiresias, found {other:?}"),
            }),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Philly => "philly",
            Format::Alibaba => "alibaba",
            Format::Tiresias => "tiresias",
        })
    }
}

impl Format {
    /// Loads `text` (a whole CSV file) in this format.
    ///
    /// ```
    /// use kf_train::trace::Format;
    /// let csv = "timestamp,duration,num_gpus,gpu_time,cluster\n\
    ///            2017-10-01 00:00:10,60.0,2,120.0,0000ff\n\
    ///            2017-10-01 00:00:00,0.0,1,0.0,000001\n";
    /// let trace = Format::Philly.load(csv)?;
    /// assert_eq!(trace.jobs.len(), 1);
    /// assert_eq!(trace.jobs[0].submit_s, 10.0); // the dropped row still sets time zero
    /// assert_eq!((trace.jobs[0].gpus, trace.jobs[0].queue_key), (2, 255));
    /// assert_eq!(trace.skipped["duration <= 0"], 1);
    /// # Ok::<(), kf_train::Error>(())
    /// ```
    pub fn load(self, text: &str) -> Result<Trace> {
        let table = Table::parse(text)?;
        let mut trace = match self {
            Format::Philly => philly(&table)?,
            Format::Alibaba => alibaba(&table)?,
            Format::Tiresias => tiresias(&table)?,
        };
        trace.rows = table.rows.len();
        trace.jobs.sort_by(|a, b| a.submit_s.total_cmp(&b.submit_s).then(a.row.cmp(&b.row)));
        Ok(trace)
    }
}

fn skip(trace: &mut Trace, reason: &str) {
    *trace.skipped.entry(reason.to_string()).or_insert(0) += 1;
}

fn philly(t: &Table) -> Result<Trace> {
    let [ts, dur, gpus, cluster] = t.columns(["timestamp", "duration", "num_gpus", "cluster"])?;
    let mut stamps = Vec::with_capacity(t.rows.len());
    for r in &t.rows {
        stamps.push(r.parse_with(ts, "timestamp", parse_timestamp, "YYYY-MM-DD HH:MM:SS")?);
    }
    let origin = stamps.iter().copied().min().unwrap_or(0);
    let mut trace = Trace::default();
    for (row, r) in t.rows.iter().enumerate() {
        let duration: f64 = r.number(dur, "duration")?;
        let num_gpus: i64 = r.integer(gpus, "num_gpus")?;
        let key =
            r.parse_with(cluster, "cluster", |s| u64::from_str_radix(s, 16).ok(), "a hexadecimal cluster hash")?;
        if duration <= 0.0 {
            skip(&mut trace, "duration <= 0");
            continue;
        }
        if num_gpus <= 0 {
            skip(&mut trace, "num_gpus <= 0");
            continue;
        }
        trace.jobs.push(Job {
            row,
            job_id: format!("philly-{row}"),
            submit_s: (stamps[row] - origin) as f64,
            duration_s: duration,
            gpus: num_gpus as u64,
            gpus_exact: num_gpus as f64,
            cpu_cores: None,
            mem_mib: None,
            queue_key: key,
        });
    }
    Ok(trace)
}

fn alibaba(t: &Table) -> Result<Trace> {
    let [name, cpu, mem, num_gpu, gpu_milli, qos, created, deleted, scheduled] = t.columns([
        "name",
        "cpu_milli",
        "memory_mib",
        "num_gpu",
        "gpu_milli",
        "qos",
        "creation_time",
        "deletion_time",
        "scheduled_time",
    ])?;
    let mut creations = Vec::with_capacity(t.rows.len());
    for r in &t.rows {
        creations.push(r.number::<f64>(created, "creation_time")?);
    }
    let origin = creations.iter().copied().fold(f64::INFINITY, f64::min);
    let mut trace = Trace::default();
    for (row, r) in t.rows.iter().enumerate() {
        let (Some(start), Some(end)) =
            (r.optional::<f64>(scheduled, "scheduled_time")?, r.optional::<f64>(deleted, "deletion_time")?)
        else {
            skip(&mut trace, "never scheduled (no scheduled_time or deletion_time)");
            continue;
        };
        let n: u64 = r.number(num_gpu, "num_gpu")?;
        let milli: u64 = r.number(gpu_milli, "gpu_milli")?;
        let queue_key = match r.get(qos) {
            "LS" => 0,
            "BE" => 1,
            "Burstable" => 2,
            "Guaranteed" => 3,
            other => return Err(r.error("qos", format!("expected LS, BE, Burstable or Guaranteed, found {other:?}"))),
        };
        let duration = end - start;
        if duration <= 0.0 {
            skip(&mut trace, "duration <= 0");
            continue;
        }
        let gpus = n.saturating_mul(milli).saturating_add(999) / 1000;
        if gpus == 0 {
            skip(&mut trace, "no GPU (CPU-only pod)");
            continue;
        }
        trace.jobs.push(Job {
            row,
            job_id: r.get(name).to_string(),
            submit_s: creations[row] - origin,
            duration_s: duration,
            gpus,
            gpus_exact: (n as f64) * (milli as f64) / 1000.0,
            cpu_cores: Some(r.number::<f64>(cpu, "cpu_milli")? / 1000.0),
            mem_mib: Some(r.number(mem, "memory_mib")?),
            queue_key,
        });
    }
    Ok(trace)
}

fn tiresias(t: &Table) -> Result<Trace> {
    let [id, gpus, submit, dur] = t.columns(["job_id", "num_gpu", "submit_time", "duration"])?;
    let mut submits = Vec::with_capacity(t.rows.len());
    for r in &t.rows {
        submits.push(r.number::<f64>(submit, "submit_time")?);
    }
    let origin = submits.iter().copied().fold(f64::INFINITY, f64::min);
    let mut trace = Trace::default();
    for (row, r) in t.rows.iter().enumerate() {
        let job_id: u64 = r.number(id, "job_id")?;
        let duration: f64 = r.number(dur, "duration")?;
        let n: i64 = r.integer(gpus, "num_gpu")?;
        if duration <= 0.0 {
            skip(&mut trace, "duration <= 0");
            continue;
        }
        if n <= 0 {
            skip(&mut trace, "num_gpu <= 0");
            continue;
        }
        trace.jobs.push(Job {
            row,
            job_id: format!("tiresias-{job_id}"),
            submit_s: submits[row] - origin,
            duration_s: duration,
            gpus: n as u64,
            gpus_exact: n as f64,
            cpu_cores: None,
            mem_mib: None,
            queue_key: job_id,
        });
    }
    Ok(trace)
}

/// `YYYY-MM-DD HH:MM:SS` read as UTC → seconds since 1970-01-01.
fn parse_timestamp(s: &str) -> Option<i64> {
    let (date, time) = s.split_once(' ')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hh)
        || !(0..60).contains(&mm)
        || !(0..=60).contains(&ss)
    {
        return None;
    }
    Some(days_from_civil(y, m, day) * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
