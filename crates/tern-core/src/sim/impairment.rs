//! Seeded network impairment model.
