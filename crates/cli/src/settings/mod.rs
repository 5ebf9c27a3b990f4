//! The settings registry: every environment variable and every flag the
//! binary reads, one row each ([`table::SETTINGS`]), with its default,
//! bounds, meaning, the commands that read it and whether it is a secret.
//!
//! Everything users see about settings is made from the table, so it cannot
//! drift from what the code reads:
//! - the flags' help and defaults ([`command`] applies them to clap's
//!   command tree; the `args` structs only name the flags and their types);
//! - the environment section of `stacking --help` and of each command's
//!   `--help`;
//! - what `check-config` prints;
//! - `docs/configuration.md` (`render::markdown`; a test compares the committed
//!   page with it).
//!
//! The environment is read only through [`env()`] (a test scans the sources
//! for other reads), and every variable asked for must have a row (a test
//! records what each command's settings ask for).

mod render;
mod table;

use clap::{ArgMatches, Command};

pub use self::render::environment_help;
#[cfg(test)]
pub use self::render::markdown;
pub use self::table::SETTINGS;

/// A command of the binary, as the table names who reads a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `stacking driver`.
    Driver,
    /// `stacking trainer`.
    Trainer,
    /// `stacking reducer`.
    Reducer,
    /// `stacking metatrainer`.
    Metatrainer,
    /// `stacking run`.
    Run,
    /// `stacking invoke`.
    Invoke,
    /// `stacking client`.
    Client,
    /// `stacking health`.
    Health,
    /// `stacking gc`.
    Gc,
    /// `stacking check-config`: also every variable of the role it checks.
    CheckConfig,
}

impl Role {
    /// Every command, in the order `--help` lists them.
    pub const ALL: [Role; 10] = [
        Role::Driver,
        Role::Trainer,
        Role::Reducer,
        Role::Metatrainer,
        Role::Run,
        Role::Invoke,
        Role::Client,
        Role::Health,
        Role::Gc,
        Role::CheckConfig,
    ];

    /// The subcommand's name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Driver => "driver",
            Role::Trainer => "trainer",
            Role::Reducer => "reducer",
            Role::Metatrainer => "metatrainer",
            Role::Run => "run",
            Role::Invoke => "invoke",
            Role::Client => "client",
            Role::Health => "health",
            Role::Gc => "gc",
            Role::CheckConfig => "check-config",
        }
    }

    /// The command named `name`.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The four functions a deployment runs.
    pub fn is_function(self) -> bool {
        matches!(
            self,
            Role::Driver | Role::Trainer | Role::Reducer | Role::Metatrainer
        )
    }
}

/// Where a setting is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An environment variable.
    Env,
    /// A command-line flag (`--name`; the original's `-name` works too).
    Flag,
    /// A positional argument.
    Positional,
}

/// A setting's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// None: unset means "not given".
    None,
    /// A value the flag takes when not given (clap applies it).
    Value(&'static str),
    /// What the code does when the setting is not given, in words.
    Described(&'static str),
}

/// One row of the registry.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The variable (`TRANSFER_TYPE`) or the flag's long name (`tAddr`).
    pub name: &'static str,
    /// Environment, flag or positional argument.
    pub source: Source,
    /// Other spellings read when this one is unset (`AWS_ACCESS_KEY_ID`).
    pub aliases: &'static [&'static str],
    /// The commands that read it.
    pub roles: &'static [Role],
    /// Its default.
    pub default: Default,
    /// The values it takes; a value outside them is refused naming the setting.
    pub allowed: &'static str,
    /// What it does.
    pub meaning: &'static str,
    /// Never printed: `check-config` shows only that it is set.
    pub secret: bool,
}

impl Setting {
    const fn new(name: &'static str, source: Source, roles: &'static [Role]) -> Self {
        Self {
            name,
            source,
            aliases: &[],
            roles,
            default: Default::None,
            allowed: "",
            meaning: "",
            secret: false,
        }
    }

    /// An environment variable read by `roles`.
    pub const fn env(name: &'static str, roles: &'static [Role]) -> Self {
        Self::new(name, Source::Env, roles)
    }

    /// A flag of `roles`.
    pub const fn flag(name: &'static str, roles: &'static [Role]) -> Self {
        Self::new(name, Source::Flag, roles)
    }

    /// A positional argument of `roles`.
    pub const fn positional(name: &'static str, roles: &'static [Role]) -> Self {
        Self::new(name, Source::Positional, roles)
    }

    /// With other spellings.
    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }

    /// With a default value the flag takes.
    pub const fn default(mut self, value: &'static str) -> Self {
        self.default = Default::Value(value);
        self
    }

    /// With a default described in words.
    pub const fn described(mut self, text: &'static str) -> Self {
        self.default = Default::Described(text);
        self
    }

    /// With the values it takes.
    pub const fn allowed(mut self, text: &'static str) -> Self {
        self.allowed = text;
        self
    }

    /// With what it does.
    pub const fn meaning(mut self, text: &'static str) -> Self {
        self.meaning = text;
        self
    }

    /// A secret.
    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// Whether `role` reads it (`check-config` reads what the functions read).
    pub fn read_by(&self, role: Role) -> bool {
        self.roles.contains(&role)
            || (role == Role::CheckConfig
                && self.source == Source::Env
                && self.roles.iter().any(|r| r.is_function()))
    }

    /// Its default as one phrase, for help and documentation.
    pub fn default_text(&self) -> Option<&'static str> {
        match self.default {
            Default::None => None,
            Default::Value(v) | Default::Described(v) => Some(v),
        }
    }

    /// The flag's help line: meaning, then the values it takes.
    fn help(&self) -> String {
        if self.allowed.is_empty() {
            self.meaning.to_string()
        } else {
            format!("{} [allowed: {}]", self.meaning, self.allowed)
        }
    }
}

