//! The command line kfp compiles a lightweight Python component into,
//! recognised so a local runner can run it without a shell and a `pip
//! install` per task.
//!
//! `@dsl.component` compiles a function into this shape (after placeholder
//! substitution):
//!
//! ```text
//! sh -c "<install kfp with pip> && \"$0\" \"$@\""      the prelude, optional
//! sh -ec "<write $0 to a file; python3 -m kfp.dsl.executor_main
//!         --component_module_path <that file> \"$@\">"
//! <the component's Python source>
//! --executor_input <json> --function_to_execute <name>  the args
//! ```
//!
//! [`python_component`] recognises it exactly (the shell program must be
//! kfp's, line for line, or nothing is recognised) and returns the source and
//! the executor's arguments. [`Prelude::installs_only_kfp`] tells whether the
//! prelude only installs kfp itself (what kfp injects by default): a runner
//! whose Python already has kfp may skip that step, which is the point of
//! running locally without a network. A prelude installing anything else
//! (`packages_to_install`, a venv, extra index URLs) is the user's and must
//! run as written.
//!
//! Pure: no IO. Linear in the length of the command line.
//!
//! ```
//! use kf_dag::kfp::lightweight::python_component;
//!
//! let program = "program_path=$(mktemp -d)\n\nprintf \"%s\" \"$0\" > \"$program_path/ephemeral_component.py\"\n\
//!                _KFP_RUNTIME=true python3 -m kfp.dsl.executor_main --component_module_path \
//!                \"$program_path/ephemeral_component.py\" \"$@\"\n";
//! let prelude = "\nPIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet \
//!                --no-warn-script-location 'kfp==2.17.3' '--no-deps' \
//!                'typing-extensions>=3.7.4,<5; python_version<\"3.9\"' && \"$0\" \"$@\"\n";
//! let argv: Vec<String> = ["sh", "-c", prelude, "sh", "-ec", program, "def add(): ...",
//!                          "--executor_input", "{}", "--function_to_execute", "add"]
//!     .map(String::from).into();
//! let c = python_component(&argv).expect("kfp's shape");
//! assert_eq!(c.source, "def add(): ...");
//! assert_eq!(c.args, ["--executor_input", "{}", "--function_to_execute", "add"]);
//! assert!(c.prelude.as_ref().is_some_and(|p| p.installs_only_kfp()));
//! assert!(python_component(&argv[3..]).is_some_and(|c| c.prelude.is_none()));
//! assert!(python_component(&["python3".to_owned(), "x.py".to_owned()]).is_none());
//! ```

/// The Python module kfp's containers run.
pub const EXECUTOR_MODULE: &str = "kfp.dsl.executor_main";

/// kfp's `sh -ec` program, whitespace-normalised (line continuations joined,
/// runs of blanks collapsed, blank lines dropped).
const PROGRAM: &str = "program_path=$(mktemp -d)\nprintf \"%s\" \"$0\" > \"$program_path/ephemeral_component.py\"\n\
                       _KFP_RUNTIME=true python3 -m kfp.dsl.executor_main --component_module_path \
                       \"$program_path/ephemeral_component.py\" \"$@\"";

/// A lightweight Python component's command line, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonComponent {
    /// The `sh -c` install step before the program, if the line has one.
    pub prelude: Option<Prelude>,
    /// The component's Python source (written to a file and imported by
    /// kfp's executor).
    pub source: String,
    /// The executor's arguments (`--executor_input …
    /// --function_to_execute …`).
    pub args: Vec<String>,
}

/// The install step kfp puts before a component's program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prelude {
    /// The shell script (`sh -c <script>`).
    pub script: String,
    /// The quoted words of the script that are not options: the
    /// requirements pip is asked to install (`kfp==2.17.3`, …).
    pub requirements: Vec<String>,
}

impl Prelude {
    /// Whether the step only installs kfp (and the `typing-extensions`
    /// backport kfp adds for old Pythons), with no venv and no index
    /// options: skipping it changes nothing for a Python that has kfp.
    pub fn installs_only_kfp(&self) -> bool {
        let only_kfp = self.requirements.iter().all(|r| {
            let name = r.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')).next().unwrap_or("");
            name == "kfp" || name == "typing-extensions"
        });
        only_kfp
            && self.requirements.iter().any(|r| r.starts_with("kfp"))
            && !self.script.contains("venv")
            && !self.script.contains("--index-url")
            && !self.script.contains("--extra-index-url")
            && !self.script.contains("--trusted-host")
    }
}

/// Recognises kfp's lightweight-component command line; `None` for any
/// other command (which then runs as written).
pub fn python_component(argv: &[String]) -> Option<PythonComponent> {
    let (prelude, rest) = match argv {
        [sh, c, script, rest @ ..] if sh == "sh" && c == "-c" && is_prelude(script) => {
            (Some(Prelude { script: script.clone(), requirements: quoted_requirements(script) }), rest)
        }
        _ => (None, argv),
    };
    match rest {
        [sh, ec, program, source, args @ ..] if sh == "sh" && ec == "-ec" && normalise(program) == PROGRAM => {
            Some(PythonComponent { prelude, source: source.clone(), args: args.to_vec() })
        }
        _ => None,
    }
}

