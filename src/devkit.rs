//! The developer kit generated from the API's own OpenAPI description, so it cannot drift from
//! the server: a Postman collection (v2.1 schema) and a `curl` script with one function per
//! operation. `callbot devkit postman|curl` prints them; the checked-in copies under `examples/`
//! are compared with fresh output by the test suite.

use serde_json::{Value, json};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{OpenApi, RefOr};

/// One operation of the description, in path order.
struct Op<'a> {
    method: &'static str,
    path: &'a str,
    op: &'a Operation,
}

fn operations(doc: &OpenApi) -> Vec<Op<'_>> {
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        for (method, op) in [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ] {
            if let Some(op) = op {
                out.push(Op { method, path, op });
            }
        }
    }
    out
}

fn summary(op: &Operation) -> String {
    op.summary
        .clone()
        .or_else(|| op.description.clone())
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_owned()
}

fn name(o: &Op<'_>) -> String {
    o.op.operation_id
        .clone()
        .unwrap_or_else(|| format!("{} {}", o.method, o.path))
}

fn secured(o: &Op<'_>) -> bool {
    o.op.security.as_ref().is_some_and(|s| !s.is_empty())
}

/// The request body's example: the schema's example when it has one, else `{}`.
fn body_example(doc: &OpenApi, o: &Op<'_>) -> Option<Value> {
    let body = o.op.request_body.as_ref()?;
    let content = body.content.get("application/json")?;
    if let Some(ex) = &content.example {
        return Some(ex.clone());
    }
    let schema = match &content.schema {
        Some(RefOr::Ref(r)) => {
            let name = r.ref_location.rsplit('/').next()?;
            doc.components.as_ref()?.schemas.get(name)?.clone()
        }
        Some(s) => s.clone(),
        None => return Some(json!({})),
    };
    // Required properties with their examples (or a placeholder naming the type).
    let v = serde_json::to_value(&schema).ok()?;
    let mut out = serde_json::Map::new();
    let required: Vec<String> = v["required"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Some(props) = v["properties"].as_object() {
        for name in &required {
            let p = &props[name];
            let ex = p
                .get("example")
                .cloned()
                .or_else(|| p.get("examples").and_then(|e| e.get(0)).cloned())
                .unwrap_or_else(|| json!(format!("<{name}>")));
            out.insert(name.clone(), ex);
        }
    }
    Some(Value::Object(out))
}

fn query_params(o: &Op<'_>) -> Vec<(String, bool)> {
    o.op.parameters
        .iter()
        .flatten()
        .filter(|p| matches!(p.parameter_in, ParameterIn::Query))
        .map(|p| {
            (
                p.name.clone(),
                matches!(p.required, utoipa::openapi::Required::True),
            )
        })
        .collect()
}

/// A Postman collection (schema v2.1.0): one request per operation, grouped by tag; `{{baseUrl}}`
/// and `{{apiKey}}` as collection variables; path parameters as `:name` variables.
pub fn postman(doc: &OpenApi) -> Value {
    let mut folders: Vec<(String, Vec<Value>)> = Vec::new();
    for o in operations(doc) {
        let tag =
            o.op.tags
                .as_ref()
                .and_then(|t| t.first().cloned())
                .unwrap_or_else(|| "other".into());
        let segments: Vec<String> = o
            .path
            .trim_start_matches('/')
            .split('/')
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(v) => format!(":{v}"),
                    None => s.to_owned(),
                },
            )
            .collect();
        let vars: Vec<Value> = segments
            .iter()
            .filter_map(|s| s.strip_prefix(':'))
            .map(|v| json!({"key": v, "value": format!("<{v}>")}))
            .collect();
        let query: Vec<Value> = query_params(&o)
            .into_iter()
            .map(|(k, required)| json!({"key": k, "value": "", "disabled": !required}))
            .collect();
        let mut raw = format!("{{{{baseUrl}}}}/{}", segments.join("/"));
        let enabled: Vec<String> = query
            .iter()
            .filter(|q| q["disabled"] == false)
            .map(|q| format!("{}=", q["key"].as_str().unwrap_or("")))
            .collect();
        if !enabled.is_empty() {
            raw.push('?');
            raw.push_str(&enabled.join("&"));
        }
        let mut header = Vec::new();
        if secured(&o) {
            header.push(json!({"key": "X-API-Key", "value": "{{apiKey}}"}));
        }
        let mut request = json!({
            "method": o.method,
            "header": header,
            "url": {"raw": raw, "host": ["{{baseUrl}}"], "path": segments, "query": query, "variable": vars},
            "description": summary(o.op),
        });
        if let Some(body) = body_example(doc, &o) {
            if let Some(h) = request["header"].as_array_mut() {
                h.push(json!({"key": "Content-Type", "value": "application/json"}));
            }
            request["body"] = json!({
                "mode": "raw",
                "raw": serde_json::to_string_pretty(&body).unwrap_or_default(),
                "options": {"raw": {"language": "json"}},
            });
        }
        let item = json!({"name": name(&o), "request": request});
        match folders.iter_mut().find(|(t, _)| *t == tag) {
            Some((_, items)) => items.push(item),
            None => folders.push((tag, vec![item])),
        }
    }
    json!({
        "info": {
            "name": "callbot API",
            "description": "Generated from /openapi.json by `callbot devkit postman`. Set baseUrl and apiKey.",
            "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
        },
        "variable": [
            {"key": "baseUrl", "value": "http://127.0.0.1:8080"},
            {"key": "apiKey", "value": ""},
        ],
        "item": folders.into_iter().map(|(name, item)| json!({"name": name, "item": item})).collect::<Vec<_>>(),
    })
}

