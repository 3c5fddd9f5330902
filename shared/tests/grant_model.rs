//! Every interleaving of two scheduled runs and two consents on one mailbox, against a model
//! of Parameter Store as it behaves: versions and their history, no compare-and-swap, writes
//! that commit while their answer is lost (the SDK then retries them), deletes that drop the
//! history (`unlink`), and runs cut off by their deadline between any two calls.
//!
//! The runs execute the real protocol (`gmail_oauth::grant_keeping::Save`); this file only
//! models Parameter Store, Google and the schedule. The explorer visits every reachable
//! state once (depth-first, with a set of the states seen) and checks, in every state where
//! all processes have ended, the rule of `docs/interface.md`: the parameter holds the grant
//! of the consent whose write committed last, or a refresh of it. After an unlink with no
//! consent after it, the parameter is absent, or was created again by a run's late write
//! with a grant the unlink revoked (reported as `Recreated`).
//!
//! It also checks that every execution ends: a state met again on the path that leads to
//! it is a livelock (a save asking the same question for ever: the protocol's states leave
//! out the count of steps, so asking again without learning anything is the same state),
//! reported with its path; no save may end by its step bound (`Unfinished`); and the
//! longest execution, in steps, is measured over the whole graph (each state's longest way
//! to an end, computed as the depth-first search leaves it).
//!
//! Initial parameters include values whose lineage names versions the parameter never
//! had: a token restored or copied by hand, and a re-linked mailbox (its grant at version
//! 2) that an unlink and a run's late write create again at version 1.
//!
//! Three checks show the model has teeth: the protocol this project used before (re-check
//! the version, write, put back the version before ours) and the new protocol with runs
//! that may be cut between their write and its verification (which the deployment rules
//! out) both break the rule, and a naive save that polls until it sees its own write
//! livelocks; each prints its counterexample.

use gmail_oauth::grant_keeping::{Lineage, Record, Save, Seen, Selector, Settled, Step, Version};
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A step's description, written only when a counterexample is being printed.
macro_rules! label {
    ($config:expr, $($arg:tt)*) => {
        if $config.labels { format!($($arg)*) } else { String::new() }
    };
}

/// A stored value: the grant (refresh token) it holds, which write made it, and its lineage.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Value {
    grant: u8,
    /// Unique per write: a fresh access token (consent, refresh), or the heal's own copy.
    access: u8,
    lineage: Lineage,
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lineage = match self.lineage {
            Lineage::Consent => "consent".to_owned(),
            Lineage::Foreign => "foreign".to_owned(),
            Lineage::Refresh { origin, since } => format!("refresh<-v{origin} (read v{since})"),
            Lineage::Heal { origin, since } => format!("heal<-v{origin} (read v{since})"),
        };
        write!(f, "g{}/a{} {lineage}", self.grant, self.access)
    }
}

impl Record for Value {
    type Grant = u8;
    fn lineage(&self) -> Lineage {
        self.lineage
    }
    fn grant(&self) -> Option<u8> {
        Some(self.grant)
    }
    fn with_lineage(&self, lineage: Lineage) -> Self {
        Value { lineage, ..*self }
    }
}

/// One parameter: its versions (1-based, each with the commit it came from), or absent.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
struct Store {
    versions: Option<Vec<(Value, i64)>>,
    /// Commits so far, deleted ones included: each version's `LastModifiedDate`.
    commits: i64,
}

impl Store {
    fn put(&mut self, value: Value) -> Version {
        self.commits += 1;
        let versions = self.versions.get_or_insert_with(Vec::new);
        versions.push((value, self.commits));
        versions.len() as Version
    }
    fn seen(&self, v: Version) -> Option<Seen<Value>> {
        let index = usize::try_from(v.checked_sub(1)?).ok()?;
        let (value, written_at) = *self.versions.as_ref()?.get(index)?;
        Some(Seen {
            version: v,
            written_at,
            value,
        })
    }
    fn current(&self) -> Option<Seen<Value>> {
        let len = self.versions.as_ref()?.len() as Version;
        self.seen(len)
    }
    fn top_value(&self) -> Option<(Version, Value)> {
        self.current().map(|seen| (seen.version, seen.value))
    }
    fn get(&self, asked: &[Selector]) -> (Option<Seen<Value>>, Vec<Seen<Value>>) {
        let versions = asked
            .iter()
            .filter_map(|s| match s {
                Selector::Version(v) => self.seen(*v),
                Selector::Current => None,
            })
            .collect();
        (self.current(), versions)
    }
}

