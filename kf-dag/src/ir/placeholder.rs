//! Placeholders in a container's command, args and env, parsed into a typed form.
//!
//! A string such as `--lr={{$.inputs.parameters['lr']}}` becomes a [`Template`]
//! of literal text and [`Placeholder`]s, so validation can check that every
//! placeholder names an input or output the component declares, and the
//! executor can substitute values without re-parsing. KFP's structured
//! placeholders (`IfPresent`, `Concat`) are [`Arg`] variants. This module only
//! parses and prints; it never resolves a value (the executor does).

use std::fmt;

/// Which part of an artifact a placeholder reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArtifactField {
    /// `.uri`: the artifact's location in the store.
    Uri,
    /// `.path`: a local path the task reads from or writes to.
    Path,
    /// `.metadata`: the artifact's metadata as JSON.
    Metadata,
}

impl ArtifactField {
    fn as_str(self) -> &'static str {
        match self {
            ArtifactField::Uri => "uri",
            ArtifactField::Path => "path",
            ArtifactField::Metadata => "metadata",
        }
    }
}

/// A fact about the run a placeholder can read (`{{$.pipeline_job_name}}` …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunField {
    /// `{{$.pipeline_job_name}}`.
    JobName,
    /// `{{$.pipeline_job_resource_name}}`.
    JobResourceName,
    /// `{{$.pipeline_job_uuid}}`.
    JobUuid,
    /// `{{$.pipeline_job_create_time_utc}}`.
    JobCreateTimeUtc,
    /// `{{$.pipeline_job_schedule_time_utc}}`.
    JobScheduleTimeUtc,
    /// `{{$.pipeline_task_name}}`.
    TaskName,
    /// `{{$.pipeline_task_uuid}}`.
    TaskUuid,
    /// `{{$.pipeline_root}}`.
    PipelineRoot,
}

impl RunField {
    const ALL: [(RunField, &'static str); 8] = [
        (RunField::JobName, "pipeline_job_name"),
        (RunField::JobResourceName, "pipeline_job_resource_name"),
        (RunField::JobUuid, "pipeline_job_uuid"),
        (RunField::JobCreateTimeUtc, "pipeline_job_create_time_utc"),
        (RunField::JobScheduleTimeUtc, "pipeline_job_schedule_time_utc"),
        (RunField::TaskName, "pipeline_task_name"),
        (RunField::TaskUuid, "pipeline_task_uuid"),
        (RunField::PipelineRoot, "pipeline_root"),
    ];

    fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(f, _)| *f == self).map_or("", |(_, s)| s)
    }
}

/// One `{{$…}}` placeholder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Placeholder {
    /// `{{$}}`: the whole executor input as JSON (KFP's executor contract).
    ExecutorInput,
    /// `{{$.inputs.parameters['x']}}`: the value of input parameter `x`.
    InputParameter(String),
    /// `{{$.inputs.artifacts['x'].uri}}` and friends.
    InputArtifact {
        /// Input artifact name.
        name: String,
        /// Which part of it.
        field: ArtifactField,
    },
    /// `{{$.outputs.parameters['x'].output_file}}`: the file the task writes output parameter `x` to.
    OutputParameterFile(String),
    /// `{{$.outputs.artifacts['x'].path}}` and friends.
    OutputArtifact {
        /// Output artifact name.
        name: String,
        /// Which part of it.
        field: ArtifactField,
    },
    /// `{{$.outputs.output_file}}`: the file the task writes its executor output JSON to.
    ExecutorOutputFile,
    /// A fact about the run.
    Run(RunField),
}

