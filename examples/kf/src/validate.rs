//! `kf validate FILE...`: one line per file, `OK <file>` or
//! `ERROR <file>: <where>: <what>`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::documents;
use crate::output::OutputFormat;

/// The result for one file.
#[derive(Debug, serde::Serialize)]
struct FileReport {
    file: String,
    ok: bool,
    /// Number of documents validated.
    documents: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(files: &[PathBuf], output: OutputFormat) -> ExitCode {
    let reports: Vec<FileReport> = files.iter().map(|file| check(file)).collect();
    match output {
        OutputFormat::Text => {
            for r in &reports {
                match &r.error {
                    None => outln!("OK {}", r.file),
                    Some(error) => outln!("ERROR {}: {error}", r.file),
                }
            }
        }
        OutputFormat::Json => match serde_json::to_string_pretty(&reports) {
            Ok(json) => outln!("{json}"),
            Err(err) => {
                eprintln!("kf validate: cannot encode the report: {err}");
                return ExitCode::FAILURE;
            }
        },
    }
    if reports.iter().all(|r| r.ok) { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn check(file: &Path) -> FileReport {
    let mut report = FileReport { file: file.display().to_string(), ok: false, documents: 0, error: None };
    let docs = match documents::load(file) {
        Ok(docs) => docs,
        Err(err) => {
            report.error = Some(err.to_string());
            return report;
        }
    };
    if docs.is_empty() {
        report.error = Some("the file holds no YAML document".to_string());
        return report;
    }
    report.documents = docs.len();
    let several = docs.len() > 1;
    for doc in &docs {
        let prefix = if several { format!("document {}: ", doc.index) } else { String::new() };
        if let Err(problem) = documents::validate(doc) {
            report.error = Some(format!("{prefix}{problem}"));
            return report;
        }
    }
    report.ok = true;
    report
}