/// A write request in flight: what it writes and how many attempts the SDK has left.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Putting {
    value: Value,
    attempts_left: u8,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Run {
    Start,
    Read(Seen<Value>),
    Refreshed {
        read: Seen<Value>,
        fresh: Value,
    },
    Saving {
        save: Save<Value>,
        step: Step<Value>,
        put: Option<Putting>,
        /// SSM already failed one request of this save without committing it.
        failed: bool,
    },
    Legacy(Legacy),
    /// A naive save: write, then look until the current value is the one written.
    Poll(Value),
    Done(Option<Settled>),
}

/// The protocol before this change: re-read the version, write if unchanged, and if the
/// write's version is not the one after the read, put version `written - 1` back on top.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Legacy {
    Recheck {
        version: Version,
        fresh: Value,
    },
    Write {
        version: Version,
        fresh: Value,
        attempts_left: u8,
        committed: Option<Version>,
    },
    Restore {
        version: Version,
        written: Version,
    },
    PutBack {
        value: Value,
        attempts_left: u8,
    },
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Consent {
    /// `unlink` first: revoke the grant at Google, then delete the parameter.
    Unlink,
    Deleting {
        attempts_left: u8,
    },
    Start,
    Writing(Putting),
    Done,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct State {
    store: Store,
    runs: Vec<Run>,
    consents: Vec<Consent>,
    /// Grants issued so far (bit i: grant i) and those revoked.
    issued: u8,
    revoked: u8,
    /// The grant of the consent whose write committed last (None after a delete).
    truth: Option<u8>,
    /// Lost answers and failed requests still allowed in this execution.
    faults_left: u8,
    /// The two runs play different parts (no symmetry reduction).
    asymmetric: bool,
}

#[derive(Clone, Copy)]
struct Config {
    runs: usize,
    /// The second consent starts with an unlink.
    unlink: bool,
    attempts: u8,
    /// Attempts of a consent's write.
    consent_attempts: u8,
    /// Requests whose answer may be lost, or that may fail, in one execution.
    faults: u8,
    /// Runs may be cut between their write and the end of its verification.
    cut_in_save: bool,
    /// Only the first run may be cut during its save, and the second run starts after the
    /// first has ended: does a complete save repair what a cut one left?
    repair: bool,
    legacy: bool,
    /// Runs save with the naive polling protocol ([`Run::Poll`]).
    poll: bool,
    /// The parameter at the start.
    start: Start,
    /// Describe every step (only while replaying a counterexample).
    labels: bool,
}

/// What the parameter holds when the model starts.
#[derive(Clone, Copy, Debug)]
enum Start {
    /// Version 1: a consent's grant g0.
    Consent,
    /// Version 1: g0 with a lineage naming version 5 (`{"written_by": "refresh", "origin": 5,
    /// "since": 5}`): a token restored from a backup or copied from another parameter.
    Restored,
    /// A mailbox linked twice: version 1 an older grant (g3, revoked since), version 2 the
    /// re-link's g0. A run that reads version 2 and writes after an unlink creates the
    /// parameter again at version 1 with origin 2.
    Relinked,
}

#[derive(Default, Debug)]
struct Tally {
    states: usize,
    transitions: usize,
    ends: usize,
    settled: std::collections::BTreeMap<String, usize>,
    violation: Option<(State, Vec<String>)>,
    /// The path to a state met again on it: an execution that never ends.
    livelock: Option<Vec<String>>,
    /// The most steps of any execution, start to end.
    longest: u32,
}

fn initial(config: Config) -> State {
    let value = |grant, access, lineage| Value {
        grant,
        access,
        lineage,
    };
    let (versions, issued, revoked) = match config.start {
        Start::Consent => (vec![(value(0, 0, Lineage::Consent), 0)], 1, 0),
        Start::Restored => {
            let restored = Lineage::Refresh {
                origin: 5,
                since: 5,
            };
            (vec![(value(0, 0, restored), 0)], 1, 0)
        }
        Start::Relinked => (
            vec![
                (value(3, 3, Lineage::Consent), -1),
                (value(0, 0, Lineage::Consent), 0),
            ],
            1 | 1 << 3,
            1 << 3,
        ),
    };
    let mut consents = vec![Consent::Start, Consent::Start];
    if config.unlink {
        consents[1] = Consent::Unlink;
    }
    State {
        store: Store {
            versions: Some(versions),
            commits: 0,
        },
        runs: vec![Run::Start; config.runs],
        consents,
        issued,
        revoked,
        truth: Some(0),
        faults_left: config.faults,
        asymmetric: config.repair,
    }
}

/// Access tokens are named after who obtained them, so two orders of the same events end
/// in the same state: run i's refresh, consent i's code exchange.
fn run_access(i: usize) -> u8 {
    10 + i as u8
}

fn consent_access(i: usize) -> u8 {
    20 + i as u8
}

/// Every state one step from `state`, with a label saying what happened.
///
/// Partial-order reduction: a step that touches nothing shared (starting a save, a cut, a
/// consent's answer from Google when no unlink can revoke) commutes with every other step,
/// so when one process has such a step, only its choices there are explored.
fn successors(state: &State, config: Config) -> Vec<(String, State)> {
    for i in 0..state.runs.len() {
        let local = match &state.runs[i] {
            Run::Refreshed { .. } => true,
            Run::Read(_) => !config.unlink,
            _ => false,
        };
        if local {
            let mut next = Vec::new();
            run_steps(state, i, config, &mut next);
            return next;
        }
    }
    for i in 0..state.consents.len() {
        if !config.unlink && matches!(state.consents[i], Consent::Start) {
            let mut next = Vec::new();
            consent_steps(state, i, config, &mut next);
            return next;
        }
    }
    let mut next = Vec::new();
    for i in 0..state.runs.len() {
        run_steps(state, i, config, &mut next);
    }
    for i in 0..state.consents.len() {
        consent_steps(state, i, config, &mut next);
    }
    next
}

/// A write attempt's outcomes: answered; committed with the answer lost; not committed.
/// The last two are faults, allowed while the execution's fault budget lasts. An attempt
/// that fails without committing and is retried is the same as one attempt made later, so
/// that outcome is only explored for the last attempt.
fn attempt_outcomes(state: &State, attempts_left: u8) -> &'static [(&'static str, bool, bool)] {
    const ALL: &[(&str, bool, bool)] = &[
        ("ok", true, true),
        ("committed, answer lost", true, false),
        ("failed", false, false),
    ];
    match (state.faults_left, attempts_left) {
        (0, _) => &ALL[..1],
        (_, 2..) => &ALL[..2],
        _ => ALL,
    }
}