impl Placeholder {
    /// Parses the inside of `{{…}}` (starting at `$`).
    fn parse(body: &str) -> Result<Self, String> {
        if body == "$" {
            return Ok(Placeholder::ExecutorInput);
        }
        if body == "$.outputs.output_file" {
            return Ok(Placeholder::ExecutorOutputFile);
        }
        if let Some(rest) = body.strip_prefix("$.")
            && let Some((field, _)) = RunField::ALL.iter().find(|(_, s)| *s == rest)
        {
            return Ok(Placeholder::Run(*field));
        }
        let unknown = || format!("unknown placeholder {{{{{body}}}}}");
        let (direction, rest) = if let Some(rest) = body.strip_prefix("$.inputs.") {
            ("inputs", rest)
        } else if let Some(rest) = body.strip_prefix("$.outputs.") {
            ("outputs", rest)
        } else {
            return Err(unknown());
        };
        let (kind, rest) = if let Some(rest) = rest.strip_prefix("parameters[") {
            ("parameters", rest)
        } else if let Some(rest) = rest.strip_prefix("artifacts[") {
            ("artifacts", rest)
        } else {
            return Err(unknown());
        };
        let (name, suffix) =
            quoted_key(rest).ok_or_else(|| format!("{{{{{body}}}}}: expected ['name'] after {kind}"))?;
        if name.is_empty() {
            return Err(format!("{{{{{body}}}}}: the name between [''] is empty"));
        }
        let name = name.to_owned();
        let artifact_field = |suffix: &str| match suffix {
            ".uri" => Some(ArtifactField::Uri),
            ".path" => Some(ArtifactField::Path),
            ".metadata" => Some(ArtifactField::Metadata),
            _ => None,
        };
        match (direction, kind, suffix) {
            ("inputs", "parameters", "") => Ok(Placeholder::InputParameter(name)),
            ("outputs", "parameters", ".output_file") => Ok(Placeholder::OutputParameterFile(name)),
            ("inputs", "artifacts", s) => {
                artifact_field(s).map(|field| Placeholder::InputArtifact { name, field }).ok_or_else(unknown)
            }
            ("outputs", "artifacts", s) => {
                artifact_field(s).map(|field| Placeholder::OutputArtifact { name, field }).ok_or_else(unknown)
            }
            _ => Err(unknown()),
        }
    }
}

/// Splits `'name']rest` (or `"name"]rest`) into `name` and `rest`.
fn quoted_key(s: &str) -> Option<(&str, &str)> {
    let quote = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = &s[1..];
    let end = inner.find(quote)?;
    let rest = inner[end + 1..].strip_prefix(']')?;
    Some((&inner[..end], rest))
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placeholder::ExecutorInput => write!(f, "{{{{$}}}}"),
            Placeholder::InputParameter(n) => write!(f, "{{{{$.inputs.parameters['{n}']}}}}"),
            Placeholder::InputArtifact { name, field } => {
                write!(f, "{{{{$.inputs.artifacts['{name}'].{}}}}}", field.as_str())
            }
            Placeholder::OutputParameterFile(n) => write!(f, "{{{{$.outputs.parameters['{n}'].output_file}}}}"),
            Placeholder::OutputArtifact { name, field } => {
                write!(f, "{{{{$.outputs.artifacts['{name}'].{}}}}}", field.as_str())
            }
            Placeholder::ExecutorOutputFile => write!(f, "{{{{$.outputs.output_file}}}}"),
            Placeholder::Run(field) => write!(f, "{{{{$.{}}}}}", field.as_str()),
        }
    }
}

/// A piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Literal text.
    Text(String),
    /// A placeholder, substituted at run time.
    Placeholder(Placeholder),
}

/// A string with placeholders: literal text interleaved with [`Placeholder`]s.
///
/// Parsing is linear in the length of the string. Only `{{$` opens a
/// placeholder, so shell scripts and Jinja-style `{{ x }}` text stay literal;
/// an unknown `{{$…}}` form is an error rather than text passed through.
///
/// ```
/// use kf_dag::ir::{Placeholder, Segment, Template};
/// let t = Template::parse("--lr={{$.inputs.parameters['lr']}}")?;
/// assert_eq!(t.segments()[1], Segment::Placeholder(Placeholder::InputParameter("lr".into())));
/// assert_eq!(t.to_string(), "--lr={{$.inputs.parameters['lr']}}");
/// assert!(Template::parse("{{$.inputs.nonsense}}").is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Template {
    segments: Vec<Segment>,
}

impl Template {
    /// Parses a string; the error says which placeholder is malformed.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find("{{$") {
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| format!("placeholder {:?} is not closed with }}}}", after))?;
            if start > 0 {
                segments.push(Segment::Text(rest[..start].to_owned()));
            }
            segments.push(Segment::Placeholder(Placeholder::parse(&after[..end])?));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.to_owned()));
        }
        Ok(Template { segments })
    }

    /// A template of literal text only.
    pub fn text(s: impl Into<String>) -> Self {
        let s = s.into();
        Template { segments: if s.is_empty() { Vec::new() } else { vec![Segment::Text(s)] } }
    }

    /// The pieces, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The placeholders, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Placeholder(p) => Some(p),
            Segment::Text(_) => None,
        })
    }
}

impl From<Placeholder> for Template {
    fn from(p: Placeholder) -> Self {
        Template { segments: vec![Segment::Placeholder(p)] }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => f.write_str(t)?,
                Segment::Placeholder(p) => write!(f, "{p}")?,
            }
        }
        Ok(())
    }
}

