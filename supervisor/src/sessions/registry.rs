//! The live sessions of this process, in one place: admitted and not yet ended.
//!
//! Capacity is a [`Semaphore`] with `MAX_SESSIONS` permits (the way mini-redis bounds its connections): a
//! launch takes a permit before anything else, and its entry here holds it until the session ends, so the
//! count of live sessions is never more than the limit and never drifts from the entries. SQLite stays the
//! durable journal (admission, pending -> running, the end, and what a previous run left); this is what the
//! capacity checks, `/health`, `/ready`, the metrics and the warm pool read.
//!
//! A session leaves the live set on every ending: [`Registry::end`] when its end is recorded (whatever ended
//! it: the worker, a stop, the shutdown), [`Registry::remove`] when its launch failed after admission, and
//! [`Registry::forget`] once its worker is gone (which also releases a permit whose end could not be recorded).
//! A session that ended while its worker is still exiting keeps its running state here (its figures, its
//! worker, its stop token) without a permit, so the figures reach the task record and a shutdown still waits
//! for that worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The registry of live sessions; clones share it. `R` is what a session carries once a worker runs it
/// ([`super::Running`] in the server; tests use their own).
pub struct Registry<R> {
    inner: Arc<Inner<R>>,
}

impl<R> Clone for Registry<R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<R> {
    max: u32,
    permits: Arc<Semaphore>,
    state: Mutex<State<R>>,
    /// Signalled when a permit is released, so the warm pool re-examines its free slots.
    released: Notify,
    /// `lipcast_sessions_active`, kept equal to the number of live entries.
    active: Gauge,
}

/// The entries, behind one lock so a permit and its entry come and go together.
struct State<R> {
    live: HashMap<String, Live<R>>,
    /// Sessions that ended while their worker is still exiting: no permit, no key, only what they ran with.
    exiting: HashMap<String, R>,
}

/// One live session: its permit (capacity), its idempotency key, and its running state once a worker has it.
struct Live<R> {
    /// Released when the entry is dropped: the session no longer counts against `MAX_SESSIONS`.
    _permit: OwnedSemaphorePermit,
    room_name: String,
    identity: String,
    running: Option<R>,
}

/// What [`Registry::admit`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// A permit was taken and the session is live under the given task id.
    Admitted,
    /// The room and avatar identity already have the live session with this task id (a repeated launch).
    Existing(String),
    /// Every permit is taken; `active` live sessions hold them.
    AtCapacity { active: u32 },
}

