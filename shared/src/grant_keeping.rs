//! The grant-keeping protocol: how a refreshed token is written back to a Parameter Store
//! parameter without ever leaving an older grant on top of a newer one.
//!
//! # The rule
//! Across any interleaving of scheduled runs and consents on one mailbox, where any request
//! may commit while its answer is lost (and the SDK retries it) and the parameter may be
//! deleted and created again (`unlink`, then a new consent), the parameter ends holding the
//! grant of the consent whose write committed last, or a refresh of that grant.
//!
//! # Why it needs a protocol
//! Parameter Store has no compare-and-swap: `PutParameter` with `Overwrite` always wins. A
//! run reads the token, refreshes it at Google, writes it back; a consent that commits in
//! between is hidden by that write. Nothing can stop the write, so the run repairs after it.
//!
//! # How
//! - Every value this project writes says where its grant comes from (the `gmail_oauth` key
//!   of the token JSON, which google-auth ignores): a consent's value is a new grant; a
//!   run's value is a refresh of the grant a consent wrote at version `origin`; a heal is a
//!   copy of such a value put back on top. A value without the key (pythonic_gmail, a person)
//!   counts as a consent at its own version.
//! - A run writes its refreshed value, then reads, in one `GetParameters` call, the current
//!   value and every version since the one it read ([`Selector::Version`]; versions are
//!   immutable, so chunks can be combined). The newest grant visible is the one with the
//!   highest origin; an origin is believed only when that version holds a consent of the
//!   same grant, which also unmasks a write that survived a delete (`unlink`).
//! - If the current value does not hold that grant, the run puts it back (a heal), and looks
//!   again: a consent that landed meanwhile is then visible, and the loop repeats.
//!
//! A run that has read version `v` and written `v + 1` needs exactly one verification call:
//! `[current, v]`. Only a race costs more.
//!
//! # What the deployment must give
//! A run must not stop between its write and the end of its verification (else a stale
//! write can stay on top). The runs reserve time for the whole sequence and never start a
//! write they cannot finish (`SECURITY.md`); `tests/tests/grant_model.rs` checks every
//! interleaving both with and without this guarantee.
//!
//! This module does no I/O: it says what to put and what to get next ([`Step`]), and the
//! adapter (SSM, or the model checker's Parameter Store) does it.

use std::collections::BTreeMap;

/// A Parameter Store version (1 for a new parameter, +1 for every write).
pub type Version = i64;

/// Parameter Store keeps the last 100 versions of a parameter.
pub const HISTORY_LIMIT: Version = 100;

/// Most heals in one save. Each one follows a write that landed during the previous one (a
/// consent, or another run's heal from an older look), so the bound is not reached in
/// practice; past it, the next run's save repairs what is left.
pub const MAX_HEALS: u32 = 8;

/// Most versions one `GetParameters` call can ask for (the call takes 10 names, one of
/// which is the current value).
pub const VERSIONS_PER_CALL: usize = 9;

/// Most steps (writes and looks) of one save, a bound no execution the model checker
/// explores comes near: every heal, each with a write and the looks that read a whole
/// history of [`HISTORY_LIMIT`] versions, [`VERSIONS_PER_CALL`] at a time. Past it the
/// save ends [`Settled::Unfinished`] instead of asking Parameter Store again.
pub const MAX_STEPS: u32 =
    (MAX_HEALS + 1) * (2 + HISTORY_LIMIT as u32 / VERSIONS_PER_CALL as u32 + 1);

/// Where a stored value's grant comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lineage {
    /// Written by a consent: a grant of its own.
    Consent,
    /// Written by something that does not say (pythonic_gmail, an operator): counted as a
    /// consent at its own version.
    Foreign,
    /// A refresh of the grant a consent wrote at version `origin`, by a run that read
    /// version `since`.
    Refresh { origin: Version, since: Version },
    /// A copy of the grant a consent wrote at `origin`, put back over a stale write by a run
    /// that read version `since`.
    Heal { origin: Version, since: Version },
}

impl Lineage {
    /// The consent version this value's grant comes from, for a refresh or a heal.
    pub fn origin(self) -> Option<Version> {
        match self {
            Lineage::Refresh { origin, .. } | Lineage::Heal { origin, .. } => Some(origin),
            Lineage::Consent | Lineage::Foreign => None,
        }
    }

