//! End-to-end tests of the embedded system.
