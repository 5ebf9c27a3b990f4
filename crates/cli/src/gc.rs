//! `stacking gc --older-than DURATION`: deletes the objects of runs whose
//! driver died before it could (SIGKILL, a lost node). A run's objects all
//! live under `run-<32 hex digits>/`; a run prefix whose newest object is
//! older than the given age is deleted whole. Keys outside run prefixes
//! (an original driver's flat keys, anything else in the bucket) are never
//! touched.
//!
//! The same with an S3 lifecycle rule instead (ages in whole days):
//! `aws s3api put-bucket-lifecycle-configuration --bucket B --lifecycle-configuration
//! '{"Rules":[{"ID":"stacking-runs","Status":"Enabled","Filter":{"Prefix":"run-"},"Expiration":{"Days":1}}]}'`

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};
use stacking_storage::BlobStore;

/// `30s`, `15m`, `2h`, `7d`, or plain seconds.
pub fn parse_age(text: &str) -> Result<Duration> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = match digits.parse() {
        Ok(n) => n,
        Err(_) => bail!("--older-than {text:?}: expected a number with s, m, h or d, e.g. 1h"),
    };
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("--older-than {text:?}: the unit must be s, m, h or d"),
    };
    Ok(Duration::from_secs(n.saturating_mul(seconds)))
}

/// The run prefix (`run-<32 hex>/`) a key lives under, if any.
fn run_prefix(key: &str) -> Option<&str> {
    let (first, _) = key.split_once('/')?;
    let hex = first.strip_prefix("run-")?;
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| &key[..first.len() + 1])
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
        assert!(parse_age("1w").is_err() && parse_age("h").is_err());
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
