//! callbot-stream: the stream service that will hold Twilio media WebSockets and run the per-call
//! engine. Not built yet: the call-engine work (issue 4) fills it in; see README "Status".
