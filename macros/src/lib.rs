//! Attribute macros of tokengate (placeholder until the attributes land).