    /// The version its writer had read: what the writer's own verification covered starts
    /// after it, so a reader re-checks from there (a writer stopped before its check is
    /// repaired by the next one).
    pub fn since(self) -> Option<Version> {
        match self {
            Lineage::Refresh { since, .. } | Lineage::Heal { since, .. } => Some(since),
            Lineage::Consent | Lineage::Foreign => None,
        }
    }

    /// Whether a value with this lineage can have been written at `version` by this
    /// protocol: a refresh or heal names versions before its own (its writer read `since`
    /// and wrote after it; its grant's consent came before it). One that names `version`
    /// or later was written into a parameter that has since been deleted and created again
    /// (an `unlink` after a re-link, then a run's late write), or was copied or restored by
    /// hand: it carries no version history this parameter has.
    pub fn plausible_at(self, version: Version) -> bool {
        match (self.origin(), self.since()) {
            (Some(origin), Some(since)) => {
                (1..version).contains(&origin) && (1..version).contains(&since)
            }
            _ => true,
        }
    }
}

/// What the protocol needs to know about a stored value.
pub trait Record: Clone + PartialEq {
    type Grant: PartialEq;
    fn lineage(&self) -> Lineage;
    /// The grant (refresh token) held, if the value is a readable token at all.
    fn grant(&self) -> Option<Self::Grant>;
    /// The same value with another lineage.
    fn with_lineage(&self, lineage: Lineage) -> Self;
}

/// What to read: the current value, or one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    Current,
    Version(Version),
}

/// The next thing the adapter must do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step<R> {
    /// `PutParameter` (overwrite) with this value; answer with [`Save::on_put`].
    Put(R),
    /// One `GetParameters` call for these selectors; answer with [`Save::on_get`].
    Get(Vec<Selector>),
    /// Finished.
    Done(Settled),
}

/// How a save ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Settled {
    /// The parameter holds the grant this run wrote (or the same grant, refreshed by another).
    Stored,
    /// A newer grant is on top (a consent during the run): nothing to do.
    Superseded,
    /// This run's write hid a newer grant; it was put back on top.
    Healed,
    /// The parameter was deleted (unlinked) after this run's write.
    Unlinked,
    /// The parameter was deleted and this run's write created it again, with a grant that
    /// the unlink revoked. It is left for the next run to report (a delete here could
    /// remove a consent that lands at the same moment).
    Recreated,
    /// Consents kept landing while this run healed; the next run repairs.
    GaveUp,
    /// The save took more than [`MAX_STEPS`] steps, or its time was up, before its checks
    /// settled: the next run's check looks again (it re-checks from the version this run
    /// read).
    Unfinished,
    /// The write never landed (refused, or failed every attempt): the parameter holds the
    /// grant that was read, unchanged, and the next run refreshes again.
    NotWritten,
}

/// One version as read: its number, when it was written (Parameter Store's
/// `LastModifiedDate`, in any unit that grows), and its value.
///
/// The number alone does not identify a version: after a delete, numbers start again at 1,
/// and a retried write can put the very same value at the same number in the new parameter.
/// Number and time together do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Seen<R> {
    pub version: Version,
    pub written_at: i64,
    pub value: R,
}

/// One run's save of a refreshed value, as a state machine.
///
/// Two saves are equal when they know the same: the count of steps taken is left out
/// ([`StepCount`]), so a save that asks the same again without learning anything is the
/// same state (a livelock the model checker reports), not a new one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Save<R> {
    read: Seen<R>,
    /// Every value this save wrote (the refresh, then heals): its own versions are found by
    /// value, since a lost answer leaves them unnumbered.
    mine: Vec<R>,
    /// Versions read: what they hold, or `None` where the version is gone.
    known: BTreeMap<Version, Option<Seen<R>>>,
    /// The last look at the current value (`None` until looked, or after a write).
    current: Option<Option<Seen<R>>>,
    last_top: Option<Version>,
    heals: u32,
    /// Steps handed out so far (bounded by [`MAX_STEPS`]).
    steps: StepCount,
}

/// A count that takes no part in a save's identity: every two are equal.
#[derive(Debug, Clone, Copy, Default)]
struct StepCount(u32);

