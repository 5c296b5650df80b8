"""The Cassandra backend: lightweight transactions for every compare-and-set (``store``), the
schema as versioned CQL files (``schema``, ``cql/``), the URL's options (``config``), statement
execution with CAS outcome recovery (``exec``, ``cql``), and one module per concern."""
