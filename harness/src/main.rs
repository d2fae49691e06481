//! The `resetkit-harness` command line.

fn main() {
    std::process::exit(resetkit_harness::cli::main());
}
