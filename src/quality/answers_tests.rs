//! The scorer's rules, one per test, and the built-in set's shape.

use super::*;

fn set() -> EvalSet {
    EvalSet::parse(BUILT_IN).unwrap()
}

fn case(id: &str) -> (Case, EvalBot) {
    let s = set();
    let c = s.cases.iter().find(|c| c.id == id).unwrap().clone();
    let b = s.bots[&c.bot].clone();
    (c, b)
}

fn said(text: &str) -> Answer {
    Answer {
        text: text.into(),
        ..Answer::default()
    }
}

fn called(name: &str, args: &str) -> Answer {
    Answer {
        tool: Some((name.into(), args.into())),
        ..Answer::default()
    }
}

fn failed(checks: &[Check]) -> Vec<&'static str> {
    checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.rule)
        .collect()
}

#[test]
fn the_built_in_set_covers_every_category_and_bot() {
    let s = set();
    for cat in ["context", "honest", "tool", "end"] {
        assert!(
            s.cases.iter().filter(|c| c.category == cat).count() >= 3,
            "{cat}"
        );
    }
    assert_eq!(s.bots.len(), 3);
}

#[test]
fn a_fact_from_the_context_passes_in_words_or_digits() {
    let (c, b) = case("hours");
    assert!(failed(&score(&c, &b, &said("We open at five PM on Friday."))).is_empty());
    assert!(failed(&score(&c, &b, &said("We open at 5 PM."))).is_empty());
    assert_eq!(
        failed(&score(&c, &b, &said("We open at noon."))),
        ["expected"]
    );
}

#[test]
fn an_invented_number_fails_even_when_the_expectation_holds() {
    let (c, b) = case("corkage");
    let checks = score(&c, &b, &said("Yes, the corkage fee is 25 dollars."));
    assert_eq!(failed(&checks), ["no_invented_numbers"]);
    assert!(failed(&score(&c, &b, &said("Yes, corkage is fifteen dollars."))).is_empty());
}

#[test]
fn a_phrase_is_matched_as_whole_words() {
    let (c, b) = case("weekend_parcel");
    // "know" holds "no" but is not "no".
    assert_eq!(
        failed(&score(&c, &b, &said("I know we deliver."))),
        ["expected"]
    );
    assert!(failed(&score(&c, &b, &said("No, Monday to Saturday only."))).is_empty());
}

#[test]
fn an_avoided_phrase_fails() {
    let (c, b) = case("hello");
    let checks = score(&c, &b, &said("I'm sorry for your loss. How can I help?"));
    assert_eq!(failed(&checks), ["expected"]);
}

#[test]
fn a_long_or_marked_up_answer_is_not_short() {
    let (c, b) = case("address");
    let long = format!("We are on Elm Street {}", "and it is lovely ".repeat(12));
    assert_eq!(failed(&score(&c, &b, &said(&long))), ["short"]);
    assert_eq!(
        failed(&score(&c, &b, &said("**Elm Street**, near the garage."))),
        ["short"]
    );
}

#[test]
fn a_tool_case_needs_the_tool_and_its_arguments() {
    let (c, b) = case("book");
    let good = called(
        "book_table",
        r#"{"party_size": 4, "time": "7 PM", "name": "Miller"}"#,
    );
    assert!(failed(&score(&c, &b, &good)).is_empty());
    let wrong_size = called(
        "book_table",
        r#"{"party_size": 2, "time": "7 PM", "name": "Miller"}"#,
    );
    assert_eq!(failed(&score(&c, &b, &wrong_size)), ["expected"]);
    assert_eq!(
        failed(&score(&c, &b, &said("Booked, Miller!"))),
        ["expected"]
    );
    assert_eq!(
        failed(&score(&c, &b, &called("end_call", "{}"))),
        ["expected"]
    );
}

#[test]
fn a_word_case_answered_with_a_tool_fails() {
    let (c, b) = case("price");
    assert_eq!(
        failed(&score(&c, &b, &called("end_call", "{}"))),
        ["expected"]
    );
}

#[test]
fn numbers_are_read_in_words_and_digits() {
    assert_eq!(numbers("fifteen dollars at 7 PM"), ["15", "7"]);
    assert!(numbers("no numbers here").is_empty());
}

#[test]
fn a_case_naming_a_missing_bot_is_refused() {
    let yaml =
        "bots: {}\ncases:\n  - {id: x, bot: nobody, category: context, caller: hi, expect: {}}\n";
    assert!(EvalSet::parse(yaml).is_err());
}

#[test]
fn an_answer_that_repeats_the_instructions_fails() {
    let (c, b) = case("dessert");
    let echo = said("If the facts do not say, answer that you are not sure.");
    assert_eq!(failed(&score(&c, &b, &echo)), ["own_words"]);
    assert!(
        failed(&score(
            &c,
            &b,
            &said("I'm not sure about the tiramisu, sorry.")
        ))
        .is_empty()
    );
}
