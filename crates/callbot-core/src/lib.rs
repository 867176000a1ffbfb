//! callbot-core: the domain types, settings, traits (Store, Telephony) and their adapters that every
//! callbot binary shares. Nothing here knows about HTTP handlers or WebSockets.

pub mod allocator;
pub mod apikey;
pub mod call_texts;
pub mod campaign_queue;
pub mod domain;
#[cfg(test)]
mod fuzz;
pub mod http_client;
pub mod llm;
pub mod outbound;
pub mod recordings;
pub mod secrets;
pub mod settings;
pub mod store;
pub mod telephony;
pub mod testcall;
pub mod time_fmt;
pub mod twilio;
pub mod webhook_post;
pub mod webhook_sign;
pub mod wiring;

pub use domain::ParseError;
