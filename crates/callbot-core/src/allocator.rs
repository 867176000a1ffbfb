//! The allocator's settings for a process that carries calls: glibc's malloc, with fixed
//! thresholds instead of its adaptive ones.
//!
//! A call's buffers come and go in many sizes (20 ms frames, whole utterances, recording chunks,
//! synthesised sentences). With glibc's default, the first large block freed raises the mmap
//! threshold to its size, so later large blocks come from the heap, where they fragment it: the
//! process's memory crept up by about 7 KB per call per second with a flat live heap (measured
//! with heaptrack; `callbot bench calls --faults` shows the figure). Fixed thresholds keep large
//! blocks mmap'd, returned whole when freed, and trim the heap's free top early; a thread hands
//! the holes inside the heaps back every [`TRIM_EVERY`].

/// Blocks this large or larger are mmap'd (glibc's initial default, made fixed).
pub const MMAP_THRESHOLD: i32 = 64 * 1024;
/// Free memory at the top of the heap beyond this goes back to the system.
pub const TRIM_THRESHOLD: i32 = 256 * 1024;

/// Sets the thresholds; call once at the start of `main`, before other threads run. Returns
/// whether glibc accepted both (elsewhere it is a no-op that returns false).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn tune_for_calls() -> bool {
    // SAFETY: mallopt takes two integers, touches only the allocator's own parameters, and is
    // called before other threads allocate; both values are within glibc's documented ranges.
    let (mmap, trim) = unsafe {
        (
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        )
    };
    mmap == 1 && trim == 1
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_for_calls() -> bool {
    false
}

/// How often memory freed inside the heap is handed back to the system.
pub const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(20);

/// Hands free memory inside glibc's heaps back to the system (`malloc_trim`): the holes that
/// ended calls leave between live blocks are otherwise kept, and the process's memory creeps up
/// although what it uses does not. Safe to call from any thread at any time (glibc locks each
/// arena while it trims); a few milliseconds for a heap of a thousand calls.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn trim() {
    // SAFETY: malloc_trim only releases pages glibc holds free; it takes the allocator's locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() {}

/// Runs a binary's `main` future: the allocator's thresholds first (before the runtime's threads
/// start), a thread that trims the heaps every [`TRIM_EVERY`], then a multi-threaded runtime
/// (`TOKIO_WORKER_THREADS` workers, or one per core).
pub fn run_tuned<F: std::future::Future>(main: F) -> std::io::Result<F::Output> {
    tune_for_calls();
    std::thread::Builder::new()
        .name("heap-trim".into())
        .spawn(|| {
            loop {
                std::thread::sleep(TRIM_EVERY);
                trim();
            }
        })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(main))
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_thresholds() {
        assert!(super::tune_for_calls());
    }
}
