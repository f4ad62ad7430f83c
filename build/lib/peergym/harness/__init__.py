"""Runner side of peergym: episodes, sweeps, records, the command line."""
