//! Where an audit looks: the regions enabled for an account (`account:ListRegions`, a small SDK
//! crate; EC2's `DescribeRegions` would pull in the largest crate of the SDK) and the active
//! accounts of an AWS Organization (`organizations:ListAccounts`).

use aws_sdk_account::types::RegionOptStatus;
use aws_sdk_organizations::types::{AccountState, AccountStatus};
use cmkguard_core::ports::{AwsResult, ListAccounts};
use futures_util::{Stream, StreamExt};

use crate::AwsPorts;
use crate::errors::classify;

/// The regions enabled for the account the client's credentials act in, sorted.
pub async fn enabled_regions(client: &aws_sdk_account::Client) -> AwsResult<Vec<String>> {
    let mut pages = client
        .list_regions()
        .region_opt_status_contains(RegionOptStatus::Enabled)
        .region_opt_status_contains(RegionOptStatus::EnabledByDefault)
        .into_paginator()
        .send();
    let mut regions = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(classify)?;
        regions.extend(
            page.regions()
                .iter()
                .filter_map(|r| r.region_name().map(str::to_owned)),
        );
    }
    regions.sort();
    regions.dedup();
    Ok(regions)
}

/// The active accounts of the caller's organization, sorted (from the management account or a
/// delegated administrator).
pub async fn organization_accounts(
    client: &aws_sdk_organizations::Client,
) -> AwsResult<Vec<String>> {
    let mut pages = std::pin::pin!(organization_pages(client.clone()));
    let mut accounts = Vec::new();
    while let Some(page) = pages.next().await {
        accounts.extend(page?);
    }
    accounts.sort();
    accounts.dedup();
    Ok(accounts)
}

/// The active accounts of the caller's organization, a `ListAccounts` page at a time, in the
/// order the organization lists them (an audit starts on a page's accounts as it arrives).
pub fn organization_pages(
    client: aws_sdk_organizations::Client,
) -> impl Stream<Item = AwsResult<Vec<String>>> {
    let pages = client.list_accounts().into_paginator().send();
    futures_util::stream::unfold(pages, |mut pages| async move {
        let page = pages.next().await?;
        let page = page.map_err(classify).map(|page| {
            page.accounts()
                .iter()
                .filter(|a| is_active(a))
                .filter_map(|a| a.id().map(str::to_owned))
                .collect()
        });
        Some((page, pages))
    })
}

/// `State` replaces `Status` (retired in 2026); older answers carry only `Status`.
fn is_active(account: &aws_sdk_organizations::types::Account) -> bool {
    match (account.state(), account.status()) {
        (Some(state), _) => *state == AccountState::Active,
        (None, Some(status)) => *status == AccountStatus::Active,
        (None, None) => true,
    }
}

impl AwsPorts {
    /// The organization's active accounts, a page at a time (see [`organization_pages`]).
    pub fn organization_pages(&self) -> impl Stream<Item = AwsResult<Vec<String>>> + use<> {
        organization_pages(aws_sdk_organizations::Client::new(self.base()))
    }

    /// The regions enabled in `account` (through the assumed role when it is not the caller's).
    pub async fn enabled_regions(&self, account: &str) -> AwsResult<Vec<String>> {
        let config = self.account_config(account).await?;
        enabled_regions(&aws_sdk_account::Client::new(&config)).await
    }
}

impl ListAccounts for AwsPorts {
    async fn list_accounts(&self) -> AwsResult<Vec<String>> {
        let client = aws_sdk_organizations::Client::new(self.base());
        self.retry().run(|| organization_accounts(&client)).await
    }
}
