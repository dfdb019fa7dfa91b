//! The exit codes of the command line contract, and a failure: a code and one line for people.

pub const OK: u8 = 0;
pub const FINDING: u8 = 1;
pub const ERROR: u8 = 2;

/// An exit code and one line for people.
pub type Failure = (u8, String);

/// A failure to write the output.
pub fn write_failed(e: std::io::Error) -> Failure {
    (ERROR, format!("cannot write output: {e}"))
}