fn run_steps(state: &State, i: usize, config: Config, next: &mut Vec<(String, State)>) {
    let cut = |next: &mut Vec<(String, State)>, label: &str| {
        // The repairing run is the one that finishes.
        if config.repair && i == 1 {
            return;
        }
        let mut s = state.clone();
        s.runs[i] = Run::Done(None);
        next.push((label!(config, "run{i}: cut by its deadline {label}"), s));
    };
    if config.repair && i == 1 && !matches!(state.runs[0], Run::Done(_)) {
        return;
    }
    match &state.runs[i] {
        Run::Done(_) => {}
        Run::Start => {
            let mut s = state.clone();
            s.runs[i] = match s.store.current() {
                Some(seen) => Run::Read(seen),
                None => Run::Done(None),
            };
            next.push((
                label!(config, "run{i}: reads {:?}", state.store.top_value()),
                s,
            ));
        }
        Run::Read(seen) => {
            let (version, value) = (&seen.version, &seen.value);
            cut(next, "before refreshing");
            let mut s = state.clone();
            if state.revoked & (1 << value.grant) != 0 {
                // Google refused the grant read: check that no newer one lies below it.
                s.runs[i] = if config.legacy {
                    Run::Done(None)
                } else {
                    let (save, step) = Save::check(seen.clone());
                    settle(save, step, false)
                };
                next.push((label!(config, "run{i}: refresh answered invalid_grant"), s));
            } else {
                let access = run_access(i);
                let fresh = Value { access, ..*value };
                s.runs[i] = if config.poll {
                    s.store.put(fresh);
                    Run::Poll(fresh)
                } else if config.legacy {
                    Run::Legacy(Legacy::Recheck {
                        version: *version,
                        fresh,
                    })
                } else {
                    Run::Refreshed {
                        read: seen.clone(),
                        fresh,
                    }
                };
                next.push((
                    label!(config, "run{i}: refreshed g{} (a{access})", value.grant),
                    s,
                ));
            }
        }
        Run::Refreshed { read, fresh } => {
            cut(next, "before writing");
            let (save, step) = Save::start(read.clone(), fresh);
            let mut s = state.clone();
            s.runs[i] = Run::Saving {
                save,
                step,
                put: None,
                failed: false,
            };
            next.push((label!(config, "run{i}: starts its save"), s));
        }
        Run::Saving {
            save,
            step,
            put,
            failed,
        } => {
            if config.cut_in_save || (config.repair && i == 0) {
                cut(next, "during its save");
            }
            match step {
                Step::Done(_) => unreachable!("a finished save is Run::Done"),
                Step::Get(asked) => {
                    let mut s = state.clone();
                    let (current, versions) = s.store.get(asked);
                    let mut save = save.clone();
                    let shown = current.as_ref().map(|seen| (seen.version, seen.value));
                    let step = save.on_get(asked, current, versions);
                    s.runs[i] = settle(save, step, *failed);
                    next.push((
                        label!(config, "run{i}: looks {asked:?} (current {shown:?})"),
                        s,
                    ));
                }
                Step::Put(value) => {
                    let attempts_left = put.as_ref().map_or(config.attempts, |p| p.attempts_left);
                    // SSM answers within the save's reserve: it may fail one request of
                    // a save without committing it, not all of them (that is a cut).
                    let outcomes = attempt_outcomes(state, attempts_left)
                        .iter()
                        .filter(|(_, commits, answered)| *commits || *answered || !*failed);
                    for &(outcome, commits, answered) in outcomes {
                        let mut s = state.clone();
                        s.faults_left -= u8::from(!answered);
                        let version = commits.then(|| s.store.put(*value));
                        let failed = *failed || !commits;
                        let mut save = save.clone();
                        s.runs[i] = if answered {
                            let step = save.on_put(version);
                            settle(save, step, failed)
                        } else if attempts_left > 1 {
                            Run::Saving {
                                save,
                                step: step.clone(),
                                put: Some(Putting {
                                    value: *value,
                                    attempts_left: attempts_left - 1,
                                }),
                                failed,
                            }
                        } else {
                            let step = save.on_put(None);
                            settle(save, step, failed)
                        };
                        next.push((
                            label!(config, "run{i}: puts {value:?}: {outcome} ({version:?})"),
                            s,
                        ));
                    }
                }
            }
        }
        Run::Legacy(legacy) => legacy_steps(state, i, legacy, config, next),
        Run::Poll(mine) => {
            let mut s = state.clone();
            if s.store.top_value().map(|(_, value)| value) == Some(*mine) {
                s.runs[i] = Run::Done(Some(Settled::Stored));
            }
            next.push((label!(config, "run{i}: polls for its write {mine:?}"), s));
        }
    }
}

