//! The ask/tell protocol on stdin/stdout, without the `kf` assembly: handy
//! to drive a sampler from another language, or to benchmark one alone.
//!
//! ```text
//! cargo run -p kf-tune --example ask_tell -- --space SPACE.json --algorithm cmaes --seed 1 [--settings k=v ...]
//! ```
//!
//! Start-up failures print one line on stderr and exit with status 2, as the
//! protocol asks.

use std::io::{BufReader, stdin, stdout};
use std::process::ExitCode;

use kf_tune::ask_tell::{Session, SpaceFile, serve};

fn start() -> Result<Session, String> {
    let (mut space, mut algorithm, mut seed, mut settings) = (None, None, 0u64, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--space" => space = Some(value()?),
            "--algorithm" => algorithm = Some(value()?),
            "--seed" => seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--settings" => {
                let pair = value()?;
                let (k, v) = pair.split_once('=').ok_or_else(|| format!("--settings: expected k=v, found {pair:?}"))?;
                settings.push((k.to_owned(), v.to_owned()));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let path = space.ok_or("--space is required")?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let doc = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let file = SpaceFile::from_value(doc).map_err(|e| format!("{path}: {e}"))?;
    let name = algorithm.ok_or("--algorithm is required")?;
    Session::new(file, &name, &settings, seed).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    match start() {
        Ok(session) => match serve(session, BufReader::new(stdin().lock()), stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("ask-tell: {err}");
                ExitCode::FAILURE
            }
        },
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}
