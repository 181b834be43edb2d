//! Pictures of a [`Plan`]: Graphviz DOT ([`to_dot`]) and a self-contained
//! SVG ([`to_svg`]) laid out by topological level, for `kf pipeline graph`.
//!
//! Both draw every DAG of the pipeline: the root first, then each DAG
//! component (loop bodies, condition branches, nested pipelines) as its own
//! group, with the task that runs it naming it. A node says what the task is:
//! a step (its executor kind), a loop (`for each … ≤ parallelism`), a nested
//! DAG; conditions and exit handlers are marked. Pure string building: no IO.

use std::fmt::Write;

use crate::Plan;
use crate::ir::{Component, Executor, Implementation, LoopItems, Task, TriggerStrategy};
use crate::plan::DagPlan;

struct Shown {
    title: String,
    detail: String,
    kind: Kind,
    conditional: bool,
    exit_handler: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Step,
    Loop,
    Dag,
}

fn describe(plan: &Plan, task_name: &str, task: &Task) -> Shown {
    let pipeline = plan.pipeline();
    let component = pipeline.components.get(&task.component);
    let kind = match (&task.parallel_for, component.map(|c: &Component| &c.implementation)) {
        (Some(_), _) => Kind::Loop,
        (None, Some(Implementation::Dag(_))) => Kind::Dag,
        _ => Kind::Step,
    };
    let detail = match (&task.parallel_for, kind) {
        (Some(pf), _) => {
            let over = match &pf.items {
                LoopItems::Raw(items) => format!("{} items", items.len()),
                LoopItems::InputParameter(p) | LoopItems::InputArtifact(p) => p.clone(),
            };
            let limit = pf.parallelism.map_or(String::new(), |p| format!(", ≤{p} at once"));
            format!("for each of {over}{limit} → {}", task.component)
        }
        (None, Kind::Dag) => format!("DAG {}", task.component),
        _ => {
            let executor = pipeline.executor_of(&task.component).map_or("?", Executor::kind);
            format!("{} {}", executor, task.component)
        }
    };
    let exit_handler = task.trigger.strategy == TriggerStrategy::AllUpstreamCompleted;
    Shown {
        title: task.display_name.clone().unwrap_or_else(|| task_name.to_owned()),
        detail,
        kind,
        conditional: task.trigger.condition.is_some(),
        exit_handler,
    }
}