/// A bash script of curl functions, one per operation: `callbot_<operationId> [path args...]
/// [--data JSON | query string]`, using `CALLBOT_URL` and `CALLBOT_API_KEY`.
pub fn curl(doc: &OpenApi) -> String {
    let mut s = String::from(
        "#!/usr/bin/env bash\n\
         # callbot API from the shell. Generated from /openapi.json by `callbot devkit curl`; do not edit.\n\
         # Usage: source examples/callbot-curl.sh; CALLBOT_API_KEY=cb_... callbot_list_bots\n\
         #   Path parameters come first, in order; then, for requests with a body, the JSON body\n\
         #   (default: the example shown); for others, an optional query string (\"status=completed\").\n\
         CALLBOT_URL=\"${CALLBOT_URL:-http://127.0.0.1:8080}\"\n\n",
    );
    for o in operations(doc) {
        let fname: String = name(&o)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let params: Vec<&str> = o
            .path
            .split('/')
            .filter_map(|p| p.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
            .collect();
        let mut path = o.path.to_owned();
        for (i, p) in params.iter().enumerate() {
            path = path.replace(&format!("{{{p}}}"), &format!("${{{}:?{p}}}", i + 1));
        }
        let next = params.len() + 1;
        s.push_str(&format!("# {} {} — {}\n", o.method, o.path, summary(o.op)));
        let query: Vec<String> = query_params(&o)
            .into_iter()
            .map(|(k, r)| if r { format!("{k} (required)") } else { k })
            .collect();
        if !query.is_empty() {
            s.push_str(&format!("#   query: {}\n", query.join(", ")));
        }
        s.push_str(&format!("callbot_{fname}() {{\n"));
        let auth = if secured(&o) {
            " -H \"X-API-Key: ${CALLBOT_API_KEY:?set CALLBOT_API_KEY}\""
        } else {
            ""
        };
        match body_example(doc, &o) {
            Some(body) => {
                let example = serde_json::to_string(&body)
                    .unwrap_or_default()
                    .replace('\'', "'\\''");
                s.push_str(&format!("  local example='{example}'\n"));
                s.push_str(&format!(
                    "  curl -sS -X {} \"$CALLBOT_URL{path}\"{auth} -H 'Content-Type: application/json' --data \"${{{next}:-$example}}\"\n",
                    o.method
                ));
            }
            None => {
                s.push_str(&format!(
                    "  curl -sS -X {} \"$CALLBOT_URL{path}${{{next}:+?${next}}}\"{auth}\n",
                    o.method
                ));
            }
        }
        s.push_str("}\n\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_in_both() {
        let (_, doc) = callbot_functions::api();
        let ops = operations(&doc).len();
        let p = postman(&doc);
        let n: usize = p["item"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["item"].as_array().unwrap().len())
            .sum();
        assert_eq!(n, ops);
        assert_eq!(curl(&doc).matches("\ncallbot_").count(), ops);
    }
}
