//! Interface supervision as a state machine: what the daemon does when a
//! captured interface goes down, disappears, is recreated, or its capture
//! fails. Pure: no I/O, no clock of its own (the caller passes `now` and
//! what it saw), so every transition has a unit test below.
//!
//! ```text
//!            worker failed / ifindex changed / gone
//!   Attached ─────────────────────────────────────► Waiting { retry_at }
//!      ▲                                              │  exists, now ≥ retry_at
//!      └────────────── opened() ◄── Open ◄────────────┘
//!                                     └─ open_failed(): retry later, backoff ×2
//! ```
//!
//! The link's up/down state is tracked beside it: down/up of a surviving
//! interface needs no restart (the sockets and the XDP program survive it).

use std::time::{Duration, Instant};

/// First wait before reopening a lost interface; doubles up to the maximum.
pub(super) const BACKOFF_MIN: Duration = Duration::from_millis(250);
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A capture that ran at least this long before failing starts its
/// back-off again from the minimum.
pub(super) const STABLE_AFTER: Duration = Duration::from_secs(10);

/// What the daemon saw of the interface in one tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Seen {
    /// Its ifindex, `None` when no interface has the name.
    pub ifindex: Option<u32>,
    /// Administratively and operationally up.
    pub link_up: bool,
    /// One of its worker threads has ended (its capture failed).
    pub worker_ended: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Capturing on `ifindex` since `since`.
    Attached { ifindex: u32, since: Instant },
    /// Not capturing; try to open at `retry_at`.
    Waiting { retry_at: Instant },
}

/// Why the capture is being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lost {
    /// A worker's capture failed; the interface is still there.
    Failed,
    /// No interface has the name any more.
    Gone,
    /// The name belongs to a new interface (deleted and created again).
    Recreated,
}

/// What one tick asks the daemon to do, in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Step {
    /// The link went down (count it) or came up after this long.
    pub went_down: bool,
    pub came_up_after: Option<Duration>,
    /// Stop and park the workers.
    pub park: Option<Lost>,
    /// Try to open the capture now; report with `opened` / `open_failed`.
    pub open: bool,
}

/// One captured interface's supervision state.
#[derive(Clone, Debug)]
pub(super) struct Supervisor {
    state: State,
    backoff: Duration,
    link_up: bool,
    down_since: Option<Instant>,
}

impl Supervisor {
    /// Not capturing: the link is down or the capture is being reopened.
    pub(super) fn is_down(&self) -> bool {
        !self.link_up || matches!(self.state, State::Waiting { .. })
    }

    /// An interface whose capture was just opened on `ifindex`.
    pub(super) fn attached(ifindex: u32, link_up: bool, now: Instant) -> Self {
        Supervisor {
            state: State::Attached {
                ifindex,
                since: now,
            },
            backoff: BACKOFF_MIN,
            link_up,
            down_since: (!link_up).then_some(now),
        }
    }

    pub(super) fn is_attached(&self) -> bool {
        matches!(self.state, State::Attached { .. })
    }

    /// Whether frames are being counted: link up and capture attached.
    pub(super) fn is_counting(&self) -> bool {
        self.link_up && self.is_attached()
    }

    /// The wait before the next reopen after a failure.
    pub(super) fn backoff(&self) -> Duration {
        self.backoff
    }

    /// One tick.
    pub(super) fn step(&mut self, seen: Seen, now: Instant) -> Step {
        let mut step = Step::default();
        let up = seen.link_up && seen.ifindex.is_some();
        if self.link_up && !up {
            step.went_down = true;
            self.down_since = Some(now);
        } else if !self.link_up && up {
            step.came_up_after = self.down_since.take().map(|t| now - t);
        }
        self.link_up = up;

        if let State::Attached { ifindex, since } = self.state {
            let lost = match seen.ifindex {
                None => Some(Lost::Gone),
                Some(i) if i != ifindex => Some(Lost::Recreated),
                Some(_) if seen.worker_ended => Some(Lost::Failed),
                Some(_) => None,
            };
            if let Some(lost) = lost {
                // A capture that keeps failing soon after each reopen backs
                // off further; one that ran a while starts from the minimum.
                self.backoff = if now - since < STABLE_AFTER {
                    (self.backoff * 2).min(BACKOFF_MAX)
                } else {
                    BACKOFF_MIN
                };
                // A lost or replaced interface is reopened as soon as it is
                // there; a failing capture waits its back-off.
                let wait = match lost {
                    Lost::Failed => self.backoff,
                    Lost::Gone | Lost::Recreated => Duration::ZERO,
                };
                self.state = State::Waiting {
                    retry_at: now + wait,
                };
                step.park = Some(lost);
            }
        }
        if let State::Waiting { retry_at } = self.state {
            step.open = seen.ifindex.is_some() && now >= retry_at;
        }
        step
    }

