//! Settings shared by the four functions, read from the environment variables
//! the original benchmark uses. A bad value names the variable and the
//! allowed values.

use std::time::Duration;

use thiserror::Error;

mod limits;

pub use self::limits::*;

/// Why a setting was refused.
#[derive(Debug, Error, PartialEq)]
pub enum SettingsError {
    /// A value the variable does not take.
    #[error("{var}={value:?} is not allowed; allowed values: {allowed}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// The value given.
        value: String,
        /// The values it takes.
        allowed: &'static str,
    },
    /// `TRANSFER_TYPE=XDT`, vHive's own transfer, which this build does not have.
    #[error("TRANSFER_TYPE=XDT is not supported by this implementation (XDT is vHive's own data-transfer layer); use TRANSFER_TYPE=INLINE, S3 or ELASTICACHE")]
    XdtUnsupported,
}

/// How data travels between the functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// In the gRPC messages' bytes fields.
    Inline,
    /// Through the object store; messages carry keys.
    S3,
    /// Through a Redis server (`BUCKET_NAME` is its `host:port`, as in
    /// vSwarm's storage layer); messages carry keys.
    ElastiCache,
}

impl Transfer {
    /// Reads `TRANSFER_TYPE` (any case; empty means INLINE).
    pub fn parse(var: &'static str, value: &str) -> Result<Self, SettingsError> {
        match value.trim().to_ascii_uppercase().as_str() {
            "INLINE" | "" => Ok(Transfer::Inline),
            "S3" => Ok(Transfer::S3),
            "ELASTICACHE" => Ok(Transfer::ElastiCache),
            "XDT" => Err(SettingsError::XdtUnsupported),
            _ => Err(SettingsError::Invalid {
                var,
                value: value.into(),
                allowed: "INLINE (default), S3, ELASTICACHE",
            }),
        }
    }

    /// The name as the environment spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Transfer::Inline => "INLINE",
            Transfer::S3 => "S3",
            Transfer::ElastiCache => "ELASTICACHE",
        }
    }

    /// Whether payloads go through a store (the messages carry keys).
    pub fn uses_store(self) -> bool {
        !matches!(self, Transfer::Inline)
    }
}

/// How the driver runs one invocation: the settings the distributed driver
/// and `stacking run` share. Each resolves it from its flags and the
/// environment (the driver as the original does, `TrainersNum` over
/// `-trainersNum`; `stacking run` with its flags first) and embeds it whole,
/// in [`crate::driver::DriverConfig`] and [`crate::local::LocalOptions`].
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// Trainers called per invocation, at least 1.
    pub trainers: usize,
    /// Call every trainer at once (`CONCURRENT_TRAINING`).
    pub concurrent: bool,
    /// Keep the run's stored objects (`KEEP_OBJECTS`).
    pub keep_objects: bool,
    /// Largest gRPC message sent or accepted (`GRPC_MAX_MESSAGE_MB`).
    pub max_message_bytes: usize,
    /// Bound on one downstream call (the invocation's deadline usually wins).
    pub call_timeout: Duration,
}

impl Default for RunPlan {
    /// Four trainers one after another, objects deleted, the default
    /// message limit and call bound.
    fn default() -> Self {
        Self {
            trainers: 4,
            concurrent: false,
            keep_objects: false,
            max_message_bytes: DEFAULT_MAX_MESSAGE_MB << 20,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }
}

impl RunPlan {
    /// A plan of `trainers` trainers with every other setting as the
    /// environment's `settings` and `driver` say.
    pub fn new(
        trainers: usize,
        settings: &CommonSettings,
        driver: &DriverSettings,
    ) -> Result<Self, SettingsError> {
        if trainers == 0 {
            return Err(SettingsError::Invalid {
                var: "TrainersNum",
                value: "0".into(),
                allowed: "a whole number >= 1",
            });
        }
        Ok(Self {
            trainers,
            concurrent: driver.concurrent_training.unwrap_or(false),
            keep_objects: driver.keep_objects.unwrap_or(false),
            max_message_bytes: settings.max_message_bytes,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        })
    }
}

/// `true`/`false` the way the original's environment toggles are written.
pub fn parse_bool(var: &'static str, value: &str) -> Result<bool, SettingsError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(SettingsError::Invalid {
            var,
            value: value.into(),
            allowed: "true, false (also 1/0, yes/no, on/off)",
        }),
    }
}

/// A whole number of at least 1.
pub fn parse_positive(var: &'static str, value: &str) -> Result<usize, SettingsError> {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or(SettingsError::Invalid {
            var,
            value: value.into(),
            allowed: "a whole number >= 1",
        })
}

/// Seconds from the environment: a positive whole number.
pub fn parse_seconds(var: &'static str, value: &str) -> Result<Duration, SettingsError> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|&n| (1..=86_400).contains(&n))
        .map(Duration::from_secs)
        .ok_or(SettingsError::Invalid {
            var,
            value: value.into(),
            allowed: "a whole number of seconds from 1 to 86400",
        })
}

