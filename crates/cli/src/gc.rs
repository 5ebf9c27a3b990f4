//! `stacking gc --older-than DURATION`: deletes the objects of runs whose
//! driver died before it could (SIGKILL, a lost node), and of calls made
//! without a run id (which nothing else deletes). Every key a function
//! writes lives under `run-<32 hex digits>/`; a run prefix whose newest
//! object is older than the given age is deleted whole. Keys outside run
//! prefixes (anything else in the bucket) are never touched.
//!
//! A run that may still be live is never touched: an age shorter than the
//! longest a run or a call can last ([`GcSettings::youngest_safe_age`]) is refused.
//!
//! The same with an S3 lifecycle rule instead (ages in whole days):
//! `aws s3api put-bucket-lifecycle-configuration --bucket B --lifecycle-configuration
//! '{"Rules":[{"ID":"stacking-runs","Status":"Enabled","Filter":{"Prefix":"run-"},"Expiration":{"Days":1}}]}'`

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};
use stacking_service::settings::{
    parse_seconds, DEFAULT_COMPUTE_BUDGET, DEFAULT_INVOCATION_TIMEOUT,
};
use stacking_service::Transfer;
use stacking_storage::BlobStore;

/// What `gc` reads of the environment: which store, and how long a run or
/// a call may last.
#[derive(Debug, Clone, PartialEq)]
pub struct GcSettings {
    /// `TRANSFER_TYPE`: Redis with ELASTICACHE, else S3.
    pub transfer: Transfer,
    /// `INVOCATION_TIMEOUT_S`: the longest a driver's run lasts.
    pub invocation_timeout: Duration,
    /// `COMPUTE_BUDGET_S`: with its 60 s of slack, the longest a worker's
    /// call without a deadline lasts.
    pub compute_budget: Duration,
}

impl GcSettings {
    /// Reads the three variables through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let seconds = |var: &'static str, default: Duration| -> Result<Duration> {
            Ok(match get(var) {
                Some(v) => parse_seconds(var, &v)?,
                None => default,
            })
        };
        Ok(Self {
            transfer: match get("TRANSFER_TYPE") {
                Some(v) => Transfer::parse("TRANSFER_TYPE", &v)?,
                None => Transfer::S3,
            },
            invocation_timeout: seconds("INVOCATION_TIMEOUT_S", DEFAULT_INVOCATION_TIMEOUT)?,
            compute_budget: seconds("COMPUTE_BUDGET_S", DEFAULT_COMPUTE_BUDGET)?,
        })
    }

    /// The shortest age that cannot reach a live run: the longest a run
    /// (`INVOCATION_TIMEOUT_S`) or a worker's call (`COMPUTE_BUDGET_S` and
    /// the 60 s every request bound adds) can write for, and a minute's
    /// grace for writes in flight and clocks that differ.
    pub fn youngest_safe_age(&self) -> Duration {
        self.invocation_timeout
            .max(self.compute_budget + REQUEST_SLACK)
            + GRACE
    }
}

/// What a request bound adds to its budget (see the server's request bound).
const REQUEST_SLACK: Duration = Duration::from_secs(60);
/// Beyond the longest run: writes in flight and clock differences.
const GRACE: Duration = Duration::from_secs(60);

/// An age: `90s`, `15m`, `2h`, `7d`, `1h 30m` (humantime), or plain seconds.
pub fn parse_age(text: &str) -> Result<Duration> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Duration::from_secs(text.parse()?));
    }
    humantime::parse_duration(text).map_err(|e| {
        anyhow::anyhow!(
            "--older-than {:?}: {e}; expected a duration such as 90s, 15m, 2h or 7d",
            stacking_core::params::printable(text, 60)
        )
    })
}

/// Refuses an age that could reach a live run, naming what makes it so.
pub fn check_age(age: Duration, settings: &GcSettings) -> Result<()> {
    let safe = settings.youngest_safe_age();
    if age < safe {
        bail!(
            "--older-than {} could delete runs that are still live: a run lasts up to INVOCATION_TIMEOUT_S ({} s) and a worker's call up to COMPUTE_BUDGET_S + 60 s ({} s); use {} or more",
            humantime::format_duration(age),
            settings.invocation_timeout.as_secs(),
            (settings.compute_budget + REQUEST_SLACK).as_secs(),
            humantime::format_duration(safe)
        );
    }
    Ok(())
}

/// The run prefix (`run-<32 hex>/`) a key lives under, if any: the only
/// shape a function writes.
fn run_prefix(key: &str) -> Option<&str> {
    let (first, _) = key.split_once('/')?;
    stacking_service::context::is_run_id(first).then(|| &key[..first.len() + 1])
}