/// One command-line argument: a template, or KFP's structured placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Arg {
    /// A string with placeholders.
    Template(Template),
    /// `IfPresent`: `then` when input `input` is given, else `otherwise`.
    IfPresent {
        /// The input (parameter or artifact) whose presence is tested.
        input: String,
        /// Arguments used when it is given.
        then: Vec<Arg>,
        /// Arguments used when it is not.
        otherwise: Vec<Arg>,
    },
    /// `Concat`: the parts joined into one argument.
    Concat(Vec<Arg>),
}

impl Arg {
    /// Parses a plain string argument (placeholders, no structured forms).
    pub fn parse(s: &str) -> Result<Self, String> {
        Template::parse(s).map(Arg::Template)
    }

    /// Every placeholder inside, depth first, with the input names `IfPresent` tests.
    pub fn visit(&self, on_placeholder: &mut dyn FnMut(&Placeholder), on_if_present: &mut dyn FnMut(&str)) {
        // An explicit stack: a hostile spec could nest IfPresent/Concat deeply.
        let mut stack = vec![self];
        while let Some(arg) = stack.pop() {
            match arg {
                Arg::Template(t) => t.placeholders().for_each(&mut *on_placeholder),
                Arg::IfPresent { input, then, otherwise } => {
                    on_if_present(input);
                    stack.extend(then.iter().rev());
                    stack.extend(otherwise.iter().rev());
                }
                Arg::Concat(parts) => stack.extend(parts.iter().rev()),
            }
        }
    }
}

impl From<&str> for Arg {
    /// Literal text (no placeholder parsing).
    fn from(s: &str) -> Self {
        Arg::Template(Template::text(s))
    }
}

impl From<Placeholder> for Arg {
    fn from(p: Placeholder) -> Self {
        Arg::Template(p.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_placeholder_form_in_the_kfp_corpus_parses() {
        for s in [
            "{{$}}",
            "{{$.inputs.parameters['msg']}}",
            "{{$.inputs.artifacts['input_gcs_path'].uri}}",
            "{{$.outputs.artifacts['dataset'].uri}}",
            "{{$.outputs.parameters['output'].output_file}}",
            "{{$.inputs.artifacts['m'].path}}",
            "{{$.outputs.artifacts['m'].metadata}}",
            "{{$.pipeline_job_name}}",
            "{{$.pipeline_task_uuid}}",
            "{{$.outputs.output_file}}",
        ] {
            let t = Template::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(t.segments().len(), 1, "{s}");
            assert_eq!(t.to_string(), s);
        }
    }

    #[test]
    fn malformed_placeholders_are_rejected_with_the_offending_text() {
        for s in [
            "{{$.inputs.parameters['x'].uri}}",
            "{{$.inputs.parameters[x]}}",
            "{{$.inputs.parameters['']}}",
            "{{$.inputs.artifacts['x']}}",
            "{{$.outputs.parameters['x']}}",
            "{{$.secrets['x']}}",
            "a {{$.inputs.parameters['x']",
        ] {
            let err = Template::parse(s).expect_err(s);
            assert!(err.contains("placeholder") || err.contains("expected") || err.contains("empty"), "{s}: {err}");
        }
    }

    #[test]
    fn non_placeholder_braces_stay_literal() {
        let t = Template::parse("echo {{ name }} ${HOME}").unwrap();
        assert_eq!(t.segments(), &[Segment::Text("echo {{ name }} ${HOME}".into())]);
    }

    #[test]
    fn visit_reaches_nested_structured_placeholders() {
        let arg = Arg::IfPresent {
            input: "opt".into(),
            then: vec![Arg::Concat(vec![Arg::parse("--x={{$.inputs.parameters['opt']}}").unwrap()])],
            otherwise: vec![Arg::from("none")],
        };
        let (mut seen, mut tested) = (Vec::new(), Vec::new());
        arg.visit(&mut |p| seen.push(p.clone()), &mut |i| tested.push(i.to_owned()));
        assert_eq!(seen, vec![Placeholder::InputParameter("opt".into())]);
        assert_eq!(tested, vec!["opt".to_owned()]);
    }

    proptest! {
        #[test]
        fn templates_print_back_to_their_source(
            parts in proptest::collection::vec(
                prop_oneof![
                    "[a-z =/-]{0,8}".prop_map(|s| s),
                    "[a-z_]{1,8}".prop_map(|n| format!("{{{{$.inputs.parameters['{n}']}}}}")),
                    "[a-z_]{1,8}".prop_map(|n| format!("{{{{$.outputs.artifacts['{n}'].path}}}}")),
                ],
                0..6,
            )
        ) {
            let source: String = parts.concat();
            let t = Template::parse(&source).unwrap();
            prop_assert_eq!(t.to_string(), source);
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,40}") {
            let _ = Template::parse(&s);
        }
    }
}
