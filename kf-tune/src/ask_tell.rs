//! The ask/tell protocol (`../shared/protocols/tune-ask-tell.md`, version 1):
//! one search held by a [`Session`], driven by JSON lines.
//!
//! A driver in any language asks for trials, evaluates them and tells the
//! results; [`serve`] reads request lines from a [`BufRead`] and writes one
//! reply line per request to a [`Write`], flushing after each. Every failure
//! of a request is an error reply (`{"error":{"code":…,"message":…}}`) that
//! changes no state, and the session keeps serving. [`SpaceFile`] reads the
//! protocol's search-space file (Katib `parameters` plus the objectives).
//!
//! The session is a plain state machine ([`Session::handle_line`] maps one
//! line to at most one reply), so it tests without pipes or processes. This
//! module does not start processes, read files or parse command lines: the
//! `kf tune ask-tell` command does that and calls [`serve`].
//!
//! Determinism: the session's only source of randomness is a ChaCha8
//! generator seeded once at start-up, trial ids are a decimal counter and
//! replies are written with a fixed member order, so the same requests give
//! byte-identical replies.

use std::io::{self, BufRead, Write};

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use serde::Deserialize;
use serde_json::{Map, Number, Value, json};

use crate::algorithm::Algorithm;
use crate::early_stopping::{MedianStop, SuccessiveHalving};
use crate::katib::{self, ParameterSpec, Scalar};
use crate::sampler::{Direction, History, Shortfall, TrialState};
use crate::space::{Domain, ParamValue, SearchSpace};
use crate::{Error, Result};

/// Protocol name `hello` answers with.
pub const PROTOCOL: &str = "kf-tune-ask-tell";
/// Protocol version this module speaks.
pub const VERSION: u64 = 1;

/// Algorithms that serve any number of objectives: the value-blind ones and NSGA-II.
const MULTI_OBJECTIVE: [&str; 4] = ["random", "grid", "sobol", "nsga2"];

/// The protocol's search-space file: the objectives and the parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SpaceFile {
    /// Direction of each objective, in the order of `tell`'s `values` (one when
    /// the file has a single `objective` or none).
    pub directions: Vec<Direction>,
    /// The parameters.
    pub space: SearchSpace,
    /// Per parameter: whether values are written as JSON integers (`int`, and
    /// `discrete` lists of integer literals only).
    integer_valued: Vec<bool>,
}

#[derive(Deserialize)]
struct SpaceFileWire {
    #[serde(default)]
    objective: Option<ObjectiveWire>,
    #[serde(default)]
    objectives: Option<Vec<ObjectiveWire>>,
    #[serde(default)]
    parameters: Option<Vec<ParameterSpec>>,
}

#[derive(Deserialize)]
struct ObjectiveWire {
    #[serde(default, rename = "type")]
    type_: Option<String>,
}

impl SpaceFile {
    /// Reads a space file's JSON. Errors name the offending field
    /// (`parameters[1].feasibleSpace.min`); unknown fields are ignored.
    /// O(parameters + list entries²) for the duplicate check.
    ///
    /// ```
    /// use kf_tune::ask_tell::SpaceFile;
    ///
    /// let file = SpaceFile::from_value(serde_json::json!({
    ///     "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
    ///     "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "1e-5", "max": 0.1}}],
    /// }))?;
    /// assert_eq!(file.space.len(), 1);
    /// let bad = serde_json::json!({"parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "2", "max": "1"}}]});
    /// assert!(SpaceFile::from_value(bad).unwrap_err().to_string().contains("greater than max"));
    /// # Ok::<(), kf_tune::Error>(())
    /// ```
    pub fn from_value(doc: Value) -> Result<Self> {
        let wire: SpaceFileWire = serde_path_to_error::deserialize(doc)
            .map_err(|err| Error::Invalid { path: err.path().to_string(), message: err.inner().to_string() })?;
        let direction = |at: String, o: &ObjectiveWire| match o.type_.as_deref() {
            None | Some("minimize") => Ok(Direction::Minimize),
            Some("maximize") => Ok(Direction::Maximize),
            Some(other) => Err(Error::Invalid {
                path: format!("{at}.type"),
                message: format!("expected minimize or maximize, found {other:?}"),
            }),
        };
        let directions = match (&wire.objective, &wire.objectives) {
            (Some(_), Some(_)) => {
                return Err(Error::Invalid {
                    path: "objectives".into(),
                    message: "expected either objective or objectives, found both".into(),
                });
            }
            (Some(o), None) => vec![direction("objective".into(), o)?],
            (None, None) => vec![Direction::Minimize],
            (None, Some(list)) if list.is_empty() => {
                return Err(Error::Invalid {
                    path: "objectives".into(),
                    message: "expected at least one objective, found an empty list".into(),
                });
            }
            (None, Some(list)) => {
                list.iter().enumerate().map(|(i, o)| direction(format!("objectives[{i}]"), o)).collect::<Result<_>>()?
            }
        };
        let Some(parameters) = wire.parameters.filter(|p| !p.is_empty()) else {
            return Err(Error::Invalid {
                path: "parameters".into(),
                message: "expected a non-empty list of parameters".into(),
            });
        };
        // Lists ignore range fields in this protocol (Katib's webhook rejects them).
        let parameters: Vec<ParameterSpec> = parameters
            .into_iter()
            .map(|mut p| {
                if matches!(p.parameter_type.as_deref(), Some("discrete" | "categorical"))
                    && let Some(fs) = p.feasible_space.as_mut()
                {
                    (fs.min, fs.max, fs.step, fs.distribution) = (None, None, None, None);
                }
                p
            })
            .collect();
        let space = katib::search_space("parameters", &parameters)?;
        for (i, param) in space.params().iter().enumerate() {
            let duplicate = match param.domain() {
                Domain::Discrete { values } => values.iter().enumerate().any(|(j, v)| values[..j].contains(v)),
                Domain::Categorical { choices } => choices.iter().enumerate().any(|(j, c)| choices[..j].contains(c)),
                _ => false,
            };
            if duplicate {
                return Err(Error::Invalid {
                    path: format!("parameters[{i}].feasibleSpace.list"),
                    message: format!("parameter {:?}: expected distinct entries, found a duplicate", param.name()),
                });
            }
        }
        let integer_valued = space
            .params()
            .iter()
            .zip(&parameters)
            .map(|(param, spec)| match param.domain() {
                Domain::Int { .. } => true,
                Domain::Discrete { .. } => spec
                    .feasible_space
                    .as_ref()
                    .and_then(|fs| fs.list.as_ref())
                    .is_some_and(|list| list.iter().all(is_integer_literal)),
                _ => false,
            })
            .collect();
        Ok(SpaceFile { directions, space, integer_valued })
    }