fn settle(save: Save<Value>, step: Step<Value>, failed: bool) -> Run {
    match step {
        Step::Done(settled) => Run::Done(Some(settled)),
        step => Run::Saving {
            save,
            step,
            put: None,
            failed,
        },
    }
}

fn legacy_steps(
    state: &State,
    i: usize,
    legacy: &Legacy,
    config: Config,
    next: &mut Vec<(String, State)>,
) {
    let mut s = state.clone();
    match legacy {
        Legacy::Recheck { version, fresh } => {
            s.runs[i] = match s.store.top_value() {
                Some((now, _)) if now == *version => Run::Legacy(Legacy::Write {
                    version: *version,
                    fresh: *fresh,
                    attempts_left: config.attempts,
                    committed: None,
                }),
                _ => Run::Done(Some(Settled::Superseded)),
            };
            next.push((label!(config, "run{i}: re-checks the version"), s));
        }
        Legacy::Write {
            version,
            fresh,
            attempts_left,
            committed,
        } => {
            for &(outcome, commits, answered) in attempt_outcomes(state, *attempts_left) {
                let mut s = state.clone();
                s.faults_left -= u8::from(!answered);
                let written = if commits {
                    Some(s.store.put(*fresh))
                } else {
                    *committed
                };
                s.runs[i] = if answered {
                    Run::Legacy(Legacy::Restore {
                        version: *version,
                        written: written.unwrap_or(0),
                    })
                } else if *attempts_left > 1 {
                    Run::Legacy(Legacy::Write {
                        version: *version,
                        fresh: *fresh,
                        attempts_left: attempts_left - 1,
                        committed: written,
                    })
                } else {
                    Run::Done(None)
                };
                next.push((
                    label!(config, "run{i}: legacy write {fresh:?}: {outcome}"),
                    s,
                ));
            }
        }
        Legacy::Restore { version, written } => {
            s.runs[i] = if *written > version + 1 {
                match s.store.seen(written - 1).map(|seen| seen.value) {
                    Some(value) => Run::Legacy(Legacy::PutBack {
                        value,
                        attempts_left: config.attempts,
                    }),
                    None => Run::Done(Some(Settled::Stored)),
                }
            } else {
                Run::Done(Some(Settled::Stored))
            };
            next.push((
                label!(config, "run{i}: legacy reads version {}", written - 1),
                s,
            ));
        }
        Legacy::PutBack {
            value,
            attempts_left,
        } => {
            for &(outcome, commits, answered) in attempt_outcomes(state, *attempts_left) {
                let mut s = state.clone();
                s.faults_left -= u8::from(!answered);
                if commits {
                    s.store.put(*value);
                }
                s.runs[i] = if answered {
                    Run::Done(Some(Settled::Healed))
                } else if *attempts_left > 1 {
                    Run::Legacy(Legacy::PutBack {
                        value: *value,
                        attempts_left: attempts_left - 1,
                    })
                } else {
                    Run::Done(None)
                };
                next.push((
                    label!(config, "run{i}: legacy puts back {value:?}: {outcome}"),
                    s,
                ));
            }
        }
    }
}

