//! The thread that owns the SQLite connection: every store call is a job on its queue, run one
//! at a time in order. One connection allows one writer anyway; a thread of its own keeps a burst
//! of store calls (a thousand calls ending turns at once, a WAL checkpoint holding the lock) from
//! becoming hundreds of blocking-pool threads waiting on a mutex and then woken together on the
//! cores that carry the calls' audio.

use super::super::{StoreError, StoreResult};
use rusqlite::Connection;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A handle on the connection's thread. Cheap to clone; the thread ends when the last handle
/// is dropped.
#[derive(Debug, Clone)]
pub(super) struct ConnThread {
    jobs: mpsc::Sender<Job>,
}

impl ConnThread {
    /// Moves `conn` to a new thread.
    pub(super) fn start(mut conn: Connection) -> StoreResult<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("callbot-sqlite".into())
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    // A job that panics fails its own call (its answer is dropped); the
                    // connection (any transaction rolled back as it unwound) serves the next.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut conn)));
                }
            })
            .map_err(|e| StoreError::Backend(format!("starting the sqlite thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `f` on the connection's thread and waits for its answer without blocking the
    /// runtime. Dropping the future does not stop a job already queued.
    pub(super) async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Backend("the sqlite thread has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("a sqlite job failed".into()))?
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn thread() -> ConnThread {
        ConnThread::start(Connection::open_in_memory().unwrap()).unwrap()
    }

    #[tokio::test]
    async fn jobs_run_in_the_order_they_were_queued() {
        let t = thread();
        t.run(|c| {
            c.execute_batch("CREATE TABLE t (n INTEGER)").unwrap();
            Ok(())
        })
        .await
        .unwrap();
        let writes: Vec<_> = (0..50)
            .map(|n| t.run(move |c| Ok(c.execute("INSERT INTO t VALUES (?1)", [n]).unwrap())))
            .collect();
        futures_util::future::join_all(writes).await;
        let got: Vec<i64> = t
            .run(|c| {
                let mut s = c.prepare("SELECT n FROM t ORDER BY rowid").unwrap();
                Ok(s.query_map([], |r| r.get(0))
                    .unwrap()
                    .map(|r| r.unwrap())
                    .collect())
            })
            .await
            .unwrap();
        assert_eq!(got, (0..50).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_job_that_panics_fails_alone_and_the_connection_serves_on() {
        let t = thread();
        let failed = t.run::<(), _>(|_| panic!("a bug in one query")).await;
        assert!(matches!(failed, Err(StoreError::Backend(_))), "{failed:?}");
        let n: i64 = t
            .run(|c| Ok(c.query_row("SELECT 41 + 1", [], |r| r.get(0)).unwrap()))
            .await
            .unwrap();
        assert_eq!(n, 42);
    }
}
