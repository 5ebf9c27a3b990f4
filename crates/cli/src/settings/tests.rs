//! The registry against the code: every flag and variable the code reads
//! has a row, every row is read, defaults agree, and the committed
//! `docs/configuration.md` is what the table makes.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use stacking_service::{CommonSettings, DriverSettings};
use stacking_storage::redis::RedisConfig;
use stacking_storage::s3::S3Config;

use super::*;
use crate::args::{parse_from, Command as Parsed};

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_argument_has_a_row_and_every_row_an_argument() {
    let cmd = command();
    for sub in cmd.get_subcommands() {
        let role = Role::from_name(sub.get_name())
            .unwrap_or_else(|| panic!("no role for `stacking {}`", sub.get_name()));
        let mut names = BTreeSet::new();
        for arg in sub.get_arguments() {
            if matches!(arg.get_id().as_str(), "help" | "version") {
                continue;
            }
            let name = argument_name(arg);
            let row = argument(role, &name)
                .unwrap_or_else(|| panic!("`stacking {} --{name}` has no row", role.name()));
            assert_eq!(
                row.source == Source::Positional,
                arg.get_long().is_none(),
                "{name}: positional in one place only"
            );
            names.insert(name);
        }
        for row in SETTINGS
            .iter()
            .filter(|s| s.source != Source::Env && s.roles.contains(&role))
        {
            assert!(
                names.contains(row.name),
                "the row {:?} names `stacking {}`, which has no such argument",
                row.name,
                role.name()
            );
        }
    }
    for row in SETTINGS {
        assert!(!row.meaning.is_empty(), "{} has no meaning", row.name);
        assert!(!row.roles.is_empty(), "{} is read by nobody", row.name);
    }
}

#[test]
fn every_command_parses_with_the_tables_defaults() {
    for words in [
        &["stacking", "driver"][..],
        &["stacking", "trainer"],
        &["stacking", "reducer"],
        &["stacking", "metatrainer"],
        &["stacking", "run"],
        &["stacking", "invoke"],
        &["stacking", "client"],
        &["stacking", "health"],
        &["stacking", "gc", "--older-than", "1h"],
        &["stacking", "check-config", "trainer"],
    ] {
        let parsed = parse_from(&argv(words));
        assert!(parsed.is_ok(), "{words:?}: {:?}", parsed.err());
    }
    let (cli, _) = parse_from(&argv(&["stacking", "driver"])).unwrap();
    let Parsed::Driver(d) = cli.command else {
        panic!("not a driver")
    };
    assert_eq!(d.serve.sp, 50051);
    assert_eq!(d.t_addr, "trainer.default.svc.cluster.local:80");
    assert_eq!((d.trainers_num, d.data.seed), (4, 42));
}

/// Records every variable asked for; answers `values` for those it knows.
struct Recorder {
    asked: RefCell<BTreeSet<String>>,
    values: Vec<(&'static str, &'static str)>,
}

