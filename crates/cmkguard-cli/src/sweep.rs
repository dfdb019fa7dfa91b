//! The audit's work: one account-region through the engine's sweep, what it found written into
//! that account-region's lane (its records in listing order, then how it ended).

use cmkguard_aws::AwsPorts;
use cmkguard_core::event::EventMeta;
use cmkguard_core::sweep::{Limits, ScopeReport, sweep_scope};
use cmkguard_core::{Context, Guard, Record, Scope};

use crate::order::Lane;
use crate::progress::Progress;
use crate::scopes::Place;

/// What the sweeps found, in output order. Boxed: each lane's queue makes room for 32 at once
/// when it opens, and most account-regions have a few secrets or none.
pub enum Found {
    Record(Box<Record>),
    /// An account-region was swept (to its end, or as far as it went).
    Done(Box<(Scope, ScopeReport)>),
    /// An account (or the organization) that could not be listed.
    Unlisted(String),
}

/// What every sweep of an audit shares.
pub struct Sweeper<'a> {
    pub guard: &'a Guard<AwsPorts>,
    pub meta: &'a EventMeta,
    pub ctx: &'a Context,
    pub progress: &'a Progress,
}

impl Sweeper<'_> {
    /// Sweeps `place` into `lane`. Its account stays open until the sweep ends.
    pub async fn sweep(&self, place: Place<'_>, lane: Lane<Found>) {
        let (scope, _open) = match place {
            Place::Scope(scope, open) => (scope, open),
            Place::Unlisted(problem) => return lane.send(Found::Unlisted(problem)),
        };
        let mut found = |record| {
            self.progress.secret();
            lane.send(Found::Record(Box::new(record)));
        };
        let parallel = Limits::default().secrets;
        let report = sweep_scope(
            self.guard, &scope, self.meta, self.ctx, parallel, &mut found,
        )
        .await;
        self.progress.scope_done();
        lane.send(Found::Done(Box::new((scope, report))));
    }
}
