//! The worker-wide encoder pool: a fixed set of threads (one per core by default) that encode
//! every room's frames, earliest deadline first.
//!
//! Rooms are woken straight from their emulators: each room's "frame published" eventfd sits
//! in the pool's epoll set ([`WakeSet`]), idle pool threads block on it, and the emulator's
//! write wakes one of them, which queues the room and runs the earliest job. No async task or
//! condition variable stands between a published frame and its encoder.
//!
//! A room is queued at most once: when it is already waiting, a newer frame needs no second
//! entry, because the job always takes the room's newest frame (older unread ones are skipped
//! and counted by the frame ring). Nothing here ever blocks an emulator.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::error;

use crate::wake::{WakeSet, KICK};

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
    /// Threads blocked (or about to block) in the wake set.
    idle: usize,
    stop: bool,
}

/// A registered eventfd: whose job it wakes, and the job's deadline after a wake-up.
struct Source {
    job: Arc<dyn Job>,
    period: Duration,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: WakeSet,
    sources: Mutex<HashMap<u64, Source>>,
    next_token: AtomicU64,
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

/// A job's eventfd in the pool's wake set; dropping it stops the wake-ups.
pub struct Wakeup {
    shared: Arc<Shared>,
    token: u64,
    fd: OwnedFd,
}

impl std::fmt::Debug for Wakeup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wakeup").field("token", &self.token).finish()
    }
}

impl Drop for Wakeup {
    fn drop(&mut self) {
        let _ = self.shared.wake.remove(self.fd.as_fd());
        self.shared.sources.lock().expect("pool sources").remove(&self.token);
    }
}

impl EncodePool {
    /// Starts `threads` encoder threads.
    pub fn new(threads: usize) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: WakeSet::new()?,
            sources: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(KICK + 1),
        });
        let threads = (0..threads.max(1))
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new().name(format!("encode-{i}")).spawn(move || work(&shared))
            })
            .collect::<io::Result<_>>()?;
        Ok(Self { shared, threads })
    }

    /// A thread per available core.
    pub fn per_core() -> io::Result<Self> {
        Self::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// Number of threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Queues `job` with `deadline` unless it is already queued.
    pub fn submit(&self, job: Arc<dyn Job>, deadline: Instant) {
        if self.shared.push(job, deadline) {
            self.shared.wake.kick();
        }
    }

    /// Queues `job` each time `fd` (an eventfd) is written, with a deadline `period` after the
    /// wake-up, until the returned [`Wakeup`] is dropped. The job drains the eventfd itself.
    pub fn wake_on(&self, fd: BorrowedFd<'_>, job: Arc<dyn Job>, period: Duration) -> io::Result<Wakeup> {
        let fd = fd.try_clone_to_owned()?;
        let token = self.shared.next_token.fetch_add(1, Ordering::Relaxed);
        self.shared.sources.lock().expect("pool sources").insert(token, Source { job, period });
        let wakeup = Wakeup { shared: self.shared.clone(), token, fd };
        self.shared.wake.add(wakeup.fd.as_fd(), token)?;
        Ok(wakeup)
    }
}

impl Shared {
    /// Queues `job` unless it is already queued; true when it was.
    fn push(&self, job: Arc<dyn Job>, deadline: Instant) -> bool {
        if job.queued().swap(true, Ordering::AcqRel) {
            return false;
        }
        let mut q = self.queue.lock().expect("pool lock");
        q.seq += 1;
        let seq = q.seq;
        q.heap.push(Reverse(Entry { deadline, seq, job }));
        true
    }

    /// Waits for wake-ups (up to `timeout`; `None`: until one comes) and queues the woken jobs.
    fn collect(&self, timeout: Option<Duration>, tokens: &mut Vec<u64>) {
        tokens.clear();
        if let Err(e) = self.wake.wait(timeout, tokens) {
            error!(error = %e, "encoder pool: epoll_wait failed");
            std::thread::sleep(Duration::from_millis(1));
            return;
        }
        if tokens.iter().all(|t| *t == KICK) {
            return;
        }
        let now = Instant::now();
        let woken: Vec<(Arc<dyn Job>, Duration)> = {
            let sources = self.sources.lock().expect("pool sources");
            tokens.iter().filter_map(|t| sources.get(t)).map(|s| (s.job.clone(), s.period)).collect()
        };
        for (job, period) in woken {
            self.push(job, now + period);
        }
    }
}

