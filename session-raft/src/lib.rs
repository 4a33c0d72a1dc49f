//! Raft-replicated session store (work in progress).