fn consent_steps(state: &State, i: usize, config: Config, next: &mut Vec<(String, State)>) {
    match &state.consents[i] {
        Consent::Done => {}
        Consent::Unlink => {
            // `gmail-oauth unlink`: Google's revocation ends every grant of the app.
            let mut s = state.clone();
            s.revoked = s.issued;
            s.consents[i] = Consent::Deleting {
                attempts_left: config.attempts,
            };
            next.push((
                label!(config, "consent{i}: unlink revokes every grant at Google"),
                s,
            ));
        }
        Consent::Deleting { attempts_left } => {
            for &(outcome, commits, answered) in attempt_outcomes(state, *attempts_left) {
                let mut s = state.clone();
                s.faults_left -= u8::from(!answered);
                if commits && s.store.versions.is_some() {
                    s.store.versions = None;
                    s.truth = None;
                }
                s.consents[i] = if answered || *attempts_left <= 1 {
                    Consent::Start
                } else {
                    Consent::Deleting {
                        attempts_left: attempts_left - 1,
                    }
                };
                next.push((label!(config, "consent{i}: unlink deletes: {outcome}"), s));
            }
        }
        Consent::Start => {
            let mut s = state.clone();
            let grant = i as u8 + 1;
            s.issued |= 1 << grant;
            let access = consent_access(i);
            let value = Value {
                grant,
                access,
                lineage: Lineage::Consent,
            };
            s.consents[i] = Consent::Writing(Putting {
                value,
                attempts_left: config.consent_attempts,
            });
            next.push((label!(config, "consent{i}: Google grants g{grant}"), s));
        }
        Consent::Writing(Putting {
            value,
            attempts_left,
        }) => {
            for &(outcome, commits, answered) in attempt_outcomes(state, *attempts_left) {
                let mut s = state.clone();
                s.faults_left -= u8::from(!answered);
                if commits {
                    s.store.put(*value);
                    s.truth = Some(value.grant);
                }
                s.consents[i] = if answered || *attempts_left <= 1 {
                    Consent::Done
                } else {
                    Consent::Writing(Putting {
                        value: *value,
                        attempts_left: attempts_left - 1,
                    })
                };
                next.push((label!(config, "consent{i}: puts {value:?}: {outcome}"), s));
            }
            // The callback's deadline may end it after a lost answer, before the retry.
            if *attempts_left < config.consent_attempts {
                let mut s = state.clone();
                s.consents[i] = Consent::Done;
                next.push((label!(config, "consent{i}: cut by its deadline"), s));
            }
        }
    }
}