fn work(shared: &Shared) {
    let mut tokens = Vec::new();
    loop {
        // Frames published while this thread worked join the queue before it picks the next
        // job, so the earliest deadline really goes first.
        shared.collect(Some(Duration::ZERO), &mut tokens);
        let (entry, help) = {
            let mut q = shared.queue.lock().expect("pool lock");
            if q.stop {
                // Pass the stop on: the kick that woke this thread may have been its only one.
                shared.wake.kick();
                return;
            }
            let entry = q.heap.pop();
            if entry.is_none() {
                q.idle += 1;
            }
            (entry, !q.heap.is_empty() && q.idle > 0)
        };
        // More work than this thread takes, and a thread asleep: wake it. (A busy thread may
        // swallow a kick meant for an idle one; the next pop then kicks again.)
        if help {
            shared.wake.kick();
        }
        let Some(Reverse(entry)) = entry else {
            shared.collect(None, &mut tokens);
            shared.queue.lock().expect("pool lock").idle -= 1;
            continue;
        };
        let again = entry.job.run();
        entry.job.queued().store(false, Ordering::Release);
        if again {
            shared.push(entry.job, Instant::now());
        }
    }
}

impl Drop for EncodePool {
    fn drop(&mut self) {
        self.shared.queue.lock().expect("pool lock").stop = true;
        self.shared.wake.kick();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Condvar;
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
        let pool = EncodePool::new(1).unwrap();
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

    struct Counter {
        queued: AtomicBool,
        runs: AtomicUsize,
    }

    impl Job for Counter {
        fn run(&self) -> bool {
            self.runs.fetch_add(1, Ordering::SeqCst);
            false
        }
        fn queued(&self) -> &AtomicBool {
            &self.queued
        }
    }

    fn wait_for(what: impl Fn() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(5);
        while !what() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(2));
        }
        what()
    }

    #[test]
    fn a_registered_eventfd_wakes_its_job_until_the_wakeup_is_dropped() {
        use retrofarm_emulator::{eventfd, eventfd_notify};
        let write = |fd: &OwnedFd| eventfd_notify(fd.as_fd(), 1).unwrap();
        let pool = EncodePool::new(2).unwrap();
        let jobs: Vec<Arc<Counter>> =
            (0..8).map(|_| Arc::new(Counter { queued: AtomicBool::new(false), runs: AtomicUsize::new(0) })).collect();
        let fds: Vec<OwnedFd> = jobs.iter().map(|_| eventfd().unwrap()).collect();
        let wakeups: Vec<Wakeup> = jobs
            .iter()
            .zip(&fds)
            .map(|(j, fd)| pool.wake_on(fd.as_fd(), j.clone(), Duration::from_millis(16)).unwrap())
            .collect();
        // Every job is woken once per write, all of them at once included (no wake-up is lost
        // between the two threads).
        for round in 1..=20 {
            for fd in &fds {
                write(fd);
            }
            assert!(
                wait_for(|| jobs.iter().all(|j| j.runs.load(Ordering::SeqCst) >= round)),
                "round {round}: runs {:?}",
                jobs.iter().map(|j| j.runs.load(Ordering::SeqCst)).collect::<Vec<_>>()
            );
        }
        drop(wakeups);
        let before: Vec<usize> = jobs.iter().map(|j| j.runs.load(Ordering::SeqCst)).collect();
        for fd in &fds {
            write(fd);
        }
        std::thread::sleep(Duration::from_millis(50));
        let after: Vec<usize> = jobs.iter().map(|j| j.runs.load(Ordering::SeqCst)).collect();
        assert_eq!(before, after, "no wake-ups once the registrations are gone");
    }
}
