//! The worker-wide encoder pool: a fixed set of threads (one per core by default) that encode
//! every room's frames, earliest deadline first.
//!
//! A room is queued at most once: when it is already waiting, a newer frame needs no second
//! entry, because the job always takes the room's newest frame (older unread ones are skipped
//! and counted by the frame ring). Nothing here ever blocks an emulator.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// Work a pool thread can do for a room.
pub trait Job: Send + Sync + 'static {
    /// Encodes the room's newest frame and audio. Returns true when a newer frame arrived while
    /// it ran, so the room should be queued again.
    fn run(&self) -> bool;
    /// The room's "already queued" flag.
    fn queued(&self) -> &AtomicBool;
}

struct Entry {
    deadline: Instant,
    seq: u64,
    job: Arc<dyn Job>,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.deadline, self.seq) == (o.deadline, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(o.deadline, o.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    stop: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// The pool.
pub struct EncodePool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for EncodePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodePool").field("threads", &self.threads.len()).finish()
    }
}

impl EncodePool {
    /// Starts `threads` encoder threads.
    pub fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared { queue: Mutex::new(Queue::default()), ready: Condvar::new() });
        let threads = (0..threads.max(1))
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("encode-{i}"))
                    .spawn(move || work(&shared))
                    .expect("spawning an encoder thread")
            })
            .collect();
        Self { shared, threads }
    }

    /// A thread per available core.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// Number of threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Queues `job` with `deadline` unless it is already queued.
    pub fn submit(&self, job: Arc<dyn Job>, deadline: Instant) {
        submit(&self.shared, job, deadline);
    }
}

fn submit(shared: &Shared, job: Arc<dyn Job>, deadline: Instant) {
    if job.queued().swap(true, Ordering::AcqRel) {
        return;
    }
    let mut q = shared.queue.lock().expect("pool lock");
    q.seq += 1;
    let seq = q.seq;
    q.heap.push(Reverse(Entry { deadline, seq, job }));
    drop(q);
    shared.ready.notify_one();
}

fn work(shared: &Shared) {
    loop {
        let entry = {
            let mut q = shared.queue.lock().expect("pool lock");
            loop {
                if q.stop {
                    return;
                }
                if let Some(Reverse(e)) = q.heap.pop() {
                    break e;
                }
                q = shared.ready.wait(q).expect("pool lock");
            }
        };
        let again = entry.job.run();
        entry.job.queued().store(false, Ordering::Release);
        if again {
            submit(shared, entry.job, Instant::now());
        }
    }
}

impl Drop for EncodePool {
    fn drop(&mut self) {
        self.shared.queue.lock().expect("pool lock").stop = true;
        self.shared.ready.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    struct Probe {
        queued: AtomicBool,
        runs: AtomicUsize,
        order: Arc<Mutex<Vec<usize>>>,
        id: usize,
        gate: Arc<(Mutex<bool>, Condvar)>,
    }

    impl Job for Probe {
        fn run(&self) -> bool {
            let (m, c) = &*self.gate;
            let mut open = m.lock().unwrap();
            while !*open {
                open = c.wait(open).unwrap();
            }
            self.order.lock().unwrap().push(self.id);
            self.runs.fetch_add(1, Ordering::SeqCst);
            false
        }
        fn queued(&self) -> &AtomicBool {
            &self.queued
        }
    }

    fn probe(id: usize, order: &Arc<Mutex<Vec<usize>>>, gate: &Arc<(Mutex<bool>, Condvar)>) -> Arc<Probe> {
        Arc::new(Probe {
            queued: AtomicBool::new(false),
            runs: AtomicUsize::new(0),
            order: order.clone(),
            id,
            gate: gate.clone(),
        })
    }

    #[test]
    fn earliest_deadline_first_and_one_entry_per_room() {
        let order = Arc::new(Mutex::new(vec![]));
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let pool = EncodePool::new(1);
        let blocker = probe(0, &order, &gate);
        pool.submit(blocker.clone(), Instant::now());
        std::thread::sleep(Duration::from_millis(50)); // the one thread is now inside blocker
        let t = Instant::now();
        let (late, early, mid) = (probe(3, &order, &gate), probe(1, &order, &gate), probe(2, &order, &gate));
        pool.submit(late.clone(), t + Duration::from_millis(30));
        pool.submit(early.clone(), t + Duration::from_millis(10));
        pool.submit(mid.clone(), t + Duration::from_millis(20));
        // Frames arriving while a room waits add no entry: it encodes its newest frame once.
        pool.submit(early.clone(), t + Duration::from_millis(40));
        pool.submit(early.clone(), t + Duration::from_millis(50));
        {
            let (m, c) = &*gate;
            *m.lock().unwrap() = true;
            c.notify_all();
        }
        let end = Instant::now() + Duration::from_secs(5);
        while order.lock().unwrap().len() < 4 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(early.runs.load(Ordering::SeqCst), 1);
        // Once run, a room can be queued again.
        pool.submit(early.clone(), Instant::now());
        let end = Instant::now() + Duration::from_secs(5);
        while early.runs.load(Ordering::SeqCst) < 2 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(early.runs.load(Ordering::SeqCst), 2);
    }
}
