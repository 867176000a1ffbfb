//! What `callbot test` prints: a line per scenario, the failed checks under it, a summary; and
//! the JSON report (`--report FILE`) a CI job keeps.

use super::Outcome;

/// The human report.
pub fn lines(outcomes: &[Outcome]) -> Vec<String> {
    let mut out = Vec::new();
    for o in outcomes {
        let slowest = o.transcript.iter().filter_map(|l| l.latency_ms).max();
        let turns = o.transcript.iter().filter(|l| l.role == "caller").count();
        let verdict = if o.passed { "PASS" } else { "FAIL" };
        let mode = match o.mode {
            super::Mode::Text => "text",
            super::Mode::Phone => "phone",
        };
        let mut head = format!("{verdict} {} ({mode}, {turns} caller turns", o.name);
        if let Some(s) = slowest {
            head.push_str(&format!(", slowest answer {s} ms"));
        }
        if let Some(sid) = &o.call_sid {
            head.push_str(&format!(", call {sid}"));
        }
        head.push(')');
        out.push(head);
        if let Some(e) = &o.error {
            out.push(format!("  error: {e}"));
        }
        for c in o.checks.iter().filter(|c| !c.passed) {
            out.push(format!("  {}: {}", c.check, c.detail));
        }
        if !o.passed {
            for l in &o.transcript {
                out.push(format!("    {:>6}: {}", l.role, l.text));
                if let Some(h) = l.heard.as_ref().filter(|h| **h != l.text) {
                    out.push(format!("     heard: {h}"));
                }
            }
        }
    }
    let passed = outcomes.iter().filter(|o| o.passed).count();
    out.push(format!("{passed}/{} scenarios passed", outcomes.len()));
    out
}

/// The machine-readable report.
pub fn json(outcomes: &[Outcome]) -> serde_json::Value {
    serde_json::json!({
        "passed": outcomes.iter().all(|o| o.passed),
        "scenarios": outcomes,
    })
}
