//! The call recording: caller and bot tracks aligned on the caller's frame clock (one inbound
//! frame = 20 ms of call time). Bot audio is placed where the carrier plays it; what a `clear`
//! discarded is taken back out. Every couple of seconds the past is handed, as stereo 16-bit PCM
//! (caller left, bot right), to a writer task that appends it to the recording (`write`), so a
//! call holds only the last seconds in memory, however long it runs.

use crate::audio::{FRAME_BYTES, g711};

/// Call time held before it is handed to the recording's writer (and the most a crash can lose
/// on a local disk).
pub const FLUSH_SAMPLES: usize = 8000 * 2;

/// The tracks not yet handed out, both starting at the same call time: `caller` holds the past
/// only; `bot` may run ahead of it (audio queued to play), which a `clear` can still take back.
#[derive(Debug, Default)]
pub struct Recorder {
    caller: Vec<u8>,
    bot: Vec<u8>,
    /// Samples (per track) already handed out.
    handed: u64,
    /// A chunk the writer had no room for yet, handed out again with the next.
    held: Vec<u8>,
}

impl Recorder {
    pub fn caller_frame(&mut self, frame: &[u8]) {
        self.caller.extend_from_slice(frame);
    }

    /// Bot audio sent now plays after whatever is still queued, or now if nothing is.
    pub fn bot_frame(&mut self, frame: &[u8; FRAME_BYTES]) {
        if self.bot.len() < self.caller.len() {
            self.bot.resize(self.caller.len(), g711::SILENCE);
        }
        self.bot.extend_from_slice(frame);
    }

    /// `clear`: audio queued beyond the present was never played.
    pub fn bot_cleared(&mut self) {
        if self.bot.len() > self.caller.len() {
            self.bot.truncate(self.caller.len());
        }
    }

    pub fn caller_ms(&self) -> u64 {
        (self.handed + self.caller.len() as u64) / 8
    }

    pub fn is_empty(&self) -> bool {
        self.handed == 0 && self.caller.is_empty() && self.bot.is_empty()
    }

    /// The past (up to the caller's present) as 16-bit stereo PCM once at least
    /// [`FLUSH_SAMPLES`] of it are waiting; `None` before. At most one allocation per flush.
    pub fn take_flush(&mut self) -> Option<Vec<u8>> {
        (self.caller.len() >= FLUSH_SAMPLES).then(|| self.take(self.caller.len()))
    }

    /// Everything left, the bot's queued audio included: the end of the recording.
    pub fn take_rest(&mut self) -> Vec<u8> {
        self.take(self.caller.len().max(self.bot.len()))
    }

    /// Gives back a chunk the writer could not take; it goes out first next time.
    pub fn hold(&mut self, chunk: Vec<u8>) {
        let mut chunk = chunk;
        chunk.append(&mut self.held);
        self.held = chunk;
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.held);
        let at = out.len();
        // Zeroed first: a track shorter than `n` is silence past its end.
        out.resize(at + n * 4, 0);
        let (caller, bot) = (n.min(self.caller.len()), n.min(self.bot.len()));
        for (dst, &b) in out[at..].chunks_exact_mut(4).zip(&self.caller[..caller]) {
            dst[..2].copy_from_slice(&g711::decode_sample(b).to_le_bytes());
        }
        for (dst, &b) in out[at..].chunks_exact_mut(4).zip(&self.bot[..bot]) {
            dst[2..].copy_from_slice(&g711::decode_sample(b).to_le_bytes());
        }
        self.caller.drain(..caller);
        self.bot.drain(..bot);
        self.handed += n as u64;
        out
    }
}

/// Audio a writer holds while its backend refuses it (about 4 minutes of call), at most.
pub const MAX_UNWRITTEN: usize = 8 * 1024 * 1024;

