//! Which Raft group a cluster call is meant for, on the wire.
//!
//! Node ids are unique only within a group: every mesh has its own node 1,
//! and a wiped and rebuilt cluster reuses its ids. A `--peers` or `--join`
//! typo, or a stale address, can therefore lead a group's Raft messages to a
//! member of another group whose id matches, which would then obey foreign
//! votes and append entries (truncating its own log, or tripping openraft's
//! assertions). So every call a member makes names the group it means in
//! [`GROUP_HEADER`]: its mesh tag (or `-`) and its cluster id (see
//! `Command::InitCluster`; `0` while unknown). The receiving member answers
//! `421 Misdirected Request` when the mesh differs, or when both cluster ids
//! are known and differ, and logs both.
//!
//! The cluster id is made by the group's first leader, so before it is
//! committed only the mesh tag and the node id tell groups apart.

use http::HeaderValue;
use session_core::MeshTag;

use crate::storage::state_machine::SessionReader;

/// Header naming the group a call is meant for: `<mesh or ->/<cluster id hex>`.
pub(crate) const GROUP_HEADER: &str = "x-raft-sessions-group";

/// A group as named on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupName {
    /// The mesh tag; `None` for a deployment without meshes.
    pub(crate) mesh: Option<MeshTag>,
    /// The cluster id; 0 when the caller does not know it.
    pub(crate) cluster_id: u64,
}

impl GroupName {
    /// The header value.
    pub(crate) fn header_value(&self) -> HeaderValue {
        let mesh = self.mesh.as_ref().map_or("-", |m| m.as_str());
        let text = format!("{mesh}/{:x}", self.cluster_id);
        // Mesh tags are `[a-z0-9-]`, the rest hex: always a valid value.
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("-/0"))
    }

    /// Parses a header value; `None` if it is not one.
    pub(crate) fn parse(value: &str) -> Option<Self> {
        let (mesh, cluster_id) = value.split_once('/')?;
        let mesh = match mesh {
            "-" => None,
            tag => Some(MeshTag::new(tag).ok()?),
        };
        Some(Self {
            mesh,
            cluster_id: u64::from_str_radix(cluster_id, 16).ok()?,
        })
    }

    /// Why a call meant for `self` must not be served by a member of `this`
    /// group, if it must not.
    pub(crate) fn mismatch(&self, this: &GroupName) -> Option<String> {
        let show = |m: &Option<MeshTag>| m.map_or_else(|| "(none)".to_owned(), |m| m.to_string());
        if self.mesh != this.mesh {
            return Some(format!(
                "meant for mesh {}, this member serves mesh {}",
                show(&self.mesh),
                show(&this.mesh)
            ));
        }
        if self.cluster_id != 0 && this.cluster_id != 0 && self.cluster_id != this.cluster_id {
            return Some(format!(
                "meant for cluster {:016x}, this member belongs to cluster {:016x} (a rebuilt \
                 cluster, or an address of another deployment)",
                self.cluster_id, this.cluster_id
            ));
        }
        None
    }
}

/// This member's own group: its mesh, and its cluster id as applied.
#[derive(Debug, Clone)]
pub(crate) struct OwnGroup {
    /// This member's mesh.
    pub(crate) mesh: Option<MeshTag>,
    /// The state machine, which holds the cluster id once applied.
    pub(crate) reader: SessionReader,
}

impl OwnGroup {
    /// The group's name now.
    pub(crate) fn name(&self) -> GroupName {
        GroupName {
            mesh: self.mesh,
            cluster_id: self.reader.cluster_id(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(mesh: Option<&str>, cluster_id: u64) -> GroupName {
        GroupName {
            mesh: mesh.map(|m| MeshTag::new(m).unwrap()),
            cluster_id,
        }
    }

    #[test]
    fn header_round_trips_and_garbage_is_refused() {
        for group in [name(None, 0), name(Some("eu-1"), 0xdead_beef)] {
            let value = group.header_value();
            assert_eq!(GroupName::parse(value.to_str().unwrap()), Some(group));
        }
        for bad in ["", "a", "a/", "a/xyz", "UPPER/1", "-/1/2"] {
            assert_eq!(GroupName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn another_mesh_or_another_known_cluster_is_a_mismatch() {
        let here = name(Some("a"), 7);
        assert!(name(Some("a"), 7).mismatch(&here).is_none());
        assert!(
            name(Some("a"), 0).mismatch(&here).is_none(),
            "caller does not know"
        );
        assert!(name(Some("a"), 7).mismatch(&name(Some("a"), 0)).is_none());
        assert!(name(Some("b"), 7).mismatch(&here).is_some());
        assert!(name(None, 7).mismatch(&here).is_some());
        assert!(name(Some("a"), 8).mismatch(&here).is_some());
    }
}
