//! The source layout rules of session-core and session-raft, checked on
//! their files (see README "Workspace"):
//!
//! - no import circle between files: module A naming an item of file B while
//!   B (directly or through others) names one of A's. Paths are followed
//!   through re-exports to the file that defines the item, so a facade that
//!   only re-exports its children is not part of a circle; test modules do
//!   not count;
//! - nothing in session-raft names the node module except the crate root;
//! - no source file over 500 lines (its `#[cfg(test)]` module aside);
//! - every file starts with a `//!` doc saying its job.
//!
//! The parser is deliberately small: it reads `use` trees and `crate::` /
//! `super::` paths, which is all these crates use to name each other's
//! items.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest a source file may be, its test module aside.
const MAX_LINES: usize = 500;

/// One source file: its module path and its text without test code.
struct SourceFile {
    path: PathBuf,
    module: Vec<String>,
    code: String,
    /// Submodules declared in it (`mod x;`), which are not edges.
    children: BTreeSet<String>,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    match last.as_str() {
        "lib.rs" | "mod.rs" => {}
        other => parts.push(other.trim_end_matches(".rs").to_owned()),
    }
    parts
}

/// Drops comments and string literals (so that docs naming a path are not
/// imports) and everything from the first `#[cfg(test)]` item on.
fn strip(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        let code = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        let mut in_string = false;
        let mut previous = ' ';
        for c in code.chars() {
            if c == '"' && previous != '\\' {
                in_string = !in_string;
            } else if !in_string {
                out.push(c);
            }
            previous = c;
        }
        out.push('\n');
    }
    out
}

/// Lines of a file before its test module.
fn code_lines(text: &str) -> usize {
    text.lines()
        .take_while(|l| !l.trim_start().starts_with("#[cfg(test)]"))
        .count()
}

/// The files of a crate whose `mod x;` is under `#[cfg(test)]` (test-only
/// files), by module path.
fn test_only_modules(src: &Path, files: &[PathBuf]) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for pair in lines.windows(2) {
            if pair[0] == "#[cfg(test)]" {
                if let Some(name) = declared_module(pair[1]) {
                    let mut module = module_path(src, file);
                    module.push(name);
                    out.insert(module);
                }
            }
        }
    }
    out
}

/// `x` of a line `mod x;` / `pub(crate) mod x;`.
fn declared_module(line: &str) -> Option<String> {
    let line = line.trim();
    let rest = line.strip_suffix(';')?;
    let at = rest.find("mod ")?;
    let (visibility, name) = rest.split_at(at);
    let visibility = visibility.trim();
    (visibility.is_empty() || visibility.starts_with("pub"))
        .then(|| name["mod ".len()..].trim().to_owned())
}

/// Expands a use tree (`a::{b, c::{d, e}}`) into paths.
fn expand(tree: &str) -> Vec<Vec<String>> {
    // Renames (`x as y`) name x: drop "as" and the new name, keeping any
    // punctuation glued to it.
    let mut words = Vec::new();
    let mut tokens = tree.split_whitespace();
    while let Some(word) = tokens.next() {
        if word == "as" {
            let renamed = tokens.next().unwrap_or("");
            words.push(renamed.trim_start_matches(is_ident).to_owned());
        } else {
            words.push(word.to_owned());
        }
    }
    let tree = words.concat();
    let mut out = Vec::new();
    expand_into(&tree, &mut Vec::new(), &mut out);
    out
}

fn expand_into(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    for part in split_top(tree) {
        if let Some(open) = part.find('{') {
            let head = &part[..open];
            let inner = &part[open + 1..part.len() - 1];
            let mut segments: Vec<String> = head
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let depth = prefix.len();
            prefix.append(&mut segments);
            expand_into(inner, prefix, out);
            prefix.truncate(depth);
        } else if !part.is_empty() {
            let mut path = prefix.clone();
            path.extend(part.split("::").map(str::to_owned));
            out.push(path);
        }
    }
}