impl PartialEq for StepCount {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for StepCount {}

impl std::hash::Hash for StepCount {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

impl<R: Record> Save<R> {
    /// A save of `fresh` (the value `read`, refreshed): the first step is its write, marked
    /// as a refresh of the grant the read value descends from.
    ///
    /// A value read at version 1 whose lineage is not [plausible](Lineage::plausible_at)
    /// there counts as a consent at version 1 (as a value without lineage does).
    pub fn start(read: Seen<R>, fresh: &R) -> (Save<R>, Step<R>) {
        let origin = base_lineage(&read).origin().unwrap_or(read.version);
        let value = fresh.with_lineage(Lineage::Refresh {
            origin,
            since: read.version,
        });
        let mut save = Save {
            read,
            mine: vec![value.clone()],
            known: BTreeMap::new(),
            current: None,
            last_top: None,
            heals: 0,
            steps: StepCount::default(),
        };
        let step = save.counted(Step::Put(value));
        (save, step)
    }

    /// A check without a write, for a run that Google refused the grant it read: if a run
    /// stopped before its own check left that grant on top of a newer one, the newer one is
    /// put back (`Done(Healed)`); `Done(Superseded)` means a newer grant is already on top;
    /// `Done(Stored)` means the grant read really is the newest.
    pub fn check(read: Seen<R>) -> (Save<R>, Step<R>) {
        let mut save = Save {
            read,
            mine: Vec::new(),
            known: BTreeMap::new(),
            current: None,
            last_top: None,
            heals: 0,
            steps: StepCount::default(),
        };
        let step = save.next();
        let step = save.counted(step);
        (save, step)
    }