fn ended(state: &State) -> bool {
    state.runs.iter().all(|r| matches!(r, Run::Done(_)))
        && state.consents.iter().all(|c| matches!(c, Consent::Done))
}

/// The rule, checked where every process has ended.
fn holds(state: &State) -> bool {
    let top = state.store.top_value();
    match (state.truth, top) {
        (Some(grant), Some((_, value))) => value.grant == grant,
        (Some(_), None) => false,
        (None, None) => true,
        // Created again after the unlink by a late write: only with a grant the unlink
        // revoked (the next run reports it as needing re-authorization).
        (None, Some((_, value))) => state.revoked & (1 << value.grant) != 0,
    }
}

/// A state on the depth-first path: its fingerprint, the successors still to visit, which
/// successor of its parent it is, and the longest way to an end found from it so far.
struct Frame {
    fingerprint: u64,
    successors: Vec<(String, State)>,
    index: usize,
    longest: u32,
}

/// In the table of states seen: a state still on the depth-first path.
const ON_PATH: u32 = u32::MAX;

fn explore(config: Config) -> Tally {
    let mut tally = Tally::default();
    let mut settled: std::collections::HashMap<Option<Settled>, usize> = Default::default();
    // States are remembered by a 64-bit fingerprint, as TLC does: a collision (probability
    // about n²/2⁶⁵, 1 in 10⁵ for 20 million states) could only hide a state, never report a
    // false violation. Each maps to its longest way to an end, or ON_PATH while the search
    // is below it (a state reached again then is a cycle: an execution without end).
    let mut seen: HashMap<u64, u32> = HashMap::new();
    let start = initial(config);
    let first = fingerprint(&start);
    seen.insert(first, ON_PATH);
    // Depth-first; each frame remembers which successor of its parent it is, so a
    // violation's path can be replayed with its steps described.
    let mut stack: Vec<Frame> = vec![Frame {
        fingerprint: first,
        successors: successors(&start, config),
        index: 0,
        longest: 0,
    }];
    tally.states = 1;
    let path_to = |stack: &[Frame], index: usize| -> Vec<usize> {
        stack
            .iter()
            .skip(1)
            .map(|frame| frame.index)
            .chain(std::iter::once(index))
            .collect()
    };
    while let Some(frame) = stack.last_mut() {
        let Some((_, state)) = frame.successors.pop() else {
            let done = stack.pop().expect("a frame");
            seen.insert(done.fingerprint, done.longest);
            if let Some(parent) = stack.last_mut() {
                parent.longest = parent.longest.max(done.longest + 1);
            }
            continue;
        };
        let index = frame.successors.len();
        tally.transitions += 1;
        let print = fingerprint(&state);
        if let Some(&longest) = seen.get(&print) {
            if longest == ON_PATH {
                if tally.livelock.is_none() {
                    tally.livelock = Some(replay(config, &path_to(&stack, index)));
                }
            } else {
                frame.longest = frame.longest.max(longest + 1);
            }
            continue;
        }
        tally.states += 1;
        if ended(&state) {
            seen.insert(print, 0);
            frame.longest = frame.longest.max(1);
            tally.ends += 1;
            for run in &state.runs {
                let outcome = match run {
                    Run::Done(outcome) => *outcome,
                    _ => None,
                };
                *settled.entry(outcome).or_default() += 1;
            }
            if !holds(&state) && tally.violation.is_none() {
                let stop = config.legacy || config.cut_in_save;
                tally.violation = Some((state.clone(), replay(config, &path_to(&stack, index))));
                // Where a violation is the expected finding, the first one is enough.
                if stop {
                    break;
                }
            }
            continue;
        }
        seen.insert(print, ON_PATH);
        let next = successors(&state, config);
        stack.push(Frame {
            fingerprint: print,
            successors: next,
            index,
            longest: 0,
        });
    }
    // Unknown (0) when the search stopped at a violation before it was done.
    tally.longest = seen
        .get(&first)
        .copied()
        .filter(|l| *l != ON_PATH)
        .unwrap_or_default();
    tally.settled = settled
        .into_iter()
        .map(|(outcome, n)| {
            let name = outcome.map_or("no save".to_owned(), |s| format!("{s:?}"));
            (name, n)
        })
        .collect();
    tally
}

