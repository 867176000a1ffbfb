use super::*;
use crate::domain::Timezone;
use serde_json::json;

fn builtins() -> BuiltIns {
    // 2026-12-03 19:05 UTC is 2:05 PM in New York.
    let now: jiff::Timestamp = "2026-12-03T19:05:00Z".parse().unwrap();
    BuiltIns::at(
        "+15550001111",
        "+15550002222",
        now,
        &Timezone::parse("America/New_York").unwrap(),
    )
}

fn vars(v: serde_json::Value) -> Variables {
    Variables::parse(&v, "variables").unwrap()
}

#[test]
fn placeholders_are_found_once_each_in_order() {
    let names = placeholders("Hi {{name}}, {{ time }} for {{name}}?", "goal").unwrap();
    assert_eq!(names, vec!["name", "time"]);
    assert!(placeholders("no braces {here}", "goal").unwrap().is_empty());
}

#[test]
fn a_malformed_placeholder_is_refused_with_its_text() {
    let e = placeholders("Hi {{first name}}", "first_message").unwrap_err();
    assert_eq!(e.code, "invalid_placeholder");
    assert!(
        e.message.contains("first_message") && e.message.contains("{{first name}}"),
        "{}",
        e.message
    );
    let e = placeholders("Hi {{name", "goal").unwrap_err();
    assert!(e.message.contains("never closed"), "{}", e.message);
}

#[test]
fn variables_fill_before_built_ins_and_built_ins_read_the_bots_zone() {
    let text = "Hi {{name}}, it is {{time}} on {{weekday}}, {{date}}; you called {{bot_number}} from {{caller_number}}.";
    let filled = fill(text, &vars(json!({"name": "Ana"})), &builtins()).unwrap();
    assert_eq!(
        filled,
        "Hi Ana, it is 2:05 PM on Thursday, December 3, 2026; you called +15550002222 from +15550001111."
    );
}

#[test]
fn missing_values_are_named_sorted_and_never_spoken_as_braces() {
    let e = fill(
        "{{zeta}} {{alpha}} {{zeta}} {{name}}",
        &vars(json!({"name": "x"})),
        &builtins(),
    )
    .unwrap_err();
    assert_eq!(e.0, vec!["alpha".to_owned(), "zeta".to_owned()]);
    assert_eq!(e.to_string(), "no value for {{alpha}}, {{zeta}}");
    let (text, blanks) = fill_or_blank("Hello {{who}}!", &Variables::default(), &builtins());
    assert_eq!(text, "Hello !");
    assert_eq!(blanks, vec!["who".to_owned()]);
}

#[test]
fn values_are_text_numbers_or_booleans_and_names_are_checked() {
    let v = vars(json!({"count": 4, "vip": true, "name": "Ana"}));
    assert_eq!(v.get("count"), Some("4"));
    assert_eq!(v.get("vip"), Some("true"));
    for bad in [
        json!(["x"]),
        json!({"first name": "x"}),
        json!({"9lives": "x"}),
        json!({"date": "tomorrow"}),
        json!({"n": {"nested": 1}}),
        json!({"n": null}),
        json!({"n": "x".repeat(MAX_VALUE_CHARS + 1)}),
        json!({"n": "a\u{7}b"}),
    ] {
        let e = Variables::parse(&bad, "variables").unwrap_err();
        assert_eq!(e.code, "invalid_variables", "{bad}");
    }
    let many: serde_json::Map<String, serde_json::Value> = (0..=MAX_VARIABLES)
        .map(|i| (format!("v{i}"), json!("x")))
        .collect();
    assert!(Variables::parse(&serde_json::Value::Object(many), "variables").is_err());
}

#[test]
fn call_values_win_over_the_bots_defaults_and_round_trip_through_storage() {
    let call = vars(json!({"name": "Ana"}));
    let all = call.over(&vars(json!({"name": "there", "shop": "Bella Vista"})));
    assert_eq!(all.get("name"), Some("Ana"));
    assert_eq!(all.get("shop"), Some("Bella Vista"));
    let stored = all.to_stored();
    assert_eq!(Variables::from_stored(stored.as_deref()).unwrap(), all);
    assert_eq!(Variables::default().to_stored(), None);
    assert_eq!(Variables::from_stored(None).unwrap(), Variables::default());
}

#[test]
fn an_unclosed_or_malformed_pair_is_copied_as_written() {
    let filled = fill(
        "a {{not ok}} b {{name}} c {{",
        &vars(json!({"name": "N"})),
        &builtins(),
    )
    .unwrap();
    assert_eq!(filled, "a {{not ok}} b N c {{");
}
