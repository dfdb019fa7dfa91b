//! The audit's source: the account-regions to sweep, in output order, as they become known (an
//! organization's accounts page by page, each account's regions once listed). An account is
//! opened here, and it is released here too: its credentials and clients are kept while any of
//! its account-regions is held ([`Open`]).

use std::sync::Arc;

use cmkguard_aws::AwsPorts;
use cmkguard_core::Scope;
use futures_util::future::ready;
use futures_util::stream::{self, Stream, StreamExt};

use crate::progress::Progress;

/// Accounts whose regions are being listed (`AssumeRole`, then `ListRegions`) ahead of the sweep.
pub const ACCOUNTS_AHEAD: usize = 32;

/// Which accounts an audit covers.
pub enum Accounts {
    /// These, in this order.
    Listed(Vec<String>),
    /// Every active account of the organization, in the order `ListAccounts` gives them.
    Organization,
}

/// What the source yields.
pub enum Place<'a> {
    /// An account-region to sweep; its account stays open while this is held.
    Scope(Scope, Arc<Open<'a>>),
    /// An account (or the organization) that could not be listed: the audit is incomplete.
    Unlisted(String),
}

/// An account in use by the audit: released (its credentials and clients dropped) when the last
/// of its account-regions is, swept or not.
pub struct Open<'a> {
    ports: &'a AwsPorts,
    account: String,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.ports.release(&self.account);
    }
}

/// The account-regions of `accounts`: in `regions`, or in every region enabled for each account
/// when `regions` is `None`.
pub fn places<'a>(
    ports: &'a AwsPorts,
    accounts: Accounts,
    regions: Option<Vec<String>>,
    progress: &'a Progress,
) -> impl Stream<Item = Place<'a>> + 'a {
    let ids = match accounts {
        Accounts::Listed(ids) => stream::iter(ids.into_iter().map(Ok)).left_stream(),
        Accounts::Organization => organization(ports).right_stream(),
    };
    ids.map(move |id| open(ports, id, regions.clone(), progress))
        .buffered(ACCOUNTS_AHEAD)
        .flat_map(stream::iter)
}

/// The organization's accounts, page by page; the first failure to list it ends them.
fn organization(ports: &AwsPorts) -> impl Stream<Item = Result<String, String>> + use<> {
    // `None` after the last page: an organization without a single active account is a problem.
    let pages = ports
        .organization_pages()
        .map(Some)
        .chain(stream::once(ready(None)));
    // Whether an account was seen, and whether listing failed.
    pages
        .scan((false, false), |(seen, failed), page| {
            let ids = match page {
                _ if *failed => return ready(None),
                Some(Ok(ids)) => {
                    *seen |= !ids.is_empty();
                    ids.into_iter().map(Ok).collect()
                }
                Some(Err(e)) => {
                    *failed = true;
                    vec![Err(format!("cannot list the organization's accounts: {e}"))]
                }
                None if !*seen => vec![Err(
                    "`ListAccounts` found no active account in the organization".to_owned(),
                )],
                None => Vec::new(),
            };
            ready(Some(stream::iter(ids)))
        })
        .flatten()
}

/// Opens the account `id` names, and lists its account-regions.
async fn open<'a>(
    ports: &'a AwsPorts,
    id: Result<String, String>,
    regions: Option<Vec<String>>,
    progress: &Progress,
) -> Vec<Place<'a>> {
    let account = match id {
        Ok(account) => Arc::new(Open { ports, account }),
        Err(problem) => return vec![Place::Unlisted(problem)],
    };
    let regions = match regions {
        Some(regions) => regions,
        None => match ports.enabled_regions(&account.account).await {
            Ok(regions) => regions,
            Err(e) => {
                let id = &account.account;
                return vec![Place::Unlisted(format!(
                    "cannot list the regions enabled in `{id}`: {e}"
                ))];
            }
        },
    };
    progress.scopes_found(regions.len());
    regions
        .into_iter()
        .map(|region| Place::Scope(Scope::new(&account.account, region), account.clone()))
        .collect()
}
