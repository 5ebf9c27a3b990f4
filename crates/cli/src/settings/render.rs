//! The registry as text: the environment section of `--help`, and
//! `docs/configuration.md`.

use std::fmt::Write as _;

use super::{Role, Setting, Source, SETTINGS};

/// Width of the help text's lines.
const WIDTH: usize = 78;

/// The environment variables `role` reads (every one for `None`), as the
/// section after a command's `--help`.
pub fn environment_help(role: Option<Role>) -> String {
    let rows: Vec<&Setting> = SETTINGS
        .iter()
        .filter(|s| s.source == Source::Env && role.is_none_or(|r| s.read_by(r)))
        .collect();
    let mut out = String::from(match role {
        None => "Environment (every variable; `stacking COMMAND --help` lists a command's own):\n",
        Some(Role::CheckConfig) => "Environment (the variables of the role it checks):\n",
        Some(_) => "Environment:\n",
    });
    for row in rows {
        let mut head = format!("  {}", row.name);
        for alias in row.aliases {
            let _ = write!(head, ", {alias}");
        }
        if let Some(default) = row.default_text() {
            let _ = write!(head, "  [default: {default}]");
        }
        if row.secret {
            head.push_str("  [secret]");
        }
        out.push_str(&head);
        out.push('\n');
        let mut text = row.meaning.to_string();
        if !row.allowed.is_empty() {
            let _ = write!(text, " Allowed: {}.", row.allowed);
        }
        for line in wrap(&text, WIDTH - 6) {
            let _ = writeln!(out, "      {line}");
        }
    }
    out.push_str("\nThe original's single-dash flags work too: -tAddr host:port, -sp=50051.\nReference: docs/configuration.md");
    out
}

/// `text` broken into lines of at most `width` characters, at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A table cell: pipes escaped.
#[cfg(test)]
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
fn roles(row: &Setting) -> String {
    row.roles
        .iter()
        .map(|r| r.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `docs/configuration.md`, made from the table (the registry's tests
/// compare the committed page with it, and write it with `STACKING_BLESS=1`).
#[cfg(test)]
pub fn markdown() -> String {
    let mut out = String::from(
        "# Configuration\n\n\
<!-- Generated from crates/cli/src/settings/table.rs: edit the table, then run\n\
     STACKING_BLESS=1 cargo test -p stacking settings -->\n\n\
Every setting the `stacking` binary reads. `stacking --help` and each command's `--help` show the same\n\
rows; `stacking check-config ROLE FLAGS...` prints the values a function would run with, and where\n\
each came from, without serving. A value outside what a setting allows stops start-up with a message\n\
naming the setting and the values it takes.\n\n\
Flags are written `--name`; the original benchmark's single-dash spellings (`-tAddr host:port`,\n\
`-sp=50051`) work too.\n\n\
## Environment variables\n\n\
| variable | read by | default | allowed | meaning |\n\
| --- | --- | --- | --- | --- |\n",
    );
    for row in SETTINGS.iter().filter(|s| s.source == Source::Env) {
        let mut name = format!("`{}`", row.name);
        for alias in row.aliases {
            let _ = write!(name, ", `{alias}`");
        }
        if row.secret {
            name.push_str(" (secret)");
        }
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} |",
            roles(row),
            cell(row.default_text().unwrap_or("unset")),
            cell(row.allowed),
            cell(row.meaning),
        );
    }
    let _ = writeln!(
        out,
        "\nSecrets are never printed: `check-config` shows only that they are set, and a password\n\
inside a `BUCKET_NAME` URL is masked."
    );
    for role in Role::ALL {
        let args: Vec<&Setting> = SETTINGS
            .iter()
            .filter(|s| s.source != Source::Env && s.roles.contains(&role))
            .collect();
        if args.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "\n## `stacking {}`\n\n| argument | default | allowed | meaning |\n| --- | --- | --- | --- |\n",
            role.name()
        );
        for row in args {
            let name = match row.source {
                Source::Positional => format!("`{}` (positional)", row.name.to_uppercase()),
                _ => format!("`--{}`", row.name),
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} |",
                cell(row.default_text().unwrap_or("")),
                cell(row.allowed),
                cell(row.meaning),
            );
        }
    }
    out
}
