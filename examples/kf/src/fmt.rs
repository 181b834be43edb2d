//! `kf fmt FILE`: parse every document into the owning crate's typed model and
//! write it back as YAML on stdout. Unknown fields are preserved by the models,
//! so the output holds the same data as the input.

use std::path::Path;
use std::process::ExitCode;

use crate::documents;

pub fn run(file: &Path) -> ExitCode {
    let name = file.display();
    let docs = match documents::load(file) {
        Ok(docs) => docs,
        Err(err) => {
            eprintln!("kf fmt: {name}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let several = docs.len() > 1;
    let mut values = Vec::new();
    for doc in &docs {
        let prefix = if several { format!("document {}: ", doc.index) } else { String::new() };
        match documents::format(doc) {
            Ok(parts) => values.extend(parts),
            Err(problem) => {
                eprintln!("kf fmt: {name}: {prefix}{problem}");
                return ExitCode::FAILURE;
            }
        }
    }
    match serde_saphyr::to_string_multiple(&values) {
        Ok(yaml) => {
            out!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("kf fmt: {name}: cannot write YAML: {err}");
            ExitCode::FAILURE
        }
    }
}