    /// A trial's `params` object: one member per parameter, written by the
    /// protocol's rules (doubles always with a `.` or exponent, integer lists as integers).
    pub fn params_json(&self, assignment: &[ParamValue]) -> Value {
        let mut out = Map::new();
        for ((param, value), &integer) in self.space.params().iter().zip(assignment).zip(&self.integer_valued) {
            let v = match (value, param.domain()) {
                (ParamValue::Category(i), Domain::Categorical { choices }) => {
                    Value::String(choices.get(*i).cloned().unwrap_or_default())
                }
                (ParamValue::Int(i), _) => Value::Number((*i).into()),
                (ParamValue::Float(x), _) if integer && x.fract() == 0.0 && x.abs() < 9.0e15 => {
                    Value::Number((*x as i64).into())
                }
                (ParamValue::Float(x), _) => Number::from_f64(*x).map_or(Value::Null, Value::Number),
                (ParamValue::Category(i), _) => Value::Number((*i as u64).into()),
            };
            out.insert(param.name().to_owned(), v);
        }
        Value::Object(out)
    }
}

/// `"16"` or `16`, not `"16.0"`, `16.5` or `"1e3"`.
fn is_integer_literal(s: &Scalar) -> bool {
    match s {
        Scalar::Number(n) => n.is_i64() || n.is_u64(),
        Scalar::String(t) => t.trim().parse::<i64>().is_ok(),
        Scalar::Bool(_) => false,
    }
}

/// The early-stopping rule `report` answers from.
#[derive(Debug, Clone, Copy)]
enum Pruner {
    Median(MedianStop),
    Halving(SuccessiveHalving),
}

/// How a trial ended, or that it has not.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Pending,
    Complete(Vec<f64>),
    Failed,
    Pruned,
}

impl Outcome {
    fn word(&self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Complete(_) => "complete",
            Outcome::Failed => "failed",
            Outcome::Pruned => "pruned",
        }
    }
}

#[derive(Debug, Clone)]
struct TrialRecord {
    outcome: Outcome,
    /// Intermediate values by step, in the order reported.
    reports: Vec<(u64, f64)>,
}

/// A protocol error: its code and a message for people.
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    code: &'static str,
    message: String,
}

fn failure(code: &'static str, message: impl Into<String>) -> Failure {
    Failure { code, message: message.into() }
}

/// What the driver should do after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading requests.
    Continue,
    /// The driver sent `quit`: stop after writing the reply.
    Quit,
}

/// One search: the algorithm, the space, the generator and every trial given out.
///
/// ```
/// use kf_tune::ask_tell::{Session, SpaceFile};
///
/// let file = SpaceFile::from_value(serde_json::json!({
///     "parameters": [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "0", "max": "2"}}],
/// }))?;
/// let mut session = Session::new(file, "grid", &[], 7)?;
/// let (reply, _) = session.handle_line(r#"{"op":"ask","n":5}"#).unwrap();
/// // Members are written in sorted order.
/// assert_eq!(reply, r#"{"exhausted":true,"trials":[{"id":"0","params":{"x":0}},{"id":"1","params":{"x":1}},{"id":"2","params":{"x":2}}]}"#);
/// let (reply, _) = session.handle_line(r#"{"op":"tell","id":"1","value":0.5}"#).unwrap();
/// assert_eq!(reply, r#"{"ok":true}"#);
/// let (reply, _) = session.handle_line(r#"{"op":"best"}"#).unwrap();
/// assert_eq!(reply, r#"{"id":"1","params":{"x":1},"value":0.5}"#);
/// assert_eq!(session.handle_line("   "), None); // blank lines get no reply
/// # Ok::<(), kf_tune::Error>(())
/// ```
pub struct Session {
    name: String,
    file: SpaceFile,
    algorithm: Algorithm,
    pruner: Option<Pruner>,
    rng: ChaCha8Rng,
    /// The sampler's view: trial `i` of the history is trial id `i`.
    history: History,
    trials: Vec<TrialRecord>,
    /// Trial indices in the order they were told complete (ties in `best` go to the first).
    completed_order: Vec<usize>,
    exhausted: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("algorithm", &self.name).field("trials", &self.trials.len()).finish()
    }
}

