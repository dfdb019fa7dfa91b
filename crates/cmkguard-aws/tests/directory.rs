//! Listing regions and organization accounts at the wire (moto has no `account:ListRegions`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use aws_smithy_mocks::{RuleMode, mock, mock_client};
use cmkguard_aws::enabled_regions;
use cmkguard_core::AwsError;
use serde_json::json;

#[tokio::test]
async fn enabled_regions_asks_for_enabled_ones_and_follows_pages() {
    let first = mock!(aws_sdk_account::Client::list_regions)
        .match_requests(|r| {
            r.next_token().is_none()
                && r.region_opt_status_contains().len() == 2
                && r.region_opt_status_contains().iter().all(|s| {
                    matches!(
                        s,
                        aws_sdk_account::types::RegionOptStatus::Enabled
                            | aws_sdk_account::types::RegionOptStatus::EnabledByDefault
                    )
                })
        })
        .sequence()
        .http_status(
            200,
            Some(json!({"Regions": [{"RegionName": "us-west-2", "RegionOptStatus": "ENABLED_BY_DEFAULT"},
                                     {"RegionName": "eu-south-1", "RegionOptStatus": "ENABLED"}],
                        "NextToken": "t2"}).to_string()),
        )
        .build();
    let second = mock!(aws_sdk_account::Client::list_regions)
        .match_requests(|r| r.next_token() == Some("t2"))
        .sequence()
        .http_status(
            200,
            Some(json!({"Regions": [{"RegionName": "us-east-1", "RegionOptStatus": "ENABLED_BY_DEFAULT"}]}).to_string()),
        )
        .build();
    let client = mock_client!(aws_sdk_account, RuleMode::MatchAny, [&first, &second]);
    let regions = enabled_regions(&client).await.unwrap();
    assert_eq!(regions, ["eu-south-1", "us-east-1", "us-west-2"]);
    assert_eq!(first.num_calls() + second.num_calls(), 2);
}

#[tokio::test]
async fn enabled_regions_denied_is_access_denied() {
    let denied = mock!(aws_sdk_account::Client::list_regions)
        .sequence()
        .http_status(
            403,
            Some(json!({"__type": "AccessDeniedException", "message": "no"}).to_string()),
        )
        .build();
    let client = mock_client!(aws_sdk_account, RuleMode::MatchAny, [&denied]);
    let err = enabled_regions(&client).await.unwrap_err();
    assert!(matches!(err, AwsError::AccessDenied(_)), "{err}");
}
