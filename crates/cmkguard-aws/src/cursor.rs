//! The `SweepCursor` port: where a sweep over many accounts left off, as one SSM parameter in the
//! function's own account and region. Parameter Store is free for standard parameters and needs
//! nothing deployed beforehand (`PutParameter` creates it).

use aws_sdk_ssm::types::ParameterType;
use aws_types::region::Region;
use cmkguard_core::Scope;
use cmkguard_core::ports::{AwsResult, SweepCursor};

use crate::AwsPorts;
use crate::errors::classify;

/// The parameter's name (the templates grant `ssm:GetParameter` and `ssm:PutParameter` on it).
pub const CURSOR_PARAMETER: &str = "/cmkguard/sweep-cursor";

/// The value that says the last sweep finished (a parameter cannot be empty).
const FINISHED: &str = "-";

impl AwsPorts {
    fn ssm(&self, scope: &Scope) -> aws_sdk_ssm::Client {
        let config = aws_sdk_ssm::config::Builder::from(self.base())
            .region(Region::new(scope.region.clone()))
            .build();
        aws_sdk_ssm::Client::from_conf(config)
    }
}

impl SweepCursor for AwsPorts {
    async fn load_cursor(&self, scope: &Scope) -> AwsResult<Option<String>> {
        let ssm = self.ssm(scope);
        let out = self
            .retry()
            .run(|| async {
                match ssm.get_parameter().name(CURSOR_PARAMETER).send().await {
                    Ok(out) => Ok(Some(out)),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_parameter_not_found()) =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(classify(e)),
                }
            })
            .await?;
        Ok(out
            .as_ref()
            .and_then(|o| o.parameter())
            .and_then(|p| p.value())
            .filter(|v| cmkguard_core::arn::is_account_id(v))
            .map(str::to_owned))
    }

    async fn save_cursor(&self, scope: &Scope, next: Option<&str>) -> AwsResult<()> {
        let ssm = self.ssm(scope);
        self.retry()
            .run(|| async {
                ssm.put_parameter()
                    .name(CURSOR_PARAMETER)
                    .value(next.unwrap_or(FINISHED))
                    .r#type(ParameterType::String)
                    .overwrite(true)
                    .description("cmkguard: the account the next scheduled sweep starts with")
                    .send()
                    .await
                    .map_err(classify)
            })
            .await?;
        Ok(())
    }
}
