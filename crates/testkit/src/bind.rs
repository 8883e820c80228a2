//! BIND 9 harness.