/// Environment-derived settings common to every function.
#[derive(Debug, Clone, PartialEq)]
pub struct CommonSettings {
    /// `TRANSFER_TYPE`.
    pub transfer: Transfer,
    /// `MAX_SERVER_THREADS`: requests computed at once (default: CPU count).
    pub max_server_threads: usize,
    /// `GRPC_MAX_MESSAGE_MB`: largest gRPC message accepted or sent (default 256).
    pub max_message_bytes: usize,
    /// `ENABLE_TRACING`.
    pub tracing: bool,
    /// Budgets and timeouts.
    pub limits: Limits,
}

/// What only the driver (and `stacking run`, which drives too) reads from
/// the environment; the workers never look at these.
#[derive(Debug, Clone, PartialEq)]
pub struct DriverSettings {
    /// `TrainersNum`: overrides `-trainersNum`, as in the original.
    pub trainers_num: Option<usize>,
    /// `CONCURRENT_TRAINING`: call every trainer at once.
    pub concurrent_training: Option<bool>,
    /// `KEEP_OBJECTS`: keep each run's stored objects.
    pub keep_objects: Option<bool>,
    /// `INVOCATION_TIMEOUT_S`: the budget of one SayHello.
    pub invocation_timeout: Duration,
}

impl DriverSettings {
    /// Reads the driver's variables through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        Ok(Self {
            trainers_num: get("TrainersNum")
                .map(|v| parse_positive("TrainersNum", &v))
                .transpose()?,
            concurrent_training: get("CONCURRENT_TRAINING")
                .map(|v| parse_bool("CONCURRENT_TRAINING", &v))
                .transpose()?,
            keep_objects: get("KEEP_OBJECTS")
                .map(|v| parse_bool("KEEP_OBJECTS", &v))
                .transpose()?,
            invocation_timeout: match get("INVOCATION_TIMEOUT_S") {
                Some(v) => parse_seconds("INVOCATION_TIMEOUT_S", &v)?,
                None => DEFAULT_INVOCATION_TIMEOUT,
            },
        })
    }

    /// The driver's variables as `(variable, value)`, for `check-config`.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let unset = || "(unset)".to_string();
        vec![
            (
                "TrainersNum",
                self.trainers_num.map_or_else(unset, |n| n.to_string()),
            ),
            (
                "CONCURRENT_TRAINING",
                self.concurrent_training
                    .map_or_else(unset, |c| c.to_string()),
            ),
            (
                "KEEP_OBJECTS",
                self.keep_objects.map_or_else(unset, |k| k.to_string()),
            ),
            (
                "INVOCATION_TIMEOUT_S",
                self.invocation_timeout.as_secs().to_string(),
            ),
        ]
    }
}

impl CommonSettings {
    /// The same settings with the driver's invocation budget in their limits.
    pub fn with_driver(mut self, driver: &DriverSettings) -> Self {
        self.limits.invocation_timeout = driver.invocation_timeout;
        self
    }
}

/// `GRPC_MAX_MESSAGE_MB` when unset.
pub const DEFAULT_MAX_MESSAGE_MB: usize = 256;

