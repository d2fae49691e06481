//! The command line (being written).

/// Runs the command line; returns the exit code.
pub fn main() -> i32 {
    2
}
