//! PostgreSQL stores for resetkit (work in progress).