/// The row of the environment variable `name` (or one of its aliases).
pub fn variable(name: &str) -> Option<&'static Setting> {
    SETTINGS
        .iter()
        .find(|s| s.source == Source::Env && (s.name == name || s.aliases.contains(&name)))
}

/// The row of `role`'s flag or positional argument `name`.
pub fn argument(role: Role, name: &str) -> Option<&'static Setting> {
    SETTINGS
        .iter()
        .find(|s| s.source != Source::Env && s.name == name && s.roles.contains(&role))
}

/// Reads the environment variable `name`: the one place the binary reads its
/// environment. A name without a row is a bug the tests catch; in a build
/// it is still read, and logged once.
pub fn env(name: &str) -> Option<String> {
    if variable(name).is_none() {
        unregistered(name);
    }
    std::env::var(name).ok()
}

/// Whether `name` is set (to anything, even a value that is not UTF-8).
pub fn env_is_set(name: &str) -> bool {
    if variable(name).is_none() {
        unregistered(name);
    }
    std::env::var_os(name).is_some()
}

fn unregistered(name: &str) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| eprintln!("warning: the settings registry has no row for {name}"));
}

/// The binary's command tree with every flag's help and default from the
/// table, and each command's environment listed after its help.
pub fn command() -> Command {
    let mut cmd = <crate::args::Cli as clap::CommandFactory>::command();
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        if let Some(role) = Role::from_name(&name) {
            cmd = cmd.mut_subcommand(&name, |sub| apply(sub, role));
        }
    }
    cmd.after_help(environment_help(None))
}

/// The name a table row gives clap's argument `arg`.
fn argument_name(arg: &clap::Arg) -> String {
    arg.get_long()
        .map_or_else(|| arg.get_id().to_string(), str::to_string)
}

/// Applies the table's help and defaults to one command's arguments.
fn apply(mut sub: Command, role: Role) -> Command {
    let args: Vec<(clap::Id, String)> = sub
        .get_arguments()
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .map(|a| (a.get_id().clone(), argument_name(a)))
        .collect();
    for (id, name) in args {
        // A missing row fails the registry's tests; the flag still parses.
        let Some(row) = argument(role, &name) else {
            continue;
        };
        sub = sub.mut_arg(id, |a| {
            let a = a.help(row.help());
            match row.default {
                Default::Value(v) => a.default_value(v).required(false),
                _ => a,
            }
        });
    }
    sub.after_help(environment_help(Some(role)))
}

/// One line per flag of `role` that `matches` holds: its value and whether
/// it came from the command line or its default.
pub fn describe_flags(role: Role, matches: &ArgMatches) -> Vec<(String, String)> {
    let cmd = command();
    let Some(sub) = cmd.find_subcommand(role.name()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for arg in sub.get_arguments() {
        let Some(long) = arg.get_long() else {
            continue;
        };
        let id = arg.get_id().as_str();
        let Some(source) = matches.value_source(id) else {
            continue;
        };
        let value = matches
            .get_raw(id)
            .map(|v| {
                v.map(|s| s.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let source = match source {
            clap::parser::ValueSource::DefaultValue => "default",
            _ => "command line",
        };
        out.push((format!("--{long}"), format!("{value} ({source})")));
    }
    out
}

/// One line per environment variable `role` reads: the value in effect and
/// where it came from. Secrets show only that they are set; `effective`
/// gives values the code computed (a default such as the CPU count).
pub fn describe_environment(role: Role, effective: &[(&str, String)]) -> Vec<(String, String)> {
    SETTINGS
        .iter()
        .filter(|s| s.source == Source::Env && s.read_by(role))
        .map(|row| {
            let given = std::iter::once(row.name)
                .chain(row.aliases.iter().copied())
                .find_map(|n| env(n).map(|v| (n, v)));
            let shown = match (given, effective.iter().find(|(n, _)| *n == row.name)) {
                (Some((name, _)), _) if row.secret => format!("<set> (env {name})"),
                (Some((name, value)), _) => format!("{} (env {name})", without_password(&value)),
                (None, _) if row.secret => "(unset)".to_string(),
                (None, Some((_, value))) => format!("{value} (default)"),
                (None, None) => match row.default_text() {
                    Some(d) => format!("{d} (default)"),
                    None => "(unset)".to_string(),
                },
            };
            (row.name.to_string(), shown)
        })
        .collect()
}

/// `value` with the password of a URL's `user:password@` replaced
/// (`BUCKET_NAME=rediss://:PASSWORD@host:6379` is not a secret variable, but
/// may hold one).
fn without_password(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return value.to_string();
    };
    let rest = &value[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return value.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:<set>{}",
            &value[..scheme_end + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests;
