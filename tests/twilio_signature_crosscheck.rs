//! Our `X-Twilio-Signature` code against Twilio's official helper library (`twilio` from PyPI,
//! installed by scripts/test.sh): random URLs and parameters, signatures compared byte for byte,
//! and Twilio's own validator accepting what we sign (port variants and JSON bodies included).
#![allow(clippy::unwrap_used)]

use callbot_core::twilio::signature;
use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};

const PY: &str = r#"
import json, sys
from twilio.request_validator import RequestValidator

class MultiDict(dict):
    """Repeated form keys, the way web frameworks hand them to the validator."""
    def getlist(self, key):
        return self[key]

out = []
for case in json.load(sys.stdin):
    v = RequestValidator(case["token"])
    if case["kind"] == "form":
        params = MultiDict()
        for k, val in case["params"]:
            params.setdefault(k, []).append(val)
        out.append({
            "computed": v.compute_signature(case["url"], params),
            "accepts_ours": v.validate(case["variant"], params, case["ours"]),
        })
    else:
        out.append({"computed": None, "accepts_ours": v.validate(case["url"], case["body"], case["ours"])})
print(json.dumps(out))
"#;

fn python() -> Option<String> {
    match std::env::var("CALLBOT_TEST_PYTHON") {
        Ok(p) => Some(p),
        Err(_) if std::env::var("CALLBOT_SKIP_PYTHON").is_ok_and(|v| v == "1") => {
            eprintln!("SKIPPING the twilio-python cross-check: CALLBOT_SKIP_PYTHON=1");
            None
        }
        Err(_) => panic!(
            "CALLBOT_TEST_PYTHON is not set: run the suite with scripts/test.sh (it installs the twilio \
             helper library), or set CALLBOT_SKIP_PYTHON=1 to skip this test knowingly"
        ),
    }
}

fn word(rng: &mut impl Rng, alphabet: &[char], len: std::ops::RangeInclusive<usize>) -> String {
    let n = rng.random_range(len);
    (0..n).map(|_| *alphabet.choose(rng).unwrap()).collect()
}

#[test]
fn signatures_match_twilio_python() {
    let Some(py) = python() else { return };
    let mut rng = rand::rng();
    let alnum: Vec<char> = ('a'..='z').chain('A'..='Z').chain('0'..='9').collect();
    let mut value_chars = alnum.clone();
    value_chars.extend([
        ' ', '+', '&', '=', '%', '/', '?', '#', 'é', 'ß', '中', '😀', '-', '_', '.', ':',
    ]);
    let mut cases = Vec::new();
    for i in 0..300 {
        let token = word(&mut rng, &alnum, 16..=40);
        let scheme = if rng.random_bool(0.7) {
            "https"
        } else {
            "http"
        };
        let host = format!(
            "{}.example.com",
            word(&mut rng, &alnum, 3..=12).to_lowercase()
        );
        let port = match rng.random_range(0..4) {
            0 => String::new(),
            1 => {
                if scheme == "https" {
                    ":443".into()
                } else {
                    ":80".into()
                }
            }
            _ => format!(":{}", rng.random_range(1025..65535)),
        };
        let path = (0..rng.random_range(1..=3))
            .map(|_| word(&mut rng, &alnum, 1..=10))
            .collect::<Vec<_>>()
            .join("/");
        let query = if rng.random_bool(0.6) {
            format!(
                "?bot_id=bot_{}&x={}",
                word(&mut rng, &alnum, 8..=8),
                rng.random_range(0..1000)
            )
        } else {
            String::new()
        };
        let url = format!("{scheme}://{host}{port}/{path}{query}");
        if i % 5 == 4 {
            // JSON body: the URL carries bodySHA256 and the signature covers the URL alone.
            let body =
                json!({"property": word(&mut rng, &value_chars, 0..=20), "n": i}).to_string();
            let hash = {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(body.as_bytes()))
            };
            let sep = if url.contains('?') { '&' } else { '?' };
            let signed_url = format!("{url}{sep}bodySHA256={hash}");
            let ours = signature::compute(token.as_bytes(), &signed_url, &[]);
            assert!(signature::verify_json(
                token.as_bytes(),
                &signed_url,
                body.as_bytes(),
                &ours
            ));
            cases.push(json!({"kind": "json", "token": token, "url": signed_url, "body": body, "ours": ours}));
            continue;
        }
        let mut params: Vec<(String, String)> = Vec::new();
        for _ in 0..rng.random_range(0..8) {
            let key = word(&mut rng, &alnum, 1..=12);
            // Repeated keys with distinct values (the official libraries disagree on exact
            // duplicates: python de-duplicates, node does not).
            for j in 0..rng.random_range(1..=2) {
                params.push((
                    key.clone(),
                    format!("{}{j}", word(&mut rng, &value_chars, 0..=16)),
                ));
            }
        }
        let ours = signature::compute(token.as_bytes(), &url, &params);
        // Twilio's validator must accept our signature when the URL differs only by the default port.
        let variant = if port == ":443" || port == ":80" {
            url.replacen(&port, "", 1)
        } else {
            url.clone()
        };
        cases.push(
            json!({"kind": "form", "token": token, "url": url, "variant": variant,
                          "params": params, "ours": ours}),
        );
    }
    let mut child = Command::new(&py)
        .args(["-c", PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&cases).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed");
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), cases.len());
    for (case, result) in cases.iter().zip(&results) {
        if case["kind"] == "form" {
            assert_eq!(
                result["computed"], case["ours"],
                "signature differs for {case}"
            );
        }
        assert_eq!(
            result["accepts_ours"], true,
            "twilio-python refused our signature for {case}"
        );
    }
}
