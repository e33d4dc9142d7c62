"""Use cases: each one opens one transaction, applies the rules, audits, queues mail."""