/// Splits on commas outside braces.
fn split_top(tree: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&tree[start..]);
    parts
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every `crate::…` / `super::…` / `self::…` path outside use statements.
fn inline_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let starts = ["crate::", "super::"].iter().any(|p| rest.starts_with(p));
        let boundary = i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != ':';
        if starts && boundary {
            let mut j = i;
            while j < bytes.len() && (is_ident(bytes[j]) || bytes[j] == ':') {
                j += 1;
            }
            let path: String = bytes[i..j].iter().collect();
            out.push(
                path.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Use statements of a file: (is a re-export, paths).
fn use_statements(code: &str) -> Vec<(bool, Vec<Vec<String>>)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = find_use(rest) {
        let before = rest[..at].trim_end();
        let line_start = before.rfind('\n').map_or(0, |n| n + 1);
        let reexport = before[line_start..].trim_start().starts_with("pub");
        let body_start = at + "use ".len();
        let Some(end) = rest[body_start..].find(';') else {
            break;
        };
        out.push((reexport, expand(&rest[body_start..body_start + end])));
        rest = &rest[body_start + end..];
    }
    out
}

fn find_use(code: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = code[from..].find("use ") {
        let at = from + at;
        let before = code[..at].chars().last();
        if before.is_none_or(|c| !is_ident(c)) {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

/// The code with its use statements blanked out (they are read whole by
/// [`use_statements`]; their grouped paths are not inline paths).
fn without_uses(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = find_use(rest) {
        out.push_str(&rest[..at]);
        match rest[at..].find(';') {
            Some(end) => rest = &rest[at + end + 1..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// Top-level names a file defines.
fn defined_names(code: &str) -> BTreeSet<String> {
    let keywords = [
        "struct",
        "enum",
        "fn",
        "trait",
        "type",
        "const",
        "static",
        "mod",
        "union",
        "macro_rules!",
    ];
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let mut words = line
            .split(|c: char| c.is_whitespace() || c == '(' || c == '<' || c == '{' || c == ':')
            .filter(|w| !w.is_empty())
            .peekable();
        while let Some(word) = words.next() {
            if keywords.contains(&word) {
                if let Some(name) = words.next() {
                    out.insert(name.trim_end_matches(';').to_owned());
                }
                break;
            }
            if !(word.starts_with("pub") || word == "async" || word == "unsafe" || word == "crate)")
            {
                break;
            }
        }
    }
    out
}

struct Crate {
    files: Vec<SourceFile>,
    by_module: BTreeMap<Vec<String>, usize>,
}

impl Crate {
    fn read(name: &str) -> Crate {
        let src = workspace().join(name).join("src");
        let mut paths = Vec::new();
        rust_files(&src, &mut paths);
        let test_only = test_only_modules(&src, &paths);
        let mut files = Vec::new();
        for path in paths {
            let module = module_path(&src, &path);
            if test_only.iter().any(|t| module.starts_with(t)) {
                continue;
            }
            let code = strip(&std::fs::read_to_string(&path).unwrap());
            let children = code.lines().filter_map(declared_module).collect();
            files.push(SourceFile {
                path,
                module,
                code,
                children,
            });
        }
        let by_module = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.module.clone(), i))
            .collect();
        Crate { files, by_module }
    }

    /// Makes a path absolute (from the crate root) as seen from `module`.
    fn absolute(&self, module: &[String], path: &[String]) -> Option<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let mut segments = path.iter().peekable();
        match segments.peek().map(|s| s.as_str()) {
            Some("crate") => {
                segments.next();
            }
            Some("super") | Some("self") => {
                out = module.to_vec();
                while let Some(s) = segments.peek() {
                    match s.as_str() {
                        "super" => {
                            out.pop()?;
                        }
                        "self" => {}
                        _ => break,
                    }
                    segments.next();
                }
            }
            Some(first) => {
                // A relative path counts only if it names a child module.
                let mut child = module.to_vec();
                child.push(first.to_owned());
                if !self.by_module.contains_key(&child) {
                    return None;
                }
                out = module.to_vec();
            }
            None => return None,
        }
        out.extend(segments.filter(|s| *s != "self").cloned());
        Some(out)
    }

    /// The file defining what `path` (absolute) names, through re-exports.
    fn resolve(&self, path: &[String], depth: usize) -> Option<usize> {
        let prefix = (0..=path.len())
            .rev()
            .find(|n| self.by_module.contains_key(&path[..*n]))?;
        let file = self.by_module[&path[..prefix]];
        let Some(name) = path.get(prefix) else {
            return Some(file);
        };
        if depth > 8 || defined_names(&self.files[file].code).contains(name) {
            return Some(file);
        }
        for (reexport, paths) in use_statements(&self.files[file].code) {
            for target in paths.iter().filter(|_| reexport) {
                let last = target.last().map(String::as_str);
                if last == Some(name.as_str()) || last == Some("*") {
                    let absolute = self.absolute(&self.files[file].module, target)?;
                    let mut rest = absolute;
                    if last == Some("*") {
                        rest.pop();
                        rest.push(name.clone());
                    }
                    rest.extend(path[prefix + 1..].iter().cloned());
                    return self.resolve(&rest, depth + 1);
                }
            }
        }
        Some(file)
    }

    /// File-level edges: file -> files whose items it names.
    fn edges(&self) -> Vec<BTreeSet<usize>> {
        self.named_paths()
            .into_iter()
            .map(|named| named.into_keys().collect())
            .collect()
    }

    /// For each file, the files it names and one path naming each.
    fn named_paths(&self) -> Vec<BTreeMap<usize, String>> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, file)| {
                let mut paths: Vec<Vec<String>> = use_statements(&file.code)
                    .into_iter()
                    .filter(|(reexport, _)| !reexport)
                    .flat_map(|(_, paths)| paths)
                    .collect();
                paths.extend(inline_paths(&without_uses(&file.code)));
                let mut named = BTreeMap::new();
                for path in paths {
                    if path.len() == 1 && file.children.contains(&path[0]) {
                        continue;
                    }
                    let Some(absolute) = self.absolute(&file.module, &path) else {
                        continue;
                    };
                    if let Some(target) = self.resolve(&absolute, 0).filter(|t| *t != i) {
                        named.entry(target).or_insert_with(|| path.join("::"));
                    }
                }
                named
            })
            .collect()
    }

    fn name(&self, file: usize) -> String {
        let path = &self.files[file].path;
        path.strip_prefix(workspace())
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// Groups of files that import each other (strongly connected, > 1).
    fn circles(&self) -> Vec<Vec<String>> {
        let edges = self.edges();
        let reach = |from: usize| {
            let mut seen = BTreeSet::from([from]);
            let mut todo = vec![from];
            while let Some(f) = todo.pop() {
                for &t in &edges[f] {
                    if seen.insert(t) {
                        todo.push(t);
                    }
                }
            }
            seen
        };
        let reachable: Vec<BTreeSet<usize>> = (0..self.files.len()).map(reach).collect();
        let mut done = BTreeSet::new();
        let mut out = Vec::new();
        for a in 0..self.files.len() {
            if done.contains(&a) {
                continue;
            }
            let group: Vec<usize> = reachable[a]
                .iter()
                .copied()
                .filter(|b| reachable[*b].contains(&a))
                .collect();
            done.extend(group.iter().copied());
            if group.len() > 1 {
                out.push(group.iter().map(|f| self.name(*f)).collect());
            }
        }
        out
    }
}

#[test]
fn no_import_circle_in_either_crate() {
    let circles: Vec<String> = ["session-core", "session-raft"]
        .iter()
        .flat_map(|name| {
            let krate = Crate::read(name);
            let named = krate.named_paths();
            krate
                .circles()
                .into_iter()
                .map(|group| {
                    // Each file of the circle and what it names in it.
                    let mut lines = Vec::new();
                    for (i, file) in (0..krate.files.len()).map(|i| (i, krate.name(i))) {
                        if group.contains(&file) {
                            let names: Vec<String> = named[i]
                                .iter()
                                .map(|(t, path)| (krate.name(*t), path))
                                .filter(|(t, _)| group.contains(t))
                                .map(|(t, path)| format!("{t} (by {path})"))
                                .collect();
                            lines.push(format!("{file} -> {}", names.join(", ")));
                        }
                    }
                    lines.join("\n")
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        circles.is_empty(),
        "files importing each other:\n{}",
        circles.join("\n\n")
    );
}

#[test]
fn nothing_but_the_crate_root_names_the_node_module() {
    let krate = Crate::read("session-raft");
    let offenders: Vec<String> = krate
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            !f.module.is_empty() && f.module.first().map(String::as_str) != Some("node")
        })
        .filter(|(_, f)| {
            f.code.contains("crate::node")
                || (f.module.len() == 1 && f.code.contains("super::node"))
        })
        .map(|(i, _)| krate.name(i))
        .collect();
    assert!(
        offenders.is_empty(),
        "these name crate::node: {offenders:?}"
    );
}

#[test]
fn files_are_short_and_say_their_job() {
    let mut problems = Vec::new();
    for name in ["session-core", "session-raft"] {
        let src = workspace().join(name).join("src");
        let mut paths = Vec::new();
        rust_files(&src, &mut paths);
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap();
            let shown = path
                .strip_prefix(workspace())
                .unwrap()
                .display()
                .to_string();
            let lines = code_lines(&text);
            if lines > MAX_LINES {
                problems.push(format!("{shown}: {lines} lines"));
            }
            if !text.trim_start().starts_with("//!") {
                problems.push(format!("{shown}: no //! module doc"));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The checker itself finds a circle and follows re-exports.
#[test]
fn the_checker_sees_a_circle_through_a_use_tree() {
    let file = |module: &[&str], code: &str| SourceFile {
        path: PathBuf::from(module.join("/")),
        module: module.iter().map(|s| s.to_string()).collect(),
        code: code.to_owned(),
        children: code.lines().filter_map(declared_module).collect(),
    };
    let files = vec![
        file(&[], "mod a;\nmod b;\npub use a::Thing;\n"),
        file(
            &["a"],
            "use crate::{b::{Other, more::X}};\npub struct Thing;\n",
        ),
        file(
            &["b"],
            "mod more;\npub struct Other;\nfn f() -> crate::Thing { todo!() }\n",
        ),
        file(&["b", "more"], "pub struct X;\n"),
    ];
    let by_module = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.module.clone(), i))
        .collect();
    let krate = Crate { files, by_module };
    assert_eq!(krate.circles(), vec![vec!["a".to_owned(), "b".to_owned()]]);
}
