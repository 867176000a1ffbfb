//! The `callbot` package: the all-in-one local server (`callbot serve`), simulated calls
//! (`callbot call`), key management and the benchmarks, wired from the same routers and adapters that production uses.

pub mod bench;
pub mod bench_amd;
pub mod bench_browser;
pub mod bench_calls;
pub mod bench_cli;
pub mod bench_faults;
pub mod bench_llm;
pub mod bench_reply;
mod bench_setup;
pub mod bench_voices;
pub mod bench_webrtc;
pub mod browser;
pub mod call;
pub mod devkit;
pub mod quality;
pub mod server;
pub mod testcall;
