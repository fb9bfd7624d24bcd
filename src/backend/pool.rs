//! A tiny thread pool that never spins: idle workers block on a condition
//! variable, and the caller blocks on a latch until every task has finished.
//! On two shared cores a busy-waiting pool collapses when another process
//! runs, so waking costs a futex call (a few µs) instead.
//!
//! Shared by the CPU kernels (a batch cut into per-thread chunks) and by the
//! runners (the sampling engine's chain blocks, training's loss parts), so a
//! training iteration wakes parked workers instead of spawning threads.
//! (A bounded spin before parking was tried for training's several
//! dispatches an iteration and measured no faster on this machine kind.)
//!
//! Determinism: the caller decides the chunking; which thread runs which task
//! never changes a result. If the pool is busy with another call (a kernel
//! run from two threads at once, or a kernel called inside a runner's task),
//! the tasks simply run inline, in order.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};

type Task = &'static (dyn Fn(usize) + Sync);

struct Job {
    task: Task,
    index: usize,
    latch: Arc<Latch>,
}

struct Latch {
    left: Mutex<(usize, bool)>,
    cv: Condvar,
}

struct Worker {
    slot: Mutex<Option<Job>>,
    cv: Condvar,
}

pub(crate) struct Pool {
    workers: Mutex<Vec<Arc<Worker>>>,
    busy: Mutex<()>,
}

pub(crate) fn global() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        workers: Mutex::new(vec![]),
        busy: Mutex::new(()),
    })
}

fn worker_loop(w: Arc<Worker>) {
    loop {
        let job = {
            let mut slot = w.slot.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(j) = slot.take() {
                    break j;
                }
                slot = w.cv.wait(slot).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let ok = catch_unwind(AssertUnwindSafe(|| (job.task)(job.index))).is_ok();
        let mut left = job
            .latch
            .left
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        left.0 -= 1;
        left.1 |= !ok;
        if left.0 == 0 {
            job.latch.cv.notify_one();
        }
    }
}

impl Pool {
    /// The `n − 1` workers a call of `n` tasks uses (the caller runs task
    /// 0), started on first need.
    fn workers_for(&self, n: usize) -> Result<Vec<Arc<Worker>>, String> {
        let mut ws = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
        while ws.len() < n.saturating_sub(1) {
            let w = Arc::new(Worker {
                slot: Mutex::new(None),
                cv: Condvar::new(),
            });
            let w2 = w.clone();
            std::thread::Builder::new()
                .name(format!("ebm-worker-{}", ws.len() + 1))
                .spawn(move || worker_loop(w2))
                .map_err(|e| format!("cannot start a worker thread: {e}"))?;
            ws.push(w);
        }
        Ok(ws[..n.saturating_sub(1)].to_vec())
    }

    /// `f(0..n)` on the pool, the results in index order; a panicking task
    /// is an error.
    pub fn map<R: Send>(&self, n: usize, f: impl Fn(usize) -> R + Sync) -> Result<Vec<R>, String> {
        let slots: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
        self.run(n, &|i| {
            let r = f(i);
            *slots[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
        })?;
        slots
            .into_iter()
            .map(|s| {
                s.into_inner()
                    .unwrap_or_else(PoisonError::into_inner)
                    .ok_or_else(|| "a worker task did not run".to_string())
            })
            .collect()
    }

    /// Starts the workers a call of `n` tasks needs, if they are not
    /// running yet, so that starting threads is not part of the first
    /// call's time (a sampler reports its sampling speed without it).
    pub fn reserve(&self, n: usize) -> Result<(), String> {
        self.workers_for(n).map(|_| ())
    }

    /// Whether a call is running on the pool now, so that another would run
    /// its tasks inline (a kernel called from a runner's task). A kernel
    /// then cuts its batch into one chunk, not into chunks that would run
    /// one after another on one thread, each with its own tile arena.
    pub fn busy(&self) -> bool {
        self.busy.try_lock().is_err()
    }

    /// Runs `f(0) … f(n-1)`, task 0 on the calling thread, and returns when all
    /// are done. Returns `Err` if a task panicked.
    pub fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) -> Result<(), String> {
        let guard = if n > 1 {
            self.busy.try_lock().ok()
        } else {
            None
        };
        let Some(_guard) = guard else {
            for i in 0..n {
                f(i);
            }
            return Ok(());
        };
        let workers = self.workers_for(n)?;
        let latch = Arc::new(Latch {
            left: Mutex::new((n - 1, false)),
            cv: Condvar::new(),
        });
        // SAFETY: we wait below until every job has run, so `f` outlives them.
        let task: Task = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Task>(f) };
        for (i, w) in workers.iter().enumerate() {
            *w.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(Job {
                task,
                index: i + 1,
                latch: latch.clone(),
            });
            w.cv.notify_one();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| f(0))).is_ok();
        let mut left = latch.left.lock().unwrap_or_else(PoisonError::into_inner);
        while left.0 > 0 {
            left = latch.cv.wait(left).unwrap_or_else(PoisonError::into_inner);
        }
        if !mine || left.1 {
            return Err("a worker task panicked".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Every task runs once, from any number of callers at once (a busy
    /// pool runs the caller's tasks inline), and a panicking task is an
    /// error, not a hang.
    #[test]
    fn runs_every_task_once_and_reports_panics() {
        let pool = Pool {
            workers: Mutex::new(vec![]),
            busy: Mutex::new(()),
        };
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for round in 0..200 {
                        let hits: Vec<AtomicUsize> = (0..4).map(|_| AtomicUsize::new(0)).collect();
                        pool.run(4, &|i| {
                            hits[i].fetch_add(round + 1, Ordering::Relaxed);
                        })
                        .unwrap();
                        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == round + 1));
                    }
                });
            }
        });
        let r = pool.run(2, &|i| {
            if i == 1 {
                panic!("task 1 fails");
            }
        });
        assert!(r.is_err());
        // The pool still works after a failed task.
        pool.run(2, &|_| {}).unwrap();
    }
}