impl Recorder {
    fn new(values: &[(&'static str, &'static str)]) -> Self {
        Self {
            asked: RefCell::default(),
            values: values.to_vec(),
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        self.asked.borrow_mut().insert(name.to_string());
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    }

    fn asked(&self) -> BTreeSet<String> {
        self.asked.borrow().clone()
    }
}

/// What the functions read through the libraries' lookups, with the values
/// that take each path (S3, Redis, role credentials).
fn asked_by_functions() -> BTreeSet<String> {
    let mut asked = BTreeSet::new();
    for values in [
        &[("TRANSFER_TYPE", "S3")][..],
        &[
            ("TRANSFER_TYPE", "ELASTICACHE"),
            ("BUCKET_NAME", "127.0.0.1:6379"),
        ],
    ] {
        let r = Recorder::new(values);
        CommonSettings::from_lookup(|n| r.get(n)).unwrap();
        S3Config::from_lookup(|n| r.get(n)).unwrap();
        RedisConfig::from_lookup(|n| r.get(n)).unwrap();
        stacking_service::malloc::tune_for_requests(|n| r.get(n).is_some());
        asked.extend(r.asked());
    }
    asked
}

#[test]
fn every_variable_the_code_asks_for_has_a_row_with_the_roles_that_read_it() {
    let functions = asked_by_functions();
    let r = Recorder::new(&[]);
    DriverSettings::from_lookup(|n| r.get(n)).unwrap();
    let driver_only = r.asked();
    let r = Recorder::new(&[]);
    let (cli, _) = parse_from(&argv(&["stacking", "run"])).unwrap();
    let Parsed::Run(run_args) = cli.command else {
        panic!("not run")
    };
    crate::run_settings::RunSettings::resolve(&run_args, |n| r.get(n)).unwrap();
    let run = r.asked();
    let r = Recorder::new(&[]);
    crate::gc::GcSettings::from_lookup(|n| r.get(n)).unwrap();
    let gc = r.asked();
    let rows = |names: &BTreeSet<String>| -> Vec<&'static Setting> {
        names
            .iter()
            .map(|n| variable(n).unwrap_or_else(|| panic!("the code reads {n}, which has no row")))
            .collect()
    };
    for row in rows(&functions) {
        assert!(
            row.read_by(Role::Trainer) && row.read_by(Role::Driver),
            "every function reads {}, but its row says {:?}",
            row.name,
            row.roles
        );
    }
    for row in rows(&driver_only) {
        assert!(
            row.read_by(Role::Driver) && !row.read_by(Role::Trainer),
            "only the driver reads {}, but its row says {:?}",
            row.name,
            row.roles
        );
    }
    for row in rows(&run) {
        assert!(row.read_by(Role::Run), "run reads {}", row.name);
    }
    for row in rows(&gc) {
        assert!(row.read_by(Role::Gc), "gc reads {}", row.name);
    }
    // And no row is a variable nothing reads: what the libraries ask for,
    // plus what the binary reads by name (the scan below lists those).
    let mut read: BTreeSet<String> = functions.union(&driver_only).cloned().collect();
    read.extend(run);
    read.extend(gc);
    read.extend(names_read_by_the_binary());
    for row in SETTINGS.iter().filter(|s| s.source == Source::Env) {
        assert!(
            read.contains(row.name),
            "{} has a row, but nothing reads it",
            row.name
        );
    }
}

/// Source files of the shipped crates, without their test modules.
fn shipped_sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for krate in ["core", "storage", "service", "cli"] {
        walk(
            &workspace().join("crates").join(krate).join("src"),
            &mut files,
        );
    }
    files
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "tests.rs"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let shipped = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
            (p, shipped)
        })
        .collect()
}

/// The variables the binary names in `settings::env("...")` and
/// `settings::env_is_set("...")`.
fn names_read_by_the_binary() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (_, text) in shipped_sources() {
        for call in ["settings::env(\"", "settings::env_is_set(\""] {
            for (i, _) in text.match_indices(call) {
                let rest = &text[i + call.len()..];
                if let Some(end) = rest.find('"') {
                    names.insert(rest[..end].to_string());
                }
            }
        }
    }
    names
}

#[test]
fn the_environment_is_read_only_through_the_registry() {
    let registry = workspace().join("crates/cli/src/settings/mod.rs");
    for (path, text) in shipped_sources() {
        if path.ends_with("crates/cli/src/settings/mod.rs") || path == registry {
            continue;
        }
        for pattern in [
            "env::var(",
            "env::var_os(",
            "env::vars(",
            "env::vars_os(",
            "from_default_env",
            "::from_env(",
        ] {
            assert!(
                !text.contains(pattern),
                "{} reads the environment itself ({pattern}); read it through settings::env",
                path.display()
            );
        }
    }
    for name in names_read_by_the_binary() {
        assert!(
            variable(&name).is_some(),
            "the binary reads {name}, which has no row"
        );
    }
}

