//! Schema changes as `.sql` files: one change per file, in a folder per
//! service and database (`migrations/sqlite/0001_initial.sql`,
//! `migrations/postgres/0001_initial.sql`), named in
//! the order they apply. A database records the name of each change it has
//! had, so a file must never be renamed or edited once released: a new
//! change is a new file.

use std::path::Path;

/// One schema change: its file's name without `.sql`, and its statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
}

/// The migrations in `$dir` (relative to the file that names them), in the
/// order given, each file's text built into the binary:
/// `migrations!("../migrations/sqlite": "0001_initial", "0002_clock")`.
#[macro_export]
macro_rules! migrations {
    ($dir:literal: $($name:literal),+ $(,)?) => {
        &[$($crate::Migration {
            name: $name,
            sql: include_str!(concat!($dir, "/", $name, ".sql")),
        }),+]
    };
}

/// How a list of migrations disagrees with the folder it comes from: files
/// the list leaves out, and names out of order. Empty when they agree. A
/// service's test calls it, so a file added but not listed fails the build's
/// tests instead of never being applied.
pub fn disagreements(dir: &Path, listed: &[Migration]) -> std::io::Result<Vec<String>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "sql")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            files.push(stem.to_owned());
        }
    }
    files.sort();
    let mut problems = Vec::new();
    for file in &files {
        if !listed.iter().any(|m| m.name == file) {
            problems.push(format!(
                "{file}.sql is not listed, so it would never be applied"
            ));
        }
    }
    for pair in listed.windows(2) {
        if pair[0].name >= pair[1].name {
            problems.push(format!(
                "{} is listed before {}: names must sort in the order they apply",
                pair[0].name, pair[1].name
            ));
        }
    }
    Ok(problems)
}