/// An install step: runs pip and then execs the rest of the line.
fn is_prelude(script: &str) -> bool {
    script.contains("pip install") && script.trim_end().ends_with("&& \"$0\" \"$@\"")
}

/// The script with `\`-newline continuations joined, blanks collapsed and
/// blank lines dropped.
fn normalise(script: &str) -> String {
    let joined = script.replace("\\\n", " ");
    joined
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The single-quoted words of `script` that are not options.
fn quoted_requirements(script: &str) -> Vec<String> {
    script.split('\'').skip(1).step_by(2).filter(|word| !word.starts_with('-')).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const PRELUDE_2_17: &str = "\nif ! [ -x \"$(command -v pip)\" ]; then\n    python3 -m ensurepip || python3 -m \
                                ensurepip --user || apt-get install python3-pip\nfi\n\n\
                                PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet \
                                --no-warn-script-location 'kfp==2.17.3' '--no-deps' \
                                'typing-extensions>=3.7.4,<5; python_version<\"3.9\"' && \"$0\" \"$@\"\n";
    /// kfp's program as every 2.x compiler writes it.
    const PROGRAM_2_17: &str = "program_path=$(mktemp -d)\n\nprintf \"%s\" \"$0\" > \
                                \"$program_path/ephemeral_component.py\"\n_KFP_RUNTIME=true python3 -m \
                                kfp.dsl.executor_main                         --component_module_path          \
                                               \"$program_path/ephemeral_component.py\"                         \
                                \"$@\"\n";
    /// The same with shell line continuations.
    const PROGRAM_CONTINUED: &str = "program_path=$(mktemp -d)\nprintf \"%s\" \"$0\" > \
                                     \"$program_path/ephemeral_component.py\"\n_KFP_RUNTIME=true python3 -m \
                                     kfp.dsl.executor_main \\\n  --component_module_path \\\n  \
                                     \"$program_path/ephemeral_component.py\" \\\n  \"$@\"\n";

    fn line(prelude: &str, program: &str) -> Vec<String> {
        ["sh", "-c", prelude, "sh", "-ec", program, "import x\n", "--executor_input", "{}"].map(String::from).to_vec()
    }

    #[test]
    fn kfps_own_shape_is_recognised_with_or_without_continuations() {
        for program in [PROGRAM_2_17, PROGRAM_CONTINUED, &PROGRAM.replace('\n', "\n\n")] {
            let c = python_component(&line(PRELUDE_2_17, program)).expect("recognised");
            assert_eq!(c.source, "import x\n");
            assert_eq!(c.args, ["--executor_input", "{}"]);
            let prelude = c.prelude.expect("prelude");
            assert_eq!(prelude.requirements, ["kfp==2.17.3", "typing-extensions>=3.7.4,<5; python_version<\"3.9\""]);
            assert!(prelude.installs_only_kfp());
        }
    }

    #[test]
    fn a_prelude_installing_user_packages_must_run() {
        let with_pandas =
            PRELUDE_2_17.replace("'kfp==2.17.3'", "'pandas==2.2.0' && python3 -m pip install 'kfp==2.17.3'");
        let c = python_component(&line(&with_pandas, PROGRAM_2_17)).expect("recognised");
        assert!(!c.prelude.expect("prelude").installs_only_kfp());
        let with_index = PRELUDE_2_17.replace("--quiet", "--quiet --index-url https://pypi.example/simple");
        let c = python_component(&line(&with_index, PROGRAM_2_17)).expect("recognised");
        assert!(!c.prelude.expect("prelude").installs_only_kfp());
        let no_kfp = PRELUDE_2_17.replace("'kfp==2.17.3'", "");
        assert!(
            !python_component(&line(&no_kfp, PROGRAM_2_17))
                .expect("recognised")
                .prelude
                .expect("p")
                .installs_only_kfp()
        );
    }

    #[test]
    fn a_changed_program_is_not_recognised() {
        for program in [
            PROGRAM_2_17.replace("executor_main", "executor_main; rm -rf ~"),
            format!("{PROGRAM_2_17}\necho done"),
            PROGRAM_2_17.replace("_KFP_RUNTIME=true ", ""),
        ] {
            assert_eq!(python_component(&line(PRELUDE_2_17, &program)), None, "{program}");
        }
        // Too short: no source.
        assert_eq!(python_component(&line(PRELUDE_2_17, PROGRAM_2_17)[..6]), None);
        // A prelude that does not exec the rest is not kfp's.
        let no_exec = PRELUDE_2_17.replace("&& \"$0\" \"$@\"", "");
        assert_eq!(python_component(&line(&no_exec, PROGRAM_2_17)), None);
    }

    proptest! {
        #[test]
        fn recognition_is_total_and_keeps_source_and_args(
            argv in proptest::collection::vec(".{0,12}", 0..10),
            source in ".{0,40}",
            args in proptest::collection::vec(".{0,12}", 0..4),
        ) {
            let _ = python_component(&argv);
            let mut full = line(PRELUDE_2_17, PROGRAM_2_17)[..6].to_vec();
            full.push(source.clone());
            full.extend(args.iter().cloned());
            let c = python_component(&full).expect("recognised");
            prop_assert_eq!(c.source, source);
            prop_assert_eq!(c.args, args);
        }
    }
}