#[test]
fn defaults_in_the_table_are_the_codes() {
    let none = |_: &str| None;
    let common = CommonSettings::from_lookup(none).unwrap();
    let driver = DriverSettings::from_lookup(none).unwrap();
    let mut effective = common.describe();
    effective.extend(driver.describe());
    let s3 = S3Config::from_lookup(none).unwrap();
    let redis = RedisConfig::from_lookup(none).unwrap();
    effective.extend([
        ("AWS_REGION", s3.region),
        ("BUCKET_NAME", s3.bucket),
        ("ELASTICACHE_TTL_S", redis.ttl.as_secs().to_string()),
        (
            "ELASTICACHE_MAX_OBJECT_MB",
            (redis.max_object_bytes >> 20).to_string(),
        ),
    ]);
    let mut checked = 0;
    for (name, value) in effective {
        if name == "MAX_SERVER_THREADS" || value == "(unset)" {
            continue;
        }
        let row = variable(name).unwrap();
        let default = row.default_text().unwrap_or("");
        assert!(
            default.to_lowercase().starts_with(&value.to_lowercase()),
            "{name}: the code's default is {value}, the table says {default:?}"
        );
        checked += 1;
    }
    assert!(checked >= 11, "only {checked} defaults checked");
}

#[test]
fn help_shows_every_setting_a_command_reads() {
    let mut cmd = command();
    let top = cmd.render_long_help().to_string();
    for row in SETTINGS.iter().filter(|s| s.source == Source::Env) {
        assert!(top.contains(row.name), "stacking --help lacks {}", row.name);
    }
    assert!(top.contains("INLINE, S3, ELASTICACHE"), "{top}");
    for role in Role::ALL {
        let help = command()
            .find_subcommand_mut(role.name())
            .map(|s| s.render_long_help().to_string())
            .unwrap_or_default();
        for row in SETTINGS.iter().filter(|s| s.read_by(role)) {
            let shown = match row.source {
                Source::Env => row.name.to_string(),
                Source::Flag => format!("--{}", row.name),
                Source::Positional => row.name.to_uppercase(),
            };
            assert!(
                help.contains(&shown),
                "stacking {} --help lacks {shown}:\n{help}",
                role.name()
            );
        }
    }
    let run = command()
        .find_subcommand_mut("run")
        .map(|s| s.render_long_help().to_string())
        .unwrap_or_default();
    assert!(run.contains("inline, s3, elasticache"), "{run}");
    // A worker's help does not list the driver's variables.
    let trainer = command()
        .find_subcommand_mut("trainer")
        .map(|s| s.render_long_help().to_string())
        .unwrap_or_default();
    assert!(!trainer.contains("TrainersNum"), "{trainer}");
}

#[test]
fn the_configuration_page_is_what_the_table_makes() {
    let path = workspace().join("docs/configuration.md");
    let made = markdown();
    // Test-only: regenerates the page.
    if std::env::var_os("STACKING_BLESS").is_some() {
        std::fs::write(&path, &made).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == made,
        "docs/configuration.md is not what crates/cli/src/settings/table.rs makes; run STACKING_BLESS=1 cargo test -p stacking settings"
    );
}

#[test]
fn secrets_and_url_passwords_are_never_shown() {
    assert_eq!(
        without_password("rediss://:hunter2@cache:6379/0"),
        "rediss://:<set>@cache:6379/0"
    );
    assert_eq!(
        without_password("redis://user:pw@host"),
        "redis://user:<set>@host"
    );
    assert_eq!(
        without_password("redis://user@host:1"),
        "redis://user@host:1"
    );
    assert_eq!(without_password("vhive-stacking"), "vhive-stacking");
    for row in SETTINGS.iter().filter(|s| s.secret) {
        assert_eq!(row.source, Source::Env);
    }
    assert!(variable("REDIS_PASSWORD").is_some_and(|r| r.secret));
    assert!(variable("AWS_SECRET_ACCESS_KEY").is_some_and(|r| r.secret));
}
