//! Stand-ins for the cloud speech providers, used by the test suite and `callbot bench`: each
//! checks requests the way the real service does (auth header and scheme, query, content type,
//! body fields, audio format) and answers in the real format: the voices with fixed audio made
//! once by another tool (Python's standard library, `fixtures/`), the recognisers with a
//! transcript keyed on the audio they received. Failure modes imitate provider outages.

// Handlers return the refusal itself (an axum `Response`) as their error.
#![allow(clippy::result_large_err, clippy::unwrap_used)]

pub mod deepgram;
pub mod voices;
