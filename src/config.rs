//! Configuration: figment layering and validation.