impl Session {
    /// Starts a search with algorithm `name`, `settings` as Katib
    /// `algorithmSettings` (name, value) pairs, and `seed`. The settings
    /// `early_stopping=medianstop` (with `min_trials_required`, `start_step`)
    /// or `early_stopping=asha` (successive halving, with `min_resource`,
    /// `reduction_factor`, `min_early_stopping_rate`) set up early stopping; `random_state`, when given, replaces `seed`. Errors are
    /// start-up failures: unknown algorithm or setting, a bad value, or an
    /// algorithm that cannot serve the space (e.g. `tpe` with two objectives).
    pub fn new(file: SpaceFile, name: &str, settings: &[(String, String)], seed: u64) -> Result<Self> {
        let mut early = None;
        let mut median_settings: Vec<(&str, &str)> = Vec::new();
        let mut halving_settings: Vec<(&str, &str)> = Vec::new();
        let mut algorithm_settings: Vec<(&str, &str)> = Vec::new();
        for (key, value) in settings {
            match key.as_str() {
                "early_stopping" => early = Some(value.as_str()),
                "min_trials_required" | "start_step" => median_settings.push((key, value)),
                "min_resource" | "reduction_factor" | "min_early_stopping_rate" => halving_settings.push((key, value)),
                _ => algorithm_settings.push((key, value)),
            }
        }
        let stray = |rule: &str, wrong: &[(&str, &str)]| match wrong.first() {
            Some((key, _)) => Err(Error::InvalidSetting {
                algorithm: name.into(),
                setting: (*key).into(),
                message: format!("is not a setting of {rule}"),
            }),
            None => Ok(()),
        };
        let pruner = match early {
            Some("medianstop") => {
                stray("medianstop", &halving_settings)?;
                Some(Pruner::Median(MedianStop::from_settings(&median_settings)?))
            }
            Some("asha") => {
                stray("asha pruning", &median_settings)?;
                Some(Pruner::Halving(SuccessiveHalving::from_settings(&halving_settings)?))
            }
            Some(other) => {
                return Err(Error::InvalidSetting {
                    algorithm: name.into(),
                    setting: "early_stopping".into(),
                    message: format!("expected medianstop or asha, found {other:?}"),
                });
            }
            None => {
                if let Some((key, _)) = median_settings.first().or(halving_settings.first()) {
                    let rule = if median_settings.is_empty() { "asha" } else { "medianstop" };
                    return Err(Error::InvalidSetting {
                        algorithm: name.into(),
                        setting: (*key).into(),
                        message: format!("is a {rule} setting; add early_stopping={rule}"),
                    });
                }
                None
            }
        };
        // Seeded algorithms (Sobol's scramble) take the session seed unless the
        // settings name their own; grid takes no settings at all.
        let seed_text = seed.to_string();
        if name != "grid" && !algorithm_settings.iter().any(|(k, _)| *k == "random_state") {
            algorithm_settings.push(("random_state", &seed_text));
        }
        let algorithm = Algorithm::new(name, &algorithm_settings)?;
        if file.directions.len() > 1 && !MULTI_OBJECTIVE.contains(&name) {
            return Err(Error::Unsupported {
                algorithm: name.into(),
                message: format!(
                    "optimises one objective, found {}; with several objectives use {}",
                    file.directions.len(),
                    MULTI_OBJECTIVE.join(", ")
                ),
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(algorithm.seed.unwrap_or(seed));
        let history = if file.directions.len() > 1 {
            History::multi(file.directions.clone())
        } else {
            History::new(file.directions[0])
        };
        // Asking for nothing checks that the sampler can serve the space (grid
        // needs every double stepped) before any request is read.
        algorithm.sampler.suggest(&file.space, &history, 0, &mut rng)?;
        let rng = ChaCha8Rng::seed_from_u64(algorithm.seed.unwrap_or(seed));
        Ok(Session {
            name: name.into(),
            file,
            algorithm,
            pruner,
            rng,
            history,
            trials: Vec::new(),
            completed_order: Vec::new(),
            exhausted: false,
        })
    }

    /// Handles one request line (without its `\n`; a trailing `\r` is
    /// tolerated). Returns the reply line and whether to keep serving, or
    /// `None` for a blank line, which is not a request. O(1) plus the cost of
    /// the request: an `ask` costs the sampler's suggestions, `best` O(trials).
    pub fn handle_line(&mut self, line: &str) -> Option<(String, Flow)> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            return None;
        }
        let (reply, flow) = match self.handle(line) {
            Ok(pair) => pair,
            Err(f) => (json!({"error": {"code": f.code, "message": f.message}}), Flow::Continue),
        };
        Some((reply.to_string(), flow))
    }

    fn handle(&mut self, line: &str) -> Result<(Value, Flow), Failure> {
        let request: Value = serde_json::from_str(line).map_err(|e| {
            let what = e.to_string();
            let what = what.split(" at line ").next().unwrap_or_default();
            failure("parse_error", format!("line 1 column {}: {what}", e.column()))
        })?;
        let Value::Object(request) = request else {
            return Err(failure("parse_error", "expected a JSON object, found another JSON value"));
        };
        let op = match request.get("op") {
            Some(Value::String(op)) => op.as_str(),
            Some(other) => return Err(failure("unknown_op", format!("expected op to be a string, found {other}"))),
            None => return Err(failure("unknown_op", "the request has no op")),
        };
        let reply = match op {
            "hello" => json!({
                "protocol": PROTOCOL,
                "version": VERSION,
                "algorithm": self.name,
                "objectives": self.file.directions.len(),
            }),
            "ask" => self.ask(&request)?,
            "tell" => self.tell(&request)?,
            "report" => self.report(&request)?,
            "best" => self.best()?,
            "quit" => return Ok((json!({"ok": true}), Flow::Quit)),
            other => {
                return Err(failure(
                    "unknown_op",
                    format!("expected op hello, ask, tell, report, best or quit, found {other:?}"),
                ));
            }
        };
        Ok((reply, Flow::Continue))
    }

    fn ask(&mut self, request: &Map<String, Value>) -> Result<Value, Failure> {
        let n = match request.get("n") {
            None => 1,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(n) if n >= 1 => n,
                _ => return Err(failure("bad_request", format!("ask: expected n to be an integer ≥ 1, found {n}"))),
            },
            Some(other) => {
                return Err(failure("bad_request", format!("ask: expected n to be an integer ≥ 1, found {other}")));
            }
        };
        let n = usize::try_from(n).unwrap_or(usize::MAX).min(1 << 20);
        if self.exhausted {
            return Ok(json!({"trials": [], "exhausted": true}));
        }
        // Samplers fail only on spaces they cannot serve, which `Session::new`
        // rejects; an error here is a defect, reported without giving out trials.
        let sampler = &self.algorithm.sampler;
        let suggestions = match sampler.suggest_detailed(&self.file.space, &self.history, n, &mut self.rng) {
            Ok(s) => s,
            Err(Error::Exhausted { .. }) => Vec::new(),
            Err(err) => return Err(failure("internal", format!("ask: the {} sampler failed: {err}", self.name))),
        };
        if let Some(bad) = suggestions.iter().find(|s| !self.file.space.contains(&s.assignment)) {
            return Err(failure(
                "internal",
                format!("ask: the {} sampler left the space: {:?}", self.name, bad.assignment),
            ));
        }
        let mut trials = Vec::with_capacity(suggestions.len());
        for suggestion in suggestions {
            let id = self.trials.len();
            let mut trial = Map::new();
            trial.insert("id".into(), Value::String(id.to_string()));
            trial.insert("params".into(), self.file.params_json(&suggestion.assignment));
            if let Some(budget) = suggestion.budget.and_then(Number::from_f64) {
                trial.insert("budget".into(), Value::Number(budget));
            }
            if let Some(parent) = suggestion.parent {
                trial.insert("parent".into(), Value::String(parent.to_string()));
                if let Some(dir) = &self.algorithm.checkpoint_dir {
                    let path = format!("{}/{parent}", dir.trim_end_matches('/'));
                    trial.insert("checkpoint".into(), Value::String(path));
                }
            }
            trials.push(Value::Object(trial));
            self.history.push_suggestion(suggestion, TrialState::Pending);
            self.trials.push(TrialRecord { outcome: Outcome::Pending, reports: Vec::new() });
        }
        let mut reply = Map::new();
        let short = trials.len() < n;
        reply.insert("trials".into(), Value::Array(trials));
        if short {
            match self.algorithm.sampler.shortfall(&self.file.space, &self.history) {
                Shortfall::Exhausted => {
                    self.exhausted = true;
                    reply.insert("exhausted".into(), Value::Bool(true));
                }
                Shortfall::Waiting => {
                    reply.insert("waiting".into(), Value::Bool(true));
                }
            }
        }
        Ok(Value::Object(reply))
    }

