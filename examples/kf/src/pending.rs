//! Commands whose crate part is not built yet. They say so and exit 2 rather
//! than pretend.

use std::process::ExitCode;

/// Accepts (and ignores) whatever follows a command that is not built yet, so
/// the answer is always the honest "not implemented", never a usage error.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// Exit code for "this part of kf is not built yet".
pub const NOT_IMPLEMENTED: u8 = 2;

/// Prints which part is missing and returns exit code 2.
pub fn report(command: &str, missing: &str) -> ExitCode {
    eprintln!("{command}: not implemented yet: it needs {missing}");
    ExitCode::from(NOT_IMPLEMENTED)
}