impl<R> Registry<R> {
    /// An empty registry with `max` permits; `active` is the gauge it keeps current.
    pub fn new(max: u32, active: Gauge) -> Self {
        let permits = usize::try_from(max)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        active.set(0);
        Self {
            inner: Arc::new(Inner {
                max,
                permits: Arc::new(Semaphore::new(permits)),
                state: Mutex::new(State {
                    live: HashMap::new(),
                    exiting: HashMap::new(),
                }),
                released: Notify::new(),
                active,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State<R>> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, state: &State<R>) {
        self.inner
            .active
            .set(i64::try_from(state.live.len()).unwrap_or(i64::MAX));
    }

    /// `MAX_SESSIONS`.
    pub fn max(&self) -> u32 {
        self.inner.max
    }

    /// How many sessions are live (admitted and not yet ended).
    pub fn live_count(&self) -> u32 {
        u32::try_from(self.state().live.len()).unwrap_or(u32::MAX)
    }

    /// The task ids of the live sessions.
    pub fn live_ids(&self) -> Vec<String> {
        self.state().live.keys().cloned().collect()
    }

    /// Admits `task_id` for `room_name` and `identity` unless that pair already has a live session or no
    /// permit is left (in that order, as a repeated launch is answered even at capacity).
    pub fn admit(&self, task_id: &str, room_name: &str, identity: &str) -> Admission {
        let mut state = self.state();
        let existing = state
            .live
            .iter()
            .find(|(_, l)| l.room_name == room_name && l.identity == identity);
        if let Some((id, _)) = existing {
            return Admission::Existing(id.clone());
        }
        let Ok(permit) = self.inner.permits.clone().try_acquire_owned() else {
            let active = u32::try_from(state.live.len()).unwrap_or(u32::MAX);
            return Admission::AtCapacity { active };
        };
        state.live.insert(
            task_id.to_owned(),
            Live {
                _permit: permit,
                room_name: room_name.to_owned(),
                identity: identity.to_owned(),
                running: None,
            },
        );
        self.publish(&state);
        Admission::Admitted
    }

    /// Gives a live session the state its worker runs it with. False when the session is no longer live (it
    /// ended while it was being handed to the worker): the state is kept as exiting all the same, and the
    /// caller stops that worker.
    pub fn attach(&self, task_id: &str, running: R) -> bool {
        let mut state = self.state();
        match state.live.get_mut(task_id) {
            Some(live) => {
                live.running = Some(running);
                true
            }
            None => {
                state.exiting.insert(task_id.to_owned(), running);
                false
            }
        }
    }

    /// The session ended (its end is in the journal): its permit is released; its running state, if any,
    /// stays until [`Registry::forget`]. False when it was not live.
    pub fn end(&self, task_id: &str) -> bool {
        let ended = {
            let mut state = self.state();
            let Some(mut live) = state.live.remove(task_id) else {
                return false;
            };
            if let Some(running) = live.running.take() {
                state.exiting.insert(task_id.to_owned(), running);
            }
            self.publish(&state);
            live
        };
        // The permit goes back with the entry, outside the lock.
        drop(ended);
        self.inner.released.notify_one();
        true
    }

    /// The launch failed after admission (the journal refused it, no worker, the portrait refused): the
    /// session never ran; its permit is released. False when it was not live.
    pub fn remove(&self, task_id: &str) -> bool {
        let removed = {
            let mut state = self.state();
            let removed = state.live.remove(task_id);
            state.exiting.remove(task_id);
            self.publish(&state);
            removed
        };
        let released = removed.is_some();
        drop(removed);
        if released {
            self.inner.released.notify_one();
        }
        released
    }

    /// The session's worker is gone: nothing of it is kept. Releases its permit if it was still live (its end
    /// could not be recorded).
    pub fn forget(&self, task_id: &str) {
        self.remove(task_id);
    }

    /// Runs `f` on the running state of a session, live or exiting.
    pub fn with_running<T>(&self, task_id: &str, f: impl FnOnce(&mut R) -> T) -> Option<T> {
        let mut state = self.state();
        let State { live, exiting } = &mut *state;
        live.get_mut(task_id)
            .and_then(|l| l.running.as_mut())
            .or_else(|| exiting.get_mut(task_id))
            .map(f)
    }

    /// Runs `f` on the running state of every session, live or exiting, and collects what it returns.
    pub fn all_running<T>(&self, mut f: impl FnMut(&R) -> T) -> Vec<T> {
        let state = self.state();
        state
            .live
            .values()
            .filter_map(|l| l.running.as_ref())
            .chain(state.exiting.values())
            .map(&mut f)
            .collect()
    }

    /// Waits until a permit is released (a notification sent while nobody waited is kept for the next call).
    pub async fn released(&self) {
        self.inner.released.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(max: u32) -> (Registry<u32>, Gauge) {
        let gauge = Gauge::default();
        (Registry::new(max, gauge.clone()), gauge)
    }

    fn permits(r: &Registry<u32>) -> usize {
        r.inner.permits.available_permits()
    }

    #[test]
    fn at_capacity_refuses_with_the_live_count() {
        let (r, gauge) = registry(2);
        assert_eq!(r.admit("a", "room1", "x"), Admission::Admitted);
        assert_eq!(r.admit("b", "room2", "x"), Admission::Admitted);
        assert_eq!(
            r.admit("c", "room3", "x"),
            Admission::AtCapacity { active: 2 }
        );
        assert_eq!(r.live_count(), 2);
        assert_eq!(gauge.get(), 2);
        assert_eq!(permits(&r), 0);
    }

    #[test]
    fn the_same_room_and_identity_is_the_live_session_even_at_capacity() {
        let (r, _) = registry(1);
        assert_eq!(r.admit("a", "room", "x"), Admission::Admitted);
        assert_eq!(r.admit("b", "room", "x"), Admission::Existing("a".into()));
        // Another identity in the same room is another session.
        assert_eq!(
            r.admit("c", "room", "y"),
            Admission::AtCapacity { active: 1 }
        );
        r.end("a");
        assert_eq!(r.admit("d", "room", "x"), Admission::Admitted);
    }

    /// The three ways out, as `Sessions` uses them: `end` from `Sessions::finish` (the worker failed or exited,
    /// a stop, the agent left, idle, max duration, shutdown), `remove` for a launch refused after admission
    /// (the journal refused the row, no worker in time, the portrait refused), `forget` once the worker is gone.
    #[test]
    fn every_ending_releases_the_permit_once() {
        let (r, gauge) = registry(3);
        // Ended with a worker (its end recorded), then forgotten once the worker is gone.
        assert_eq!(r.admit("ended", "r1", "x"), Admission::Admitted);
        assert!(r.attach("ended", 7));
        // A launch that failed after admission.
        assert_eq!(r.admit("failed", "r2", "x"), Admission::Admitted);
        // A worker gone without a recorded end (the journal's UPDATE failed).
        assert_eq!(r.admit("lost", "r3", "x"), Admission::Admitted);
        assert!(r.attach("lost", 9));
        assert_eq!(permits(&r), 0);

        assert!(r.end("ended"));
        assert_eq!(permits(&r), 1);
        assert!(!r.end("ended"), "the first ending wins");
        assert_eq!(
            r.with_running("ended", |v| *v),
            Some(7),
            "kept while exiting"
        );
        assert_eq!(r.all_running(|v| *v).len(), 2);
        r.forget("ended");
        assert_eq!(r.with_running("ended", |v| *v), None);
        assert_eq!(permits(&r), 1);

        assert!(r.remove("failed"));
        assert!(!r.remove("failed"));
        assert_eq!(permits(&r), 2);

        r.forget("lost");
        assert_eq!(permits(&r), 3);
        assert_eq!(r.live_count(), 0);
        assert_eq!(gauge.get(), 0);
        assert!(r.all_running(|v| *v).is_empty());
    }

    #[test]
    fn a_session_ended_while_being_handed_over_is_kept_as_exiting() {
        let (r, _) = registry(1);
        assert_eq!(r.admit("a", "room", "x"), Admission::Admitted);
        assert!(r.end("a"));
        assert!(!r.attach("a", 5));
        assert_eq!(r.with_running("a", |v| *v), Some(5));
        assert_eq!(permits(&r), 1);
        r.forget("a");
        assert_eq!(r.with_running("a", |v| *v), None);
    }

    #[tokio::test]
    async fn a_release_wakes_a_later_waiter() {
        let (r, _) = registry(1);
        assert_eq!(r.admit("a", "room", "x"), Admission::Admitted);
        r.end("a");
        tokio::time::timeout(std::time::Duration::from_secs(1), r.released())
            .await
            .unwrap_or_else(|_| panic!("the release was lost"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_admissions_never_exceed_the_limit() {
        let (r, gauge) = registry(3);
        let barrier = Arc::new(tokio::sync::Barrier::new(50));
        let launches = (0..50).map(|i| {
            let (r, barrier) = (r.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                r.admit(&format!("t{i}"), &format!("room{i}"), "x")
            })
        });
        let mut admitted = 0;
        let mut refused = 0;
        for answer in futures_util::future::join_all(launches).await {
            match answer.unwrap_or_else(|e| panic!("{e}")) {
                Admission::Admitted => admitted += 1,
                Admission::AtCapacity { active } => {
                    assert_eq!(active, 3);
                    refused += 1;
                }
                Admission::Existing(id) => panic!("no room repeats: {id}"),
            }
        }
        assert_eq!((admitted, refused), (3, 47));
        assert_eq!(r.live_count(), 3);
        assert_eq!(gauge.get(), 3);
        // Freed slots admit again, and still no more than the limit.
        for id in r.live_ids() {
            r.end(&id);
        }
        let again: Vec<Admission> = (0..10)
            .map(|i| r.admit(&format!("u{i}"), &format!("room{i}"), "x"))
            .collect();
        assert_eq!(
            again.iter().filter(|a| **a == Admission::Admitted).count(),
            3
        );
    }
}
