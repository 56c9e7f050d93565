//! Weak-network lab: a user-space UDP impairment proxy.
