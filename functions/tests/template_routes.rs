//! The deployment template and the routers cannot drift apart: every route a function's router
//! serves is an HttpApi event of that function in `sam-template.yaml`, and nothing else is.
#![allow(clippy::unwrap_used)]

use callbot_functions::{Function, api_for, meta::DOC_ROUTES};
use std::collections::BTreeSet;

/// (routes, METHOD, path) from the template's function resources: which router a function runs
/// is its `CALLBOT_LAMBDA_ROUTES` (every function is the one `lambda` executable).
fn template_routes() -> BTreeSet<(String, String, String)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../sam-template.yaml"))
            .unwrap();
    let mut out = BTreeSet::new();
    let mut binary: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if !line.starts_with("    ") && line.starts_with("  ") && t.ends_with(':') {
            binary = None; // a new resource
        }
        if let Some(b) = t.strip_prefix("CALLBOT_LAMBDA_ROUTES: ") {
            binary = Some(b.to_owned());
        }
        if let (Some(b), Some(props)) = (&binary, t.strip_prefix("Properties: {")) {
            let field = |name: &str| {
                props
                    .split(',')
                    .find_map(|p| p.trim().strip_prefix(name))
                    .map(|v| v.trim().trim_end_matches('}').trim_matches('"').to_owned())
                    .unwrap()
            };
            out.insert((b.clone(), field("Method: ").to_uppercase(), field("Path: ")));
        }
    }
    out
}

fn router_routes() -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for f in Function::DEPLOYED {
        let (_, doc) = api_for(f);
        for (path, item) in doc.paths.paths {
            for (method, op) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PATCH", &item.patch),
                ("DELETE", &item.delete),
                ("PUT", &item.put),
            ] {
                if op.is_some() {
                    out.insert((f.name().to_owned(), method.to_owned(), path.clone()));
                }
            }
        }
    }
    for p in DOC_ROUTES {
        out.insert(("bots".to_owned(), "GET".to_owned(), p.to_owned()));
    }
    out
}

#[test]
fn template_routes_match_the_routers() {
    let template = template_routes();
    let routers = router_routes();
    assert!(template.len() >= 18, "parsed too few routes: {template:?}");
    let missing: Vec<_> = routers.difference(&template).collect();
    let extra: Vec<_> = template.difference(&routers).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "not deployed: {missing:?}\nnot served: {extra:?}"
    );
}

#[test]
fn every_route_belongs_to_exactly_one_function() {
    let all = router_routes();
    let mut seen = BTreeSet::new();
    for (_, m, p) in &all {
        assert!(
            seen.insert((m.clone(), p.clone())),
            "{m} {p} is served by two functions"
        );
    }
    let (_, everything) = api_for(Function::All);
    assert_eq!(
        everything.paths.paths.len() + DOC_ROUTES.len(),
        all.iter().map(|(_, _, p)| p).collect::<BTreeSet<_>>().len()
    );
}