impl CommonSettings {
    /// Reads the settings through `get` (the process environment in production).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let transfer = match get("TRANSFER_TYPE") {
            Some(v) => Transfer::parse("TRANSFER_TYPE", &v)?,
            None => Transfer::Inline,
        };
        let max_server_threads = match get("MAX_SERVER_THREADS") {
            Some(v) => parse_positive("MAX_SERVER_THREADS", &v)?,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let max_message_bytes = match get("GRPC_MAX_MESSAGE_MB") {
            Some(v) => parse_positive("GRPC_MAX_MESSAGE_MB", &v)?,
            None => DEFAULT_MAX_MESSAGE_MB,
        }
        .saturating_mul(1 << 20);
        let tracing = match get("ENABLE_TRACING") {
            Some(v) => parse_bool("ENABLE_TRACING", &v)?,
            None => false,
        };
        let limits = Limits::from_lookup(&get)?;
        Ok(Self {
            transfer,
            max_server_threads,
            max_message_bytes,
            tracing,
            limits,
        })
    }

    /// Every setting in effect, as `(variable, value)`, for `check-config`
    /// and `stacking run` to print.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let l = &self.limits;
        vec![
            ("TRANSFER_TYPE", self.transfer.as_str().to_string()),
            ("MAX_SERVER_THREADS", self.max_server_threads.to_string()),
            (
                "GRPC_MAX_MESSAGE_MB",
                (self.max_message_bytes >> 20).to_string(),
            ),
            ("ENABLE_TRACING", self.tracing.to_string()),
            ("COMPUTE_BUDGET_S", l.compute_budget.as_secs().to_string()),
            (
                "MEMORY_BUDGET_MB",
                (l.memory_budget_bytes >> 20).to_string(),
            ),
            ("DRAIN_TIMEOUT_S", l.drain_timeout.as_secs().to_string()),
        ]
    }
}
/// How long the driver waits for one downstream call before giving up (the
/// invocation's own deadline is usually shorter, and wins).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults() {
        let s = CommonSettings::from_lookup(lookup(&[])).unwrap();
        assert_eq!(s.transfer, Transfer::Inline);
        assert_eq!(s.max_message_bytes, 256 << 20);
        assert!(!s.tracing);
    }

    #[test]
    fn bad_values_name_the_variable_and_allowed_values() {
        let e = CommonSettings::from_lookup(lookup(&[("TRANSFER_TYPE", "FTP")])).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("TRANSFER_TYPE")
                && msg.contains("INLINE")
                && msg.contains("S3")
                && msg.contains("ELASTICACHE"),
            "{msg}"
        );
        let e = CommonSettings::from_lookup(lookup(&[("TRANSFER_TYPE", "xdt")])).unwrap_err();
        assert_eq!(e, SettingsError::XdtUnsupported);
        assert!(e
            .to_string()
            .contains("use TRANSFER_TYPE=INLINE, S3 or ELASTICACHE"));
        let s = CommonSettings::from_lookup(lookup(&[("TRANSFER_TYPE", "elasticache")])).unwrap();
        assert_eq!(s.transfer, Transfer::ElastiCache);
        assert!(s.transfer.uses_store() && !Transfer::Inline.uses_store());
        let e = CommonSettings::from_lookup(lookup(&[("MAX_SERVER_THREADS", "0")])).unwrap_err();
        assert!(e.to_string().contains("MAX_SERVER_THREADS"));
        let e = CommonSettings::from_lookup(lookup(&[("ENABLE_TRACING", "maybe")])).unwrap_err();
        assert!(e.to_string().contains("ENABLE_TRACING"));
        for var in ["COMPUTE_BUDGET_S", "DRAIN_TIMEOUT_S", "MEMORY_BUDGET_MB"] {
            let e = CommonSettings::from_lookup(lookup(&[(var, "0")])).unwrap_err();
            assert!(e.to_string().contains(var), "{e}");
        }
        let e = DriverSettings::from_lookup(lookup(&[("INVOCATION_TIMEOUT_S", "0")])).unwrap_err();
        assert!(e.to_string().contains("INVOCATION_TIMEOUT_S"), "{e}");
    }

    #[test]
    fn driver_variables_are_read_apart_from_the_common_ones() {
        // A worker never reads the driver's variables: a bad one cannot stop it.
        assert!(CommonSettings::from_lookup(lookup(&[("TrainersNum", "0")])).is_ok());
        let d = DriverSettings::from_lookup(lookup(&[])).unwrap();
        assert_eq!((d.trainers_num, d.concurrent_training), (None, None));
        assert_eq!(d.invocation_timeout, DEFAULT_INVOCATION_TIMEOUT);
        let d = DriverSettings::from_lookup(lookup(&[
            ("TrainersNum", "16"),
            ("CONCURRENT_TRAINING", "true"),
            ("INVOCATION_TIMEOUT_S", "7"),
        ]))
        .unwrap();
        assert_eq!(
            (d.trainers_num, d.concurrent_training),
            (Some(16), Some(true))
        );
        let common = CommonSettings::from_lookup(lookup(&[])).unwrap();
        assert_eq!(
            common.clone().with_driver(&d).limits.invocation_timeout,
            Duration::from_secs(7)
        );
        let e = DriverSettings::from_lookup(lookup(&[("TrainersNum", "0")])).unwrap_err();
        assert!(e.to_string().contains("TrainersNum"), "{e}");
        let shown = d.describe();
        assert!(
            shown.contains(&("TrainersNum", "16".to_string())),
            "{shown:?}"
        );
        let d = DriverSettings::from_lookup(lookup(&[("KEEP_OBJECTS", "yes")])).unwrap();
        assert_eq!(d.keep_objects, Some(true));
        assert!(RunPlan::new(4, &common, &d).unwrap().keep_objects);
        let e = DriverSettings::from_lookup(lookup(&[("KEEP_OBJECTS", "maybe")])).unwrap_err();
        assert!(e.to_string().contains("KEEP_OBJECTS"), "{e}");
        assert!(RunPlan::new(0, &common, &d).is_err());
    }

    #[test]
    fn limits_have_documented_defaults_and_read_the_environment() {
        let s = CommonSettings::from_lookup(lookup(&[])).unwrap();
        assert_eq!(s.limits, Limits::default());
        assert_eq!(s.limits.compute_budget, Duration::from_secs(120));
        let s = CommonSettings::from_lookup(lookup(&[
            ("COMPUTE_BUDGET_S", "3"),
            ("MEMORY_BUDGET_MB", "64"),
        ]))
        .unwrap();
        assert_eq!(s.limits.compute_budget, Duration::from_secs(3));
        assert_eq!(s.limits.memory_budget_bytes, 64 << 20);
    }
}
