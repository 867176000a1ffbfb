//! Twilio protocol pieces shared by the functions and the stream service. So far: request signature
//! computation and verification (`X-Twilio-Signature`). The REST adapter and TwiML rendering are
//! still to come (issue 3).

pub mod signature;
