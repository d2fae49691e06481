//! The whole scenario suite against the reference flow: every scenario passes.

use resetkit_harness::runner;
use resetkit_harness::scenarios;
use resetkit_harness::target::ReferenceTarget;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_flow_passes_every_scenario() {
    let all = scenarios::all();
    let report = runner::run(
        &ReferenceTarget,
        &all,
        true,
        &mut resetkit_harness::report::NoProgress,
    )
    .await;
    let problems = report.non_passing();
    assert!(
        problems.is_empty(),
        "{} of {} scenarios did not pass:\n{}",
        problems.len(),
        all.len(),
        problems.join("\n")
    );
    assert_eq!(report.exit_code(), 0);
    println!(
        "{} scenarios passed in {:?}",
        report.results.len(),
        report.duration
    );
}
