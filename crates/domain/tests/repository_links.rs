//! The repository stands alone: every markdown link and every mention of a `.md` document in
//! the README, the docs, comments and scripts names a file that exists in the tree. A clone
//! has nothing outside it to follow.

use std::path::{Path, PathBuf};

const SKIP_DIRS: &[&str] = &["target", "node_modules", "dist", ".git", ".venv"];
const TEXT_EXTENSIONS: &[&str] = &[
    "md", "rs", "sh", "toml", "yml", "yaml", "ts", "tsx", "js", "mjs", "html", "sql", "json", "py",
    "txt",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !SKIP_DIRS.contains(&name.as_str()) && !name.starts_with('.') || name == ".ci" {
                walk(&path, files);
            }
        } else if name == "run"
            || path
                .extension()
                .is_some_and(|e| TEXT_EXTENSIONS.contains(&e.to_string_lossy().as_ref()))
        {
            files.push(path);
        }
    }
}

fn text_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    walk(&repo_root(), &mut files);
    files
}

/// Relative targets of `[text](target)` links, without `#fragment`.
fn markdown_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("](") {
        let rest = &text[i + 2..];
        let Some(end) = rest.find(')') else { continue };
        let target = rest[..end].split_whitespace().next().unwrap_or("");
        let target = target.split('#').next().unwrap_or("");
        if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        out.push(target.to_owned());
    }
    out
}

/// Words ending in `.md` (a document named in prose or a comment), e.g. `docs/api.md`.
fn named_documents(text: &str) -> Vec<String> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || "._/-".contains(c);
    let mut out = Vec::new();
    for (i, _) in text.match_indices(".md") {
        let after = text[i + 3..].chars().next();
        if after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // `.mdx`, `.md_x`: not a markdown document name
        }
        let start = text[..i]
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_name_char(*c))
            .last()
            .map_or(i, |(j, _)| j);
        let name = text[start..i + 3].trim_start_matches(['.', '/']);
        if name.len() > 3 && !name.contains("://") {
            out.push(name.to_owned());
        }
    }
    out
}

#[test]
fn links_and_named_documents_exist_in_the_tree() {
    let root = repo_root();
    let files = text_files();
    assert!(files.len() > 50, "walked too few files: {}", files.len());
    let markdown_names: Vec<String> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "md"))
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let mut problems = Vec::new();
    for file in &files {
        // This file spells out what it looks for.
        if file.ends_with(file!().rsplit('/').next().unwrap_or(file!())) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let shown = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        // Spelled in two halves so this file does not name the path it looks for.
        let outside = concat!("..", "/", "shared");
        if text.contains(outside) {
            problems.push(format!(
                "{shown}: points outside the repository ({outside})"
            ));
        }
        if file.extension().is_some_and(|e| e == "md") {
            for link in markdown_links(&text) {
                let base = file.parent().unwrap_or(&root);
                let target = if let Some(abs) = link.strip_prefix('/') {
                    root.join(abs)
                } else {
                    base.join(&link)
                };
                if !target.exists() {
                    problems.push(format!("{shown}: link to {link}, which does not exist"));
                }
            }
        }
        for name in named_documents(&text) {
            let base_name = name.rsplit('/').next().unwrap_or(&name);
            let exists = root.join(&name).exists()
                || file.parent().is_some_and(|p| p.join(&name).exists())
                || markdown_names.iter().any(|m| m == base_name);
            if !exists {
                problems.push(format!(
                    "{shown}: names {name}, which is not in the repository"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "references to documents a clone does not have:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checks_catch_what_they_should() {
    assert_eq!(
        markdown_links("see [a](docs/x.md#top) and [b](https://e.x/y.md)"),
        vec!["docs/x.md".to_owned()]
    );
    assert_eq!(
        // Built at run time so that this file does not itself name a missing document.
        named_documents(&format!(
            "read {}.md, then `docs/api.md`; not x.mdx",
            "OUTSIDE"
        )),
        vec!["OUTSIDE.md".to_owned(), "docs/api.md".to_owned()]
    );
}
