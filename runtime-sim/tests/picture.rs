//! A scenario's run as a picture: the pipelined runner above the sequential
//! loop, one lane per task, deterministic for a seed.

#![cfg(madsim)]

use std::time::Duration;

use pjp_runtime_sim::{LatencyProfile, Mode, Scenario};

fn scenario(mode: Mode) -> Scenario {
    Scenario::new("picture")
        .jobs(60)
        .workers(2)
        .exec_cost(Duration::from_millis(10))
        .latency(LatencyProfile::fixed(Duration::from_millis(50)))
        .mode(mode)
        .record(true)
}

#[test]
fn pipelined_and_sequential_runs_draw_one_above_the_other() {
    let draw = || {
        let pipelined = scenario(Mode::Pipelined)
            .simulate(5)
            .unwrap_or_else(|e| panic!("{e}"));
        let sequential = scenario(Mode::Sequential)
            .simulate(5)
            .unwrap_or_else(|e| panic!("{e}"));
        // Every job executed once in each, on the workers' lanes.
        for report in [&pipelined, &sequential] {
            let executions = report
                .spans
                .iter()
                .filter(|s| s.activity == pjp_core::observe::Activity::Execute)
                .count();
            assert_eq!(executions, 60, "{report}");
        }
        pjp_timeline::compare(&pipelined.timeline(), &sequential.timeline())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let svg = draw();
    assert_eq!(svg, draw(), "the same seed draws the same picture");
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("not XML: {e}"));
    let texts: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    assert!(texts.iter().any(|t| t.contains("pipelined")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("sequential")), "{texts:?}");
    assert!(texts.contains(&"worker node worker 1"), "{texts:?}");
    assert!(texts.contains(&"worker node saver 0"), "{texts:?}");
}
