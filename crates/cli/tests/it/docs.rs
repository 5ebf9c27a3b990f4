//! The front door stays a front door: the README is short, every link in it
//! and in `docs/` resolves to a file of the repository, and CI runs exactly
//! the test command the README gives.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The targets of `[text](target)` links that are not web addresses or
/// in-page anchors, without their `#anchor`.
fn local_links(markdown: &str) -> Vec<String> {
    let mut links = Vec::new();
    for (i, _) in markdown.match_indices("](") {
        let rest = &markdown[i + 2..];
        let Some(end) = rest.find(')') else { continue };
        let target = &rest[..end];
        if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
            continue;
        }
        links.push(target.split('#').next().unwrap_or("").to_string());
    }
    links
}

#[test]
fn the_readme_is_short_and_every_link_resolves() {
    let readme = read(&root().join("README.md"));
    let lines = readme.lines().count();
    assert!(
        lines <= 200,
        "README.md has {lines} lines; reference belongs in docs/"
    );
    let mut pages = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "md") {
            pages.push(entry.path());
        }
    }
    let mut checked = 0;
    for page in pages {
        let dir = page.parent().unwrap().to_path_buf();
        for link in local_links(&read(&page)) {
            assert!(
                dir.join(&link).exists(),
                "{} links to {link}, which does not exist",
                page.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} links found");
}

#[test]
fn ci_runs_the_readmes_test_command() {
    let readme = read(&root().join("README.md"));
    let command = "cargo test --release --workspace";
    assert!(
        readme.contains(&format!("```bash\n{command}\n```")),
        "README lost its test command"
    );
    let ci = read(&root().join(".ci/run"));
    assert!(
        ci.lines().any(|l| l.trim() == command),
        ".ci/run does not run the README's test command as it stands"
    );
}