    /// The reopen asked for by `step` succeeded on `ifindex`.
    pub(super) fn opened(&mut self, ifindex: u32, now: Instant) {
        self.state = State::Attached {
            ifindex,
            since: now,
        };
    }

    /// The reopen failed: try again after the back-off, which doubles.
    pub(super) fn open_failed(&mut self, now: Instant) {
        self.state = State::Waiting {
            retry_at: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(ifindex: Option<u32>, link_up: bool, worker_ended: bool) -> Seen {
        Seen {
            ifindex,
            link_up,
            worker_ended,
        }
    }

    const OK: Seen = Seen {
        ifindex: Some(7),
        link_up: true,
        worker_ended: false,
    };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_healthy_interface_asks_for_nothing() {
        let t = Instant::now();
        let mut s = Supervisor::attached(7, true, t);
        assert_eq!(s.step(OK, t + ms(100)), Step::default());
        assert!(s.is_counting());
    }

    #[test]
    fn down_and_up_is_counted_without_a_restart() {
        let t = Instant::now();
        let mut s = Supervisor::attached(7, true, t);
        let down = s.step(seen(Some(7), false, false), t + ms(100));
        assert!(down.went_down && down.park.is_none() && !down.open);
        assert!(!s.is_counting() && s.is_attached());
        let again = s.step(seen(Some(7), false, false), t + ms(200));
        assert!(!again.went_down, "counted once");
        let up = s.step(OK, t + ms(600));
        assert_eq!(up.came_up_after, Some(ms(500)));
        assert!(up.park.is_none() && s.is_counting());
    }

    #[test]
    fn starting_down_reports_the_gap_when_it_comes_up() {
        let t = Instant::now();
        let mut s = Supervisor::attached(7, false, t);
        assert!(!s.is_counting());
        assert_eq!(s.step(OK, t + ms(300)).came_up_after, Some(ms(300)));
    }

    #[test]
    fn a_deleted_interface_is_parked_then_reopened_when_back() {
        let t = Instant::now();
        let mut s = Supervisor::attached(7, true, t);
        let gone = s.step(seen(None, false, true), t + ms(100));
        assert_eq!(gone.park, Some(Lost::Gone));
        assert!(gone.went_down && !gone.open, "nothing to open yet");
        assert!(!s.step(seen(None, false, false), t + ms(200)).open);
        let back = s.step(seen(Some(9), true, false), t + ms(300));
        assert!(back.open && back.park.is_none());
        s.opened(9, t + ms(300));
        assert!(s.is_counting());
        assert_eq!(
            s.step(seen(Some(9), true, false), t + ms(400)),
            Step::default()
        );
    }

    #[test]
    fn a_recreated_interface_is_reopened_in_the_same_tick() {
        let t = Instant::now();
        let mut s = Supervisor::attached(7, true, t);
        let step = s.step(seen(Some(8), true, false), t + ms(100));
        assert_eq!(step.park, Some(Lost::Recreated));
        assert!(step.open, "no back-off for a new interface");
    }

    #[test]
    fn a_failing_capture_waits_its_backoff_which_grows() {
        let t = Instant::now();
        let mut s = Supervisor::attached(7, true, t);
        let failed = s.step(seen(Some(7), true, true), t + ms(100));
        assert_eq!(failed.park, Some(Lost::Failed));
        assert!(!failed.open);
        assert_eq!(s.backoff(), 2 * BACKOFF_MIN, "failed soon after opening");
        assert!(!s.step(OK, t + ms(100) + ms(499)).open);
        assert!(s.step(OK, t + ms(100) + ms(500)).open);
        s.opened(7, t + ms(600));
        // Fails again at once: the back-off doubles again.
        s.step(seen(Some(7), true, true), t + ms(700));
        assert_eq!(s.backoff(), 4 * BACKOFF_MIN);
    }

    #[test]
    fn backoff_is_capped_and_resets_after_a_stable_run() {
        let t = Instant::now();
        let mut s = Supervisor::attached(7, true, t);
        let mut now = t;
        for _ in 0..10 {
            now += ms(10);
            s.step(seen(Some(7), true, true), now);
            s.opened(7, now);
        }
        assert_eq!(s.backoff(), BACKOFF_MAX);
        now += STABLE_AFTER;
        s.step(seen(Some(7), true, true), now);
        assert_eq!(s.backoff(), BACKOFF_MIN);
    }

    #[test]
    fn a_failed_reopen_retries_later_with_a_longer_wait() {
        let t = Instant::now();
        let mut s = Supervisor::attached(7, true, t);
        s.step(seen(Some(8), true, false), t);
        s.open_failed(t);
        let wait = s.backoff();
        assert_eq!(wait, 2 * (2 * BACKOFF_MIN));
        assert!(
            !s.step(seen(Some(8), true, false), t + 2 * BACKOFF_MIN - ms(1))
                .open
        );
        assert!(s.step(seen(Some(8), true, false), t + 2 * BACKOFF_MIN).open);
        assert!(!s.is_attached());
    }
}