    /// The pending-or-told trial a request's `id` names.
    fn trial_index(&self, op: &str, request: &Map<String, Value>) -> Result<usize, Failure> {
        let id = match request.get("id") {
            Some(Value::String(id)) => id,
            Some(other) => {
                return Err(failure("bad_request", format!("{op}: expected id to be a string, found {other}")));
            }
            None => return Err(failure("bad_request", format!("{op}: the request has no id"))),
        };
        let index = id.parse::<usize>().ok().filter(|&i| i < self.trials.len() && i.to_string() == *id);
        index.ok_or_else(|| {
            let range = match self.trials.len() {
                0 => "no trial has been asked yet".to_owned(),
                n => format!("ids run from \"0\" to \"{}\"", n - 1),
            };
            failure("unknown_trial", format!("{op}: no trial has id {id:?}; {range}"))
        })
    }

    fn ensure_pending(&self, op: &str, index: usize) -> Result<(), Failure> {
        match &self.trials[index].outcome {
            Outcome::Pending => Ok(()),
            told => Err(failure("already_told", format!("{op}: trial \"{index}\" was already told ({})", told.word()))),
        }
    }

    fn tell(&mut self, request: &Map<String, Value>) -> Result<Value, Failure> {
        let index = self.trial_index("tell", request)?;
        self.ensure_pending("tell", index)?;
        let objectives = self.file.directions.len();
        let state = match request.get("state") {
            None => "complete",
            Some(Value::String(s)) if matches!(s.as_str(), "complete" | "failed" | "pruned") => s.as_str(),
            Some(other) => {
                return Err(failure(
                    "bad_request",
                    format!("tell: expected state complete, failed or pruned, found {other}"),
                ));
            }
        };
        let number = |what: &str, v: &Value| {
            v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                failure("bad_request", format!("tell: expected {what} to be a finite number, found {v}"))
            })
        };
        let outcome = match state {
            "complete" => match (request.get("value"), request.get("values"), objectives) {
                (Some(v), None, 1) => Outcome::Complete(vec![number("value", v)?]),
                (None, Some(Value::Array(vs)), k) if k > 1 && vs.len() == k => {
                    Outcome::Complete(vs.iter().map(|v| number("every entry of values", v)).collect::<Result<_, _>>()?)
                }
                (_, _, 1) => {
                    return Err(failure(
                        "bad_request",
                        "tell: a complete trial of a single-objective space needs value (a number) and no values",
                    ));
                }
                (_, _, k) => {
                    return Err(failure(
                        "bad_request",
                        format!("tell: a complete trial needs values, an array of {k} numbers, and no value"),
                    ));
                }
            },
            "pruned" => {
                if let Some(v) = request.get("value") {
                    number("value", v)?;
                }
                Outcome::Pruned
            }
            _ => Outcome::Failed,
        };
        self.history.trials[index].state = match &outcome {
            Outcome::Complete(values) => TrialState::Completed(values[0]),
            _ => TrialState::Failed,
        };
        if let Outcome::Complete(values) = &outcome
            && values.len() > 1
        {
            self.history.trials[index].values.clone_from(values);
        }
        if matches!(outcome, Outcome::Complete(_)) {
            self.completed_order.push(index);
        }
        self.trials[index].outcome = outcome;
        Ok(json!({"ok": true}))
    }

    fn report(&mut self, request: &Map<String, Value>) -> Result<Value, Failure> {
        let index = self.trial_index("report", request)?;
        self.ensure_pending("report", index)?;
        let step = match request.get("step") {
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().unwrap_or_default(),
            Some(other) => {
                return Err(failure(
                    "bad_request",
                    format!("report: expected step to be an integer ≥ 0, found {other}"),
                ));
            }
            None => return Err(failure("bad_request", "report: the request has no step")),
        };
        let value = match request.get("value") {
            Some(v) => v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                failure("bad_request", format!("report: expected value to be a finite number, found {v}"))
            })?,
            None => return Err(failure("bad_request", "report: the request has no value")),
        };
        if self.file.directions.len() > 1 {
            return Err(failure("unsupported", "report: early stopping needs a single objective"));
        }
        if self.trials[index].reports.iter().any(|&(s, _)| s == step) {
            return Err(failure(
                "duplicate_step",
                format!("report: step {step} of trial \"{index}\" was reported before; the first report stands"),
            ));
        }
        self.trials[index].reports.push((step, value));
        let direction = self.history.direction;
        let prune = match self.pruner {
            None => false,
            Some(Pruner::Median(rule)) => {
                let completed: Vec<&[(u64, f64)]> =
                    self.completed_order.iter().map(|&i| self.trials[i].reports.as_slice()).collect();
                rule.should_stop_at(direction, step, &self.trials[index].reports, &completed)
            }
            Some(Pruner::Halving(rule)) => {
                // Steps need not arrive in order; the rule reads them sorted.
                let mut mine = self.trials[index].reports.clone();
                mine.sort_by_key(|&(s, _)| s);
                let reached_now = mine.last().is_some_and(|&(s, _)| s == step);
                let others: Vec<&[(u64, f64)]> = self
                    .trials
                    .iter()
                    .enumerate()
                    .filter(|(i, t)| *i != index && !t.reports.is_empty())
                    .map(|(_, t)| t.reports.as_slice())
                    .collect();
                reached_now && rule.should_prune(direction, &mine, &others)
            }
        };
        Ok(json!({"prune": prune}))
    }

    fn best(&self) -> Result<Value, Failure> {
        let completed: Vec<(usize, &Vec<f64>)> = self
            .completed_order
            .iter()
            .filter_map(|&i| match &self.trials[i].outcome {
                Outcome::Complete(values) => Some((i, values)),
                _ => None,
            })
            .collect();
        if completed.is_empty() {
            return Err(failure("no_completed_trial", "best: no trial has been told complete yet"));
        }
        let entry = |i: usize, key: &str, value: Value| {
            let mut m = Map::new();
            m.insert("id".into(), Value::String(i.to_string()));
            m.insert("params".into(), self.file.params_json(&self.history.trials[i].assignment));
            m.insert(key.into(), value);
            Value::Object(m)
        };
        let directions = &self.file.directions;
        if directions.len() == 1 {
            let direction = directions[0];
            let mut best = completed[0];
            for &(i, values) in &completed[1..] {
                if direction.loss(values[0]) < direction.loss(best.1[0]) {
                    best = (i, values);
                }
            }
            return Ok(entry(best.0, "value", json!(best.1[0])));
        }
        let losses: Vec<Vec<f64>> =
            completed.iter().map(|(_, vs)| vs.iter().zip(directions).map(|(v, d)| d.loss(*v)).collect()).collect();
        let front: Vec<Value> = completed
            .iter()
            .enumerate()
            .filter(|(a, _)| !losses.iter().any(|other| dominates(other, &losses[*a])))
            .map(|(_, (i, values))| entry(*i, "values", json!(values)))
            .collect();
        Ok(json!({"pareto": front}))
    }
}

