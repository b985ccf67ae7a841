//! Model graphs, arrival processes, co-location scenarios and suites, read from TOML files.
