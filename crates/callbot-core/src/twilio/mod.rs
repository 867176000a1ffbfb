//! Twilio protocol pieces shared by the functions, the stream service and the simulator: request
//! signatures (`X-Twilio-Signature`), TwiML rendering, signed stream tokens, and the REST adapter
//! of the `Telephony` trait.

pub mod rest;
pub mod signature;
pub mod stream_token;
pub mod twiml;
