//! The benchmark scenarios at a tiny scale: they must run without errors and lose nothing. Speed is
//! not judged here (this machine is shared and noisy); the full runs are in docs/benchmarks.md.
//!
//! S1-S4 run here, beside the other tests. S5 (hundreds of websocket clients), S6 (end-to-end
//! latency) and S7 (overload) measure the machine as a whole, so `.ci/run` runs them on their own
//! after the tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scenarios_run_at_a_tiny_scale_and_lose_nothing() {
    let out = tempfile::tempdir().unwrap();
    let options = cityops::bench::Options {
        quick: true,
        out_dir: out.path().to_path_buf(),
        mosquitto: cityops::bench::MosquittoTarget::Spawn,
    };
    for scenario in ["s1", "s2", "s3", "s4"] {
        let reports = cityops::bench::run(scenario, &options)
            .await
            .unwrap_or_else(|e| panic!("{scenario}: {e:#}"));
        for report in &reports {
            assert!(
                !report.rows.is_empty(),
                "{} measured nothing",
                report.scenario
            );
            for row in &report.rows {
                assert!(
                    row.platform > 0.0 && row.baseline > 0.0,
                    "{}: {row:?}",
                    report.scenario
                );
                for (key, value) in &row.details {
                    if key.ends_with("_lost") {
                        assert_eq!(
                            value.as_u64(),
                            Some(0),
                            "{}: {} lost {key}",
                            report.scenario,
                            row.case
                        );
                    }
                }
            }
            assert!(
                out.path()
                    .join(format!("{}.json", report.scenario))
                    .is_file()
            );
            assert!(
                out.path()
                    .join(format!("{}.svg", report.scenario))
                    .is_file()
            );
        }
    }
    assert!(
        cityops::bench::SCENARIOS
            .iter()
            .any(|(name, _)| *name == "s6")
    );
}
