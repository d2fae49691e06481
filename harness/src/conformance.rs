//! Store conformance suite (work in progress).