/// Whether loss vector `a` Pareto-dominates `b`: no worse anywhere, better somewhere.
fn dominates(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
}

/// Serves `session` until `quit` or the end of `input`: one reply line per
/// request line, flushed after each; blank lines get no reply; a line that is
/// not UTF-8 gets a `parse_error` reply. Only IO errors end it early.
///
/// ```
/// use kf_tune::ask_tell::{serve, Session, SpaceFile};
///
/// let file = SpaceFile::from_value(serde_json::json!({
///     "parameters": [{"name": "c", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b"]}}],
/// }))?;
/// let session = Session::new(file, "random", &[], 1)?;
/// let input = b"{\"op\":\"hello\"}\n\nnot json\n{\"op\":\"quit\"}\n{\"op\":\"hello\"}\n";
/// let mut output = Vec::new();
/// serve(session, &input[..], &mut output)?;
/// let lines: Vec<&str> = std::str::from_utf8(&output).unwrap().lines().collect();
/// assert_eq!(lines.len(), 3); // hello, the parse error, quit; nothing after quit
/// assert!(lines[1].starts_with(r#"{"error":{"code":"parse_error""#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn serve(mut session: Session, mut input: impl BufRead, mut output: impl Write) -> io::Result<()> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        let raw = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let reply = match std::str::from_utf8(raw) {
            Ok(line) => session.handle_line(line),
            Err(e) => Some((
                json!({"error": {"code": "parse_error", "message": format!("the line is not UTF-8: {e}")}}).to_string(),
                Flow::Continue,
            )),
        };
        if let Some((mut line, flow)) = reply {
            line.push('\n');
            output.write_all(line.as_bytes())?;
            output.flush()?;
            if flow == Flow::Quit {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(doc: Value) -> SpaceFile {
        SpaceFile::from_value(doc).unwrap()
    }

    fn mixed() -> SpaceFile {
        file(json!({
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "1e-5", "max": "1e-1", "distribution": "logUniform"}},
                {"name": "dropout", "parameterType": "double", "feasibleSpace": {"min": 0.0, "max": 0.5, "step": 0.05}},
                {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "8"}},
                {"name": "batch", "parameterType": "discrete", "feasibleSpace": {"list": ["16", "32", "64"]}},
                {"name": "ratio", "parameterType": "discrete", "feasibleSpace": {"list": ["0.5", "1", 2]}},
                {"name": "activation", "parameterType": "categorical", "feasibleSpace": {"list": ["relu", "tanh"], "min": "ignored"}},
            ],
        }))
    }

    fn reply(session: &mut Session, line: &str) -> Value {
        serde_json::from_str(&session.handle_line(line).unwrap().0).unwrap()
    }

    fn code(v: &Value) -> &str {
        v["error"]["code"].as_str().unwrap_or("<no error>")
    }

    #[test]
    fn params_follow_the_wire_rules() {
        let mut s = Session::new(mixed(), "random", &[], 3).unwrap();
        let raw = s.handle_line(r#"{"op":"ask","n":20}"#).unwrap().0;
        let v: Value = serde_json::from_str(&raw).unwrap();
        for t in v["trials"].as_array().unwrap() {
            let p = &t["params"];
            assert_eq!(p.as_object().unwrap().len(), 6);
            assert!(p["lr"].is_f64() && p["dropout"].is_f64() && p["ratio"].is_f64(), "{p}");
            assert!(p["layers"].is_i64() && p["batch"].is_i64(), "{p}");
            assert!(p["activation"].is_string());
        }
        // A whole double is still written as a float.
        assert!(!raw.contains("\"ratio\":1,") && !raw.contains("\"ratio\":2,"), "{raw}");
    }

    #[test]
    fn every_error_code_a_driver_can_provoke() {
        let mut s = Session::new(mixed(), "tpe", &[], 1).unwrap();
        assert_eq!(code(&reply(&mut s, r#"{"op":"best"}"#)), "no_completed_trial");
        assert_eq!(code(&reply(&mut s, "not json")), "parse_error");
        assert_eq!(code(&reply(&mut s, "[1]")), "parse_error");
        assert_eq!(code(&reply(&mut s, r#"{"op":"frob"}"#)), "unknown_op");
        assert_eq!(code(&reply(&mut s, r#"{"n":1}"#)), "unknown_op");
        for bad in [r#"{"op":"ask","n":0}"#, r#"{"op":"ask","n":2.0}"#, r#"{"op":"ask","n":"2"}"#] {
            assert_eq!(code(&reply(&mut s, bad)), "bad_request", "{bad}");
        }
        let asked = reply(&mut s, r#"{"op":"ask","n":3}"#);
        assert_eq!(asked["trials"].as_array().unwrap().len(), 3);
        assert_eq!(code(&reply(&mut s, r#"{"op":"tell","id":"9","value":1.0}"#)), "unknown_trial");
        assert_eq!(code(&reply(&mut s, r#"{"op":"tell","id":"01","value":1.0}"#)), "unknown_trial");
        assert_eq!(code(&reply(&mut s, r#"{"op":"tell","id":0,"value":1.0}"#)), "bad_request");
        assert_eq!(code(&reply(&mut s, r#"{"op":"tell","id":"0"}"#)), "bad_request");
        assert_eq!(code(&reply(&mut s, r#"{"op":"tell","id":"0","values":[1.0]}"#)), "bad_request");
        assert_eq!(code(&reply(&mut s, r#"{"op":"tell","id":"0","state":"done"}"#)), "bad_request");
        assert_eq!(reply(&mut s, r#"{"op":"tell","id":"0","value":0.9}"#), json!({"ok": true}));
        let again = reply(&mut s, r#"{"op":"tell","id":"0","value":0.5}"#);
        assert_eq!(code(&again), "already_told");
        assert_eq!(again["error"]["message"], "tell: trial \"0\" was already told (complete)");
        assert_eq!(code(&reply(&mut s, r#"{"op":"report","id":"0","step":1,"value":0.5}"#)), "already_told");
        assert_eq!(reply(&mut s, r#"{"op":"report","id":"1","step":1,"value":0.5}"#), json!({"prune": false}));
        assert_eq!(code(&reply(&mut s, r#"{"op":"report","id":"1","step":1,"value":0.4}"#)), "duplicate_step");
        assert_eq!(code(&reply(&mut s, r#"{"op":"report","id":"1","step":-1,"value":0.4}"#)), "bad_request");
        assert_eq!(code(&reply(&mut s, r#"{"op":"report","id":"1","step":2}"#)), "bad_request");
        assert_eq!(reply(&mut s, r#"{"op":"tell","id":"1","state":"pruned","value":0.4}"#), json!({"ok": true}));
        assert_eq!(reply(&mut s, r#"{"op":"tell","id":"2","state":"failed"}"#), json!({"ok": true}));
        let best = reply(&mut s, r#"{"op":"best"}"#);
        assert_eq!((best["id"].as_str(), best["value"].as_f64()), (Some("0"), Some(0.9)));
        assert_eq!(best["params"], asked["trials"][0]["params"]);
        // Errors change nothing: the next id follows on.
        assert_eq!(reply(&mut s, r#"{"op":"ask"}"#)["trials"][0]["id"], "3");
        assert_eq!(s.handle_line(r#"{"op":"quit"}"#).unwrap(), (r#"{"ok":true}"#.into(), Flow::Quit));
    }

    #[test]
    fn best_prefers_the_first_told_on_ties_and_reads_back_exact_values() {
        let mut s = Session::new(mixed(), "random", &[], 1).unwrap();
        reply(&mut s, r#"{"op":"ask","n":3}"#);
        reply(&mut s, r#"{"op":"tell","id":"2","value":0.1000000000000000055511151231257827}"#);
        reply(&mut s, r#"{"op":"tell","id":"0","value":0.1}"#);
        let raw = s.handle_line(r#"{"op":"best"}"#).unwrap().0;
        assert!(raw.starts_with(r#"{"id":"2","#) && raw.ends_with(r#""value":0.1}"#), "{raw}");
    }

    #[test]
    fn pareto_front_of_two_objectives() {
        let two = file(json!({
            "objectives": [{"type": "minimize"}, {"type": "maximize"}],
            "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 1}}],
        }));
        assert!(Session::new(two.clone(), "tpe", &[], 1).unwrap_err().to_string().contains("one objective"));
        assert!(Session::new(two.clone(), "cmaes", &[], 1).unwrap_err().to_string().contains("one objective"));
        // NSGA-II reads both values: its first generation's front shapes the children.
        let settings = [("population_size", "4")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        let mut g = Session::new(two.clone(), "nsga2", &settings, 1).unwrap();
        reply(&mut g, r#"{"op":"ask","n":4}"#);
        for id in 0..4 {
            reply(&mut g, &format!(r#"{{"op":"tell","id":"{id}","values":[{id}.0,{id}.0]}}"#));
        }
        assert_eq!(g.history.trials[2].values, [2.0, 2.0]);
        assert_eq!(reply(&mut g, r#"{"op":"ask","n":3}"#)["trials"].as_array().unwrap().len(), 3);
        let mut s = Session::new(two, "random", &[], 1).unwrap();
        reply(&mut s, r#"{"op":"ask","n":4}"#);
        assert_eq!(code(&reply(&mut s, r#"{"op":"tell","id":"0","value":1.0}"#)), "bad_request");
        assert_eq!(code(&reply(&mut s, r#"{"op":"tell","id":"0","values":[1.0]}"#)), "bad_request");
        for (id, a, b) in [(0, 1.0, 1.0), (1, 2.0, 3.0), (2, 0.5, 0.5), (3, 2.0, 2.0)] {
            reply(&mut s, &format!(r#"{{"op":"tell","id":"{id}","values":[{a:?},{b:?}]}}"#));
        }
        let best = reply(&mut s, r#"{"op":"best"}"#);
        let front: Vec<&str> = best["pareto"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
        assert_eq!(front, ["0", "1", "2"]); // 3 is dominated by 1
        assert_eq!(code(&reply(&mut s, r#"{"op":"report","id":"0","step":1,"value":1.0}"#)), "already_told");
    }

    #[test]
    fn medianstop_prunes_a_trial_worse_than_the_median() {
        let settings = [("early_stopping", "medianstop"), ("min_trials_required", "2"), ("start_step", "1")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let mut s = Session::new(mixed(), "random", &settings, 1).unwrap();
        reply(&mut s, r#"{"op":"ask","n":3}"#);
        for id in 0..2 {
            reply(&mut s, &format!(r#"{{"op":"report","id":"{id}","step":1,"value":0.8}}"#));
            reply(&mut s, &format!(r#"{{"op":"tell","id":"{id}","value":0.9}}"#));
        }
        // Maximising accuracy: 0.5 at step 1 is below the median 0.8.
        assert_eq!(reply(&mut s, r#"{"op":"report","id":"2","step":0,"value":0.1}"#), json!({"prune": false}));
        assert_eq!(reply(&mut s, r#"{"op":"report","id":"2","step":1,"value":0.5}"#), json!({"prune": true}));
        let bad = |settings: &[(&str, &str)]| {
            let owned: Vec<(String, String)> = settings.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
            Session::new(mixed(), "random", &owned, 1).unwrap_err().to_string()
        };
        assert!(bad(&[("start_step", "2")]).contains("early_stopping=medianstop"));
        assert!(bad(&[("early_stopping", "hyperband")]).contains("expected medianstop"));
    }

    #[test]
    fn hyperband_gives_budgets_waits_for_rungs_and_runs_out() {
        let f = file(json!({"parameters": [
            {"name": "x", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 1}},
            {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": 1, "max": 3}},
        ]}));
        let settings = [("resource_name", "epochs")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        let mut s = Session::new(f, "hyperband", &settings, 1).unwrap();
        // R = 3, η = 3: brackets [3 at 1 → 1 at 3] and [2 at 3].
        let first = reply(&mut s, r#"{"op":"ask","n":5}"#);
        assert_eq!(first["waiting"], json!(true));
        let trials = first["trials"].as_array().unwrap();
        assert_eq!(trials.len(), 3);
        assert!(trials.iter().all(|t| t["budget"] == json!(1.0) && t["params"]["epochs"] == json!(1)));
        assert_eq!(reply(&mut s, r#"{"op":"ask"}"#), json!({"trials": [], "waiting": true}));
        for (id, v) in [(0, 0.5), (1, 0.2), (2, 0.9)] {
            reply(&mut s, &format!(r#"{{"op":"tell","id":"{id}","value":{v}}}"#));
        }
        let promoted = reply(&mut s, r#"{"op":"ask"}"#);
        assert_eq!(promoted["trials"][0]["parent"], json!("1"));
        assert_eq!(promoted["trials"][0]["params"]["epochs"], json!(3));
        assert_eq!(promoted["trials"][0]["params"]["x"], trials[1]["params"]["x"]);
        let last = reply(&mut s, r#"{"op":"ask","n":5}"#);
        assert_eq!((last["trials"].as_array().unwrap().len(), &last["exhausted"]), (2, &json!(true)));
    }

    #[test]
    fn pbt_names_parents_and_their_checkpoints_and_waits_for_a_generation() {
        let settings = [("n_population", "3"), ("truncation_threshold", "0.3"), ("suggestion_trial_dir", "/ckpt/")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let mut s = Session::new(mixed(), "pbt", &settings, 4).unwrap();
        let first = reply(&mut s, r#"{"op":"ask","n":4}"#);
        assert_eq!((first["trials"].as_array().unwrap().len(), &first["waiting"]), (3, &json!(true)));
        assert!(first["trials"].as_array().unwrap().iter().all(|t| t.get("parent").is_none()));
        for (id, v) in [(0, 0.9), (1, 0.1), (2, 0.5)] {
            reply(&mut s, &format!(r#"{{"op":"tell","id":"{id}","value":{v}}}"#));
        }
        // Maximising: trial 1 is the worst and exploits trial 0, the best.
        let next = reply(&mut s, r#"{"op":"ask","n":3}"#);
        let parents: Vec<&str> =
            next["trials"].as_array().unwrap().iter().map(|t| t["parent"].as_str().unwrap()).collect();
        assert_eq!(parents, ["0", "0", "2"]);
        assert_eq!(next["trials"][1]["checkpoint"], json!("/ckpt/0"));
        assert_eq!(next["trials"][2]["params"], first["trials"][2]["params"]);
    }

    #[test]
    fn asha_pruning_keeps_the_top_third_at_each_rung() {
        let settings = [("early_stopping", "asha"), ("min_resource", "1"), ("reduction_factor", "3")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let mut s = Session::new(mixed(), "random", &settings, 1).unwrap();
        reply(&mut s, r#"{"op":"ask","n":4}"#);
        // Maximising accuracy; the first to reach step 1 is the best so far.
        for (id, v, prune) in [(0, 0.5, false), (1, 0.7, false), (2, 0.6, true), (3, 0.4, true)] {
            let r = reply(&mut s, &format!(r#"{{"op":"report","id":"{id}","step":1,"value":{v}}}"#));
            assert_eq!(r, json!({"prune": prune}), "trial {id}");
        }
        // Between rungs (step 2) nothing is decided.
        assert_eq!(reply(&mut s, r#"{"op":"report","id":"3","step":2,"value":0.0}"#), json!({"prune": false}));
        let bad = Session::new(mixed(), "random", &[("min_resource".into(), "2".into())], 1).unwrap_err();
        assert!(bad.to_string().contains("early_stopping=asha"), "{bad}");
    }

    #[test]
    fn space_file_problems_name_the_field() {
        let err = |doc: Value| SpaceFile::from_value(doc).unwrap_err().to_string();
        let p =
            |fs: Value, kind: &str| json!({"parameters": [{"name": "x", "parameterType": kind, "feasibleSpace": fs}]});
        assert!(err(json!({"parameters": []})).starts_with("parameters:"));
        assert!(err(p(json!({"min": "1", "max": "3.5"}), "int")).contains("feasibleSpace.max"));
        assert!(err(p(json!({"list": ["a", "a"]}), "categorical")).contains("duplicate"));
        assert!(err(p(json!({"list": ["1", 1.0]}), "discrete")).contains("duplicate"));
        assert!(err(p(json!({"min": 0, "max": 1, "step": 0}), "double")).contains("step > 0"));
        assert!(err(json!({"objective": {"type": "best"}, "parameters": []})).starts_with("objective.type"));
        assert!(
            err(json!({"parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": []}}]}))
                .starts_with("parameters[0].feasibleSpace.min")
        );
    }

    #[test]
    fn grid_runs_out_and_says_so() {
        let f =
            file(json!({"parameters": [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": 0, "max": 2}}]}));
        let mut s = Session::new(f, "grid", &[], 1).unwrap();
        assert_eq!(reply(&mut s, r#"{"op":"ask","n":2}"#)["trials"].as_array().unwrap().len(), 2);
        assert_eq!(
            s.handle_line(r#"{"op":"ask","n":2}"#).unwrap().0,
            r#"{"exhausted":true,"trials":[{"id":"2","params":{"x":2}}]}"#
        );
        assert_eq!(s.handle_line(r#"{"op":"ask"}"#).unwrap().0, r#"{"exhausted":true,"trials":[]}"#);
    }

    fn transcript(seed: u64, algorithm: &str) -> Vec<String> {
        let mut s = Session::new(mixed(), algorithm, &[], seed).unwrap();
        let mut out = Vec::new();
        for _ in 0..15 {
            let (raw, _) = s.handle_line(r#"{"op":"ask","n":2}"#).unwrap();
            let v: Value = serde_json::from_str(&raw).unwrap();
            out.push(raw);
            for t in v["trials"].as_array().unwrap() {
                let x = t["params"]["lr"].as_f64().unwrap().ln() + t["params"]["layers"].as_f64().unwrap();
                out.push(s.handle_line(&format!(r#"{{"op":"tell","id":{},"value":{x:?}}}"#, t["id"])).unwrap().0);
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        /// The same seed and requests give byte-identical replies; another seed changes the first ask.
        #[test]
        fn replies_are_deterministic(seed in any::<u64>(), pick in 0usize..8) {
            let algorithm = ["random", "sobol", "tpe", "cmaes", "hyperband", "asha", "pbt", "nsga2"][pick];
            let a = transcript(seed, algorithm);
            prop_assert_eq!(&a, &transcript(seed, algorithm));
            prop_assert_ne!(&a[0], &transcript(seed.wrapping_add(1), algorithm)[0]);
        }

        /// Any line at all gets exactly one reply (or none when blank), and the session keeps serving.
        #[test]
        fn any_line_gets_one_reply(line in ".{0,40}") {
            let mut s = Session::new(mixed(), "random", &[], 1).unwrap();
            match s.handle_line(&line) {
                None => prop_assert!(line.trim_end_matches('\r').trim().is_empty()),
                Some((raw, _)) => prop_assert!(!raw.contains('\n') && serde_json::from_str::<Value>(&raw).is_ok()),
            }
            let asked = reply(&mut s, r#"{"op":"ask"}"#);
            prop_assert!(asked["trials"].is_array());
        }
    }
}