/// Writes a call's recording as chunks arrive; ends it when the channel closes. A chunk the
/// backend refuses is kept and tried again with the next, so a passing failure loses nothing.
pub async fn write(
    recordings: std::sync::Arc<dyn callbot_core::recordings::Recordings>,
    key: String,
    mut chunks: tokio::sync::mpsc::Receiver<Vec<u8>>,
) {
    // A call that never had audio leaves no recording.
    let Some(first) = chunks.recv().await else {
        return;
    };
    let mut writer = match recordings.begin(&key).await {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!(%key, error = %e, "starting the recording failed; it is kept in memory");
            None
        }
    };
    let mut unwritten: Vec<u8> = first;
    if let Some(w) = writer.as_mut()
        && w.append(&unwritten).await.is_ok()
    {
        unwritten.clear();
    }
    while let Some(chunk) = chunks.recv().await {
        unwritten.extend_from_slice(&chunk);
        if unwritten.len() > MAX_UNWRITTEN {
            // The backend has refused this much: the oldest goes, said loudly, rather than the
            // process's memory.
            let over = unwritten.len() - MAX_UNWRITTEN;
            tracing::error!(%key, dropped_bytes = over, "the recording backend keeps failing; dropped the oldest unwritten audio");
            unwritten.drain(..over);
        }
        if let Some(w) = writer.as_mut() {
            match w.append(&unwritten).await {
                Ok(()) => unwritten.clear(),
                Err(e) => {
                    tracing::warn!(%key, error = %e, "writing the recording failed; retrying with the next chunk")
                }
            }
        }
    }
    let finished = match writer {
        Some(mut w) => {
            if !unwritten.is_empty()
                && let Err(e) = w.append(&unwritten).await
            {
                tracing::error!(%key, error = %e, "writing the end of the recording failed");
            }
            w.finish().await
        }
        None => {
            // The backend never started: one last try as a whole file.
            let mut wav = callbot_core::recordings::wav_header(
                u32::try_from(unwritten.len()).unwrap_or(u32::MAX),
            )
            .to_vec();
            wav.extend_from_slice(&unwritten);
            recordings.put(&key, wav).await
        }
    };
    if let Err(e) = finished {
        tracing::error!(%key, error = %e, "finishing the recording failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stereo(chunks: &[Vec<u8>]) -> (Vec<i16>, Vec<i16>) {
        let all: Vec<i16> = chunks
            .concat()
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        (
            all.iter().step_by(2).copied().collect(),
            all.iter().skip(1).step_by(2).copied().collect(),
        )
    }

    #[test]
    fn tracks_align_and_clear_removes_unplayed_audio() {
        let mut r = Recorder::default();
        for _ in 0..10 {
            r.caller_frame(&[0xFF; FRAME_BYTES]);
        }
        for _ in 0..5 {
            r.bot_frame(&[0x80; FRAME_BYTES]);
        }
        r.caller_frame(&[0xFF; FRAME_BYTES]);
        r.bot_cleared();
        assert!(r.take_flush().is_none(), "under two seconds waits");
        let (l, right) = stereo(&[r.take_rest()]);
        assert_eq!(l.len(), 11 * FRAME_BYTES);
        // Bot audio starts at 200 ms (after the caller's first 10 frames) and only the frame
        // played before the clear remains.
        assert!(right[..10 * FRAME_BYTES].iter().all(|&s| s == 0));
        assert!(right[10 * FRAME_BYTES..].iter().all(|&s| s == 32124));
    }

    #[test]
    fn flushes_hand_out_the_past_and_keep_queued_bot_audio() {
        let mut r = Recorder::default();
        let mut chunks = Vec::new();
        // 5 s of call; the bot starts a 3 s reply at 1.9 s, which a clear cuts at 4 s.
        for frame in 0..250 {
            r.caller_frame(&[0xFF; FRAME_BYTES]);
            if frame == 95 {
                for _ in 0..150 {
                    r.bot_frame(&[0x80; FRAME_BYTES]);
                }
            }
            if frame == 199 {
                r.bot_cleared();
            }
            if let Some(c) = r.take_flush() {
                chunks.push(c);
            }
        }
        assert_eq!(chunks.len(), 2, "one flush per two seconds");
        assert!(chunks.iter().all(|c| c.len() == FLUSH_SAMPLES * 4));
        // A writer that had no room: the chunk goes out again first.
        let last = chunks.pop().unwrap();
        r.hold(last.clone());
        let rest = r.take_rest();
        assert_eq!(&rest[..last.len()], &last[..]);
        chunks.push(rest);
        let (l, b) = stereo(&chunks);
        assert_eq!(l.len(), 250 * FRAME_BYTES);
        assert_eq!(b.len(), l.len());
        let bot_at = |ms: usize| b[ms * 8];
        assert_eq!(bot_at(1_000), 0);
        assert_eq!(bot_at(2_000), 32124);
        assert_eq!(bot_at(3_900), 32124);
        assert_eq!(bot_at(4_100), 0, "cut by the clear");
        assert_eq!(r.caller_ms(), 5_000);
    }
}