/// What one collection found and did.
#[derive(Debug, Default, PartialEq)]
pub struct Collected {
    pub runs_deleted: usize,
    pub objects_deleted: usize,
    pub runs_kept: usize,
}

/// Deletes every run prefix whose newest object is older than `age`
/// (or, with `dry_run`, only counts them).
pub async fn collect(store: &dyn BlobStore, age: Duration, dry_run: bool) -> Result<Collected> {
    let now = SystemTime::now();
    let mut runs: HashMap<String, (Vec<String>, SystemTime)> = HashMap::new();
    for (key, modified) in store.list_modified("").await? {
        if let Some(prefix) = run_prefix(&key) {
            let entry = runs
                .entry(prefix.to_string())
                .or_insert((Vec::new(), SystemTime::UNIX_EPOCH));
            entry.1 = entry.1.max(modified);
            entry.0.push(key);
        }
    }
    let mut out = Collected::default();
    for (prefix, (keys, newest)) in runs {
        let idle = now.duration_since(newest).unwrap_or_default();
        if idle < age {
            out.runs_kept += 1;
            continue;
        }
        if !dry_run {
            store.delete_many(&keys).await?;
        }
        tracing::info!(
            prefix,
            objects = keys.len(),
            idle_s = idle.as_secs(),
            "collected run"
        );
        out.runs_deleted += 1;
        out.objects_deleted += keys.len();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_run_prefixes_parse() {
        assert_eq!(parse_age("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_age("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_age("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_age("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_age("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_age("h").is_err() && parse_age("-1s").is_err() && parse_age("").is_err());
        let run = "run-0123456789abcdef0123456789abcdef";
        assert_eq!(
            run_prefix(&format!("{run}/model_0")),
            Some(&*format!("{run}/"))
        );
        for other in [
            "model_0",
            "run-x/model_0",
            "data/run-1/x",
            "run-0123/dataset",
        ] {
            assert_eq!(run_prefix(other), None, "{other}");
        }
    }

    /// gc deleted a live run's dataset at --older-than 2s; no age below the
    /// longest a run or a call can last is taken.
    #[test]
    fn ages_that_could_reach_a_live_run_are_refused() {
        let lookup = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let defaults = GcSettings::from_lookup(lookup(&[])).unwrap();
        assert_eq!(defaults.transfer, Transfer::S3);
        // max(300 s, 120 s + 60 s) + 60 s.
        assert_eq!(defaults.youngest_safe_age(), Duration::from_secs(360));
        let e = check_age(Duration::from_secs(2), &defaults).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("INVOCATION_TIMEOUT_S (300 s)") && msg.contains("use 6m or more"),
            "{msg}"
        );
        assert!(check_age(Duration::from_secs(360), &defaults).is_ok());
        let long_budget = GcSettings::from_lookup(lookup(&[
            ("COMPUTE_BUDGET_S", "900"),
            ("TRANSFER_TYPE", "ELASTICACHE"),
        ]))
        .unwrap();
        assert_eq!(long_budget.youngest_safe_age(), Duration::from_secs(1020));
        assert_eq!(long_budget.transfer, Transfer::ElastiCache);
        assert!(GcSettings::from_lookup(lookup(&[("INVOCATION_TIMEOUT_S", "0")])).is_err());
    }

    #[tokio::test]
    async fn only_run_prefixes_older_than_the_age_are_deleted() {
        let store = stacking_storage::memory::open();
        let old = "run-0123456789abcdef0123456789abcdef";
        for key in [
            format!("{old}/dataset"),
            format!("{old}/model_0"),
            "model_0".to_string(),
            "notes/run-0123456789abcdef0123456789abcdef".to_string(),
        ] {
            store
                .put(&key, bytes::Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        let kept = collect(&store, Duration::from_secs(3600), false)
            .await
            .unwrap();
        assert_eq!(
            kept,
            Collected {
                runs_deleted: 0,
                objects_deleted: 0,
                runs_kept: 1
            }
        );
        let dry = collect(&store, Duration::ZERO, true).await.unwrap();
        assert_eq!(dry.objects_deleted, 2);
        assert_eq!(store.list("").await.unwrap().len(), 4);
        let done = collect(&store, Duration::ZERO, false).await.unwrap();
        assert_eq!(
            done,
            Collected {
                runs_deleted: 1,
                objects_deleted: 2,
                runs_kept: 0
            }
        );
        let mut left = store.list("").await.unwrap();
        left.sort();
        assert_eq!(
            left,
            vec!["model_0", "notes/run-0123456789abcdef0123456789abcdef"]
        );
    }
}