/// The DAGs to draw: the root and every DAG component, with their tasks.
fn dags(plan: &Plan) -> Vec<(String, &DagPlan, Option<&crate::ir::Dag>)> {
    let mut out = vec![("pipeline ".to_owned() + &plan.pipeline().name, plan.root(), plan.pipeline().root_dag())];
    for (name, component) in &plan.pipeline().components {
        if let (Some(dag_plan), Some(dag)) = (plan.component(name), component.as_dag()) {
            out.push((format!("component {name}"), dag_plan, Some(dag)));
        }
    }
    out
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The plan in Graphviz DOT: one cluster per DAG; O(T + E).
///
/// ```
/// let mut p = kf_dag::builder::PipelineBuilder::new("p");
/// let step = p.function_component("step", "f");
/// let step = p.add_component(step);
/// let a = p.task("a", &step).done();
/// p.task("b", &step).after(&a).done();
/// let dot = kf_dag::graph::to_dot(&p.build()?);
/// assert!(dot.contains("\"0:a\" -> \"0:b\""));
/// # Ok::<(), kf_dag::Error>(())
/// ```
pub fn to_dot(plan: &Plan) -> String {
    let mut s = String::from(
        "digraph pipeline {\n  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n",
    );
    for (i, (title, dag_plan, dag)) in dags(plan).into_iter().enumerate() {
        let _ = writeln!(s, "  subgraph cluster_{i} {{\n    label=\"{}\";", dot_escape(&title));
        for name in dag_plan.order() {
            let Some(task) = dag.and_then(|d| d.tasks.get(name)) else { continue };
            let shown = describe(plan, name, task);
            let fill = match shown.kind {
                Kind::Step => "#dbeafe",
                Kind::Loop => "#fde68a",
                Kind::Dag => "#e9d5ff",
            };
            let style = if shown.conditional { "rounded,filled,dashed" } else { "rounded,filled" };
            let mut label = format!("{}\\n{}", dot_escape(&shown.title), dot_escape(&shown.detail));
            if let Some(c) = &task.trigger.condition {
                let _ = write!(label, "\\nif {}", dot_escape(c.source()));
            }
            if shown.exit_handler {
                label.push_str("\\nruns after failures");
            }
            let _ = writeln!(
                s,
                "    \"{i}:{}\" [label=\"{label}\", fillcolor=\"{fill}\", style=\"{style}\"];",
                dot_escape(name)
            );
        }
        s.push_str("  }\n");
        for name in dag_plan.order() {
            for down in dag_plan.downstream(name) {
                let _ = writeln!(s, "  \"{i}:{}\" -> \"{i}:{}\";", dot_escape(name), dot_escape(down));
            }
        }
    }
    s.push_str("}\n");
    s
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The plan as a standalone SVG: each DAG laid out in rows by topological
/// level (tasks of a row can run at once), edges as curves from producer to
/// consumer, colours by task kind and a legend. O(T + E) plus the text.
///
/// Each task node is a `<g class="task" data-task="NAME" data-component="C">`
/// (`C` empty in the root DAG, else the DAG component's name), so a page can
/// find a task's node and colour it by the run's state.
pub fn to_svg(plan: &Plan) -> String {
    const BOX_H: f64 = 46.0;
    const ROW_GAP: f64 = 44.0;
    const COL_GAP: f64 = 24.0;
    const MARGIN: f64 = 24.0;
    const CHAR_W: f64 = 7.0;
    let mut body = String::new();
    let mut y = MARGIN + 40.0;
    // Wide enough for the legend line at the bottom.
    let mut width: f64 = 640.0;
    for (section, (title, dag_plan, dag)) in dags(plan).into_iter().enumerate() {
        let _ = writeln!(body, r#"<text x="{MARGIN}" y="{y}" class="section">{}</text>"#, xml_escape(&title));
        // Which DAG a node belongs to, for readers that colour nodes by run
        // state: empty for the root (whose task names are execution paths),
        // the component's name for the others.
        let component = if section == 0 { "" } else { title.strip_prefix("component ").unwrap_or(&title) };
        y += 14.0;
        let mut centers = std::collections::HashMap::new();
        let mut nodes = String::new();
        for level in dag_plan.levels() {
            let shown: Vec<(&String, Shown)> = level
                .iter()
                .filter_map(|n| dag.and_then(|d| d.tasks.get(n)).map(|t| (n, describe(plan, n, t))))
                .collect();
            let mut x = MARGIN;
            for (name, s) in &shown {
                let text_w = s.title.chars().count().max(s.detail.chars().count()) as f64 * CHAR_W;
                let w = text_w.max(90.0) + 24.0;
                let class = match s.kind {
                    Kind::Step => "step",
                    Kind::Loop => "loop",
                    Kind::Dag => "dag",
                };
                let dash = if s.conditional { r#" stroke-dasharray="6 4""# } else { "" };
                let _ = writeln!(
                    nodes,
                    r#"<g class="task" data-task="{}" data-component="{}"><title>{}</title><rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{BOX_H}" rx="9" class="{class}"{dash}/><text x="{:.1}" y="{:.1}" class="name">{}{}</text><text x="{:.1}" y="{:.1}" class="detail">{}</text></g>"#,
                    xml_escape(name),
                    xml_escape(component),
                    xml_escape(&task_tooltip(dag.and_then(|d| d.tasks.get(*name)))),
                    x + w / 2.0,
                    y + 19.0,
                    xml_escape(&s.title),
                    if s.exit_handler { " ⚑" } else { "" },
                    x + w / 2.0,
                    y + 36.0,
                    xml_escape(&s.detail)
                );
                centers.insert(name.as_str(), (x + w / 2.0, y));
                x += w + COL_GAP;
            }
            width = width.max(x + MARGIN);
            y += BOX_H + ROW_GAP;
        }
        for name in dag_plan.order() {
            let Some(&(x1, y1)) = centers.get(name.as_str()) else { continue };
            for down in dag_plan.downstream(name) {
                let Some(&(x2, y2)) = centers.get(down) else { continue };
                let (sy, ty) = (y1 + BOX_H, y2);
                let mid = (sy + ty) / 2.0;
                let _ = writeln!(
                    body,
                    r#"<path d="M{x1:.1},{sy:.1} C{x1:.1},{mid:.1} {x2:.1},{mid:.1} {x2:.1},{:.1}" class="edge"/>"#,
                    ty - 2.0
                );
            }
        }
        body.push_str(&nodes);
        y += 10.0;
    }
    let height = y + 30.0;
    let legend_y = height - 14.0;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="Helvetica, Arial, sans-serif">
<style>
  .section {{ font-size: 13px; font-weight: bold; fill: #374151; }}
  .name {{ font-size: 13px; font-weight: 600; fill: #111827; text-anchor: middle; }}
  .detail {{ font-size: 11px; fill: #4b5563; text-anchor: middle; }}
  .step {{ fill: #dbeafe; stroke: #3b82f6; stroke-width: 1.5; }}
  .loop {{ fill: #fef3c7; stroke: #d97706; stroke-width: 1.5; }}
  .dag {{ fill: #f3e8ff; stroke: #9333ea; stroke-width: 1.5; }}
  .edge {{ fill: none; stroke: #6b7280; stroke-width: 1.4; marker-end: url(#arrow); }}
  .legend {{ font-size: 11px; fill: #4b5563; }}
</style>
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker></defs>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="{MARGIN}" y="{:.0}" font-size="17" font-weight="bold" fill="#111827">{}</text>
{body}<text x="{MARGIN}" y="{legend_y:.0}" class="legend">blue: step · amber: loop · purple: nested DAG · dashed: conditional · ⚑ runs after failures (exit handler)</text>
</svg>
"##,
        MARGIN + 8.0,
        xml_escape(&plan.pipeline().name),
    )
}

fn task_tooltip(task: Option<&Task>) -> String {
    let Some(task) = task else { return String::new() };
    let mut s = format!("component {}", task.component);
    if let Some(c) = &task.trigger.condition {
        let _ = write!(s, "; if {}", c.source());
    }
    if let Some(r) = &task.retry {
        let _ = write!(s, "; retries {}", r.max_retry_count);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_svg_draws_every_task_and_edge_of_every_dag() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/sweep.yaml")).unwrap();
        let plan = Plan::new(crate::format::from_str(&text).unwrap()).unwrap();
        let svg = to_svg(&plan);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for name in ["sweep", "report", "notify", "train", "component body"] {
            assert!(svg.contains(&format!(">{name}")), "{name} is drawn");
        }
        assert_eq!(svg.matches("class=\"edge\"").count(), 2, "sweep → report, sweep → notify");
        // Every node names its task and DAG, so a dashboard can colour it by state.
        assert!(svg.contains(r#"<g class="task" data-task="sweep" data-component="">"#), "{svg}");
        assert_eq!(svg.matches(r#"<g class="task" "#).count(), svg.matches("<rect x=").count());
        assert!(svg.contains("for each of 3 items, ≤2 at once"));
        let dot = to_dot(&plan);
        assert!(dot.contains("\"0:sweep\" -> \"0:report\"") && dot.contains("cluster_1"));
    }
}