/// The steps of a path (successor indices from the start), described.
fn replay(config: Config, path: &[usize]) -> Vec<String> {
    let config = Config {
        labels: true,
        ..config
    };
    let mut state = initial(config);
    let mut steps = Vec::new();
    for index in path {
        let (label, next) = successors(&state, config).swap_remove(*index);
        steps.push(label);
        state = next;
    }
    steps
}

/// A state's fingerprint, the same for a state and its mirror image with the two runs
/// swapped (symmetry reduction: the runs are interchangeable but for the names of the
/// access tokens they obtain).
fn fingerprint(state: &State) -> u64 {
    let hash = |state: &State| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        state.hash(&mut hasher);
        hasher.finish()
    };
    let plain = hash(state);
    if state.runs.len() == 2 && !state.asymmetric {
        plain.min(hash(&mirrored(state)))
    } else {
        plain
    }
}

/// `state` with runs 0 and 1 swapped, and the access tokens they obtained renamed.
fn mirrored(state: &State) -> State {
    let swap = |value: &Value| Value {
        access: match value.access {
            a if a == run_access(0) => run_access(1),
            a if a == run_access(1) => run_access(0),
            a => a,
        },
        ..*value
    };
    let seen = |s: &Seen<Value>| Seen {
        value: swap(&s.value),
        ..s.clone()
    };
    let run = |run: &Run| match run {
        Run::Start => Run::Start,
        Run::Read(s) => Run::Read(seen(s)),
        Run::Refreshed { read, fresh } => Run::Refreshed {
            read: seen(read),
            fresh: swap(fresh),
        },
        Run::Saving {
            save,
            step,
            put,
            failed,
        } => Run::Saving {
            save: save.map_values(swap),
            step: match step {
                Step::Put(value) => Step::Put(swap(value)),
                other => other.clone(),
            },
            put: put.as_ref().map(|p| Putting {
                value: swap(&p.value),
                attempts_left: p.attempts_left,
            }),
            failed: *failed,
        },
        // The previous protocol's runs are not renamed: its states are only compared as
        // they are (its check stops at the first violation anyway).
        Run::Legacy(legacy) => Run::Legacy(legacy.clone()),
        Run::Poll(value) => Run::Poll(swap(value)),
        Run::Done(outcome) => Run::Done(*outcome),
    };
    let mut mirror = state.clone();
    mirror.store.versions = state
        .store
        .versions
        .as_ref()
        .map(|versions| versions.iter().map(|(v, at)| (swap(v), *at)).collect());
    mirror.runs = vec![run(&state.runs[1]), run(&state.runs[0])];
    mirror
}

fn report(name: &str, tally: &Tally) {
    println!(
        "{name}: {} states, {} transitions, {} final states, longest execution {}; saves ended {:?}",
        tally.states,
        tally.transitions,
        tally.ends,
        match tally.longest {
            0 => "unknown (the search stopped at the first violation)".to_owned(),
            steps => format!("{steps} steps"),
        },
        tally.settled
    );
    if let Some(path) = &tally.livelock {
        println!("  livelock: this path reaches a state it has already been through:");
        for step in path {
            println!("    {step}");
        }
    }
    if let Some((state, path)) = &tally.violation {
        println!(
            "  counterexample (parameter ends {:?}, newest consent g{:?}):",
            state.store.top_value(),
            state.truth
        );
        for step in path {
            println!("    {step}");
        }
    }
}

/// Lost answers and failed requests per execution: 2 in `make test`, more in `make fuzz`
/// (`GRANT_MODEL_FAULTS`).
fn faults() -> u8 {
    std::env::var("GRANT_MODEL_FAULTS")
        .ok()
        .and_then(|f| f.parse().ok())
        .unwrap_or(2)
}

fn config() -> Config {
    Config {
        runs: 2,
        unlink: false,
        attempts: 2,
        consent_attempts: 2,
        faults: faults(),
        cut_in_save: false,
        repair: false,
        legacy: false,
        poll: false,
        start: Start::Consent,
        labels: false,
    }
}

