//! The mesh directory: which cluster addresses serve which mesh.
//!
//! A deployment may split its instances into several meshes, each its own
//! Raft group. Every session id carries the tag of the mesh that created it;
//! a node that gets a request for a session of another mesh forwards the
//! session's load or write to a member of that mesh (see
//! [`crate::RaftStore`]). To do so each node needs the same
//! [`MeshDirectory`], given at start-up with
//! [`crate::NodeConfig::with_mesh_directory`].
//!
//! # Text form
//!
//! One form serves as a command-line flag, an environment variable and a
//! file. Entries are separated by `;` or newlines; each entry is a mesh name
//! (1-15 characters of `[a-z0-9-]`), then `=` or whitespace, then the cluster
//! addresses (`host:port`) of its members, separated by `,` and/or
//! whitespace. `#` starts a comment that runs to the end of the line. So a
//! flag reads
//!
//! ```text
//! a=10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000;b=10.0.1.1:7000,10.0.1.2:7000,10.0.1.3:7000
//! ```
//!
//! and a file reads
//!
//! ```text
//! # mesh  members' cluster addresses
//! a  10.0.0.1:7000 10.0.0.2:7000 10.0.0.3:7000
//! b  10.0.1.1:7000 10.0.1.2:7000 10.0.1.3:7000
//! ```
//!
//! A mesh named twice, a mesh without members, or an address listed twice
//! (a node belongs to exactly one mesh) is an error. [`MeshDirectory`]'s
//! `Display` prints the one-line form, which parses back to the same value.
//!
//! # Security
//!
//! Cross-mesh calls use the cluster RPC and present this node's cluster
//! secret, which the receiving member checks like any other cluster call. So
//! **all meshes of one deployment must share one cluster secret**.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use session_core::MeshTag;

/// Why a mesh directory is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mesh directory: {0}")]
pub struct MeshDirectoryError(String);

/// Every mesh of a deployment and the cluster addresses of its members; the
/// same on every node. See the module docs for the text form.
///
/// ```
/// use session_core::MeshTag;
/// use session_raft::MeshDirectory;
///
/// let directory: MeshDirectory = "a=10.0.0.1:7000,10.0.0.2:7000;b=10.0.1.1:7000"
///     .parse()
///     .unwrap();
/// let a = MeshTag::new("a").unwrap();
/// assert_eq!(directory.members(&a).unwrap().len(), 2);
/// assert_eq!(directory.to_string(), "a=10.0.0.1:7000,10.0.0.2:7000;b=10.0.1.1:7000");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshDirectory {
    /// Mesh → its members' cluster addresses, in the order given.
    meshes: BTreeMap<MeshTag, Vec<String>>,
}

impl MeshDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a mesh and its members' cluster addresses (`host:port`).
    ///
    /// Fails if the mesh is already present, has no members, an address is
    /// malformed, or an address already belongs to a mesh.
    pub fn insert<I, A>(&mut self, mesh: MeshTag, members: I) -> Result<(), MeshDirectoryError>
    where
        I: IntoIterator<Item = A>,
        A: Into<String>,
    {
        if self.meshes.contains_key(&mesh) {
            return Err(MeshDirectoryError(format!("mesh {mesh} is listed twice")));
        }
        let members: Vec<String> = members.into_iter().map(Into::into).collect();
        if members.is_empty() {
            return Err(MeshDirectoryError(format!("mesh {mesh} has no members")));
        }
        let mut known: BTreeSet<&str> =
            self.meshes.values().flatten().map(String::as_str).collect();
        for addr in &members {
            check_addr(addr).map_err(|why| {
                MeshDirectoryError(format!("mesh {mesh}: bad address {addr:?}: {why}"))
            })?;
            if !known.insert(addr) {
                return Err(MeshDirectoryError(format!(
                    "address {addr} is listed twice (a node belongs to one mesh)"
                )));
            }
        }
        self.meshes.insert(mesh, members);
        Ok(())
    }

    /// The cluster addresses of `mesh`'s members, if the mesh is known.
    pub fn members(&self, mesh: &MeshTag) -> Option<&[String]> {
        self.meshes.get(mesh).map(Vec::as_slice)
    }

    /// Whether `mesh` is in the directory.
    pub fn contains(&self, mesh: &MeshTag) -> bool {
        self.meshes.contains_key(mesh)
    }

    /// Every mesh with its members, in tag order.
    pub fn iter(&self) -> impl Iterator<Item = (&MeshTag, &[String])> {
        self.meshes
            .iter()
            .map(|(tag, members)| (tag, members.as_slice()))
    }

    /// Number of meshes.
    pub fn len(&self) -> usize {
        self.meshes.len()
    }

    /// Whether no mesh is listed.
    pub fn is_empty(&self) -> bool {
        self.meshes.is_empty()
    }

    /// Parses the text form (see the module docs).
    pub fn parse(text: &str) -> Result<Self, MeshDirectoryError> {
        let mut directory = Self::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split_once('#').map_or(line, |(before, _)| before);
            for entry in line.split(';').map(str::trim).filter(|e| !e.is_empty()) {
                let at = |why: String| MeshDirectoryError(format!("line {}: {why}", number + 1));
                let (name, rest) = match entry.split_once('=') {
                    Some((name, rest)) => (name.trim(), rest),
                    None => entry.split_once(char::is_whitespace).unwrap_or((entry, "")),
                };
                let tag = MeshTag::new(name).map_err(|e| at(format!("mesh {name:?}: {e}")))?;
                let members = rest
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|a| !a.is_empty());
                directory
                    .insert(tag, members)
                    .map_err(|MeshDirectoryError(why)| at(why))?;
            }
        }
        Ok(directory)
    }

    /// Reads and parses a file in the text form.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, MeshDirectoryError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| MeshDirectoryError(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|MeshDirectoryError(why)| {
            MeshDirectoryError(format!("{}: {why}", path.display()))
        })
    }
}

