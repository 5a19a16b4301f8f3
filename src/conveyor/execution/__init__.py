"""Running plans: the orchestrator (single writer of run metadata) and the executors."""
