//! A REST client for the benchmark's app, signed as its admin.

use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use tagcast_bench::synth::SDKAPPID;

use crate::server::KEY;

#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    query: String,
}

impl Api {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let sig = sign("administrator");
        Ok(Self {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .tcp_nodelay(true)
                .build()?,
            base: base.trim_end_matches('/').to_string(),
            query: format!(
                "sdkappid={SDKAPPID}&identifier=administrator&usersig={sig}&random=1&contenttype=json"
            ),
        })
    }

    /// POSTs `body` to `/v4/{path}`; the reply and how long it took. An error unless OK.
    pub async fn call(&self, path: &str, body: &Value) -> anyhow::Result<(Value, Duration)> {
        let url = format!("{}/v4/{path}?{}", self.base, self.query);
        let body = body.to_string();
        let started = Instant::now();
        let reply: Value = self
            .client
            .post(url)
            .body(body)
            .send()
            .await?
            .json()
            .await?;
        let took = started.elapsed();
        if reply["ActionStatus"] != "OK"
            || reply
                .get("ErrorList")
                .is_some_and(|l| l != &Value::Array(vec![]))
        {
            bail!("{path} failed: {reply}");
        }
        Ok((reply, took))
    }
}

impl Api {
    /// Imports `names` with `multiaccount_import`, 100 per request, 8 requests at a time; an
    /// error when a request fails or refuses an account.
    pub async fn import(&self, names: &[String]) -> anyhow::Result<()> {
        futures_util::stream::iter(names.chunks(100))
            .map(|chunk| async move {
                let (reply, _) = self
                    .call(
                        "im_open_login_svc/multiaccount_import",
                        &json!({ "Accounts": chunk }),
                    )
                    .await?;
                if reply
                    .get("FailAccounts")
                    .is_some_and(|f| f.as_array().is_none_or(|f| !f.is_empty()))
                {
                    bail!("multiaccount_import failed: {reply}");
                }
                Ok(())
            })
            .buffer_unordered(8)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

/// A UserSig of `identifier` for the benchmark's app, valid a day.
pub fn sign(identifier: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    tagcast_usersig::sign(SDKAPPID, KEY, identifier, 86_400, now)
}
