//! A picture of a replay for a person: GPU utilisation over time and the
//! cumulative distribution of job completion times, as one self-contained
//! SVG document (no fonts, scripts or external references). It renders text;
//! writing the file is the caller's job. O(T + J log J) for T utilisation
//! changes and J jobs; both series are reduced to at most `WIDTH` points.

use std::fmt::Write;

use super::Simulation;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 60.0;
const TOP: f64 = 40.0;
const GAP: f64 = 80.0;

/// The SVG document for `sim`.
///
/// ```
/// use kf_train::scheduler::StrictFifo;
/// use kf_train::sim::{plot, simulate, SimConfig};
/// use kf_train::trace::Format;
/// let trace = Format::Tiresias.load("job_id,num_gpu,submit_time,iterations,model_name,duration,interval\n0,1,0,1,m,10,0\n")?;
/// let svg = plot::svg(&simulate(&trace.jobs, &SimConfig::new(1, 8), StrictFifo)?);
/// assert!(svg.starts_with("<svg") && svg.contains("GPU utilisation") && svg.ends_with("</svg>\n"));
/// # Ok::<(), kf_train::Error>(())
/// ```
pub fn svg(sim: &Simulation) -> String {
    let r = &sim.report;
    let total = (r.nodes as f64 * r.gpus_per_node as f64).max(1.0);
    let mut out = String::new();
    let h = TOP + 2.0 * HEIGHT + GAP + 50.0;
    let w = LEFT + WIDTH + 30.0;
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="20" font-size="14">{} on {}×{} GPUs: {} jobs, avg JCT {:.0} s, utilisation {:.1}%</text>"#,
        escape(&r.policy),
        r.nodes,
        r.gpus_per_node,
        r.jobs,
        r.avg_jct_s,
        100.0 * r.gpu_utilization
    );

    // Panel 1: utilisation over time, time-weighted mean per pixel column.
    let (t0, t1) = match (sim.busy_gpus.first(), sim.busy_gpus.last()) {
        (Some(a), Some(b)) => (a.0, (b.0).max(a.0 + r.makespan_s).max(a.0 + 1.0)),
        _ => (0.0, 1.0),
    };
    let columns = WIDTH as usize;
    let mut area = vec![0.0f64; columns];
    let span = (t1 - t0) / columns as f64;
    for (i, &(t, busy)) in sim.busy_gpus.iter().enumerate() {
        let end = sim.busy_gpus.get(i + 1).map_or(t1, |n| n.0);
        let (a, b) = (t, end.min(t1));
        if b <= a {
            continue;
        }
        let column = |x: f64| (((x - t0) / span) as usize).min(columns - 1);
        for (c, cell) in area.iter_mut().enumerate().take(column(b) + 1).skip(column(a)) {
            let lo = a.max(t0 + c as f64 * span);
            let hi = if c + 1 == columns { b } else { b.min(t0 + (c + 1) as f64 * span) };
            if hi > lo {
                *cell += busy as f64 * (hi - lo);
            }
        }
    }
    axes(&mut out, TOP, "GPU utilisation over time", &format!("time (days, 0–{:.1})", (t1 - t0) / 86_400.0), "busy");
    let points: Vec<String> = area
        .iter()
        .enumerate()
        .map(|(c, a)| {
            let u = (a / span / total).clamp(0.0, 1.0);
            format!("{:.1},{:.1}", LEFT + c as f64, TOP + HEIGHT * (1.0 - u))
        })
        .collect();
    let _ =
        writeln!(out, r##"<polyline fill="none" stroke="#1f77b4" stroke-width="1" points="{}"/>"##, points.join(" "));

    // Panel 2: JCT CDF on a log10 time axis.
    let top2 = TOP + HEIGHT + GAP;
    let (lo, hi) = match (sim.jct_s.first(), sim.jct_s.last()) {
        (Some(a), Some(b)) => {
            ((a.max(1.0)).log10().floor(), (b.max(1.0)).log10().ceil().max(a.max(1.0).log10().floor() + 1.0))
        }
        _ => (0.0, 1.0),
    };
    axes(&mut out, top2, "Job completion time CDF", &format!("JCT (log scale, 10^{lo:.0} – 10^{hi:.0} s)"), "fraction");
    let n = sim.jct_s.len();
    let stride = n.div_ceil(columns).max(1);
    let cdf: Vec<String> = sim
        .jct_s
        .iter()
        .enumerate()
        .filter(|(i, _)| i % stride == 0 || *i + 1 == n)
        .map(|(i, &j)| {
            let x = LEFT + WIDTH * ((j.max(1.0).log10() - lo) / (hi - lo)).clamp(0.0, 1.0);
            let y = top2 + HEIGHT * (1.0 - (i + 1) as f64 / n as f64);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let _ =
        writeln!(out, r##"<polyline fill="none" stroke="#d62728" stroke-width="1.5" points="{}"/>"##, cdf.join(" "));
    out.push_str("</svg>\n");
    out
}

fn axes(out: &mut String, top: f64, title: &str, x_label: &str, y_label: &str) {
    let bottom = top + HEIGHT;
    let right = LEFT + WIDTH;
    let _ = writeln!(out, r#"<text x="{LEFT}" y="{}" font-weight="bold">{}</text>"#, top - 8.0, escape(title));
    let _ =
        writeln!(out, r##"<rect x="{LEFT}" y="{top}" width="{WIDTH}" height="{HEIGHT}" fill="none" stroke="#444"/>"##);
    for k in 1..4 {
        let y = top + HEIGHT * f64::from(k) / 4.0;
        let _ = writeln!(out, r##"<line x1="{LEFT}" y1="{y}" x2="{right}" y2="{y}" stroke="#ddd"/>"##);
    }
    let _ = writeln!(out, r#"<text x="{}" y="{}" text-anchor="end">100%</text>"#, LEFT - 4.0, top + 4.0);
    let _ = writeln!(out, r#"<text x="{}" y="{}" text-anchor="end">0%</text>"#, LEFT - 4.0, bottom);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
        LEFT - 4.0,
        top + HEIGHT / 2.0,
        escape(y_label)
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + WIDTH / 2.0,
        bottom + 18.0,
        escape(x_label)
    );
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