    /// The write's answer: its version, or `None` when it failed or its answer was lost (it
    /// may have committed all the same). Either way the next step is to look.
    pub fn on_put(&mut self, _version: Option<Version>) -> Step<R> {
        self.current = None;
        let step = self.next();
        self.counted(step)
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u32 {
        self.steps.0
    }

    /// `step`, counted against [`MAX_STEPS`]: past the bound, the save ends unfinished.
    fn counted(&mut self, step: Step<R>) -> Step<R> {
        if matches!(step, Step::Done(_)) {
            return step;
        }
        if self.steps.0 >= MAX_STEPS {
            return Step::Done(Settled::Unfinished);
        }
        self.steps.0 += 1;
        step
    }

    /// One `GetParameters` answer to `asked`: the current version (if the parameter
    /// exists) and the versions found (a version asked for and not found does not exist).
    pub fn on_get(
        &mut self,
        asked: &[Selector],
        current: Option<Seen<R>>,
        versions: Vec<Seen<R>>,
    ) -> Step<R> {
        let top = current.as_ref().map(|seen| seen.version);
        let found: BTreeMap<Version, &Seen<R>> = versions
            .iter()
            .chain(current.as_ref())
            .map(|seen| (seen.version, seen))
            .collect();
        // A version that changed, or vanished while still kept, or a parameter that shrank,
        // means it was deleted and written again: nothing read before is its any more.
        let changed = found
            .iter()
            .any(|(v, now)| matches!(self.known.get(v), Some(Some(before)) if before != *now));
        let vanished = asked.iter().any(|selector| {
            matches!(selector, Selector::Version(v)
                if matches!(self.known.get(v), Some(Some(_)))
                    && !found.contains_key(v)
                    && top.is_some_and(|top| readable(*v, top)))
        });
        let shrank = match (self.last_top, top) {
            (Some(last), Some(top)) => top < last,
            (Some(_), None) => true,
            _ => false,
        };
        if changed || vanished || shrank {
            self.known.clear();
        }
        for selector in asked {
            // A version at or below the current one that is not found is gone for good
            // (past the history kept, or deleted); one above it may still come.
            if let Selector::Version(v) = selector
                && top.is_some_and(|top| *v <= top)
            {
                self.known.entry(*v).or_insert(None);
            }
        }
        for seen in versions.into_iter().chain(current.clone()) {
            self.known.insert(seen.version, Some(seen));
        }
        if let Some(top) = top {
            self.last_top = Some(top);
        }
        self.current = Some(current);
        let step = self.next();
        self.counted(step)
    }

    fn next(&mut self) -> Step<R> {
        let Some(current) = self.current.clone() else {
            return Step::Get(self.first_look());
        };
        let Some(top) = current else {
            return Step::Done(Settled::Unlinked);
        };
        let mut wanted = self.still_wanted(top.version);
        if !wanted.is_empty() {
            // The newest version already read comes along, to notice a delete in between.
            if wanted.len() < VERSIONS_PER_CALL && !wanted.contains(&top.version) {
                wanted.push(top.version);
            }
            return Step::Get(
                std::iter::once(Selector::Current)
                    .chain(wanted.into_iter().map(Selector::Version))
                    .collect(),
            );
        }
        self.decide(top.version, &top.value)
    }

    /// The first look after a write: the current value, the version read (is it still
    /// there?), the origin of the value read (does it hold that grant?) and the versions
    /// since its writer's read. Without a race this is all there is to read.
    fn first_look(&self) -> Vec<Selector> {
        let mut versions: Vec<Version> = Vec::with_capacity(VERSIONS_PER_CALL);
        let after = match self.last_top {
            None => {
                versions.push(self.read.version);
                if let Some(origin) = base_lineage(&self.read).origin()
                    && (1..self.read.version).contains(&origin)
                {
                    versions.push(origin);
                }
                self.checked_from()
            }
            // After a heal: the last version seen (to notice a delete) and what may have
            // landed since.
            Some(top) => {
                versions.push(top);
                top + 1
            }
        };
        let room = VERSIONS_PER_CALL - versions.len();
        let already = versions.clone();
        versions.extend((after..).filter(|v| !already.contains(v)).take(room));
        versions.sort_unstable();
        versions.dedup();
        std::iter::once(Selector::Current)
            .chain(versions.into_iter().map(Selector::Version))
            .collect()
    }

    /// The first version this save checks when the parameter is the one it read: the one
    /// after its writer's read, which that writer's own check covered only if it finished.
    fn checked_from(&self) -> Version {
        let since = base_lineage(&self.read)
            .since()
            .unwrap_or(self.read.version);
        since.clamp(0, self.read.version) + 1
    }

    /// Versions not read yet that the decision needs, at most [`VERSIONS_PER_CALL`].
    fn still_wanted(&self, top: Version) -> Vec<Version> {
        let mut needed: Vec<Version> = Vec::new();
        if self.read.version <= top {
            needed.push(self.read.version);
        }
        needed.extend(base_lineage(&self.read).origin());
        let lo = self.window_start(top);
        needed.extend(lo..=top);
        let origins: Vec<Version> = self
            .window(lo, top)
            .filter_map(|(_, value)| value.lineage().origin())
            .collect();
        needed.extend(origins);
        needed.sort_unstable();
        needed.dedup();
        needed
            .into_iter()
            .filter(|v| readable(*v, top) && !self.known.contains_key(v))
            .take(VERSIONS_PER_CALL)
            .collect()
    }

    /// The first version that may hold a grant this run has not seen: [`Self::checked_from`]
    /// when the parameter is still the one read and the value read is believed, else the
    /// first version of the parameter.
    fn window_start(&self, top: Version) -> Version {
        let same = match self.known.get(&self.read.version) {
            Some(Some(seen)) => *seen == self.read,
            Some(None) => false,
            // Not read yet (it is wanted): assume so until it is.
            None => self.read.version <= top,
        };
        let origin_unread = base_lineage(&self.read)
            .origin()
            .is_some_and(|o| readable(o, top) && !self.known.contains_key(&o));
        let believed = origin_unread
            || self
                .authority(self.read.version, &self.read.value, top)
                .is_some();
        if same && believed {
            self.checked_from()
        } else {
            1
        }
    }

    /// The values known from `lo` to `top` (none when `lo` is past `top`).
    fn window(&self, lo: Version, top: Version) -> impl Iterator<Item = (Version, &R)> {
        (lo <= top)
            .then(|| self.known.range(lo..=top))
            .into_iter()
            .flatten()
            .filter_map(|(version, seen)| seen.as_ref().map(|seen| (*version, &seen.value)))
    }

    /// The origin a value claims, checked: a consent (or foreign value) is its own origin; a
    /// refresh or heal names one, believed only if that version holds a consent of the same
    /// grant, or is no longer kept (then it is older than anything this run could hide).
    /// A value that is not a readable token, or whose lineage cannot be true where it is
    /// ([`counted_lineage`]), has no authority.
    fn authority(&self, version: Version, value: &R, top: Version) -> Option<Version> {
        value.grant()?;
        let lineage = counted_lineage(version, value, &self.mine)?;
        let Some(origin) = lineage.origin() else {
            return Some(version);
        };
        if origin < 1 || origin > top {
            return None;
        }
        if !readable(origin, top) {
            return Some(origin);
        }
        match self.known.get(&origin) {
            Some(Some(source))
                if counted_lineage(origin, &source.value, &self.mine)
                    .is_some_and(|l| l.origin().is_none())
                    && source.value.grant() == value.grant() =>
            {
                Some(origin)
            }
            _ => None,
        }
    }

    fn decide(&mut self, top: Version, top_value: &R) -> Step<R> {
        if top_value.grant().is_none() {
            // Someone put a value that is not a token on top: not ours to overwrite.
            return Step::Done(Settled::Superseded);
        }
        let lo = self.window_start(top);
        // The newest grant in sight: the highest believed origin among the versions from
        // `lo` (the value read among them, when it is still the parameter's); the latest
        // copy of it is the one to put back.
        let mut newest: Option<(Version, Version)> = None;
        for (version, value) in self.window(lo, top) {
            if let Some(origin) = self.authority(version, value, top)
                && newest.is_none_or(|best| (origin, version) > best)
            {
                newest = Some((origin, version));
            }
        }
        let Some((origin, source)) = newest.and_then(|(origin, version)| {
            let source = self.known.get(&version)?.as_ref()?.value.clone();
            Some((origin, source))
        }) else {
            // Nothing since a delete holds a grant a consent wrote: a stale write (this
            // run's or another's) created the parameter again.
            return Step::Done(Settled::Recreated);
        };
        if top_value.grant() == source.grant() {
            // A check (no write) is "ours" when the grant read is still the newest.
            let ours = if self.mine.is_empty() {
                self.read.value.grant() == source.grant()
            } else {
                self.mine.iter().any(|mine| mine.grant() == source.grant())
            };
            let landed = self.mine.is_empty()
                || self
                    .window(lo, top)
                    .any(|(_, value)| self.mine.contains(value));
            return Step::Done(match (self.heals > 0, ours, landed) {
                (true, _, _) => Settled::Healed,
                (false, true, true) => Settled::Stored,
                (false, true, false) => Settled::NotWritten,
                (false, false, _) => Settled::Superseded,
            });
        }
        if self.heals >= MAX_HEALS {
            return Step::Done(Settled::GaveUp);
        }
        self.heals += 1;
        let heal = source.with_lineage(Lineage::Heal {
            origin,
            since: self.read.version,
        });
        self.mine.push(heal.clone());
        self.current = None;
        Step::Put(heal)
    }
}

/// The lineage a value at `version` is counted with, or `None` when it cannot be believed.
///
/// A plausible lineage ([`Lineage::plausible_at`]) is counted as it is. One that names
/// `version` or later was written into a parameter deleted and created again, or copied by
/// hand: at version 1, where nothing older exists that it could hide, it counts as a consent
/// at version 1 (a token restored into a new parameter, or a revoked grant a run wrote back
/// after an unlink, which Google then refuses), unless this save wrote it itself (then it is
/// this save's late write after an unlink: `Recreated`); anywhere else it may stand on top
/// of a newer grant (a late write after an unlink and a new consent), and is not believed.
fn counted_lineage<R: Record>(version: Version, value: &R, mine: &[R]) -> Option<Lineage> {
    let lineage = value.lineage();
    if lineage.plausible_at(version) {
        Some(lineage)
    } else if version == 1 && !mine.contains(value) {
        Some(Lineage::Foreign)
    } else {
        None
    }
}

/// The lineage of the value a save read, for what to read and what to write: as counted,
/// or, when it cannot be believed, as it says (its origin is looked at, never believed).
fn base_lineage<R: Record>(read: &Seen<R>) -> Lineage {
    counted_lineage(read.version, &read.value, &[]).unwrap_or(read.value.lineage())
}

impl<R: Clone> Save<R> {
    /// The same save with every value passed through `f`: a model checker that treats two
    /// runs as interchangeable renames one run's values to compare states.
    pub fn map_values(&self, f: impl Fn(&R) -> R) -> Save<R> {
        let seen = |s: &Seen<R>| Seen {
            version: s.version,
            written_at: s.written_at,
            value: f(&s.value),
        };
        Save {
            read: seen(&self.read),
            mine: self.mine.iter().map(&f).collect(),
            known: self
                .known
                .iter()
                .map(|(v, s)| (*v, s.as_ref().map(seen)))
                .collect(),
            current: self.current.as_ref().map(|c| c.as_ref().map(seen)),
            last_top: self.last_top,
            heals: self.heals,
            steps: self.steps,
        }
    }
}

/// Whether version `v` can be read when `top` is the newest: it exists (a version above
/// `top` does not, yet) and Parameter Store still keeps it.
fn readable(v: Version, top: Version) -> bool {
    v >= 1 && v <= top && v > top - HISTORY_LIMIT
}