/// Checks the `host:port` shape; the host is resolved only when used, so
/// DNS names are fine.
fn check_addr(addr: &str) -> Result<(), &'static str> {
    let (host, port) = addr.rsplit_once(':').ok_or("expected host:port")?;
    if host.is_empty() || host.contains(['/', '@', '?', '#']) {
        return Err("expected host:port");
    }
    match port.parse::<u16>() {
        Ok(port) if port != 0 => Ok(()),
        _ => Err("the port must be 1-65535"),
    }
}

impl FromStr for MeshDirectory {
    type Err = MeshDirectoryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// The one-line text form: `a=h:p,h:p;b=h:p`.
impl fmt::Display for MeshDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (tag, members)) in self.meshes.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{tag}={}", members.join(","))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &str) -> MeshTag {
        MeshTag::new(name).unwrap()
    }

    #[test]
    fn flag_and_file_forms_agree() {
        let flag: MeshDirectory = "a=127.0.0.1:7001, 127.0.0.1:7002;b = h1:7003 ; c=[::1]:7004"
            .parse()
            .unwrap();
        let file = MeshDirectory::parse(
            "# meshes\n a 127.0.0.1:7001 127.0.0.1:7002  # first\n\nb h1:7003\nc\t[::1]:7004\n",
        )
        .unwrap();
        assert_eq!(flag, file);
        assert_eq!(
            flag.members(&tag("a")).unwrap(),
            ["127.0.0.1:7001", "127.0.0.1:7002"]
        );
        assert_eq!(flag.len(), 3);
        assert!(flag.contains(&tag("c")));
        let text = flag.to_string();
        assert_eq!(
            text,
            "a=127.0.0.1:7001,127.0.0.1:7002;b=h1:7003;c=[::1]:7004"
        );
        assert_eq!(text.parse::<MeshDirectory>().unwrap(), flag);
    }

    #[test]
    fn bad_directories_are_refused() {
        for bad in [
            "a=",
            "a",
            "A=h:1",
            "a=h:1;a=h:2",
            "a=h:1;b=h:1",
            "a=h",
            "a=h:0",
            "a=:7000",
            "a=h:99999",
            "a=http://h:1",
        ] {
            assert!(MeshDirectory::parse(bad).is_err(), "{bad:?} parsed");
        }
        let error = MeshDirectory::parse("a h:1\nb h:x").unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
        assert!(MeshDirectory::parse("  # nothing\n").unwrap().is_empty());
    }

    #[test]
    fn from_file_reads_the_file_form() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meshes");
        std::fs::write(&path, "a 127.0.0.1:1 127.0.0.1:2\nb 127.0.0.1:3\n").unwrap();
        let directory = MeshDirectory::from_file(&path).unwrap();
        assert_eq!(directory.members(&tag("b")).unwrap(), ["127.0.0.1:3"]);
        assert!(MeshDirectory::from_file(dir.path().join("missing")).is_err());
    }
}