/// The protocol's guarantees: the rule holds where everything ended, every execution ends
/// (no state met again on its own path), and no save needed its step bound.
fn assert_sound(tally: &Tally) {
    assert!(tally.violation.is_none(), "the rule is broken");
    assert!(tally.livelock.is_none(), "an execution never ends");
    assert!(
        !tally.settled.contains_key("Unfinished"),
        "a save ran out of steps: {:?}",
        tally.settled
    );
    assert!(tally.longest > 0, "{tally:?}");
}

fn assert_reached(tally: &Tally, outcomes: &[&str]) {
    for outcome in outcomes {
        assert!(
            tally.settled.contains_key(*outcome),
            "{outcome} never reached: {:?}",
            tally.settled
        );
    }
}

#[test]
fn two_runs_and_two_consents_keep_the_newest_grant_in_every_interleaving() {
    let tally = explore(config());
    report(
        "2 runs + 2 consents, lost answers and failures, cuts outside the save",
        &tally,
    );
    assert_sound(&tally);
    assert!(tally.ends > 100_000, "{tally:?}");
    assert_reached(&tally, &["Stored", "Superseded", "Healed", "no save"]);
}

#[test]
fn an_unlink_and_a_new_consent_during_two_runs_keep_the_newest_grant() {
    let tally = explore(Config {
        unlink: true,
        ..config()
    });
    report("2 runs + a consent + an unlink then a consent", &tally);
    assert_sound(&tally);
    assert_reached(&tally, &["Healed", "Recreated", "Unlinked", "Superseded"]);
}

#[test]
fn a_save_cut_by_the_deadline_is_repaired_by_the_next_run_that_finishes() {
    let tally = explore(Config {
        unlink: true,
        repair: true,
        ..config()
    });
    report(
        "first run cut anywhere (in its save too), then a second run that finishes",
        &tally,
    );
    assert_sound(&tally);
    assert_reached(&tally, &["Healed", "Stored"]);
}

#[test]
fn the_previous_protocol_loses_the_newest_grant_and_the_model_finds_it() {
    let tally = explore(Config {
        legacy: true,
        ..config()
    });
    report(
        "the previous protocol (re-check, write, put back version - 1)",
        &tally,
    );
    assert!(
        tally.violation.is_some(),
        "the model should find the known bug"
    );
}

#[test]
fn two_saves_in_a_row_cut_by_the_deadline_can_leave_an_older_grant() {
    let tally = explore(Config {
        cut_in_save: true,
        ..config()
    });
    report("both runs cut anywhere, in their saves too", &tally);
    assert!(
        tally.violation.is_some(),
        "why the runs reserve the time for their whole save"
    );
}

#[test]
fn a_restored_token_whose_lineage_names_versions_the_parameter_never_had_is_kept_and_every_save_ends()
 {
    let tally = explore(Config {
        start: Start::Restored,
        ..config()
    });
    report(
        "a restored token (origin 5 at version 1), 2 runs + 2 consents",
        &tally,
    );
    assert_sound(&tally);
    assert_reached(&tally, &["Stored", "Superseded", "Healed"]);
    let unlinked = explore(Config {
        start: Start::Restored,
        unlink: true,
        ..config()
    });
    report(
        "a restored token, 2 runs + a consent + an unlink then a consent",
        &unlinked,
    );
    assert_sound(&unlinked);
}

#[test]
fn an_unlink_after_a_relink_and_a_late_write_at_version_1_with_origin_2_is_found_and_every_save_ends()
 {
    let tally = explore(Config {
        start: Start::Relinked,
        unlink: true,
        ..config()
    });
    report(
        "a re-linked mailbox (grant at version 2), 2 runs + a consent + an unlink then a consent",
        &tally,
    );
    assert_sound(&tally);
    assert_reached(&tally, &["Recreated", "Unlinked", "Stored"]);
}

#[test]
fn a_save_that_polls_until_it_sees_its_own_write_never_ends_and_the_model_finds_it() {
    let tally = explore(Config {
        poll: true,
        ..config()
    });
    report("a naive save polling for its own write", &tally);
    assert!(
        tally.livelock.is_some(),
        "the model should find the polling save's livelock"
    );
}
